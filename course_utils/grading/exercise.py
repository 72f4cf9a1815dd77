"""The week being graded, read from its solution file: answer cells, check cells and the checks' plan.

A solution cell holding ``### BEGIN SOLUTION`` is an *answer* (the student's matching cell
replaces it); a cell marked ``# CHECK <question> points=<n>`` is a *check* (the solution's,
hidden tests included, which only the judge runs); every other code cell is *fixed* (the
solution's own runs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils import build
from course_utils.grading.source import bound_names, defined_functions, free_names, top_level_names

CHECK_LINE = re.compile(r"^\s*#\s*CHECK\b.*$", re.MULTILINE)
CHECK_MARKER = re.compile(r"^\s*#\s*CHECK\s+(?P<question>[A-Za-z0-9_.-]+)\s+points\s*=\s*(?P<points>\d+(\.\d+)?)\s*$")


class GradingError(Exception):
    """A problem with the command's arguments or with the solution's markers: stops the run."""


@dataclass
class Check:
    """One check cell of the solution: visible, or hidden tests that students never saw."""

    id: str
    question: str
    points: float
    hidden: bool
    source: str
    fetch: tuple = ()  # the names it reads from the student's notebook; the rest are the judge's own
    in_kernel: bool = False  # a visible check that binds names the student's later cells use runs there too


@dataclass
class Slot:
    """A code cell of the solution, with what a student's copy of it looks like."""

    kind: str  # "answer" (the student's cell is used), "check" (injected), "fixed" (the solution's is used)
    source: str
    template_lines: set = field(default_factory=set)
    names: set = field(default_factory=set)
    number: int = 0  # answers: 1, 2, ... in order
    check: Check | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class Week:
    name: str
    path: Path
    sha256: str
    cells: list  # Slot, or a str for a markdown cell
    questions: dict  # question -> max points, in order of appearance

    @property
    def slots(self) -> list[Slot]:
        return [c for c in self.cells if isinstance(c, Slot)]

    @property
    def checks(self) -> list[Check]:
        return [c.check for c in self.slots if c.kind == "check"]

    @property
    def max_points(self) -> float:
        return sum(self.questions.values())


def find_solution(root: Path, week: str, solutions: Path | None = None) -> Path:
    """``<solutions>/<week>.py`` (``solutions`` defaults to ``root/solutions``); ``week`` is a file stem
    (``week1_exercise``) or a number (``1``)."""
    folder = Path(solutions) if solutions is not None else root / "solutions"
    if not folder.is_dir():
        where = f"No solutions folder {folder}" if solutions is not None else f"No solutions/ folder in {root}"
        raise GradingError(f"{where}: run from the repository root, or pass --root or --solutions.")
    available = sorted(p.stem for p in folder.glob("*.py"))
    if week.isdigit():
        found = sorted(folder.glob(f"week{int(week)}_*.py"))
    else:
        found = [folder / f"{week}.py"] if (folder / f"{week}.py").is_file() else []
    if len(found) != 1:
        raise GradingError(f"Unknown week {week!r}: expected one of {', '.join(available) or '(none)'} in {folder}.")
    return found[0]


def template_lines(source: str) -> set:
    """The non-blank lines of a cell, stripped, without the handout's placeholders: what a student's copy of
    the cell keeps."""
    return {line.strip() for line in source.splitlines() if line.strip() and build.PLACEHOLDER_START not in line}


def load_week(root: Path, week: str, solutions: Path | None = None) -> Week:
    """Parse ``solutions/<week>.py`` (or the one in ``solutions``): its answer, check and other cells."""
    path = find_solution(root, week, solutions)
    cells, questions, answers = [], {}, 0
    for index, cell in enumerate(build.read_source(path).cells):
        if cell.cell_type == "markdown":
            cells.append(cell.source)
        elif cell.cell_type == "code" and cell.source.strip():
            slot = _slot(path, index, cell, cells)
            if slot.kind == "check":
                questions[slot.check.question] = questions.get(slot.check.question, 0) + slot.check.points
            elif slot.kind == "answer":
                answers += 1
                slot.number = answers
            cells.append(slot)
    if not questions:
        raise GradingError(
            f"{path.name} has no '# CHECK <question> points=<n>' markers: nothing to grade "
            "(see the 'For instructors' page)."
        )
    slots = [c for c in cells if isinstance(c, Slot)]
    _check_hidden_tests_leave_nothing_behind(path, slots)
    plan_checks(path, slots)
    install = build.colab_install_cell(root).source
    cells.insert(0, Slot("drop", install, template_lines(install), set()))  # the Colab install cell: never run
    return Week(path.stem, path, hashlib.sha256(path.read_bytes()).hexdigest(), cells, questions)


