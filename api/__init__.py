"""The HTTP API: validates requests and enqueues them as RQ jobs; it never runs the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from api import auth, errors, health, jobs
from api.model_info import ModelInfo
from api.store import JobStore
from shared.config import Settings
from shared.connection import connect


@dataclass
class Inference:
    """What the views share: settings and the Redis-backed services, stored in `app.extensions`."""

    settings: Settings
    store: JobStore
    model_info: ModelInfo


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    connection = connect(settings)
    app.extensions["inference"] = Inference(settings, JobStore(connection, settings), ModelInfo(connection))
    auth.init_app(app, settings)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(health.bp)
    errors.init_app(app)
    return app
