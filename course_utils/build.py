"""Maintainer tools: generate exercises and Colab notebooks, execute chapters, build the book.

Sources are jupytext py:percent files. Everything else is generated from them:

* ``exercises/<name>.py`` from ``solutions/<name>.py`` (solution blocks become a
  placeholder that raises, hidden tests are removed);
* ``book/<chapter>.ipynb`` and ``exercises/<name>.ipynb``: what "Open in Colab"
  opens, with a badge and an install cell that only acts on Colab;
* ``_build/book_src/``: the book's Sphinx source, holding every chapter executed
  by papermill at the chosen profile; Jupyter Book renders it without re-running.

Usage (from the repository root)::

    python -m course_utils.build sync            # regenerate exercises/ and the .ipynb files
    python -m course_utils.build sync --check    # fail if any generated file is stale
    python -m course_utils.build book --profile cpu   # execute, then render _build/html
    python -m course_utils.build execute --profile gpu  # only execute (CI checks the outputs with nbval)
    python -m course_utils.build html                 # only render what was executed
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import yaml

SOURCE_FORMAT = "py:percent"
BUILD_SOURCE = Path("_build") / "book_src"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
PLACEHOLDER = (
    'raise NotImplementedError("Blank {number} of {name} is not filled in yet: replace this line with your code.")'
)


class MarkerError(ValueError):
    """A solution notebook whose markers are unbalanced or nested."""


# --- exercises -----------------------------------------------------------------------------------


def strip_solutions(source: str, name: str, first_number: int = 1) -> tuple[str, int]:
    """Replace solution blocks by a placeholder and drop hidden tests in one cell's source.

    Returns the new source and the number of the next blank. The placeholder keeps
    the indentation of its ``BEGIN`` marker so that it sits inside the function or
    block the student fills in.
    """
    out, number, inside = [], first_number, None
    for line_no, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside:
                raise MarkerError(f"{name}: {marker!r} on line {line_no} opens inside an open {inside!r} block")
            inside = marker
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                out.append(indent + PLACEHOLDER.format(number=number, name=name))
                number += 1
        elif marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if inside != expected:
                raise MarkerError(f"{name}: {marker!r} on line {line_no} closes no {expected!r} block")
            inside = None
        elif inside is None:
            out.append(line)
    if inside:
        raise MarkerError(f"{name}: {inside!r} is never closed")
    return "\n".join(out).rstrip(), number


def exercise_from_solution(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student's version of a solution notebook; cells left empty (hidden tests only) are dropped."""
    exercise = nbformat.v4.new_notebook(metadata=solution.metadata)
    number = 1
    for cell in solution.cells:
        cell = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            had_code = bool(cell.source.strip())
            cell.source, number = strip_solutions(cell.source, name, number)
            if had_code and not cell.source.strip():
                continue
        exercise.cells.append(cell)
    return exercise


# --- Colab notebooks -----------------------------------------------------------------------------


