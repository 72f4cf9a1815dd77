"""What a grading run leaves: one stored result per submission, the gradebook and each student's feedback.

Every name and message here may come from a student (a file name, an error their code raised):
it is written as plain text that no terminal, editor or spreadsheet acts on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path

from course_utils.grading.exercise import Week


def result_key(file_name: str) -> str:
    """The stored result's name for a submission file: a hash, so that no file name reaches the file system."""
    return hashlib.sha256(file_name.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def student_names(file_names: list[str], taken: set = frozenset()) -> dict[str, str]:
    """File name -> a unique student name that is safe as a file name (unicode letters kept), none of ``taken``."""
    names, taken = {}, {name.lower() for name in taken}
    for file_name in sorted(file_names):
        stem = file_name[:-6] if file_name.lower().endswith(".ipynb") else file_name
        base = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", stem)).strip("._-")[:80] or "student"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names[file_name] = name
    return names


def printable(file_name: str) -> str:
    """A file name as one line of plain text: bytes that were not UTF-8 (a zip made on another system) shown as
    \\xNN, and control characters (escape sequences, newlines) escaped, so that no terminal or editor acts on them."""
    text = file_name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def csv_cell(text: str) -> str:
    """Text that a spreadsheet shows as text: a cell that starts like a formula gets a leading apostrophe."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def _points(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def load_results(out: Path, week: Week) -> list[dict]:
    """Every stored result of ``week`` in ``out``, by file name."""
    results = []
    for path in sorted((out / "results").glob("*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a result half-written by an interrupted run: that file is graded again
    return sorted([r for r in results if r.get("week") == week.name], key=lambda r: r["file"])


def question_points(result: dict) -> dict[str, float]:
    """The points a result scored, per question."""
    points = {}
    for check in result["checks"]:
        points[check["question"]] = points.get(check["question"], 0) + (check["points"] if check["passed"] else 0)
    return points


def write_reports(out: Path, week: Week) -> Path:
    """Rewrite ``gradebook.csv`` and ``feedback/*.md`` from every stored result of the week."""
    results = load_results(out, week)
    names = {r["file"]: r["student"] for r in results if r.get("student")}
    names.update(student_names([r["file"] for r in results if r["file"] not in names], set(names.values())))
    feedback = out / "feedback"
    feedback.mkdir(parents=True, exist_ok=True)
    gradebook = out / "gradebook.csv"
    with open(gradebook.with_suffix(".tmp"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "file", "week", *week.questions, "total", "max", "status"])
        for result in results:
            points = question_points(result)
            writer.writerow(
                [
                    csv_cell(names[result["file"]]),
                    csv_cell(printable(result["file"])),
                    week.name,
                    *(_points(points.get(q, 0)) for q in week.questions),
                    _points(sum(points.values())),
                    _points(week.max_points),
                    result["status"],
                ]
            )
            (feedback / f"{names[result['file']]}.md").write_text(
                feedback_text(week, result, names[result["file"]]), encoding="utf-8"
            )
    os.replace(gradebook.with_suffix(".tmp"), gradebook)
    return gradebook


STATUS_TEXT = {
    "graded": "your notebook ran to the end",
    "cell-timeout": "a cell ran longer than the time limit and was stopped; the rest of the notebook still ran",
    "timeout": "your notebook took longer than the time limit and was stopped; checks not reached score 0",
    "crashed": "the run of your notebook broke off; checks not reached score 0",
    "invalid": "the file could not be read as a Jupyter notebook, so nothing was run",
    "refused": "the grader did not run this file",
    "error": (
        "the grader failed on this file (not your fault, as far as it can tell): your instructor will grade it again"
    ),
}


def feedback_text(week: Week, result: dict, student: str) -> str:
    """A student's feedback: points per question, each check passed or failed with its message."""
    points = question_points(result)
    lines = [
        f"# Feedback on {week.name}: {student}",
        "",
        f"File `{printable(result['file'])}`: **{_points(sum(points.values()))} / {_points(week.max_points)} points**.",
        "",
        f"Status: {result['status']}, {STATUS_TEXT.get(result['status'], '')}"
        + (f" ({result['detail']})." if result.get("detail") else "."),
        "",
    ]
    for question, maximum in week.questions.items():
        lines += [f"## {question}: {_points(points.get(question, 0))} / {_points(maximum)}", ""]
        for check in (c for c in result["checks"] if c["question"] == question):
            kind = "hidden test" if check["hidden"] else "check"
            worth = f"{_points(check['points'])} point{'s' if check['points'] != 1 else ''}"
            if check["passed"]:
                lines.append(f"- passed: {kind} {check['id']} ({worth})")
            else:
                lines.append(f"- FAILED: {kind} {check['id']} ({worth}): {check['message'] or 'not run'}")
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)


def read_json(path: Path) -> dict:
    """A stored result, or {} if it is missing or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: dict) -> None:
    """Store a result atomically (an interrupted run leaves the old file or the new one, never half of one)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")  # ASCII escapes: any file name survives
    os.replace(temporary, path)
