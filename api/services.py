"""What the views share, behind one typed accessor: `services()` (as Flask's tutorial has `get_db()`).

`create_app` builds one `Services` per app and keeps it in `app.extensions`; this module is the only one
that reads `app.extensions`, so every call a view makes through it is type-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:  # types only: api/auth.py reads services() and api/jobs/redis_jobs.py imports api/auth.py
    from api.idempotency import IdempotencyKeys
    from api.jobs.redis_jobs import RedisJobs
    from api.model_info import ModelInfo
    from shared import storage
    from shared.batch_records import BatchRecords
    from shared.config import Settings

_EXTENSION = "inference_services"


@dataclass(frozen=True)
class Services:
    """Settings and the Redis- and storage-backed services of one app."""

    settings: Settings
    jobs: RedisJobs
    model_info: ModelInfo
    batches: BatchRecords
    storage: storage.Storage
    idempotency: IdempotencyKeys
    api_key_digests: tuple[bytes, ...]  # SHA-256 of each API key (API_KEYS); empty when keys are off
    metrics_token_digest: bytes | None  # SHA-256 of METRICS_TOKEN, which opens GET /metrics only; None: unset


def install(app: Flask, services: Services) -> None:
    """Make `services` what `services()` answers within `app`."""
    app.extensions[_EXTENSION] = services


def services_of(app: Flask) -> Services:
    """The services of `app`, outside a request (tests)."""
    found = app.extensions[_EXTENSION]
    assert isinstance(found, Services)
    return found


def services() -> Services:
    """The services of the app handling the current request."""
    return services_of(current_app._get_current_object())  # type: ignore[attr-defined]  # one lookup, not one a read
