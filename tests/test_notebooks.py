"""Every chapter, solution and exercise executes at the smoke profile; nbval checks the outputs."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from course_utils import build, plots

SANITIZE = "tests/nbval_sanitize.cfg"


def chapter_names(root):
    return sorted(p.stem for p in (root / "book").glob("*.py"))


def solution_names(root):
    return sorted(p.stem for p in (root / "solutions").glob("*.py"))


def error_outputs(notebook):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def run_nbval(root, notebook_path):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--color=no",
            "--nbval-lax",
            f"--nbval-sanitize-with={root / SANITIZE}",
            "--rootdir",
            str(notebook_path.parent),
            str(notebook_path),
        ],
        capture_output=True,
        text=True,
        cwd=notebook_path.parent,
    )


def execute_generated(root, tmp_path, relative_ipynb, profile="smoke"):
    path = tmp_path / relative_ipynb.replace("/", "_")
    path.write_text(build.generated_files(root)[Path(relative_ipynb)])
    build.execute(path, profile)
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("name", chapter_names(Path(__file__).resolve().parents[1]))
def test_chapter_executes_at_smoke_profile(smoke_chapter, name):
    notebook = nbformat.read(smoke_chapter(name), as_version=4)
    assert notebook.metadata.papermill.parameters == {"PROFILE": "smoke"}
    assert not error_outputs(notebook)
    assert any(
        o.output_type == "display_data" and "image/png" in o.data
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
    ), "no figure was drawn"
    soft = [
        o.metadata
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "display_data" and "image/png" in o.data and "width" not in o.metadata.get("image/png", {})
    ]
    assert not soft, f"figures drawn at 1x (config.sharp_figures shows them at 2x): {soft[:3]}"
    stray = [
        o.data["text/plain"][:80]
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "execute_result"
        and re.match(r"(Text|\[<matplotlib|<matplotlib|<Figure)", o.data.get("text/plain", ""))
    ]
    assert not stray, f"a cell ends in a matplotlib call whose return value the page shows: {stray}"
    drawn = [json.loads(line) for line in smoke_chapter(name).with_suffix(".figures.jsonl").read_text().splitlines()]
    small = {d["figure"]: d["smallest"] for d in drawn if d["smallest"][1] < plots.SMALLEST_TEXT}
    assert drawn and not small, (
        f"text smaller than {plots.SMALLEST_TEXT} pt as the page shows it ((text, pt) per figure): {small}"
    )


@pytest.mark.parametrize("name", chapter_names(Path(__file__).resolve().parents[1]))
def test_chapter_outputs_are_reproducible_under_nbval(root, smoke_chapter, tmp_path, name):
    executed = tmp_path / f"{name}.ipynb"
    shutil.copy2(smoke_chapter(name), executed)
    checked = [
        c for c in nbformat.read(executed, as_version=4).cells if "nbval-check-output" in c.metadata.get("tags", [])
    ]
    assert len(checked) >= 5, "the chapter should mark its reproducible outputs for nbval"
    result = run_nbval(root, executed)
    assert result.returncode == 0, result.stdout[-5000:]


@pytest.mark.parametrize("name", solution_names(Path(__file__).resolve().parents[1]))
def test_solution_passes_all_its_checks(root, tmp_path, name):
    solution = tmp_path / f"{name}.ipynb"
    solution.write_text(nbformat.writes(build.read_source(root / "solutions" / f"{name}.py")))
    build.execute(solution, "smoke")
    cells = [c for c in nbformat.read(solution, as_version=4).cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") for c in cells for o in c.outputs)
    expected = sum(c.source.count("passed(") for c in cells if not c.source.lstrip().startswith("from"))
    assert expected >= 1 and text.count("all checks passed") == expected, text


@pytest.mark.parametrize("name", solution_names(Path(__file__).resolve().parents[1]))
def test_exercise_as_given_stops_at_the_first_blank_with_a_clear_message(root, tmp_path, name):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute_generated(root, tmp_path, f"exercises/{name}.ipynb")
    assert error.value.ename == "NotImplementedError"
    assert f"Blank 1 of {name} is not filled in yet" in error.value.evalue


NBVAL_DEMO = [
    ("print(6 * 7)", "42\n"),
    ("import time\nprint(f'took {time.perf_counter() % 1:.2f} s')", "took 0.12 s\n"),
]


def demo_notebook(path, checked_output):
    """A two-cell notebook following the course's nbval conventions, with stored outputs."""
    notebook = nbformat.v4.new_notebook()
    outputs = [checked_output, NBVAL_DEMO[1][1]]
    for count, ((source, _), text) in enumerate(zip(NBVAL_DEMO, outputs), 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=count)
        if count == 1:
            cell.metadata["tags"] = ["nbval-check-output"]
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_our_nbval_sanitizer_leaves_a_checked_output_checkable(root, tmp_path):
    """The course's nbval set-up (lax mode, tests/nbval_sanitize.cfg) must still fail on a changed output of a
    cell marked ``nbval-check-output``, while a timing in an unmarked cell never matters: a sanitizer that
    rewrote too much would make every chapter's nbval check pass whatever it printed."""
    assert run_nbval(root, demo_notebook(tmp_path / "same.ipynb", "42\n")).returncode == 0
    result = run_nbval(root, demo_notebook(tmp_path / "changed.ipynb", "41\n"))
    assert result.returncode != 0
    assert "42" in result.stdout and "41" in result.stdout