def repository(root: Path) -> tuple[str, str]:
    """The repository URL and branch from ``_config.yml`` (the one place they are written)."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def release(root: Path) -> str:
    """The git tag of this version of the course, ``v`` + the version in ``pyproject.toml`` (e.g. ``v0.1.0``).

    Colab badges open the notebooks at this tag and their install cell installs the package at this tag, so a
    notebook and the package it installs always match (see CONTRIBUTING, "Releasing").
    """
    import tomllib

    return "v" + tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def colab_url(root: Path, relative_ipynb: str) -> str:
    url, _ = repository(root)
    return (
        f"https://colab.research.google.com/github/{url.split('github.com/')[1]}/blob/{release(root)}/{relative_ipynb}"
    )


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "book/images/colab-badge.svg"


def colab_notebook(
    notebook: nbformat.NotebookNode, root: Path, relative_ipynb: str, badge_image: str = COLAB_BADGE
) -> nbformat.NotebookNode:
    """Add the "Open in Colab" badge and the Colab-only install cell at the top of a notebook.

    The install cell does nothing outside Colab; on Colab it installs
    ``course_utils`` at this release's tag without the ``cpu`` extra, so the
    TensorFlow and Keras that Colab ships are kept, and stops with a clear error
    if that fails (no network, a tag not pushed yet), so that "Run all" goes no
    further. An exercise also says how to keep and hand in one's work. The book
    uses a local copy of the badge image (``badge_image``) so that its pages need
    no network.
    """
    url, _ = repository(root)
    tag = release(root)
    badge = nbformat.v4.new_markdown_cell(f"[![Open In Colab]({badge_image})]({colab_url(root, relative_ipynb)})")
    install = nbformat.v4.new_code_cell(
        f"# On Google Colab, install the course package, release {tag} (TensorFlow and Keras are already there).\n"
        "import subprocess, sys\n"
        'if "google.colab" in sys.modules:\n'
        '    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", '
        f'"course_utils @ git+{url}@{tag}"],\n'
        "                          capture_output=True, text=True)\n"
        "    if _pip.returncode != 0:\n"
        "        raise RuntimeError(\n"
        f'            "Could not install the course package (course_utils {tag}), so the cells below cannot run. "\n'
        '            "Check that this runtime is connected to the internet, then run this cell again. pip said:\\n"\n'
        "            + _pip.stderr[-1500:])\n"
        "from course_utils.config import quiet_tensorflow\n"
        "quiet_tensorflow()  # before TensorFlow loads: its start-up notices stay out of the cells, real errors do not",
        metadata={"tags": ["remove-cell"]},
    )
    keep = nbformat.v4.new_markdown_cell(
        "**Keep your work.** On Colab, a notebook opened from the badge is a temporary copy: choose *File → Save a "
        "copy in Drive* before you start. **Hand it in** as an `.ipynb` file: on Colab *File → Download → Download "
        ".ipynb*; in Jupyter, save it and send the file itself. Your instructor grades that file."
    )
    header = [badge, install] + ([keep] if relative_ipynb.startswith("exercises/") else [])
    result = nbformat.v4.new_notebook(metadata=dict(notebook.metadata))
    result.metadata.pop("jupytext", None)
    result.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    result.metadata["colab"] = {"provenance": []}
    cells = [nbformat.from_dict(dict(c)) for c in notebook.cells]
    # The badge goes after the title cell so that the page still opens with its title.
    title_first = cells and cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# ")
    result.cells = cells[:1] + header + cells[1:] if title_first else header + cells
    for i, cell in enumerate(result.cells):
        cell["id"] = f"cell-{i}"
    return result


# --- the set of generated files ------------------------------------------------------------------


def read_source(path: Path) -> nbformat.NotebookNode:
    return jupytext.read(path, fmt=SOURCE_FORMAT)


def published_notebooks(root: Path) -> dict[Path, nbformat.NotebookNode]:
    """What readers get, by the path of its ``.ipynb``: the chapters, and the exercises made from the solutions."""
    notebooks = {}
    for chapter in sorted((root / "book").glob("*.py")):
        notebooks[chapter.with_suffix(".ipynb").relative_to(root)] = read_source(chapter)
    for solution in sorted((root / "solutions").glob("*.py")):
        notebooks[Path("exercises") / f"{solution.stem}.ipynb"] = exercise_from_solution(
            read_source(solution), solution.stem
        )
    return notebooks


def source_of(ipynb: Path) -> Path:
    """The source a published notebook is generated from: ``book/X.py`` or ``solutions/X.py``."""
    return (Path("book") if ipynb.parts[0] == "book" else Path("solutions")) / ipynb.with_suffix(".py").name


def _marked_generated(notebook: nbformat.NotebookNode, source: Path) -> nbformat.NotebookNode:
    """``notebook`` opening with a note, hidden when rendered, that it is generated from ``source``."""
    notebook = copy.deepcopy(notebook)
    note = f"<!-- Generated from {source.as_posix()} by `make sync`: edit that file, not this one. -->"
    first = notebook.cells[0] if notebook.cells else None
    if first is not None and first.cell_type == "markdown":
        first.source = f"{note}\n{first.source}"
    else:
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return notebook


def generated_files(root: Path) -> dict[Path, str]:
    """Every generated file (relative path -> text) computed from the sources."""
    files: dict[Path, str] = {}
    for ipynb, notebook in published_notebooks(root).items():
        if ipynb.parts[0] == "exercises":
            files[ipynb.with_suffix(".py")] = jupytext.writes(
                _marked_generated(notebook, source_of(ipynb)), fmt=SOURCE_FORMAT
            )
        colab = colab_notebook(notebook, root, ipynb.as_posix())
        files[ipynb] = nbformat.writes(_marked_generated(colab, source_of(ipynb))) + "\n"
    return files


def sync(root: Path, check: bool = False) -> list[Path]:
    """Write the generated files (or, with ``check``, list those that are stale or orphaned)."""
    expected = generated_files(root)
    stale = [p for p, text in expected.items() if not (root / p).exists() or (root / p).read_text() != text]
    orphans = [
        p.relative_to(root)
        for p in [
            *(root / "exercises").glob("*.py"),
            *(root / "exercises").glob("*.ipynb"),
            *(root / "book").glob("*.ipynb"),
        ]
        if p.relative_to(root) not in expected
    ]
    if not check:
        for path in stale:
            (root / path).write_text(expected[path])
        for path in orphans:
            (root / path).unlink()
    return sorted(stale + orphans)


# --- execution and the book ----------------------------------------------------------------------


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

    from course_utils import claims

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
        )
    finally:
        if report_only is None:
            os.environ.pop(claims.REPORT_ONLY, None)
    executed = nbformat.read(notebook_path, as_version=4)
    if hide_injected_parameters(executed) + warn_broken_claims(executed):
        nbformat.write(executed, notebook_path)
    return time.perf_counter() - start


BROKEN_CLAIM_TAG = "broken-claim"


def warn_broken_claims(notebook: nbformat.NotebookNode) -> int:
    """Put a warning right after each hidden cell whose claim this run broke, so that it stands under the
    sentence that states it; returns how many. The text describes the benchmark's runs, so a reader's machine
    may land elsewhere: the warning says so, and what this run got."""
    from course_utils import claims

    found = claims.broken(notebook)
    for index, name, what in reversed(found):
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
    from course_utils import claims

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
                + "\n\nMeasured by `bench/run.py` (records in `bench/results.json`).\n:::",
                metadata={"tags": [QUOTE_SOURCE_TAG]},
            ),
        )
    return len(found)


INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it adds after the parameters cell


def hide_injected_parameters(notebook: nbformat.NotebookNode) -> int:
    """Tag papermill's injected-parameters cell ``remove-cell`` so the book does not show it.

    The ``parameters`` cell itself stays on the page (readers see PROFILE, SEED,
    DATA_SOURCE and their defaults); only papermill's copy with the values of
    this run is removed. Returns the number of cells newly tagged.
    """
    tagged = 0
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", []) if INJECTED_TAG in cell.metadata.get("tags", []) else None
        if tags is not None and "remove-cell" not in tags:
            tags.append("remove-cell")
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
    from course_utils import claims

    results = root / "bench" / "results.json"
    records = json.loads(results.read_text()) if results.exists() else []
    seconds, broken, stale = {}, [], []
    for doc in toc_files(root):
        md = root / f"{doc}.md"
        target = out / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        if md.exists():
            shutil.copy2(md, target.with_suffix(".md"))
            continue
        target.with_suffix(".ipynb").write_text(nbformat.writes(book_page(root, doc, published)))
        if doc.startswith("book/"):
            log(f"executing {doc} (profile {profile}) ...")
            seconds[doc] = execute_chapter(target.with_suffix(".ipynb"), profile, strict=strict)
            log(f"  done in {seconds[doc]:.0f} s")
            executed = nbformat.read(target.with_suffix(".ipynb"), as_version=4)
            broken += [f"  {doc}: {warning.splitlines()[1]}" for warning in broken_claims(executed)]
            if note_quote_sources(executed, records, this_run=profile == claims.TEXT_PROFILE):
                nbformat.write(executed, target.with_suffix(".ipynb"))
            if profile == "cpu" and records:  # the quoted seed-0 records against this build, which runs SEED = 0
                stale += [f"  {doc}: {problem}" for problem in claims.stale_quotes(executed, records, seed=0)]
    for asset_dir in ("book/images",):
        if (root / asset_dir).is_dir():
            shutil.copytree(root / asset_dir, out / asset_dir)
    if broken:
        log(f"{len(broken)} claim(s) of the text broken by this run, each a warning on its page:\n" + "\n".join(broken))
    else:
        log("every claim of the text held in this run")
    if stale:
        log(
            f"{len(stale)} record(s) the text quotes differ from this build's values at SEED = 0 (on the benchmark's "
            "machine, re-measure them: python bench/run.py --only <week>):\n" + "\n".join(stale)
        )
    elif profile == "cpu":
        log("every record the text quotes for seed 0 is this build's value")
    return seconds


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: current folder)")
    commands = parser.add_subparsers(dest="command", required=True)
    sync_cmd = commands.add_parser("sync", help="regenerate exercises/ and the Colab .ipynb files")
    sync_cmd.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    for name, text in [
        ("book", "execute every chapter with papermill, then build the HTML book"),
        ("execute", "only execute every chapter into _build/book_src (e.g. to check it with nbval)"),
        ("html", "only render _build/book_src, executed before, to _build/html"),
    ]:
        command = commands.add_parser(name, help=text)
        if name != "html":
            command.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
            command.add_argument(
                "--strict",
                action="store_true",
                help="fail on a claim of the text that the run breaks (benchmarks, CI, releases); "
                "without it, each is a warning on its page and in the summary",
            )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "sync":
        changed = sync(root, check=args.check)
        for path in changed:
            print(("stale: " if args.check else "wrote: ") + str(path))
        if args.check and changed:
            print("Run `python -m course_utils.build sync` to regenerate them.")
            return 1
        return 0
    stale = sync(root, check=True)
    if stale:
        print("Generated files are out of date: " + ", ".join(map(str, stale)))
        print("Run `python -m course_utils.build sync` first.")
        return 1
    if args.command in ("book", "execute"):
        stage_book(root, args.profile, root / BUILD_SOURCE, strict=args.strict)
    if args.command in ("book", "html"):
        print(f"Book written to {render_html(root / '_build')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
