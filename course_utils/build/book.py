"""The book: every chapter executed by papermill into ``_build/book_src``, then rendered by Jupyter Book.

A reader's build turns a claim of the text that the run breaks into a warning at the
sentence; the strict build (benchmarks, CI, releases) fails on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

from course_utils import claims
from course_utils.build.notebooks import LOCAL_BADGE, colab_notebook, published_notebooks
from course_utils.config import processor

BUILD_SOURCE = Path("_build") / "book_src"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")


def toc_files(root: Path) -> list[str]:
    """The document paths (without suffix) listed in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("parts", []) if isinstance(entry, dict) else []:
                walk(part.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return found


def execute(
    notebook_path: Path, profile: str, cwd: Path | None = None, parameters: dict | None = None, strict: bool = True
) -> float:
    """Execute one notebook in place with papermill at ``profile``; return the seconds it took.

    ``parameters`` sets further variables of the notebook's parameters cell.

    A failing cell raises ``papermill.PapermillExecutionError`` naming the cell;
    the partly executed notebook is kept at ``notebook_path`` to look at. With
    ``strict=False`` (a reader's build), a claim of the text that this run breaks
    does not fail its cell: a warning below the sentence says what the text states
    and what this run found (:func:`warn_broken_claims`).
    """
    import papermill

    # The kernel inherits these: TensorFlow's C++ log lines are noise in a rendered page.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    report_only = os.environ.get(claims.REPORT_ONLY)
    if not strict:
        os.environ[claims.REPORT_ONLY] = "1"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook_path),
            str(notebook_path),
            parameters={**(parameters or {}), "PROFILE": profile},
            cwd=str(cwd or notebook_path.parent),
            progress_bar=False,
            kernel_name="python3",
            config=_kernel_config(),
            # jupyter_client interrupts a kernel before it shuts it down; one caught inside a message handler
            # logs "ERROR | KeyboardInterrupt caught in kernel" to the build log after a chapter that ran well.
            # The kernel's own log stays quiet: a failing cell still fails here, through papermill.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    finally:
        if report_only is None:
            os.environ.pop(claims.REPORT_ONLY, None)
    executed = nbformat.read(notebook_path, as_version=4)
    if hide_parameters(executed) + warn_broken_claims(executed):
        nbformat.write(executed, notebook_path)
    return time.perf_counter() - start


def _kernel_config():
    """The kernel manager's settings: messages to and from the kernel encrypted with CurveZMQ keys it makes.

    Without them ipykernel warns, in the build log, once per chapter, that the kernel "is running over
    TCP without encryption". ``auto`` encrypts where the kernel's spec says it can (ipykernel's does) and leaves
    other kernels as they were; a jupyter_client older than the setting (8.10 has it) is given nothing.
    """
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names():
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


BROKEN_CLAIM_TAG = "broken-claim"


def warn_broken_claims(notebook: nbformat.NotebookNode) -> int:
    """Put a warning right after each hidden cell whose claim this run broke, so that it stands under the
    sentence that states it; returns how many. The text describes the benchmark's runs, so a reader's machine
    may land elsewhere: the warning says so, and what this run got."""
    found = claims.broken(notebook)
    for index, _name, what in reversed(found):
        notebook.cells.insert(
            index + 1,
            nbformat.v4.new_markdown_cell(
                ":::{warning}\n"
                f"**This run differs from the text above.** {what}. The text describes the benchmark's runs "
                "(`bench/results.json`, which names their machine); a run on another machine, TensorFlow build "
                "or seed can land elsewhere.\n:::",
                metadata={"tags": [BROKEN_CLAIM_TAG]},
            ),
        )
    return len(found)


def broken_claims(notebook: nbformat.NotebookNode) -> list[str]:
    """The warnings :func:`warn_broken_claims` put in an executed notebook, as their markdown."""
    return [c.source for c in notebook.cells if BROKEN_CLAIM_TAG in c.metadata.get("tags", [])]


QUOTE_SOURCE_TAG = "quote-source"


def note_quote_sources(notebook: nbformat.NotebookNode, records: list[dict], this_run: bool) -> int:
    """Put a folded note under each paragraph that quotes the benchmark: the records' range, the machine, date
    and commit they were measured on and (``this_run``, at the profile the text describes) this run's value, so
    that a reader whose machine lands elsewhere sees why. Returns how many notes."""

    found = claims.quote_sources(notebook, records, this_run=this_run)
    for index, lines in reversed(found):
        after = index + 1
        while after < len(notebook.cells) and BROKEN_CLAIM_TAG in notebook.cells[after].metadata.get("tags", []):
            after += 1
        notebook.cells.insert(
            after,
            nbformat.v4.new_markdown_cell(
                ":::{admonition} Where the quoted ranges were measured\n:class: dropdown\n"
                + "\n".join(f"* {line}" for line in lines)
                + "\n\nMeasured by `python -m bench` (records in `bench/results.json`).\n:::",
                metadata={"tags": [QUOTE_SOURCE_TAG]},
            ),
        )
    return len(found)


PARAMETER_TAGS = ("parameters", "injected-parameters")  # the parameters cell, and papermill's copy of this run's


