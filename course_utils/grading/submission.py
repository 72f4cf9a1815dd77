"""One submission file graded: read it without trusting it, run it, and make its result record.

Every file is read once, without following links, and refused (status ``refused``) when it
is a link, a folder, or above the size limits of :mod:`course_utils.grading.limits`;
nothing else about a bad file stops the run: its result says what was wrong.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
import time
from pathlib import Path

import nbformat

from course_utils import build
from course_utils.grading import withheld
from course_utils.grading.exercise import GradingError, Week, find_solution
from course_utils.grading.limits import MAX_CELL_CHARS, MAX_CODE_CHARS, MAX_SUBMISSION_BYTES, MESSAGE_CHARS, shorten
from course_utils.grading.matching import check_outcomes, graded_notebook
from course_utils.grading.workers import Settings, WorkerPool, run_notebook


class Refused(Exception):
    """A submission that is not graded, and why (a link, a folder, a file or a cell above the limits)."""


def model_submission(root: Path, week: str) -> nbformat.NotebookNode:
    """The handout (the exercise's Colab notebook) filled in with the solution: what a perfect student hands in.

    Grading it must give full marks; the tests and the benchmark start from it.
    """
    path = find_solution(root, week)
    handout = nbformat.reads(build.generated_files(root)[Path("exercises") / f"{path.stem}.ipynb"], as_version=4)
    solved = iter(
        build.solved_source(c.source)
        for c in build.read_source(path).cells
        if c.cell_type == "code" and build.BEGIN_SOLUTION in c.source
    )
    for cell in handout.cells:
        if cell.cell_type == "code" and build.PLACEHOLDER_START in cell.source:
            cell.source = next(solved)
    return handout


def submission_files(folder: Path) -> list[Path]:
    """Every visible entry of the folder (not recursive), sorted by name: links and folders too, which the
    gradebook lists as refused rather than following or skipping them."""
    if not folder.is_dir():
        raise GradingError(f"Submissions folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise GradingError(f"Submissions folder is empty: {folder} (expected students' .ipynb files)")
    return files


def read_submission(path: Path) -> bytes:
    """The bytes of a submission file, opened once without following a link; raises :class:`Refused` for a
    link, a folder or anything but a regular file, and for a file above :data:`MAX_SUBMISSION_BYTES`."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if path.is_symlink():
            raise Refused("a symbolic link: the grader does not follow links; hand in the notebook itself") from None
        raise Refused(f"could not be opened ({error.strerror})") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise Refused("not a regular file (a folder, or a device): hand in the .ipynb file itself")
    with os.fdopen(descriptor, "rb") as handle:
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise Refused(
                f"{info.st_size / 2**20:.1f} MB, above the grader's limit of {MAX_SUBMISSION_BYTES >> 20} MB "
                "(clear the outputs before handing it in: Edit > Clear all outputs)"
            )
        return handle.read(MAX_SUBMISSION_BYTES + 1)


def check_code_size(submission: nbformat.NotebookNode) -> None:
    """Raise :class:`Refused` before any parsing if a code cell, or all of them, are above the limits."""
    sizes = [len(str(c.get("source", ""))) for c in submission.cells if c.get("cell_type") == "code"]
    for number, size in enumerate(sizes, 1):
        if size > MAX_CELL_CHARS:
            raise Refused(
                f"code cell {number} holds {size:,} characters; the grader reads cells up to {MAX_CELL_CHARS:,}"
            )
    if sum(sizes) > MAX_CODE_CHARS:
        raise Refused(f"its code cells hold {sum(sizes):,} characters; the grader reads up to {MAX_CODE_CHARS:,}")


def grade_file(
    week: Week, path: Path, settings: Settings, pool: WorkerPool | None = None
) -> tuple[dict, nbformat.NotebookNode | None]:
    """Grade one submission file; never raises for a bad submission (its status says what happened)."""
    start = time.perf_counter()
    data, submission, status, detail = b"", None, "", ""
    try:
        data = read_submission(path)
        submission = _notebook_of(data)
    except Refused as error:  # a link or a folder (nothing read), or a file whose code is above the limits
        status, detail = "refused", str(error)
    except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, it is that submission's status
        status = "invalid"
        detail = f"not a readable .ipynb notebook ({type(error).__name__}: {shorten(error)})"
    notes, outcomes, executed = [], {}, None
    if submission is not None:
        notebook, notes = graded_notebook(week, submission)
        status, detail, executed = run_notebook(notebook, settings, pool)
        outcomes = check_outcomes(week, executed)
        stopped = _stopped_cells(executed)
        if stopped and status == "graded":
            status = "cell-timeout"
        notes += [
            f"A cell of yours (with answer {info['answer']}) ran longer than the limit of "
            f"{settings.cell_timeout:g} s for one cell and was stopped."
            for info in stopped
            if info.get("kind") in ("answer", "extra")
        ]
        notes += _withheld_calls(executed)
    result = result_record(week, path, settings, status, detail, outcomes, hashlib.sha256(data).hexdigest())
    result["notes"], result["seconds"] = notes, round(time.perf_counter() - start, 1)
    return result, executed


def _notebook_of(data: bytes) -> nbformat.NotebookNode:
    """The submission's notebook, its code within the size limits; raises for anything else."""
    submission = nbformat.reads(data.decode("utf-8"), as_version=4)
    if not isinstance(submission.get("cells"), list):
        raise TypeError("it has no list of cells")
    check_code_size(submission)
    return submission


def _withheld_calls(executed: nbformat.NotebookNode | None) -> list[str]:
    """A note for each error of the student's cells that a withheld function raised (the checks that needed what
    the cell did not define then fail with a NameError, which does not say why)."""
    notes = []
    for cell in executed.cells if executed is not None else []:
        info = cell.get("metadata", {}).get("grader", {})
        for output in cell.get("outputs", []) if info.get("kind") in ("answer", "extra") else []:
            evalue = str(output.get("evalue", ""))
            note = f"A cell of yours (with answer {info.get('answer')}) stopped: {shorten(evalue, MESSAGE_CHARS)}."
            if output.get("output_type") == "error" and withheld.PHRASE in evalue and note not in notes:
                notes.append(note)
    return notes


def _stopped_cells(executed: nbformat.NotebookNode | None) -> list[dict]:
    """The grader's notes (``metadata.grader``) of the cells that the cell time limit interrupted."""
    return [
        c.metadata.get("grader", {})
        for c in (executed.cells if executed is not None else [])
        if any(o.get("ename") == "KeyboardInterrupt" for o in c.get("outputs", []))
    ]


def result_record(
    week: Week, path: Path, settings: Settings, status: str, detail: str, outcomes: dict, sha256: str
) -> dict:
    """A submission's result as stored and reported: a check that has no outcome failed with ``detail``.

    A result of status ``error`` (the grader failed on the file) keeps no hashes, so the next run grades it again.
    """
    failed = status == "error"
    return {
        "file": path.name,
        "sha256": "" if failed else sha256,
        "week": week.name,
        "solution_sha256": "" if failed else week.sha256,
        "profile": settings.profile,
        "status": status,
        "detail": detail,
        "notes": [],
        "checks": [
            {
                "id": check.id,
                "question": check.question,
                "points": check.points,
                "hidden": check.hidden,
                "passed": outcomes.get(check.id, (False, detail))[0],
                "message": outcomes.get(check.id, (False, detail))[1],
            }
            for check in week.checks
        ],
        "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": 0,
    }


def failed_result(week: Week, path: Path, settings: Settings, error: BaseException) -> dict:
    """The result of a submission the grader itself failed on: status ``error``, no point, graded again next run."""
    detail = f"the grader failed on this file ({type(error).__name__}: {shorten(error)})"
    return result_record(week, path, settings, "error", detail, {c.id: (False, "not run") for c in week.checks}, "")
