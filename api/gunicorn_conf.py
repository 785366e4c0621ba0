"""gunicorn settings, taken from the service's Settings: `gunicorn -c api/gunicorn_conf.py api.wsgi:app`.

gthread workers: a request waiting on a result (?wait, long-poll) holds a thread, not a process.
"""

from shared.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_processes
threads = _settings.api_threads
worker_class = "gthread"
# A long-poll may hold a request for 30 s; keep gunicorn from killing the worker before that.
timeout = 60
graceful_timeout = 35
keepalive = 5
accesslog = None
