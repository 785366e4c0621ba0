"""REDIS_KEY_PREFIX: every key of a process (ours and RQ's) under one prefix, read from the environment at
import; settings that disagree with it, or an RQ prefix that does not follow it, fail naming the variable."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from shared.config import PROJECT_ROOT, ConfigError, Settings, process_key_prefix, rq_key_prefix_for
from shared.connection import connect

NAMES = """
import json
from rq import Worker
from shared import keys, rq_keys
print(json.dumps([keys.model(), keys.workers(), keys.batch("b"), keys.idempotency("o", "d"), keys.results_channel(),
                  rq_keys.job("j"), rq_keys.queue("predict"), rq_keys.started("predict"), rq_keys.QUEUES,
                  Worker.redis_workers_keys]))
"""


def names_in_a_process(**env: str) -> list[str]:
    """The key names a fresh process builds with `env` (the prefixes are read at import, so it must be fresh)."""
    done = subprocess.run(
        [sys.executable, "-c", NAMES], env={**env, "PYTHONPATH": PROJECT_ROOT}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_key_of_a_prefixed_process_starts_with_its_prefix():
    names = names_in_a_process(REDIS_KEY_PREFIX="blue", RQ_KEY_PREFIX="blue:rq")
    assert all(name.startswith("blue:") for name in names), names
    assert names[5:] == [
        "blue:rq:job:j",
        "blue:rq:queue:predict",
        "blue:rq:wip:predict",
        "blue:rq:queues",
        "blue:rq:workers",
    ]


def test_the_default_prefixes_keep_the_keys_deployments_already_have():
    names = names_in_a_process()
    assert names[:2] == ["infer:model", "infer:workers"] and names[5:7] == ["rq:job:j", "rq:queue:predict"]


def test_rq_key_prefix_follows_redis_key_prefix():
    assert (rq_key_prefix_for("infer"), rq_key_prefix_for("blue")) == ("rq", "blue:rq")
    settings = Settings.from_env({"REDIS_KEY_PREFIX": "blue", "RQ_KEY_PREFIX": "blue:rq"})
    assert (settings.redis_key_prefix, settings.rq_key_prefix) == ("blue", "blue:rq")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"REDIS_KEY_PREFIX": "blue"}, "RQ_KEY_PREFIX='rq' is not valid: expected 'blue:rq' with REDIS_KEY_PREFIX"),
        ({"RQ_KEY_PREFIX": "blue:rq"}, "RQ_KEY_PREFIX='blue:rq' is not valid: expected 'rq' with REDIS_KEY_PREFIX"),
        ({"REDIS_KEY_PREFIX": "team:blue", "RQ_KEY_PREFIX": "team:blue:rq"}, "REDIS_KEY_PREFIX='team:blue'"),
        ({"REDIS_KEY_PREFIX": "rq", "RQ_KEY_PREFIX": "rq:rq"}, "other than rq"),
    ],
)
def test_a_prefix_pair_that_could_cross_another_deployment_fails_naming_it(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(env)


def test_the_import_time_prefix_is_checked_like_the_setting():
    assert process_key_prefix({}) == "infer" and process_key_prefix({"REDIS_KEY_PREFIX": "blue"}) == "blue"
    with pytest.raises(ConfigError, match="REDIS_KEY_PREFIX='a:b' is not valid"):
        process_key_prefix({"REDIS_KEY_PREFIX": "a:b"})


def test_settings_with_other_prefixes_than_the_process_started_with_cannot_connect():
    settings = Settings.from_env({"REDIS_KEY_PREFIX": "blue", "RQ_KEY_PREFIX": "blue:rq"})
    with pytest.raises(ConfigError, match="this process was started with 'infer' and 'rq'"):
        connect(settings)
