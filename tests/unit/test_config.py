"""Settings come from the environment in one place, fail clearly, and match the README's table."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import yaml

from shared.config import PROJECT_ROOT, ConfigError, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.redis_url == "" and settings.max_microbatch_delay_ms == 0.0 and settings.api_port == 8000


def test_values_are_parsed_to_their_types():
    settings = Settings.from_env({"MAX_MICROBATCH_ROWS": "32", "MAX_MICROBATCH_DELAY_MS": "2.5", "REDIS_URL": "redis://x:1/2"})
    assert (settings.max_microbatch_rows, settings.max_microbatch_delay_ms, settings.redis_url) == (32, 2.5, "redis://x:1/2")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MAX_MICROBATCH_ROWS": "lots"}, "MAX_MICROBATCH_ROWS='lots' is not valid: expected an integer"),
        ({"MAX_MICROBATCH_ROWS": "0"}, "MAX_MICROBATCH_ROWS=0 is not valid"),
        ({"MAX_MICROBATCH_DELAY_MS": "-1"}, "MAX_MICROBATCH_DELAY_MS"),
        ({"REDIS_APPENDFSYNC": "sometimes"}, "always, everysec or no"),
    ],
)
def test_bad_values_fail_naming_the_variable(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(env)


def test_model_name_defaults_to_the_file_name():
    assert Settings.from_env({"MODEL_PATH": "/m/sentiment.h5"}).resolved_model_name == "sentiment"
    assert Settings.from_env({"MODEL_PATH": "/m/resnet/"}).resolved_model_name == "resnet"


def test_readme_configuration_table_lists_exactly_the_settings():
    with open(os.path.join(PROJECT_ROOT, "README.md")) as f:
        readme = f.read()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.M))
    assert documented == {f.name.upper() for f in dataclasses.fields(Settings)}


def test_no_module_but_config_reads_the_environment():
    offenders = []
    for folder in ("api", "worker", "shared"):
        for name in os.listdir(os.path.join(PROJECT_ROOT, folder)):
            path = os.path.join(PROJECT_ROOT, folder, name)
            if name.endswith(".py") and path != os.path.join(PROJECT_ROOT, "shared", "config.py"):
                text = open(path).read()
                if "os.environ[" in text or "os.environ.get(" in text or "os.getenv(" in text:
                    offenders.append(path)
    assert offenders == []


def test_docker_compose_parses_and_names_redis_api_and_worker():
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert {"redis", "api", "worker"} <= set(services)
    assert "appendonly" in " ".join(services["redis"]["command"])
    assert services["worker"]["command"] == ["python", "-m", "worker"]
    assert "gunicorn" in services["api"]["command"]


def test_procfile_names_web_and_worker():
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as f:
        kinds = {line.split(":", 1)[0] for line in f if line.strip()}
    assert kinds == {"web", "worker"}


def test_reliability_settings_have_safe_defaults():
    settings = Settings.from_env({})
    assert (settings.max_attempts, settings.max_queue_depth, settings.job_timeout) == (3, 100_000, 0.0)
    assert settings.api_key_list() == ()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS=0 is not valid: expected an integer ≥ 1"),
        ({"MAX_QUEUE_DEPTH": "-5"}, "MAX_QUEUE_DEPTH=-5 is not valid"),
        ({"JOB_TIMEOUT": "-1"}, "JOB_TIMEOUT=-1.0 is not valid"),
        ({"JOB_TIMEOUT": "nan"}, "JOB_TIMEOUT=nan is not valid"),
        ({"API_KEYS": "good-key,,other"}, "key 2 in the list is empty"),
        ({"API_KEYS": "@/nonexistent/keys.txt"}, "cannot read the key file"),
    ],
)
def test_bad_reliability_values_fail_naming_the_variable(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(env)


def test_api_keys_come_from_a_comma_list_or_a_file_and_never_show_in_errors_or_repr(tmp_path):
    assert Settings.from_env({"API_KEYS": " alpha-1 , beta-2 "}).api_key_list() == ("alpha-1", "beta-2")
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# rotated 2026-11\nalpha-1\n\n  beta-2\n")
    settings = Settings.from_env({"API_KEYS": f"@{key_file}"})
    assert settings.api_key_list() == ("alpha-1", "beta-2")
    assert "alpha-1" not in repr(settings)
    key_file.write_text("alpha-1\nsecret with spaces\n")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"API_KEYS": f"@{key_file}"})
    assert "key 2" in str(info.value) and "secret" not in str(info.value)
