"""docker-compose.yml is safe to run as shipped: checked by parsing it (no Docker on the test machines)."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from shared.config import PROJECT_ROOT

API_GRACEFUL_TIMEOUT_S = 35  # api/serve.py DRAIN_S (granian), api/gunicorn_conf.py graceful_timeout
WORKER_DRAIN_S = 45  # the micro-batch in hand plus the webhook call in hand (WEBHOOK_TIMEOUT_S + 5) with room
LONG_RUNNING = ("redis", "seaweedfs", "api", "grpc", "worker", "worker-gpu")


@pytest.fixture(scope="module")
def compose() -> dict:
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def seconds(duration: str) -> float:
    """A compose duration such as 45s, 1m30s or 2m in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(duration))
    assert parts and any(parts.groups()), f"not a duration: {duration!r}"
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck_a_restart_policy_and_a_grace_period(services, name):
    service = services[name]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["restart"] in ("unless-stopped", "always")
    assert seconds(service["stop_grace_period"]) >= 30


def test_healthchecks_mean_the_service_can_do_its_job(services):
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == services["redis"]["environment"]["REDIS_PASSWORD"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    for worker in ("worker", "worker-gpu"):
        assert services[worker]["healthcheck"]["test"][1:4] == ["python", "-m", "worker.liveness"]
        assert services[worker]["environment"]["LIVENESS_FILE"].startswith("/tmp/")


def test_grace_periods_outlast_each_drain(services):
    assert seconds(services["api"]["stop_grace_period"]) > API_GRACEFUL_TIMEOUT_S
    assert seconds(services["grpc"]["stop_grace_period"]) > API_GRACEFUL_TIMEOUT_S
    for worker in ("worker", "worker-gpu"):
        assert seconds(services[worker]["stop_grace_period"]) > WORKER_DRAIN_S


def test_services_wait_for_their_dependencies_to_be_healthy(services):
    for name in ("api", "grpc", "worker", "worker-gpu"):
        depends = services[name]["depends_on"]
        assert depends["redis"] == {"condition": "service_healthy"}
    for name in ("api", "worker", "worker-gpu"):
        assert services[name]["depends_on"]["storage-init"] == {"condition": "service_completed_successfully"}
    assert services["storage-init"]["depends_on"]["seaweedfs"] == {"condition": "service_healthy"}


def test_compose_refuses_to_start_without_keys_and_webhook_settings(services):
    api_env = services["api"]["environment"]
    assert api_env["API_KEYS"].startswith("${API_KEYS:?")
    assert api_env["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    assert "ALLOW_ANONYMOUS" not in api_env
    assert services["grpc"]["environment"]["API_KEYS"].startswith("${API_KEYS:?")
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["WEBHOOK_SECRET"].startswith("${WEBHOOK_SECRET:?")
        assert env["WEBHOOK_ALLOWED_HOSTS"].startswith("${WEBHOOK_ALLOWED_HOSTS:?")


def test_ports_are_published_on_loopback_by_default(services):
    for name in ("api", "grpc"):
        (mapping,) = services[name]["ports"]
        assert mapping.startswith("${") and ":-127.0.0.1:" in mapping
    for name in ("redis", "seaweedfs", "worker"):
        assert "ports" not in services[name]


def test_redis_keeps_an_append_only_file_on_a_volume_never_evicts_and_needs_the_password(services, compose):
    (line,) = services["redis"]["command"]
    command = line.split()
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--requirepass") + 1] == '"$$REDIS_PASSWORD"'
    for name in ("api", "grpc", "worker", "worker-gpu", "storage-init"):
        assert services[name]["environment"]["REDIS_PASSWORD"] == services["redis"]["environment"]["REDIS_PASSWORD"]
    volume = services["redis"]["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]


def test_bulk_files_go_to_seaweedfs_with_a_bucket_created_first(services, compose):
    env = services["api"]["environment"]
    assert env["STORAGE_URL"].startswith("s3://") and env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert services["worker"]["environment"]["STORAGE_URL"] == env["STORAGE_URL"]
    assert services["storage-init"]["command"] == ["python", "-m", "shared.storage.create_bucket"]
    assert "-s3.port=8333" in services["seaweedfs"]["command"]
    identity = compose["configs"]["seaweedfs-s3"]["content"]
    assert env["AWS_ACCESS_KEY_ID"] in identity and env["AWS_SECRET_ACCESS_KEY"] in identity


def test_no_image_comes_from_the_removed_minio_repositories_and_third_party_ones_are_pinned_by_digest(services):
    for name, service in services.items():
        assert "minio" not in service.get("image", ""), name
        if "build" not in service and "inference-api" not in service["image"]:
            assert re.fullmatch(r"[^@]+:[^@]+@sha256:[0-9a-f]{64}", service["image"]), name


def test_each_role_has_one_named_image_built_once(services):
    built: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            assert "image" in service, f"{name} builds an image without naming it"
            built.setdefault(service["image"], []).append(name)
    assert all(len(names) == 1 for names in built.values()), built
    assert services["api"]["build"]["target"] == "api" and services["worker"]["build"]["target"] == "worker"
    assert services["worker-gpu"]["build"]["target"] == "worker-gpu" and services["grpc"]["build"]["target"] == "grpc"


def test_the_model_is_mounted_read_only_never_from_a_named_volume(services, compose):
    for worker in ("worker", "worker-gpu"):
        (mount,) = services[worker]["volumes"]
        source, target, mode = mount.rsplit(":", 2)
        assert target == "/models" and mode == "ro"
        assert source not in compose.get("volumes", {}), "a named volume would keep serving a stale model"
        assert services[worker]["environment"]["MODEL_PATH"].startswith("${MODEL_PATH:-/models/")


def test_the_gpu_worker_reserves_one_gpu_and_grows_memory(services):
    gpu = services["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1 and device["capabilities"] == ["gpu"]
    assert gpu["environment"]["TF_GPU_MEMORY_GROWTH"] == "true"
    assert gpu["profiles"] == ["gpu"]
