"""The generated files: exercises from solutions, and the Colab copies of chapters and exercises.

Sources are jupytext py:percent files; ``exercises/<name>.py`` is made from
``solutions/<name>.py`` (solution blocks become a placeholder that raises, hidden tests
are removed), and every ``book/<chapter>.ipynb`` and ``exercises/<name>.ipynb`` gets a
badge and an install cell that only acts on Colab. :func:`sync` writes them all.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import jupytext
import nbformat
import yaml

SOURCE_FORMAT = "py:percent"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# Short enough to fit the page's 80 columns at one indentation level.
PLACEHOLDER = 'raise NotImplementedError("Blank {number} of {name} is not filled in yet")'
PLACEHOLDER_START = PLACEHOLDER.split("{", 1)[0]
"""How every placeholder line of a handout begins (the grader recognises a blank left unfilled by it)."""


def solved_source(source: str) -> str:
    """A solution cell as a student who solved it would write it: without its solution markers."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


class MarkerError(ValueError):
    """A solution notebook whose markers are unbalanced or nested."""


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


def repository(root: Path) -> tuple[str, str]:
    """The repository URL and the revision reader links name (``repository.branch``), from ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo["branch"]


def revision(root: Path) -> str:
    """The revision every link a reader follows names: ``repository.branch`` in ``_config.yml``.

    The Colab badge opens the notebook at it, the install cell installs ``course_utils`` from it, and the book
    theme's launch button reads the same setting, so a notebook and the package it installs come from one
    revision. It is ``main`` on the main branch; a release's commit names its own tag (CONTRIBUTING, "Making a
    release", and :func:`release_problems`).
    """
    return repository(root)[1]


def release_tag(root: Path) -> str:
    """The git tag of a release of this version: ``v`` + the version in ``pyproject.toml`` (e.g. ``v0.1.0``)."""
    return "v" + tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def release_problems(root: Path, tag: str) -> list[str]:
    """Why ``tag`` cannot be released from the tree at ``root``; empty when it can.

    The tag must be ``v`` + the package's version, every reader link must name it (:func:`revision`), and every
    generated notebook must be up to date, so that its badge and install cell name it too. The release workflow
    (``.github/workflows/release.yml``) runs this on every pushed tag before it builds anything.
    """
    problems = []
    if tag != release_tag(root):
        problems.append(f"the tag {tag} is not v + the version in pyproject.toml ({release_tag(root)})")
    if revision(root) != tag:
        problems.append(f"_config.yml's repository.branch is {revision(root)!r}: a release's links must name {tag!r}")
    stale = sync(root, check=True)
    if stale:
        problems.append("generated files out of date (run make sync): " + ", ".join(map(str, stale)))
    return problems


def colab_url(root: Path, relative_ipynb: str) -> str:
    url, ref = repository(root)
    return f"https://colab.research.google.com/github/{url.split('github.com/')[1]}/blob/{ref}/{relative_ipynb}"


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "book/images/colab-badge.svg"


def colab_notebook(
    notebook: nbformat.NotebookNode, root: Path, relative_ipynb: str, badge_image: str = COLAB_BADGE
) -> nbformat.NotebookNode:
    """Add the "Open in Colab" badge and the Colab-only install cell at the top of a notebook.

    The badge opens the notebook at :func:`revision`. The install cell does nothing outside Colab; on Colab it
    installs ``course_utils`` from that same revision without the ``cpu`` extra, so the TensorFlow and Keras
    that Colab ships are kept, and stops with a clear error if that fails (no network, a revision not pushed),
    so that "Run all" goes no further. An exercise also says how to keep and hand in one's work. The book
    uses a local copy of the badge image (``badge_image``) so that its pages need
    no network.
    """
    badge = nbformat.v4.new_markdown_cell(f"[![Open In Colab]({badge_image})]({colab_url(root, relative_ipynb)})")
    keep = nbformat.v4.new_markdown_cell(
        "**Keep your work.** On Colab, a notebook opened from the badge is a temporary copy: choose *File → Save a "
        "copy in Drive* before you start. **Hand it in** as an `.ipynb` file: on Colab *File → Download → Download "
        ".ipynb*; in Jupyter, save it and send the file itself. Your instructor grades that file."
    )
    header = [badge, colab_install_cell(root)] + ([keep] if relative_ipynb.startswith("exercises/") else [])
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


def colab_install_cell(root: Path) -> nbformat.NotebookNode:
    """The install cell at the top of every Colab notebook (hidden in the book; the grader never runs it)."""
    url, ref = repository(root)
    return nbformat.v4.new_code_cell(
        f"# On Google Colab, install the course package from {ref}, the revision of this notebook\n"
        "# (TensorFlow and Keras are already there, and stay as they are).\n"
        "import subprocess, sys\n"
        'if "google.colab" in sys.modules:\n'
        '    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", '
        f'"course_utils @ git+{url}@{ref}"],\n'
        "                          capture_output=True, text=True)\n"
        "    if _pip.returncode != 0:\n"
        "        raise RuntimeError(\n"
        f'            "Could not install the course package (course_utils at {ref}), so the cells below cannot run. "\n'
        '            "Check that this runtime is connected to the internet, then run this cell again. pip said:\\n"\n'
        "            + _pip.stderr[-1500:])\n"
        "from course_utils.config import quiet_tensorflow\n"
        "quiet_tensorflow()  # before TensorFlow loads: its start-up notices stay out of the cells, real errors do not",
        metadata={"tags": ["remove-cell"]},
    )


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
