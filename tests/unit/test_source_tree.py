"""Rules over the whole source tree, sub-packages included: no pickles, and the walker sees every module."""

from __future__ import annotations

import ast
import os

from tests.source_tree import python_files, read


def test_no_service_module_imports_pickle_or_loads_arrays_with_pickles():
    offenders = [
        path
        for path in python_files("api", "worker", "shared", "scripts")
        if any(s in read(path) for s in ("import pickle", "allow_pickle=True", "cloudpickle"))
    ]
    assert offenders == []


def test_the_walker_finds_modules_in_sub_packages():
    files = python_files("api", "worker", "shared")
    assert os.path.join("api", "jobs", "routes.py") in files and os.path.join("shared", "storage", "s3.py") in files
    assert all(os.path.basename(path) != "__pycache__" for path in files)


def test_only_the_services_accessor_reads_app_extensions():
    """Views reach settings and services through `api.services.services()`, typed, never by string lookup."""
    offenders = [
        path
        for path in python_files("api", "worker", "shared", "scripts")
        if path != os.path.join("api", "services.py") and ".extensions" in read(path)
    ]
    assert offenders == []


def test_every_module_is_in_the_module_map():
    """docs/architecture.md's "Modules" section names every module of api/, worker/ and shared/."""
    doc = read(os.path.join("docs", "architecture.md"))
    section = doc.split("## Modules", 1)[1].split("\n## ", 1)[0]
    missing = [
        path
        for path in python_files("api", "worker", "shared")
        if f"`{path.replace(os.sep, '/')}`" not in section and read(path).strip()
    ]
    assert missing == []


def test_every_test_that_reads_command_statistics_has_a_redis_server_of_its_own():
    """INFO commandstats counts every client of the server: on the shared test Redis, the session service's idle
    worker adds its own commands (tests/conftest.py's redis_db explains the marker)."""
    unmarked = []
    for path in python_files("tests"):
        for node in ast.walk(ast.parse(read(path))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and reads_commandstats(node):
                marks = [ast.unparse(d) for d in node.decorator_list]
                if "pytest.mark.counts_commands" not in marks:
                    unmarked.append(f"{path}::{node.name}")
    assert unmarked == []


def reads_commandstats(function: ast.FunctionDef) -> bool:
    """Whether the function calls `<client>.info("commandstats")`."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "info"
        and [ast.unparse(a) for a in n.args] == ["'commandstats'"]
        for n in ast.walk(function)
    )
