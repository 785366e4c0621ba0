"""Loading the service's Lua scripts: one `.lua` file per script under shared/lua/, read once per process.

A script may start with library files from shared/lua/lib/ (shared Lua functions, not templates: no value
is ever substituted into a script's source). Each script is called through one small Python wrapper in
the module that owns it, which names its KEYS and ARGV; the wrapper calls `Script.__call__`, which sends
EVALSHA and loads the script into Redis only when Redis does not know it yet (after a restart, say).
"""

from __future__ import annotations

import functools
from pathlib import Path

from redis.commands.core import Script

LUA_DIR = Path(__file__).with_name("lua")


@functools.cache
def script(name: str, *libs: str) -> Script:
    """The script `shared/lua/<name>.lua`, preceded by `shared/lua/lib/<lib>.lua` for each of `libs`."""
    parts = [(LUA_DIR / "lib" / f"{lib}.lua").read_bytes() for lib in libs]
    parts.append((LUA_DIR / f"{name}.lua").read_bytes())
    # Registered with no client: every wrapper passes the client (or pipeline) it runs on.
    return Script(None, b"\n".join(parts))
