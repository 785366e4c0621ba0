"""The HTTP API: validates requests and enqueues them as RQ jobs; it never runs the model."""

from __future__ import annotations

from flask import Flask

from api import auth, error_handler, health, index, metrics, request_context, request_line, services
from api.bulk import routes as bulk_routes
from api.idempotency import IdempotencyKeys
from api.jobs import routes as job_routes
from api.jobs.redis_jobs import RedisJobs
from api.model_info import ModelInfo
from api.openapi import routes as openapi_routes
from api.protocols import kserve_rest, tfserving_rest
from shared import storage, tenants
from shared.batch_records import BatchRecords
from shared.config import Settings
from shared.connection import connect
from shared.logs import configure_logging


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__, static_folder=None)  # no /static route: /docs serves its own assets
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    # No automatic OPTIONS answers: this API does no CORS, and Allow headers list only the methods the OpenAPI
    # document describes (api/error_handler.py drops Werkzeug's implicit HEAD from them).
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    connection = connect(settings)
    keyring = tenants.load(settings)
    services.install(
        app,
        services.Services(
            settings,
            RedisJobs(connection, settings, keyring),
            ModelInfo(connection, settings.queue_name),
            BatchRecords(connection, settings),
            storage.from_settings(settings),
            IdempotencyKeys(connection, settings),
            auth.key_digests(keyring),
            auth.metrics_token_digest(settings),
        ),
    )
    app.url_map.converters["model"] = tfserving_rest.ModelName
    request_line.init_app(app)  # first: an over-long URL is refused before anything else looks at it
    auth.init_app(app)
    app.register_blueprint(job_routes.bp)
    app.register_blueprint(bulk_routes.bp)
    app.register_blueprint(index.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(tfserving_rest.bp)
    app.register_blueprint(kserve_rest.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi_routes.bp)
    request_context.init_app(app)
    error_handler.init_app(app)
    return app
