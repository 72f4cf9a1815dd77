"""Shared fixtures: the repository root and notebooks executed once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Kernels started by papermill and nbval inherit this: keep TensorFlow's C++ logs down.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# Tests that execute whole notebooks (chapters, exercises, graded submissions, the book): `make test-fast`
# leaves them out (pytest -m "not notebooks"); `make test` runs everything.
NOTEBOOK_FILES = {"test_notebooks.py", "test_book.py", "test_browser.py"}
NOTEBOOK_FIXTURES = {"built_book", "graded"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in NOTEBOOK_FILES or NOTEBOOK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.notebooks)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The whole book built at the smoke profile in a temporary folder (chapters executed by papermill).

    To iterate on the page tests, point COURSE_TEST_BUILD_DIR at a folder already
    holding ``book_src/`` and ``html/`` from an earlier build; it is used as it is.
    """
    from course_utils.build import build_book

    if os.environ.get("COURSE_TEST_BUILD_DIR"):
        return Path(os.environ["COURSE_TEST_BUILD_DIR"])
    build_dir = tmp_path_factory.mktemp("book")
    build_book(ROOT, "smoke", build_dir=build_dir, log=lambda message: None)
    return build_dir


@pytest.fixture(scope="session", autouse=True)
def training_reuses_freed_memory():
    """What config.setup does in every notebook: without it, tests that fit on a PyDataset train 2-3x slower."""
    from course_utils import config

    config.keep_freed_memory()
