"""Shared test setup: every test session compiles into its own temporary cache folder, so no test
ever reads or writes ~/.cache/gradc and every run starts cold (a stale kernel can never hide a bug)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def gradc_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """$GRADC_CACHE_DIR -> a fresh session folder (restored afterwards). Subprocesses inherit it."""
    path = tmp_path_factory.mktemp("gradc_cache")
    previous = os.environ.get("GRADC_CACHE_DIR")
    os.environ["GRADC_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("GRADC_CACHE_DIR", None)
    else:
        os.environ["GRADC_CACHE_DIR"] = previous
