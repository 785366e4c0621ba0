"""prometheus-client's multiprocess directory for the API's server processes (gunicorn or granian).

It must be in the environment (PROMETHEUS_MULTIPROC_DIR) before a server process imports prometheus-client,
so the server's master prepares it: api/gunicorn_conf.py for gunicorn, api/serve.py for granian. Kept out
of the `api` package, whose import would load prometheus-client in the master first.
"""

from __future__ import annotations

import os
import tempfile

from shared.config import Settings


def prepare(settings: Settings) -> tuple[str, bool]:
    """The directory (METRICS_DIR, or a fresh temporary one), emptied of a previous run's files and exported
    to the server's processes; and whether it was created here (then the server removes it on exit)."""
    path = settings.metrics_dir or tempfile.mkdtemp(prefix="inference-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # files of a previous run would add stale counts
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    # Written (not read) here: the server's processes inherit both; their Settings read METRICS_DIR.
    os.environ.update(PROMETHEUS_MULTIPROC_DIR=path, METRICS_DIR=path)
    return path, not settings.metrics_dir
