"""Loading the service's Lua scripts: one `.lua` file per script under shared/lua/, read once per process.

Every script starts with the names library, generated here from the Python that defines those names (hash
fields in shared/keys.py and shared/rq_keys.py, statuses in shared/schema.py, shared/batches.py and
shared/rq_keys.py): Lua tables such as `JOB.STATUS` or `BATCH_STATUS.QUEUED`, so that no script restates a
name. A script may then start with library files from shared/lua/lib/ (shared Lua functions, not
templates: no value is ever substituted into a script's source). Each script is called through one small
Python wrapper in the module that owns it, which names its KEYS and ARGV; the wrapper calls
`Script.__call__`, which sends EVALSHA and loads the script into Redis only when Redis does not know it
yet (after a restart, say).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path

from redis.commands.core import Script

from shared import keys, rq_keys
from shared.batches import BatchStatus
from shared.schema import ErrorCode, JobStatus

LUA_DIR = Path(__file__).with_name("lua")
_NAME = re.compile(r"^[a-z_]+$")  # what a name may look like: nothing to escape in a Lua string


def _members(enum: Iterable[Enum]) -> dict[str, str]:
    return {member.name: str(member.value) for member in enum}


def names() -> dict[str, dict[str, str]]:
    """Every name the scripts use, by Lua table: field names of our hashes and RQ's, and status spellings."""
    return {
        "JOB": {
            **_members(rq_keys.JobField),
            "ROWS": keys.JOB_ROWS,
            "DEADLINE": keys.JOB_DEADLINE,
            "OWNER": keys.JOB_OWNER,
            "BATCH": keys.JOB_BATCH,
            "RESULT": keys.JOB_RESULT,
        },
        "RQ_STATUS": {
            "QUEUED": rq_keys.QUEUED,
            "STARTED": rq_keys.STARTED,
            "FINISHED": rq_keys.FINISHED,
            "FAILED": rq_keys.FAILED,
            "CANCELED": rq_keys.CANCELED,
            "SCHEDULED": rq_keys.SCHEDULED,
        },
        "JOB_STATUS": _members(JobStatus),
        "ERROR": _members(ErrorCode),
        "BATCH": _members(keys.BatchField),
        "BATCH_STATUS": _members(BatchStatus),
        "WEBHOOK": _members(keys.WebhookField),
    }


def _table(name: str, fields: Mapping[str, str]) -> str:
    assert all(_NAME.match(value) for value in fields.values()), fields
    return f"local {name} = {{" + ", ".join(f"{key} = '{value}'" for key, value in fields.items()) + "}"


@functools.cache
def names_library() -> bytes:
    """The Lua source that defines `names()` as one local table each, prepended to every script."""
    lines = ["-- Names defined in Python (shared/lua.py `names`): no script restates them."]
    lines += [_table(name, fields) for name, fields in names().items()]
    return "\n".join(lines).encode()


@functools.cache
def script(name: str, *libs: str) -> Script:
    """The script `shared/lua/<name>.lua`, preceded by the names library and `shared/lua/lib/<lib>.lua` for
    each of `libs`."""
    # Registered with no client: every wrapper passes the client (or pipeline) it runs on.
    return Script(None, _source(name, *libs))


@functools.cache
def _source(name: str, *libs: str) -> bytes:
    parts = [names_library()] + [(LUA_DIR / "lib" / f"{lib}.lua").read_bytes() for lib in libs]
    parts.append((LUA_DIR / f"{name}.lua").read_bytes())
    return b"\n".join(parts)
