"""The project's own Python files, found recursively, for the tests that check rules over the source tree."""

from __future__ import annotations

import ast
import functools
import os

from shared import lua
from shared.config import PROJECT_ROOT


def python_files(*folders: str) -> list[str]:
    """Paths relative to the project root of every `.py` file under `folders`, sub-packages included."""
    found = []
    for folder in folders:
        for root, dirs, names in os.walk(os.path.join(PROJECT_ROOT, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found += [os.path.relpath(os.path.join(root, n), PROJECT_ROOT) for n in sorted(names) if n.endswith(".py")]
    return found


def read(path: str) -> str:
    """The text of a file given relative to the project root."""
    with open(os.path.join(PROJECT_ROOT, path)) as f:
        return f.read()


def imported_modules(path: str) -> list[tuple[str, int]]:
    """Every module `path` imports, anywhere in it (inside functions too), with the line of the import."""
    found = []
    for node in ast.walk(ast.parse(read(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.module or "", node.lineno))
    return found


@functools.cache
def service_scripts() -> list[bytes]:
    """The source of every Lua script the service runs: each `lua.script(...)` call in api/, worker/, shared/."""
    calls = set()
    for path in python_files("api", "worker", "shared"):
        for node in ast.walk(ast.parse(read(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "script"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "lua"
            ):
                calls.add(tuple(ast.literal_eval(a) for a in node.args))
    return [lua.script(*args).script for args in sorted(calls)]
