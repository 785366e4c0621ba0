"""The API's one start command, `python -m api.serve`: the WSGI server API_SERVER names, serving api.wsgi:app.

- granian (the default): its WSGI interface (a Rust HTTP parser; the Flask app runs on a pool of Python
  threads), sized like gunicorn: API_PROCESSES worker processes × API_THREADS blocking threads each, so a
  `?wait` long-poll holds a thread, not a process. As gunicorn_conf.py does: a dead worker is replaced, and
  so is one that sent no heartbeat for API_PROCESS_TIMEOUT_S (api/process_watchdog.py); on SIGTERM the
  workers finish the requests in flight for up to 35 s (a 30 s long-poll, plus margin) before being killed;
  prometheus-client's multiprocess directory is set before any worker imports it.
- gunicorn: this process becomes `gunicorn -c api/gunicorn_conf.py api.wsgi:app` (exec, so gunicorn's
  master keeps this process id and its signals).

The workers are started with multiprocessing's "spawn", not "fork": this process has already imported
prometheus-client (through the `api` package) before PROMETHEUS_MULTIPROC_DIR was set, and a forked
worker would inherit that single-process view of the metrics.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import sys
import tempfile
from typing import Any

from api import process_watchdog
from shared import metrics_dir
from shared.config import PROJECT_ROOT, Settings
from shared.logs import configure_logging

APP = "api.wsgi:app"
DRAIN_S = 35  # as gunicorn's graceful_timeout: a 30 s long-poll may be in flight at SIGTERM


def gunicorn_argv() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", os.path.join(PROJECT_ROOT, "api", "gunicorn_conf.py"), APP]


def granian_log_config(settings: Settings) -> dict[str, Any] | None:
    """granian's own lines (a worker's exit, its replacement) in the service's format: with LOG_FORMAT=json, one
    JSON object per line on stderr, as gunicorn_conf.py's logconfig_dict does for gunicorn's; None: granian's."""
    if settings.log_format != "json":
        return None
    handler = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    # granian merges this into its own configuration key by key: both of its handlers are replaced.
    return {
        "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
        "handlers": {"console": handler, "access": handler},
    }


def serve_granian(settings: Settings) -> None:
    """Run granian's WSGI server until SIGTERM or SIGINT (it drains, then returns)."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    configure_logging(settings.log_level, settings.log_format)  # the watchdog's lines, in the service's format
    path, owned = metrics_dir.prepare(settings)
    multiprocessing.set_start_method("spawn", force=True)
    heartbeats = tempfile.mkdtemp(prefix="inference-api-heartbeats-")
    timeout_s = settings.api_process_timeout_s
    watchdog = process_watchdog.Watchdog(heartbeats, timeout_s)
    watchdog.start()
    try:
        Server(
            APP,
            address=settings.api_host,
            port=settings.api_port,
            interface=Interfaces.WSGI,
            workers=settings.api_processes,
            blocking_threads=settings.api_threads,
            websockets=False,
            respawn_failed_workers=True,
            workers_kill_timeout=DRAIN_S,
            log_level=LogLevels.warning,
            log_dictconfig=granian_log_config(settings),
            log_access=False,  # the app logs one line per request, with its request id (api/request_context.py)
        ).serve(
            # Each worker process starts its heartbeat, then builds the app (the arguments go with it to the
            # spawned process).
            target_loader=functools.partial(
                process_watchdog.load_app, heartbeats, process_watchdog.beat_interval(timeout_s)
            ),
            wrap_loader=False,
        )
    finally:
        watchdog.stop()
        shutil.rmtree(heartbeats, ignore_errors=True)
        if owned:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    settings = Settings.from_env()
    if settings.api_server == "granian":
        serve_granian(settings)
    else:
        argv = gunicorn_argv()
        os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
