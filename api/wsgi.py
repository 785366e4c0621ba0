"""WSGI entry point for granian and gunicorn (`python -m api.serve` starts either): `api.wsgi:app`.

A served API refuses to start open: with API_KEYS empty it needs ALLOW_ANONYMOUS=true (create_app itself,
which tests call in-process, does not ask).
"""

from api import create_app
from shared.config import Settings

_settings = Settings.from_env()
_settings.require_keys_or_anonymous()
app = create_app(_settings)