def _slot(path: Path, index: int, cell: nbformat.NotebookNode, earlier: list) -> Slot:
    """The slot of one code cell of the solution (``earlier``: the cells before it, to number its check)."""
    source = cell.source
    template, _ = build.strip_solutions(source, path.stem)
    slot = Slot("fixed", source, template_lines(template), top_level_names(source), metadata=dict(cell.metadata))
    where = f"{path.name}, code cell {index}"
    markers = CHECK_LINE.findall(source)
    if markers:
        if build.BEGIN_SOLUTION in source:
            raise GradingError(f"{where}: a cell cannot hold both a solution and a CHECK marker.")
        if len(markers) > 1:
            raise GradingError(f"{where}: one CHECK marker per cell, found {len(markers)}.")
        match = CHECK_MARKER.match(markers[0])
        if not match:
            raise GradingError(
                f"{where}: malformed marker {markers[0].strip()!r}; write '# CHECK <question> points=<number>'."
            )
        question = match["question"]
        count = sum(1 for c in earlier if isinstance(c, Slot) and c.kind == "check" and c.check.question == question)
        code = "\n".join(
            line for line in source.splitlines() if line.strip() not in (build.BEGIN_HIDDEN, build.END_HIDDEN)
        )
        hidden = build.BEGIN_HIDDEN in source
        slot.kind = "check"
        slot.check = Check(f"{question}.{count + 1}", question, float(match["points"]), hidden, code)
    elif build.BEGIN_HIDDEN in source:
        raise GradingError(
            f"{where}: hidden tests without a '# CHECK <question> points=<n>' marker would score nothing; "
            "add one inside the hidden block."
        )
    elif build.BEGIN_SOLUTION in source:
        slot.kind = "answer"
    return slot


def plan_checks(path: Path, slots: list) -> None:
    """Decide, from the solution alone, which names each check takes from the student's notebook.

    The judge computes itself what the solution's other cells compute from its set-up
    (the data a cell of its own loads, as :meth:`course_utils.grading.judge.Judge.setup` does), and
    keeps what earlier checks bound (a helper such as ``tape_gradients``, inputs such as
    ``some``) until a cell other than a check uses it (``lenet``, built by a check and then
    trained by the student): only then is it the student's. So a check fetches only the
    student's answers and what was handed to them; no cell a student writes changes that.
    A check that would read anything else from the student (data loaded in an answer cell,
    which the student may change) is refused here: load it in a cell of its own.
    """
    read_later = _read_by_later_cells(slots)
    computed, judge_owned, answers = {"PROFILE"}, set(), set()
    for k, slot in enumerate(slots):
        if slot.kind == "fixed":
            if free_names(slot.source) <= computed:
                computed |= bound_names(slot.source)
            judge_owned -= free_names(slot.source) | bound_names(slot.source)
        elif slot.kind == "answer":
            template, _ = build.strip_solutions(slot.source, path.stem)
            answers |= top_level_names(slot.source) - top_level_names(template) | defined_functions(slot.source)
            judge_owned -= free_names(slot.source) | bound_names(slot.source)
        elif slot.kind == "check":
            fetch = free_names(slot.check.source) - judge_owned - computed
            if strays := sorted(fetch - answers):
                raise GradingError(
                    f"{path.name}: check {slot.check.id} reads {', '.join(strays)} from the student's "
                    "notebook, which is not an answer: the student could change it. Compute it in a "
                    "cell of its own (the grader computes that cell itself) or in the check."
                )
            slot.check.fetch = tuple(sorted(fetch))
            judge_owned |= bound_names(slot.check.source)
            handed_on = bound_names(slot.check.source) & read_later[k]
            slot.check.in_kernel = not slot.check.hidden and bool(handed_on)
            if slot.check.in_kernel:  # what it binds there is handed to the student (a model to train)
                answers |= handed_on


def _read_by_later_cells(slots: list) -> list[set]:
    """For each slot, the names that the answer and fixed cells after it read."""
    read, later = [set() for _ in slots], set()
    for k in range(len(slots) - 1, -1, -1):
        read[k] = set(later)
        if slots[k].kind in ("answer", "fixed"):
            later |= free_names(slots[k].source)
    return read


def _check_hidden_tests_leave_nothing_behind(path: Path, slots: list) -> None:
    """Hidden tests run only in the judge, so no later cell may use a name that one of them binds."""
    hidden = [s.kind == "check" and s.check.hidden for s in slots]
    elsewhere = set().union(*(bound_names(s.source) for s, secret in zip(slots, hidden) if not secret))
    for k, slot in enumerate(slots):
        if hidden[k]:
            later = set().union(*(free_names(s.source) for s in slots[k + 1 :]))
            if left := sorted(bound_names(slot.check.source) & later - elsewhere):
                raise GradingError(
                    f"{path.name}: hidden test {slot.check.id} binds {', '.join(left)}, which later "
                    "cells use; hidden tests run only in the grader's process, so bind them elsewhere."
                )
