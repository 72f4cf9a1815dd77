"""Shared fixtures: the repository root, and chapters and the book executed once per test run."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Kernels started by papermill and nbval inherit this: keep TensorFlow's C++ logs down.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Under pytest-xdist, each worker and the kernels it starts get their share of the processors: two
# TensorFlow processes that each use every core run slower side by side than two that use one core each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


# Tests that execute whole notebooks (chapters, exercises, graded submissions, the book): `make test-fast`
# leaves them out (pytest -m "not notebooks"); `make test` runs everything.
NOTEBOOK_FILES = {"test_notebooks.py", "test_book.py", "test_browser.py"}
NOTEBOOK_FIXTURES = {"built_book", "graded", "smoke_chapter"}


@functools.cache
def module_fixtures(path: Path) -> frozenset:
    """The fixtures a test file defines with ``scope="module"``, read from its source (pytest keeps a fixture's
    scope in private attributes only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        for decorator in getattr(node, "decorator_list", []):
            scope = [k.value for k in getattr(decorator, "keywords", []) if k.arg == "scope"]
            if scope and isinstance(scope[0], ast.Constant) and scope[0].value == "module":
                found.add(node.name)
    return frozenset(found)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """Mark the notebook runs; for pytest-xdist, start them first and keep each module fixture on one worker.

    The notebook runs are the long tests: started first, they do not leave one
    worker busy at the end while the other waits. A module-scoped fixture is
    built once per worker, so the tests that use one go to the same worker
    (``--dist loadgroup``; a test using several goes with the first by name).
    """
    for item in items:
        if item.path.name in NOTEBOOK_FILES or NOTEBOOK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.notebooks)
        shared = sorted(set(getattr(item, "fixturenames", ())) & module_fixtures(item.path))
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.path.name}::{shared[0]}"))
    items.sort(key=lambda item: item.get_closest_marker("notebooks") is None)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per processor, at most four (a notebook kernel holds one to two GB)."""
    return max(1, min(os.cpu_count() or 1, 4))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def shared_folder(tmp_path_factory) -> Path:
    """A folder that every worker of this test run sees (under pytest-xdist, the parent of the workers' own)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(lock_file: Path, wait: bool = True):
    """Hold an exclusive lock on ``lock_file`` (created if needed); yields False if ``wait`` is off and it is taken."""
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


@pytest.fixture(scope="session")
def smoke_chapter(tmp_path_factory):
    """``smoke_chapter(name)``: the path of ``book/<name>`` as the book stages it, executed at profile smoke.

    Each chapter is executed once per test run, by the first worker that asks
    for it; the book, nbval and the chapter checks all read that execution.
    Copy the file before changing it. With ``wait=False`` it returns None at
    once if another worker is executing that chapter. Beside it,
    ``<name>.figures.jsonl`` holds the smallest text of each figure drawn, as
    the page shows it (``config.FIGURE_AUDIT``).
    """
    import nbformat

    from course_utils import build
    from course_utils.config import FIGURE_AUDIT

    folder = shared_folder(tmp_path_factory) / "smoke_chapters"
    folder.mkdir(exist_ok=True)

    def executed(name: str, wait: bool = True) -> Path | None:
        path = folder / f"{name}.ipynb"
        with exclusive(folder / f"{name}.lock", wait) as locked:
            if not locked:
                return None
            if not path.exists():
                running = folder / f"{name}.running.ipynb"
                running.write_text(nbformat.writes(build.book_page(ROOT, f"book/{name}")))
                audit = path.with_suffix(".figures.jsonl")
                audit.unlink(missing_ok=True)
                os.environ[FIGURE_AUDIT] = str(audit)  # the kernel inherits it: each figure's smallest text
                try:
                    build.execute(running, "smoke")
                finally:
                    os.environ.pop(FIGURE_AUDIT, None)
                running.rename(path)
        return path

    return executed


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, smoke_chapter) -> Path:
    """The whole book built at the smoke profile in a temporary folder, once per test run.

    Workers that need it at the same time share the chapters out: each executes
    those that no other worker is executing, then waits for the rest.

    To iterate on the page tests, point COURSE_TEST_BUILD_DIR at a folder already
    holding ``book_src/`` and ``html/`` from an earlier build; it is used as it is.
    """
    from course_utils import build

    if os.environ.get("COURSE_TEST_BUILD_DIR"):
        return Path(os.environ["COURSE_TEST_BUILD_DIR"])
    for chapter in sorted((ROOT / "book").glob("*.py")):
        smoke_chapter(chapter.stem, wait=False)

    def reuse_execution(path, profile, strict=True):
        shutil.copy2(smoke_chapter(path.stem), path)
        return 0.0

    build_dir = shared_folder(tmp_path_factory) / "book"
    with exclusive(shared_folder(tmp_path_factory) / "book.lock"):
        if not (build_dir / "html" / "index.html").exists():
            build.stage_book(ROOT, "smoke", build_dir / "book_src", log=lambda m: None, execute_chapter=reuse_execution)
            build.render_html(build_dir)
    return build_dir


@pytest.fixture
def trace_counter():
    """``(layer, traces)``: a pass-through Keras layer, and the batch size of each trace of a model that holds it.

    Its ``call`` runs as Python only while TensorFlow traces the model (a
    symbolic build adds ``None``), so ``traces`` tells how often a step was traced.
    """
    import keras

    traces = []

    class CountTraces(keras.layers.Layer):
        def call(self, x):
            traces.append(x.shape[0])
            return x

    return CountTraces(), traces


@pytest.fixture(scope="session", autouse=True)
def training_reuses_freed_memory():
    """What config.setup does in every notebook: without it, tests that fit on a PyDataset train 2-3x slower."""
    from course_utils import config

    config.keep_freed_memory()
