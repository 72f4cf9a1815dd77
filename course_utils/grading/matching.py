"""One submission made into the notebook the judge runs: the student's cells matched to the solution's.

Each answer cell of the solution is replaced by the student's cell that looks most like it
(whatever their order); the solution's fixed and check cells are kept. Student cells that
match nothing run just before their next answer.
"""

from __future__ import annotations

import re

import nbformat

from course_utils.grading.exercise import Check, Slot, Week, template_lines
from course_utils.grading.source import top_level_names

SHELL_ESCAPE = re.compile(
    r"^(\s*)(!|%pip\b|%conda\b|%mamba\b|%system\b|%sx\b|%%bash\b|%%sh\b|%%script\b|%%system\b)", re.MULTILINE
)


def similarity(source: str, names: set, slot: Slot) -> float:
    """How much a student's cell looks like a solution cell: shared template lines or defined names (0..1)."""
    lines = template_lines(source)
    by_lines = len(slot.template_lines & lines) / len(slot.template_lines) if slot.template_lines else 0.0
    by_names = len(slot.names & names) / len(slot.names) if slot.names else 0.0
    return max(by_lines, by_names)


def match_cells(student: list[str], slots: list[Slot]) -> dict[int, int]:
    """Pair student cells with solution cells (slot index -> student index), best matches first.

    Works whatever the order of the student's cells; a pair needs a similarity of at least 0.5.
    """
    names = [top_level_names(s) for s in student]
    pairs = []
    for j, slot in enumerate(slots):
        if slot.kind == "check" and not slot.template_lines:
            continue  # hidden tests: students never had this cell
        for i, source in enumerate(student):
            score = similarity(source, names[i], slot)
            if score >= 0.5:
                distance = abs(i / max(len(student), 1) - j / max(len(slots), 1))
                pairs.append((-score, distance, j, i))
    matched, used = {}, set()
    for _, _, j, i in sorted(pairs):
        if j not in matched and i not in used:
            matched[j] = i
            used.add(i)
    return matched


def neutralise_shell(source: str) -> tuple[str, bool]:
    """Comment out shell escapes and package installs (``!cmd``, ``%pip``, ``%%bash`` ...) in a student's cell."""
    new = SHELL_ESCAPE.sub(lambda m: m.group(1) + "# (not run by the grader) " + m.group(2), source)
    return new, new != source


def graded_notebook(week: Week, submission: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook the judge executes (every cell marked with its kind in ``metadata.grader``), and feedback notes."""
    student = [c.source for c in submission.cells if c.get("cell_type") == "code" and str(c.get("source", "")).strip()]
    slots = week.slots
    matched = match_cells(student, slots)
    extras, left_over = _extras_before_answers(student, slots, matched)
    notes = [f"{left_over} cell(s) of yours after your last answer cell were not run."] if left_over else []
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    position = {id(slot): j for j, slot in enumerate(slots)}
    shell_escaped = False
    for item in week.cells:
        if isinstance(item, str):
            notebook.cells.append(nbformat.v4.new_markdown_cell(item))
        elif item.kind == "fixed":
            metadata = {**item.metadata, "grader": {"kind": "fixed"}}
            notebook.cells.append(nbformat.v4.new_code_cell(item.source, metadata=metadata))
        elif item.kind == "check":
            notebook.cells.append(_check_cell(item.check))
        elif item.kind == "answer":
            j = position[id(item)]
            cells, escaped = _student_cells(item, [*extras.get(j, []), matched.get(j)], student, matched.get(j))
            notebook.cells += cells
            shell_escaped |= escaped
            if j not in matched:
                wanted = ", ".join(sorted(item.names)) or "the code of this part"
                notes.append(
                    f"No cell of yours matched answer cell {item.number} (the one defining {wanted}); "
                    "if that code is elsewhere in your notebook it was used from there."
                )
    if shell_escaped:
        notes.append("Shell commands and installs in your cells (!..., %pip, %%bash) were not run.")
    return notebook, notes


def _extras_before_answers(student: list[str], slots: list[Slot], matched: dict) -> tuple[dict, int]:
    """Student cells that match nothing (helpers, scratch work) run just before their next answer cell:
    answer slot -> those cells; and how many come after the last answer (they are not run)."""
    answer_of = {i: j for j, i in matched.items() if slots[j].kind == "answer"}
    extras, pending = {}, []
    for i in range(len(student)):
        if i in answer_of:
            extras[answer_of[i]], pending = pending, []
        elif i not in matched.values():
            pending.append(i)
    return extras, len(pending)


def _student_cells(slot: Slot, indices: list, student: list[str], answer: int | None) -> tuple[list, bool]:
    """The student's cells for one answer slot (its extras, then its match), shell escapes commented out; and
    whether any had one."""
    cells, escaped = [], False
    for i in (i for i in indices if i is not None):
        source, changed = neutralise_shell(student[i])
        escaped |= changed
        kind = "answer" if i == answer else "extra"
        cells.append(nbformat.v4.new_code_cell(source, metadata={"grader": {"kind": kind, "answer": slot.number}}))
    return cells, escaped


def _check_cell(check: Check) -> nbformat.NotebookNode:
    """A check's cell, with what the judge needs to run it in its metadata."""
    info = {
        "kind": "check",
        "id": check.id,
        "hidden": check.hidden,
        "fetch": list(check.fetch),
        "in_kernel": check.in_kernel,
    }
    return nbformat.v4.new_code_cell(check.source, metadata={"grader": info})


def check_outcomes(week: Week, executed: nbformat.NotebookNode | None) -> dict:
    """Check id -> (passed, message), as the judge recorded them in the executed notebook."""
    found = {}
    for cell in executed.cells if executed is not None else []:
        info = cell.get("metadata", {}).get("grader", {})
        verdict = info.get("verdict")
        if info.get("kind") == "check" and isinstance(verdict, dict):
            found[info.get("id")] = (verdict.get("passed") is True, _plain(verdict.get("message", "")))
    return {c.id: found.get(c.id, (False, "not run: the notebook stopped before this check")) for c in week.checks}


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
