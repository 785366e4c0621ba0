"""One meaning per word (docs/architecture.md, Glossary): each rule below is a use of a glossary word outside its
meaning, and none may appear in the code (identifiers, docstrings, comments and log lines), the setting names
or the metric names. A rule names where it applies: most words are only wrong in some places (`batch` is right
in the bulk code and wrong in the micro-batch loop). The last tests run the checker over sample text, so that
a rule that can never match fails here instead of passing for ever."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest

from shared import worker_metrics
from shared.config import RENAMED, Settings
from tests.source_tree import python_files, read

CODE = ("api", "worker", "shared", "scripts")


@dataclass(frozen=True)
class Misuse:
    """A use of `word` outside its meaning: `pattern` (a regex, case-insensitive) found in a file under one of
    `where` (folders or files); `instead` says what the glossary calls that idea."""

    word: str
    pattern: str
    where: tuple[str, ...]
    instead: str
    bad: str  # a line the rule must catch (the proof that it can fail)
    good: str  # a line in the glossary's meaning that it must let through

    def lines(self, text: str) -> list[int]:
        """The numbers of the lines of `text` that break this rule."""
        found = re.compile(self.pattern, re.IGNORECASE)
        return [n for n, line in enumerate(text.splitlines(), 1) if found.search(line)]


MISUSES = (
    Misuse(
        "batch",
        r"\bbatch_sizes?\b|\bbatched\b|(?<![\"`-])\bbatching\b|(?<![-\w])batch(es)? of (%d|rows)|\bloop over batches|"
        r"\b(batch|_run\(self, batch)\b\s*(=|:)\s*(collect|list\[Segment\])",
        ("worker", "shared/config.py", "shared/worker_metrics.py"),
        "micro-batch (a batch is a bulk upload)",
        'log.warning("batch of %d rows failed", rows)',
        'log.warning("micro-batch of %d rows failed; batch %s chunk %s", rows, batch_id, chunk)',
    ),
    Misuse(
        "chunk",
        r"\bchunks?\b",
        ("api/bulk/uploads.py", "api/bulk/formats.py", "api/bulk/ingest.py", "api/idempotency.py"),
        "piece (a chunk is a batch's row range, run as one job)",
        "for chunk in read_pieces(stream, limit):",
        "for piece in read_pieces(stream, limit):",
    ),
    Misuse(
        "claim",
        r"claim",
        ("api/idempotency.py", "shared/webhooks.py", "api/jobs/routes.py", "api/bulk/routes.py"),
        "reservation (an idempotency key) or hold (a webhook delivery); a claim is a job in a worker's hands",
        "with idempotency.registry().claim(owner, key, ROUTE) as claim:",
        "with idempotency.registry().reserve(owner, key, ROUTE) as reservation:",
    ),
    Misuse(
        "lease",
        r"\blease",
        ("shared/webhooks.py", "worker/background.py", "shared/lua/webhook_hold.lua"),
        "hold (a lease is a claim's member in RQ's started registry)",
        "DeliveryQueue(connection, max_attempts=3, backoff_s=1, lease_s=30)",
        "DeliveryQueue(connection, max_attempts=3, backoff_s=1, hold_s=30)",
    ),
    Misuse(
        "publish",
        r"publish\w*\b.*\b(signature|model (document|signature))\b|\b(signature|model document)\b.*\bpublish",
        CODE,
        "advertise (publish is the worker ending jobs under its leases)",
        '"""Register as a live worker, and publish the model document."""',
        "registration.birth(model_doc)  # advertise the model signature (keys.model)",
    ),
    Misuse(
        "store",
        r"(?-i:\b(?!StoreUnreachable\b)\w+Store\b)|\.store\b|\bstore\(\)",
        CODE,
        "RedisJobs, IdempotencyKeys, ChunkFiles... (the store is the object store of batch files)",
        'jobs = current_app.extensions["inference"].store',
        "except StoreUnreachable: the object store is down",
    ),
    Misuse(
        "expired",
        r"\bdelete_expired\b|\bexpire_due\b|\bdue_for_expiry\b|\bclaim_expiry\b|\bkeys\.(batch_)?expiry\(|"
        r"results? (that )?expired|expired results?|\bexpire\.lua\b|\"expire\"\)|\bexpire batches\b",
        CODE,
        "purge (results past RESULT_TTL) or retire (batches past BATCH_TTL); expired is a status only",
        "deleted = delete_expired(self.connection, 1000)  # results that expired",
        "self.records.end(batch_id, BatchStatus.EXPIRED)  # status `expired`; purge_results()",
    ),
    Misuse(
        "timeout",
        r"\bjob_timeout\b|\bJOB_TIMEOUT\b|\bMAX_JOB_TIMEOUT",
        ("api", "worker", "scripts", "shared/keys.py", "shared/schema.py", "shared/lua.py"),
        "start deadline (JOB_START_DEADLINE_S; RQ's job_timeout is a run limit)",
        "deadline = start_deadline(body, query, settings.job_timeout)",
        "deadline = start_deadline(body, request.args.get('timeout'), settings.job_start_deadline_s)",
    ),
    Misuse(
        "queue depth",
        r"\"inference_queue_depth\"",
        ("api", "worker", "scripts", "shared/keys.py", "shared/schema.py"),
        "inference_queued_jobs (the queue depth is rows: inference_queue_rows)",
        'GaugeMetricFamily("inference_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])',
        'GaugeMetricFamily(worker_metrics.QUEUED_JOBS, "Jobs waiting in each RQ queue.", labels=["queue"])',
    ),
)

# Names that clients or operators set or scrape: the settings, and every metric name in the code.
FORBIDDEN_SETTINGS = re.compile(r"TIMEOUT$|^MAX_BATCH_(SIZE|DELAY)|^JOB_TIMEOUT$|CLAIM|LEASE")
ALLOWED_TIMEOUTS = {"PROTOCOL_TIMEOUT_S", "WEBHOOK_TIMEOUT_S"}  # how long a caller waits: a timeout proper
FORBIDDEN_METRICS = re.compile(r"queue_depth|(?<!micro)batch_(size|rows|seconds)|claim|lease|expired")


def _under(path: str, where: tuple[str, ...]) -> bool:
    return any(path == w or path.startswith(w.rstrip("/") + "/") for w in where)


def _files(misuse: Misuse) -> list[str]:
    lua = [w for w in misuse.where if w.endswith(".lua")]
    return [p for p in python_files(*CODE) if _under(p, misuse.where)] + lua


def metric_names() -> set[str]:
    """Every `inference_*` name in the code: the constants of shared/worker_metrics.py and the literals in api/."""
    found = {v for v in vars(worker_metrics).values() if isinstance(v, str) and v.startswith("inference_")}
    for path in python_files("api", "shared", "worker"):
        found |= set(re.findall(r"\"(inference_[a-z_]+)\"", read(path)))
    return found


@pytest.mark.parametrize("misuse", MISUSES, ids=lambda m: m.word)
def test_no_glossary_word_is_used_outside_its_meaning_in_the_code(misuse):
    found = [f"{path}:{n}" for path in _files(misuse) for n in misuse.lines(read(path))]
    assert found == [], f"{misuse.word!r} outside its meaning; say {misuse.instead}"


def test_no_setting_is_named_with_a_word_outside_its_meaning():
    names = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert {n for n in names if FORBIDDEN_SETTINGS.search(n)} - ALLOWED_TIMEOUTS == set()
    assert not names & set(RENAMED), "an old setting name is a field again"


def test_no_metric_is_named_with_a_word_outside_its_meaning():
    names = metric_names() - set(worker_metrics.RENAMED_METRICS)  # old names kept one release, deprecated
    assert {n for n in names if FORBIDDEN_METRICS.search(n)} == set()
    assert worker_metrics.QUEUE_ROWS in names and worker_metrics.QUEUED_JOBS in names


@pytest.mark.parametrize("misuse", MISUSES, ids=lambda m: m.word)
def test_each_rule_catches_its_misuse_and_passes_the_glossary_meaning(misuse):
    assert misuse.lines(f"x = 1\n{misuse.bad}\n") == [2]
    assert misuse.lines(misuse.good) == []


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (FORBIDDEN_SETTINGS, "JOB_TIMEOUT"),
        (FORBIDDEN_SETTINGS, "MAX_BATCH_SIZE"),
        (FORBIDDEN_METRICS, "inference_queue_depth"),
    ],
)
def test_the_name_rules_catch_the_old_names(pattern, name):
    assert pattern.search(name)
