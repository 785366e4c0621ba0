"""The rules for Lua: one `.lua` file per script under shared/lua/, each loaded through exactly one wrapper,
no Lua in .py files, and no script restating a name that Python defines (shared/lua.py `names`)."""

from __future__ import annotations

import re

from shared import lua
from tests.source_tree import python_files, read

LOADED = re.compile(r"""lua\.script\(\s*"(\w+)"((?:\s*,\s*"\w+")*)\s*\)""")


def scripts() -> set[str]:
    return {path.stem for path in lua.LUA_DIR.glob("*.lua")}


def loads() -> list[tuple[str, list[str], str]]:
    """Every `lua.script(name, *libs)` call in the service's modules: (name, libs, module)."""
    found = []
    for path in python_files("api", "worker", "shared"):
        for match in LOADED.finditer(read(path)):
            found.append((match[1], re.findall(r'"(\w+)"', match[2]), path))
    return found


def test_each_script_is_loaded_by_exactly_one_wrapper():
    names = [name for name, _, _ in loads()]
    assert sorted(names) == sorted(scripts()), "a script with no wrapper is dead; one with two has twin wrappers"


def test_each_library_is_used_and_every_library_named_exists():
    used = {lib for _, libs, _ in loads() for lib in libs}
    assert used == {path.stem for path in (lua.LUA_DIR / "lib").glob("*.lua")}


def test_no_python_module_holds_lua():
    offenders = [
        path
        for path in python_files("api", "worker", "shared", "scripts", "bench", "client")
        if "redis.call(" in read(path) or "register_script" in read(path)
    ]
    assert offenders == []


def test_no_script_restates_a_name_python_defines():
    defined = {value for table in lua.names().values() for value in table.values()}
    restated = {
        f"{path.relative_to(lua.LUA_DIR)}: '{literal}'"
        for path in sorted(lua.LUA_DIR.rglob("*.lua"))
        for literal in re.findall(r"""['"]([a-z_]+)['"]""", path.read_text())
        if literal in defined
    }
    assert restated == set(), "use the names library (JOB.STATUS, BATCH_STATUS.QUEUED...) instead"


def test_the_names_library_defines_each_table_once_from_python():
    library = lua.names_library().decode()
    for table, fields in lua.names().items():
        assert library.count(f"local {table} = ") == 1
        for key, value in fields.items():
            assert f"{key} = '{value}'" in library
