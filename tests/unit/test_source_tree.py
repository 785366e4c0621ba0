"""Rules over the whole source tree, sub-packages included: no pickles, and the walker sees every module."""

from __future__ import annotations

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
