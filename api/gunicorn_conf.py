"""gunicorn settings, taken from the service's Settings: `gunicorn -c api/gunicorn_conf.py api.wsgi:app`.

gthread workers: a request waiting on a result (?wait, long-poll) holds a thread, not a process.

Metrics: prometheus-client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR in the environment before
a process imports it. This file runs in the gunicorn master before any worker loads the app, so it prepares
the directory here (shared/metrics_dir.py: METRICS_DIR, or a fresh temporary one, emptied) for the workers.
"""

import shutil
from typing import Any

from shared import metrics_dir
from shared.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_processes
threads = _settings.api_threads
worker_class = "gthread"
# A worker whose main loop has not notified for this long is killed and replaced (a gthread worker's main
# loop notifies while its threads hold long-polls). The same setting drives granian's watchdog.
timeout = _settings.api_process_timeout_s
graceful_timeout = 35
keepalive = 5
# gunicorn's largest request line (its default is 4094 bytes): above the app's own limit (8000 bytes of path
# and query string, api/request_line.py), which answers the service's JSON 414 first; longer lines get
# gunicorn's own HTML 414.
limit_request_line = 8190
accesslog = None  # the app logs one line per request, with its request id (api/request_context.py)

_metrics_dir, _owns_metrics_dir = metrics_dir.prepare(_settings)

if _settings.log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["stderr"], "level": _settings.log_level},
        "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": _settings.log_level, "propagate": False}},
    }


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker died: let prometheus-client retire its live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server: Any) -> None:
    if _owns_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
