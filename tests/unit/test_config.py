"""Settings come from the environment in one place, fail clearly, and match docs/configuration.md's table."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import yaml

from shared.config import PROJECT_ROOT, ConfigError, Settings
from tests.source_tree import python_files, read


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.redis_url == "" and settings.max_microbatch_delay_ms == 0.0 and settings.api_port == 8000


def test_values_are_parsed_to_their_types():
    settings = Settings.from_env(
        {"MAX_MICROBATCH_ROWS": "32", "MAX_MICROBATCH_DELAY_MS": "2.5", "REDIS_URL": "redis://x:1/2"}
    )
    assert (settings.max_microbatch_rows, settings.max_microbatch_delay_ms, settings.redis_url) == (
        32,
        2.5,
        "redis://x:1/2",
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MAX_MICROBATCH_ROWS": "lots"}, "MAX_MICROBATCH_ROWS='lots' is not valid: expected an integer"),
        ({"MAX_MICROBATCH_ROWS": "0"}, "MAX_MICROBATCH_ROWS=0 is not valid"),
        ({"MAX_MICROBATCH_DELAY_MS": "-1"}, "MAX_MICROBATCH_DELAY_MS"),
        ({"REDIS_APPENDFSYNC": "sometimes"}, "always, everysec or no"),
        ({"STORAGE_URL": "s3://"}, "STORAGE_URL='s3://' is not valid: expected s3://bucket or s3://bucket/prefix"),
        ({"STORAGE_URL": "gs://bucket/x"}, "STORAGE_URL='gs://bucket/x' is not valid: expected s3://bucket/prefix"),
    ],
)
def test_bad_values_fail_naming_the_variable(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(env)


def test_storage_url_names_a_bucket_and_a_prefix_or_a_directory():
    s3 = Settings.from_env({"STORAGE_URL": "s3://my-bucket/inference/batches/"})
    assert (s3.storage_bucket, s3.storage_prefix) == ("my-bucket", "inference/batches")
    assert (Settings.from_env({"STORAGE_URL": "s3://my-bucket"}).storage_prefix, Settings().storage_bucket) == ("", "")
    assert Settings.from_env({"STORAGE_URL": "/mnt/shared/batches"}).storage_bucket == ""


def test_model_name_defaults_to_the_file_name():
    assert Settings.from_env({"MODEL_PATH": "/m/sentiment.h5"}).resolved_model_name == "sentiment"
    assert Settings.from_env({"MODEL_PATH": "/m/resnet/"}).resolved_model_name == "resnet"


def test_the_configuration_table_lists_exactly_the_settings():
    with open(os.path.join(PROJECT_ROOT, "docs", "configuration.md")) as f:
        readme = f.read()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.M))
    assert documented == {f.name.upper() for f in dataclasses.fields(Settings)}


def test_no_module_but_config_reads_the_environment():
    offenders = [
        path
        for path in python_files("api", "worker", "shared")
        if path != os.path.join("shared", "config.py")
        and any(call in read(path) for call in ("os.environ[", "os.environ.get(", "os.getenv("))
    ]
    assert offenders == []


def test_docker_compose_parses_and_names_redis_api_and_worker():
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert {"redis", "api", "worker"} <= set(services)
    assert "appendonly" in " ".join(services["redis"]["command"])
    assert services["worker"]["command"] == ["python", "-m", "worker"]
    assert services["api"]["command"] == ["python", "-m", "api.serve"]  # gunicorn or granian (API_SERVER)


def test_procfile_names_web_grpc_and_worker():
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as f:
        kinds = {line.split(":", 1)[0] for line in f if line.strip()}
    assert kinds == {"web", "grpc", "worker"}


def test_reliability_settings_have_safe_defaults():
    settings = Settings.from_env({})
    assert (settings.max_attempts, settings.max_queue_depth, settings.job_start_deadline_s) == (3, 100_000, 0.0)
    assert settings.api_key_list() == ()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS=0 is not valid: expected an integer ≥ 1"),
        ({"MAX_QUEUE_DEPTH": "-5"}, "MAX_QUEUE_DEPTH=-5 is not valid"),
        ({"JOB_START_DEADLINE_S": "-1"}, "JOB_START_DEADLINE_S=-1.0 is not valid"),
        ({"JOB_START_DEADLINE_S": "nan"}, "JOB_START_DEADLINE_S=nan is not valid"),
        ({"API_KEYS": "good-key,,other"}, "key 2 in the list is empty"),
        ({"API_KEYS": "@/nonexistent/keys.txt"}, "cannot read the key file"),
        ({"QUEUE_NAME": "pre~dict"}, "QUEUE_NAME='pre~dict' is not valid: expected a queue name without '~'"),
        ({"BULK_QUEUE_NAME": "bulk~jobs"}, "BULK_QUEUE_NAME='bulk~jobs' is not valid"),
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


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("MAX_BATCH_SIZE", "MAX_MICROBATCH_ROWS", "max_microbatch_rows"),
        ("MAX_BATCH_DELAY_MS", "MAX_MICROBATCH_DELAY_MS", "max_microbatch_delay_ms"),
        ("JOB_TIMEOUT", "JOB_START_DEADLINE_S", "job_start_deadline_s"),
    ],
)
def test_a_renamed_variable_still_works_under_its_old_name_with_a_deprecation_warning(old, new, field, caplog):
    settings = Settings.from_env({old: "7"})
    assert getattr(settings, field) == 7
    assert f"{old} is deprecated: use {new}" in caplog.text


def test_the_new_name_wins_over_the_old_one_and_the_old_one_is_reported_as_ignored(caplog):
    settings = Settings.from_env({"MAX_BATCH_SIZE": "7", "MAX_MICROBATCH_ROWS": "9"})
    assert settings.max_microbatch_rows == 9
    assert "MAX_BATCH_SIZE is deprecated and ignored because MAX_MICROBATCH_ROWS is set" in caplog.text


def test_the_adaptive_window_is_the_default_and_capped_by_the_fixed_delay_when_set():
    assert Settings.from_env({}).adaptive_window_cap_s == 0.005
    assert Settings.from_env({"MAX_MICROBATCH_DELAY_MS": "2"}).adaptive_window_cap_s == 0.002
    assert Settings.from_env({"MICROBATCH_WINDOW": "fixed"}).adaptive_window_cap_s is None
    assert Settings.from_env({"MAX_MICROBATCH_DELAY_MS": "2"}).fixed_delay_s == 0.0
    assert Settings.from_env({"MAX_MICROBATCH_DELAY_MS": "2", "MICROBATCH_WINDOW": "fixed"}).fixed_delay_s == 0.002


@pytest.mark.parametrize(
    ("env", "words"),
    [({"MICROBATCH_WINDOW": "smart"}, "adaptive or fixed"), ({"ADAPTIVE_MAX_DELAY_MS": "-1"}, "ADAPTIVE_MAX_DELAY_MS")],
)
def test_bad_window_settings_fail_naming_the_variable(env, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)


def test_the_api_server_is_granian_by_default_or_gunicorn():
    assert Settings.from_env({}).api_server == "granian"
    assert Settings.from_env({"API_SERVER": "gunicorn"}).api_server == "gunicorn"
    with pytest.raises(ConfigError, match="API_SERVER='uwsgi' is not valid: expected gunicorn or granian"):
        Settings.from_env({"API_SERVER": "uwsgi"})


def test_the_api_process_timeout_is_a_minute_by_default_and_at_least_two_seconds():
    assert Settings.from_env({}).api_process_timeout_s == 60
    assert Settings.from_env({"API_PROCESS_TIMEOUT_S": "2"}).api_process_timeout_s == 2
    with pytest.raises(ConfigError, match="API_PROCESS_TIMEOUT_S=1 is not valid: expected an integer ≥ 2"):
        Settings.from_env({"API_PROCESS_TIMEOUT_S": "1"})


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("1", True), ("On", True), ("false", False), ("0", False), ("no", False)]
)
def test_switches_read_true_or_false_in_the_usual_spellings(raw, value):
    assert Settings.from_env({"TF_GPU_MEMORY_GROWTH": raw}).tf_gpu_memory_growth is value


def test_a_switch_that_is_neither_fails_naming_the_variable():
    with pytest.raises(
        ConfigError, match=re.escape("TF_GPU_MEMORY_GROWTH='maybe' is not valid: expected true or false")
    ):
        Settings.from_env({"TF_GPU_MEMORY_GROWTH": "maybe"})


def test_settings_survive_the_trip_through_a_child_environment():
    settings = Settings.from_env({"TF_GPU_MEMORY_GROWTH": "false", "TF_THREADS": "3", "LIVENESS_FILE": "/tmp/x"})
    assert Settings.from_env(settings.to_env()) == settings
