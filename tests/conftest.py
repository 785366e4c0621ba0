"""Session fixtures: one real redis-server for the whole run (the embedded one), the example model,
and the main service (the real API under the default server, granian, and one real worker) that most
end-to-end tests share.

Tests that need other settings start their own service on another Redis database of the same server.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import redis
from sklearn.datasets import load_digits

from scripts.embedded_redis import EmbeddedRedis
from shared.config import PROJECT_ROOT
from tests.source_tree import service_scripts
from tests.support import Service, free_port, service_settings

DIGITS_MODEL = os.path.join(PROJECT_ROOT, "models", "digits.keras")
DATABASES = 64  # of the test Redis; database 0 is never handed out


class DatabasePool:
    """The test Redis's database numbers: each test or service takes one and gives it back, emptied, at teardown."""

    def __init__(self, count: int) -> None:
        self.free = list(range(1, count))
        self.lock = threading.Lock()

    def take(self) -> int:
        with self.lock:
            if not self.free:
                raise RuntimeError(
                    f"all {DATABASES - 1} databases of the test Redis are in use: a fixture holds on "
                    "to its database (module- and session-scoped services keep theirs until they end)"
                )
            return self.free.pop(0)

    def give_back(self, db: int) -> None:
        with self.lock:
            self.free.insert(0, db)


_databases = DatabasePool(DATABASES)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    server = EmbeddedRedis(free_port(), str(tmp_path_factory.mktemp("redis")), databases=DATABASES).start()
    yield server.url
    server.stop()


def _db_client(redis_url: str, db: int) -> redis.Redis:
    return redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}")


def _release(redis_url: str, db: int) -> None:
    client = _db_client(redis_url, db)
    client.flushdb()
    client.close()
    _databases.give_back(db)


@pytest.fixture(scope="session")
def quiet_redis_url(tmp_path_factory) -> str:
    """A second Redis server that no service talks to, for the tests marked `counts_commands`."""
    server = EmbeddedRedis(free_port(), str(tmp_path_factory.mktemp("quiet-redis")), databases=2).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_db(request, redis_url) -> redis.Redis:
    """A fresh, empty database of the test Redis for one test.

    A test marked `counts_commands` gets database 1 of a server of its own, with its statistics reset: Redis
    counts commands per server, and on the shared one the session's service's idle worker sends a BLMOVE
    every BULK_LOOK_S (a test counting BLMOVEs failed in CI on one)."""
    if request.node.get_closest_marker("counts_commands"):
        client = _db_client(request.getfixturevalue("quiet_redis_url"), 1)
        client.flushdb()
        for source in service_scripts():  # as loaded as on a server in use: no NOSCRIPT retry in the counts
            client.script_load(source)
        client.config_resetstat()
        yield client
        client.close()
        return
    db = _databases.take()
    client = _db_client(redis_url, db)
    client.flushdb()
    yield client
    client.close()
    _release(redis_url, db)


@pytest.fixture(scope="session")
def digits():
    data = load_digits()
    return data.data.astype(np.float32), data.target


@pytest.fixture(scope="session")
def digits_model():
    """The example model in this process, to compare the service's answers with."""
    from worker.model.loader import load_model

    return load_model(DIGITS_MODEL, "digits", "1")


def _service_factory(redis_url: str, make_dir):
    """A `make` function starting services on fresh databases, and the list to stop them from."""
    services: list[Service] = []

    def make(workers: int = 1, start_api: bool = True, same_db_as: Service | None = None, **overrides) -> Service:
        """`same_db_as`: start on that service's database (give the two different REDIS_KEY_PREFIX)."""
        db = _databases.take() if same_db_as is None else same_db_as.redis.connection_pool.connection_kwargs["db"]
        log_dir = make_dir(f"service-{db}-{len(services)}")
        overrides.setdefault("data_dir", str(log_dir / "data"))
        service = Service(service_settings(redis_url, db, **overrides), log_dir)
        if same_db_as is None:
            service.redis.flushdb()
        services.append(service)
        if start_api:
            service.start_api()
        for _ in range(workers):
            service.start_worker()
        return service

    return make, services


@pytest.fixture
def make_service(redis_url, tmp_path):
    """Factory: start a service with settings overrides on a fresh database; stopped after the test."""

    def make_dir(name):
        (tmp_path / name).mkdir()
        return tmp_path / name

    make, services = _service_factory(redis_url, make_dir)
    yield make
    _stop_all(redis_url, services)


@pytest.fixture(scope="module")
def make_module_service(redis_url, tmp_path_factory):
    """Factory like `make_service`, for services that the tests of one module share."""
    make, services = _service_factory(redis_url, tmp_path_factory.mktemp)
    yield make
    _stop_all(redis_url, services)


def _stop_all(redis_url: str, services: list[Service]) -> None:
    """Stop the services, then give their databases back."""
    databases = []
    for service in services:
        service.stop()
        service.redis.close()
        databases.append(service.redis.connection_pool.connection_kwargs["db"])
    for db in dict.fromkeys(databases):
        _release(redis_url, db)


@pytest.fixture(scope="session")
def service(redis_url, tmp_path_factory) -> Service:
    """The main service with default batching settings, shared by the session."""
    db = _databases.take()
    log_dir = tmp_path_factory.mktemp("main-service")
    main = Service(service_settings(redis_url, db, data_dir=str(log_dir / "data")), log_dir)
    main.redis.flushdb()
    try:
        main.start_api()
        main.start_worker()
        yield main
    finally:
        main.stop()
        _release(redis_url, db)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone S3 server, a real HTTP endpoint on loopback, shared by the session."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket; this process and the services it starts reach the server through boto3's variables."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server.new_bucket()


@pytest.fixture
def own_s3_server(tmp_path, monkeypatch):
    """An S3 server of this test's own, which it may stop and start (an outage); the variables point at it."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path / "moto.log").start()
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()
