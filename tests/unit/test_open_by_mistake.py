"""A served API or gRPC server refuses to start without keys unless anonymous access is asked for; the
harness (make run, tests) asks for it; METRICS_TOKEN and REDIS_PASSWORD parse as documented."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scripts.harness import Harness
from shared.config import PROJECT_ROOT, ConfigError, Settings
from shared.connection import master_options, redis_url


def start(module: str, **env: str) -> subprocess.CompletedProcess:
    """Import (API) or run (gRPC) `module` with `env` and no keys, as a container would start it."""
    code = f"import {module}" if module == "api.wsgi" else f"import sys, {module} as m; sys.exit(m.main())"
    base = {k: v for k, v in os.environ.items() if k not in ("API_KEYS", "ALLOW_ANONYMOUS")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**base, "PYTHONPATH": PROJECT_ROOT, "REDIS_URL": "redis://127.0.0.1:1/0", "GRPC_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module", ["api.wsgi", "api.protocols.grpc_server"])
def test_without_keys_the_served_api_refuses_to_start_and_says_how_to_open_it(module):
    refused = start(module)
    assert refused.returncode != 0 and "ALLOW_ANONYMOUS=true" in refused.stderr
    assert start(module, ALLOW_ANONYMOUS="true").returncode == 0
    assert start(module, API_KEYS="k-0001").returncode == 0


def test_the_harness_opts_in_to_anonymous_access_only_without_keys(tmp_path):
    assert Harness(Settings.from_env({}), tmp_path).settings.allow_anonymous is True
    keyed = Harness(Settings.from_env({}).replace(api_keys="k-0001"), tmp_path)
    assert keyed.settings.allow_anonymous is False


def test_keys_or_anonymous_is_the_rule():
    with pytest.raises(ConfigError, match="API_KEYS is empty"):
        Settings.from_env({}).require_keys_or_anonymous()
    Settings.from_env({"ALLOW_ANONYMOUS": "true"}).require_keys_or_anonymous()
    Settings.from_env({"API_KEYS": "k-0001"}).require_keys_or_anonymous()


def test_a_metrics_token_must_be_printable_and_is_never_echoed():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"METRICS_TOKEN": "has space-secret"})
    assert "secret" not in str(refused.value)
    assert "metrics_token" not in repr(Settings.from_env({"METRICS_TOKEN": "tok"}))


def test_redis_password_goes_into_the_url_and_the_sentinel_master_options():
    settings = Settings.from_env({"REDIS_URL": "redis://redis-0.redis:6379/0", "REDIS_PASSWORD": "p@ss:/w"})
    assert redis_url(settings) == "redis://:p%40ss%3A%2Fw@redis-0.redis:6379/0"
    sentinel = Settings.from_env(
        {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_PASSWORD": "secret"}
    )
    assert master_options(sentinel)["password"] == "secret"
    assert "p@ss" not in repr(settings)