def hide_parameters(notebook: nbformat.NotebookNode) -> int:
    """Tag the parameters cell and papermill's injected-parameters cell ``remove-cell``: the page shows the run,
    not its settings (``PROFILE = None`` and a comment about papermill would misdescribe a page built at ``cpu``).

    The settings stay in the notebook a reader opens on Colab, and the own-images page names them. Returns the
    number of cells newly tagged.
    """
    tagged = 0
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if any(tag in tags for tag in PARAMETER_TAGS) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            tagged += 1
    return tagged


def book_page(root: Path, doc: str, published: dict | None = None) -> nbformat.NotebookNode:
    """The notebook of the page ``doc`` (e.g. ``book/week1_cnn_basics``) as the book stages it, not executed."""
    published = published_notebooks(root) if published is None else published
    ipynb = Path(f"{doc}.ipynb")
    if ipynb not in published:
        raise FileNotFoundError(f"_toc.yml lists {doc!r} but there is neither {doc}.md nor a source for {ipynb}")
    badge = os.path.relpath(LOCAL_BADGE, ipynb.parent.as_posix())
    return colab_notebook(published[ipynb], root, ipynb.as_posix(), badge_image=badge)


def stage_book(
    root: Path, profile: str, out: Path, log=print, execute_chapter=execute, strict: bool = False
) -> dict[str, float]:
    """Write the book's Sphinx source into ``out``: chapters executed at ``profile``, exercises as they are.

    ``execute_chapter(path, profile, strict=...)`` runs a staged chapter in place and returns
    its seconds (the tests pass one that reuses the executions their workers
    share). Returns the execution seconds of each chapter. Not ``strict`` (a reader's
    build), a broken claim is a warning on its page, and the log ends with every one.
    """
    published = published_notebooks(root)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in BOOK_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, out / name)
    results = root / "bench" / "results.json"
    records = json.loads(results.read_text()) if results.exists() else []
    seconds, broken, stale = {}, [], []
    for doc in toc_files(root):
        target = out / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        if (root / f"{doc}.md").exists():
            shutil.copy2(root / f"{doc}.md", target.with_suffix(".md"))
            continue
        target.with_suffix(".ipynb").write_text(nbformat.writes(book_page(root, doc, published)))
        if doc.startswith("book/"):
            log(f"executing {doc} (profile {profile}) ...")
            seconds[doc] = execute_chapter(target.with_suffix(".ipynb"), profile, strict=strict)
            log(f"  done in {seconds[doc]:.0f} s")
            page_broken, page_stale = _annotate_page(target.with_suffix(".ipynb"), profile, records)
            broken += [f"  {doc}: {line}" for line in page_broken]
            stale += [f"  {doc}: {line}" for line in page_stale]
    if (root / "book" / "images").is_dir():
        shutil.copytree(root / "book" / "images", out / "book" / "images")
    _log_summary(log, broken, stale, profile)
    return seconds


def _annotate_page(path: Path, profile: str, records: list[dict]) -> tuple[list[str], list[str]]:
    """Add the quoted ranges' sources to an executed page; return its broken claims and, at the profile the
    text describes, the quoted seed-0 records this build contradicts (it runs ``SEED = 0``)."""
    executed = nbformat.read(path, as_version=4)
    broken = [warning.splitlines()[1] for warning in broken_claims(executed)]
    describes_text = profile == claims.TEXT_PROFILE
    if note_quote_sources(executed, records, this_run=describes_text):
        nbformat.write(executed, path)
    stale = claims.stale_quotes(executed, records, seed=0, processor=processor()) if describes_text and records else []
    return broken, stale


def _log_summary(log, broken: list[str], stale: list[str], profile: str) -> None:
    if broken:
        log(f"{len(broken)} claim(s) of the text broken by this run, each a warning on its page:\n" + "\n".join(broken))
    else:
        log("every claim of the text held in this run")
    if stale:
        elsewhere = sum(claims.ANOTHER_PROCESSOR in line for line in stale)
        log(
            f"{len(stale)} record(s) the text quotes differ from this build's values at SEED = 0; {elsewhere} of them "
            f"were measured on another processor than this build's ({processor()}), which can train another network "
            "from the same seed. Re-measure them on this machine (python -m bench --only <week>): if they still "
            "differ, the record is older than the code.\n" + "\n".join(stale)
        )
    elif profile == claims.TEXT_PROFILE:
        log("every record the text quotes for seed 0 is this build's value")


def render_html(build_dir: Path) -> Path:
    """Render the staged source in ``build_dir/book_src`` to ``build_dir/html``; return ``index.html``.

    Sphinx runs with warnings as errors, so a broken reference or a missing
    figure fails the build instead of being buried in the log.
    """
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [
        str(jupyter_book) if jupyter_book.exists() else "jupyter-book",
        "build",
        str(build_dir / "book_src"),
        "--path-output",
        str(build_dir / "book_out"),
        "-W",
        "-n",
        "--keep-going",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    html = build_dir / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.move(build_dir / "book_out" / "_build" / "html", html)
    shutil.rmtree(build_dir / "book_out")
    return html / "index.html"


def build_book(root: Path, profile: str, build_dir: Path | None = None, log=print, strict: bool = False) -> Path:
    """Execute every chapter (:func:`stage_book`), then render the HTML book; return ``index.html``."""
    build_dir = build_dir or root / "_build"
    stage_book(root, profile, build_dir / "book_src", log=log, strict=strict)
    return render_html(build_dir)
