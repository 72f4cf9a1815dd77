"""Grade students' exercise notebooks against the solution's checks; write a gradebook and feedback.

Usage (from the repository root)::

    python -m course_utils.grading week1_exercise submissions/ --out grades/week1 [--workers 2] [--timeout 120]

For every file in ``submissions/`` the grader builds a *graded notebook*: the
solution's cells in order, where each answer cell (a cell of ``solutions/`` that
holds ``### BEGIN SOLUTION``) is replaced by the student's cell that matches it
and each check cell (marked ``# CHECK <question> points=<n>``) is the solution's,
hidden tests included. A worker process, the judge (:mod:`course_utils.judge`,
one per ``--workers``, grading submissions in turn), runs the student's cells in
a kernel of their own, in an empty temporary folder, with a time limit per cell
and per notebook and a memory cap, and runs every check itself, in its own
process, calling the student's functions in that kernel and fetching their
values as data. A check
scores its points when the judge ran it to the end: the expected answers never
enter the student's process, and nothing printed or patched there decides a
verdict. Results are stored per submission in ``OUT/results/``, so a second run
only grades new or changed files; ``OUT/gradebook.csv`` and
``OUT/feedback/<student>.md`` are rewritten from them each time.

On Linux every submission runs confined by bubblewrap (:mod:`course_utils.sandbox`):
no network, its own processes only, a read-only system in which the repository
(solutions and hidden tests included), the submissions, the output folder and
your home folder are hidden, and one writable scratch folder. Where that is
impossible the grader refuses to start unless given ``--no-isolation``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import csv
import dataclasses
import datetime
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils import build, judge, sandbox

PACKAGE_DIR = Path(__file__).resolve().parent
CHECK_LINE = re.compile(r"^\s*#\s*CHECK\b.*$", re.MULTILINE)
CHECK_MARKER = re.compile(r"^\s*#\s*CHECK\s+(?P<question>[A-Za-z0-9_.-]+)\s+points\s*=\s*(?P<points>\d+(\.\d+)?)\s*$")
PLACEHOLDER_START = 'raise NotImplementedError("Blank '
SHELL_ESCAPE = re.compile(
    r"^(\s*)(!|%pip\b|%conda\b|%mamba\b|%system\b|%sx\b|%%bash\b|%%sh\b|%%script\b|%%system\b)", re.MULTILINE
)
OUTPUT_LIMIT = 20_000  # characters of each output kept in the stored copy of a graded notebook
MAX_SUBMISSION_BYTES = 20 << 20
"""The largest submission file read (a notebook with its figures is rarely above 5 MB)."""
MAX_CELL_CHARS = 250_000
"""The longest code cell parsed: parsing takes about 600 bytes of memory a character (a 20 MB cell took 12 GiB)."""
MAX_CODE_CHARS = 1_000_000
"""The most code, all cells together, parsed for one submission (a few seconds and a few hundred MB at most)."""


class Refused(Exception):
    """A submission that is not graded, and why (a link, a folder, a file or a cell above the limits)."""


class GradingError(Exception):
    """A problem with the command's arguments or with the solution's markers: stops the run."""


# --- the week: questions, checks and answer cells from solutions/<week>.py -------------------


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
    def checks(self) -> list[Check]:
        return [c.check for c in self.cells if isinstance(c, Slot) and c.kind == "check"]

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


def defined_names(source: str) -> set:
    """Top-level names a cell binds (functions, classes, assignments, imports); regex fallback if it does not parse."""
    try:
        tree = ast.parse(judge.without_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a student's cell may be anything
        return {a or b for a, b in re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.MULTILINE)}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def _lines(source: str) -> set:
    return {line.strip() for line in source.splitlines() if line.strip() and PLACEHOLDER_START not in line}


def load_week(root: Path, week: str, solutions: Path | None = None) -> Week:
    """Parse ``solutions/<week>.py`` (or the one in ``solutions``): its answer, check and other cells."""
    path = find_solution(root, week, solutions)
    name = path.stem
    notebook = build.read_source(path)
    cells, questions = [], {}
    number = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            cells.append(cell.source)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        source = cell.source
        template, _ = build.strip_solutions(source, name)
        markers = CHECK_LINE.findall(source)
        has_solution = build.BEGIN_SOLUTION in source
        slot = Slot("fixed", source, _lines(template), defined_names(source), metadata=dict(cell.metadata))
        if markers:
            if has_solution:
                raise GradingError(
                    f"{path.name}, code cell {index}: a cell cannot hold both a solution and a CHECK marker."
                )
            if len(markers) > 1:
                raise GradingError(f"{path.name}, code cell {index}: one CHECK marker per cell, found {len(markers)}.")
            match = CHECK_MARKER.match(markers[0])
            if not match:
                raise GradingError(
                    f"{path.name}, code cell {index}: malformed marker {markers[0].strip()!r}; "
                    "write '# CHECK <question> points=<number>'."
                )
            question, points = match["question"], float(match["points"])
            hidden = build.BEGIN_HIDDEN in source
            code = "\n".join(
                line for line in source.splitlines() if line.strip() not in (build.BEGIN_HIDDEN, build.END_HIDDEN)
            )
            count = sum(1 for c in cells if isinstance(c, Slot) and c.kind == "check" and c.check.question == question)
            slot.kind = "check"
            slot.check = Check(f"{question}.{count + 1}", question, points, hidden, code)
            questions[question] = questions.get(question, 0) + points
        elif build.BEGIN_HIDDEN in source:
            raise GradingError(
                f"{path.name}, code cell {index}: hidden tests without a '# CHECK <question> points=<n>' "
                "marker would score nothing; add one inside the hidden block."
            )
        elif has_solution:
            number += 1
            slot.kind, slot.number = "answer", number
        cells.append(slot)
    if not questions:
        raise GradingError(
            f"{path.name} has no '# CHECK <question> points=<n>' markers: nothing to grade "
            "(see the 'For instructors' page)."
        )
    _check_hidden_tests_leave_nothing_behind(path, cells)
    plan_checks(path, [c for c in cells if isinstance(c, Slot)])
    install = build.colab_notebook(nbformat.v4.new_notebook(), root, "x.ipynb").cells[1].source
    cells.insert(0, Slot("drop", install, _lines(install), set()))  # the Colab install cell: never run
    return Week(name, path, hashlib.sha256(path.read_bytes()).hexdigest(), cells, questions)


def plan_checks(path: Path, slots: list) -> None:
    """Decide, from the solution alone, which names each check takes from the student's notebook.

    The judge computes itself what the solution's other cells compute from its set-up
    (the data a cell of its own loads, as :meth:`course_utils.judge.Judge.setup` does), and
    keeps what earlier checks bound (a helper such as ``tape_gradients``, inputs such as
    ``some``) until a cell other than a check uses it (``lenet``, built by a check and then
    trained by the student): only then is it the student's. So a check fetches only the
    student's answers and what was handed to them; no cell a student writes changes that.
    A check that would read anything else from the student (data loaded in an answer cell,
    which the student may change) is refused here: load it in a cell of its own.
    """
    computed, judge_owned, answers = {"PROFILE"}, set(), set()
    for k, slot in enumerate(slots):
        if slot.kind == "fixed":
            if judge.free_names(slot.source) <= computed:
                computed |= judge.bound_names(slot.source)
            judge_owned -= judge.free_names(slot.source) | judge.bound_names(slot.source)
        elif slot.kind == "answer":
            template, _ = build.strip_solutions(slot.source, path.stem)
            answers |= defined_names(slot.source) - defined_names(template) | _defined_functions(slot.source)
            judge_owned -= judge.free_names(slot.source) | judge.bound_names(slot.source)
        elif slot.kind == "check":
            source = slot.check.source
            fetch = judge.free_names(source) - judge_owned - computed
            strays = sorted(fetch - answers)
            if strays:
                raise GradingError(
                    f"{path.name}: check {slot.check.id} reads {', '.join(strays)} from the student's "
                    "notebook, which is not an answer: the student could change it. Compute it in a "
                    "cell of its own (the grader computes that cell itself) or in the check."
                )
            slot.check.fetch = tuple(sorted(fetch))
            judge_owned |= judge.bound_names(source)
            later = set().union(*(judge.free_names(c.source) for c in slots[k + 1 :] if c.kind in ("answer", "fixed")))
            slot.check.in_kernel = not slot.check.hidden and bool(judge.bound_names(source) & later)
            if slot.check.in_kernel:  # what it binds there is handed to the student (a model to train)
                answers |= judge.bound_names(source) & later


def _defined_functions(source: str) -> set:
    """The functions and classes a cell defines at its top level (an answer cell's ``def`` line is not a blank)."""
    try:
        tree = ast.parse(judge.without_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _check_hidden_tests_leave_nothing_behind(path: Path, cells: list) -> None:
    """Hidden tests run only in the judge, so no later cell may use a name that one of them binds."""
    code = [c for c in cells if isinstance(c, Slot)]
    elsewhere = set().union(*(judge.bound_names(c.source) for c in code if not (c.kind == "check" and c.check.hidden)))
    for k, slot in enumerate(code):
        if slot.kind == "check" and slot.check.hidden:
            later = set().union(*(judge.free_names(c.source) for c in code[k + 1 :]))
            left = sorted(judge.bound_names(slot.check.source) & later - elsewhere)
            if left:
                raise GradingError(
                    f"{path.name}: hidden test {slot.check.id} binds {', '.join(left)}, which later "
                    "cells use; hidden tests run only in the grader's process, so bind them elsewhere."
                )


# --- one submission -> the graded notebook ------------------------------------------------------


def similarity(source: str, names: set, slot: Slot) -> float:
    """How much a student's cell looks like a solution cell: shared template lines or defined names (0..1)."""
    lines = _lines(source)
    by_lines = len(slot.template_lines & lines) / len(slot.template_lines) if slot.template_lines else 0.0
    by_names = len(slot.names & names) / len(slot.names) if slot.names else 0.0
    return max(by_lines, by_names)


def match_cells(student: list[str], slots: list[Slot]) -> dict[int, int]:
    """Pair student cells with solution cells (slot index -> student index), best matches first.

    Works whatever the order of the student's cells; a pair needs a similarity of at least 0.5.
    """
    names = [defined_names(s) for s in student]
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
    slots = [c for c in week.cells if isinstance(c, Slot)]
    matched = match_cells(student, slots)
    answer_of = {i: j for j, i in matched.items() if slots[j].kind == "answer"}
    # Student cells that match nothing (helpers, scratch work) run just before their next answer cell.
    extras, pending = {}, []
    for i in range(len(student)):
        if i in answer_of:
            extras[answer_of[i]], pending = pending, []
        elif i not in matched.values():
            pending.append(i)
    notes = []
    if pending:
        notes.append(f"{len(pending)} cell(s) of yours after your last answer cell were not run.")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    shell_notes = False
    for item in week.cells:
        if isinstance(item, str):
            notebook.cells.append(nbformat.v4.new_markdown_cell(item))
            continue
        j = slots.index(item)
        if item.kind == "fixed":
            metadata = {**item.metadata, "grader": {"kind": "fixed"}}
            notebook.cells.append(nbformat.v4.new_code_cell(item.source, metadata=metadata))
        elif item.kind == "answer":
            for i in extras.get(j, []) + ([matched[j]] if j in matched else []):
                source, changed = neutralise_shell(student[i])
                shell_notes |= changed
                kind = "answer" if i == matched.get(j) else "extra"
                notebook.cells.append(
                    nbformat.v4.new_code_cell(source, metadata={"grader": {"kind": kind, "answer": item.number}})
                )
            if j not in matched:
                wanted = ", ".join(sorted(item.names)) or "the code of this part"
                notes.append(
                    f"No cell of yours matched answer cell {item.number} (the one defining {wanted}); "
                    "if that code is elsewhere in your notebook it was used from there."
                )
        elif item.kind == "check":
            info = {
                "kind": "check",
                "id": item.check.id,
                "hidden": item.check.hidden,
                "fetch": list(item.check.fetch),
                "in_kernel": item.check.in_kernel,
            }
            notebook.cells.append(nbformat.v4.new_code_cell(item.check.source, metadata={"grader": info}))
    if shell_notes:
        notes.append("Shell commands and installs in your cells (!..., %pip, %%bash) were not run.")
    return notebook, notes


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


def _truncate_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Shorten huge outputs in the stored copy (a student may print megabytes)."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if isinstance(output.get("text"), str) and len(output["text"]) > OUTPUT_LIMIT:
                output["text"] = (
                    output["text"][:OUTPUT_LIMIT]
                    + f"\n... [{len(output['text']) - OUTPUT_LIMIT} characters cut by the grader]\n"
                )
    return notebook


# --- execution in a separate process ------------------------------------------------------------


WORKER = "import sys; from course_utils.judge import main; sys.exit(main(sys.argv[1:]))"
JOBS_PER_JUDGE = 50
"""Submissions one judge process grades before a fresh one takes over (what a long run leaks stays bounded)."""
_running: dict[int, str] = {}  # judge process id -> the marker of the submission it is grading
_running_lock = threading.Lock()


def _kill_marked(marker: str) -> None:
    """Kill every process started for one submission (found by the environment marker its judge gave it)."""
    import psutil

    name, _, value = marker.partition("=")
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(name) == value:
                process.kill()


@dataclass
class Settings:
    """How submissions run. ``isolate``: confine each one with :mod:`course_utils.sandbox` (Linux); ``hide``:
    host folders it must not see, besides the home folder and ``/tmp`` (the grader adds the repository, the
    solutions, the submissions and the output folder)."""

    profile: str = "cpu"
    cell_timeout: float = 120.0
    notebook_timeout: float = 600.0
    memory_gb: float = 8.0
    isolate: bool = True
    hide: tuple = ()


class JudgeProcess:
    """One judge worker (:func:`course_utils.judge.main`), kept for many submissions in turn.

    Starting a judge costs about 5 s of a core (Python, TensorFlow, Keras); a run of
    many submissions pays it once per worker thread. A submission that runs past its
    time limit takes its judge down with it; the next one gets a fresh judge.
    """

    def __init__(self, memory_bytes: int, threads: int = 0):
        self.memory_bytes, self.jobs, self.retired = memory_bytes, 0, False
        self.folder = Path(tempfile.mkdtemp(prefix="grading-judge-"))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", judge.GRADER_PID: str(os.getpid())}
        if threads:  # the judge and the kernels it starts share the cores with the other workers' (judge.THREADS)
            env.update({name: str(threads) for name in judge.THREADS})
        with open(self.folder / "judge.log", "wb") as log:  # its own start-up; each job writes to the job's log
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(memory_bytes)],
                cwd=self.folder,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )

    def usable(self, memory_bytes: int) -> bool:
        return (
            self.process.poll() is None
            and not self.retired
            and self.memory_bytes == memory_bytes
            and self.jobs < JOBS_PER_JUDGE
        )

    def run(self, job: dict, timeout: float) -> int | None:
        """The job's exit code (``judge.run``'s); None if it ran past ``timeout``; raises ChildProcessError if
        the judge ended (killed by the student's code when unconfined, or out of memory)."""
        self.jobs += 1
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ChildProcessError(f"the judge process ended with code {self.process.wait()}") from None
        waiting = select.poll()  # not select.select, which fails on descriptors above 1023
        waiting.register(self.process.stdout, select.POLLIN)
        if not waiting.poll(1000 * timeout):
            return None
        line = self.process.stdout.readline()
        if not line:
            raise ChildProcessError(f"the judge process ended with code {self.process.wait()}")
        reply = json.loads(line)
        self.retired = bool(reply.get("retire"))  # it grew past half its memory limit and has ended
        return int(reply["code"])

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for handle in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Judges:
    """The judge processes of one grading run: one per thread that grades, each kept across its submissions."""

    def __init__(self, threads: int = 0):
        """``threads``: computation threads of each judge and its kernels (0: TensorFlow's default, every core)."""
        self._local, self._all, self._lock = threading.local(), [], threading.Lock()
        self.threads = threads

    def take(self, memory_bytes: int) -> JudgeProcess:
        """This thread's judge, or a fresh one if it has none that can take another submission."""
        current = getattr(self._local, "judge", None)
        if current is None or not current.usable(memory_bytes):
            if current is not None:
                self.drop(current)
            current = self._local.judge = JudgeProcess(memory_bytes, self.threads)
            with self._lock:
                self._all.append(current)
        return current

    def drop(self, judge_process: JudgeProcess) -> None:
        judge_process.close()
        with self._lock:
            if judge_process in self._all:
                self._all.remove(judge_process)
        if getattr(self._local, "judge", None) is judge_process:
            self._local.judge = None

    def close(self) -> None:
        with self._lock:
            every = list(self._all)
        for judge_process in every:
            self.drop(judge_process)


def run_notebook(
    notebook: nbformat.NotebookNode, settings: Settings, judges: Judges | None = None
) -> tuple[str, str, nbformat.NotebookNode | None]:
    """Execute a graded notebook with a judge of ``judges`` (a one-off judge if None) in a fresh empty folder;
    return (status, detail, executed)."""
    if settings.isolate and (reason := sandbox.unavailable()):
        raise GradingError(f"cannot confine the notebook: {reason}")
    own = judges is None
    judges = judges or Judges()
    folder = Path(tempfile.mkdtemp(prefix="grading-"))
    try:
        (folder / "nb").mkdir()
        for part in ("home", "work"):  # the kernel's scratch folder: its home, and its (empty) working folder
            (folder / "scratch" / part).mkdir(parents=True)
        nbformat.write(notebook, folder / "nb" / "graded.ipynb")
        target, log = folder / "nb" / "executed.ipynb", folder / "nb" / "worker.log"
        marker = secrets.token_hex(8)
        # The judge runs here, unconfined: it holds the checks. It confines the student's kernel itself.
        job = {
            "argv": [
                str(folder / "nb" / "graded.ipynb"),
                str(target),
                str(folder / "scratch"),
                str(settings.cell_timeout),
                settings.profile,
                "1" if settings.isolate else "0",
                json.dumps([str(p) for p in settings.hide]),
            ],
            "marker": marker,
            "log": str(log),
            "cwd": str(folder / "nb"),
        }
        judge_process = judges.take(int(settings.memory_gb * 2**30))
        with _running_lock:
            _running[judge_process.process.pid] = marker
        try:
            code = judge_process.run(job, settings.notebook_timeout)
            if code is None:
                status = "timeout"
                detail = f"stopped after {settings.notebook_timeout:g} s (the limit for a whole notebook)"
                judges.drop(judge_process)
            else:
                status, detail = (
                    ("graded", "") if code == 0 else ("crashed", f"the judge ended the run with code {code}")
                )
        except ChildProcessError as error:
            status, detail = "crashed", str(error)
            judges.drop(judge_process)
        finally:
            _kill_marked(f"{judge.MARKER}={marker}")  # whatever the submission left running
            with _running_lock:
                _running.pop(judge_process.process.pid, None)
        if status == "crashed":
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            if any("DeadKernelError" in line or "Kernel died" in line for line in tail):
                detail = "the kernel died (out of memory, or the code ended the process)"
            detail += (": " + " | ".join(tail))[:500] if tail else ""
        try:
            executed = nbformat.read(target, as_version=4)
        except Exception:  # noqa: BLE001 - missing, or half-written when the run was killed
            executed = None
    finally:
        if own:
            judges.close()
        # The student's code could write to scratch/: removed without following its links or trusting its modes.
        if problem := sandbox.remove_tree(folder):
            print(f"warning: the grader could not clean up after a submission: {problem}", file=sys.stderr)
    return status, detail, executed


def grade_file(
    week: Week, path: Path, settings: Settings, judges: Judges | None = None
) -> tuple[dict, nbformat.NotebookNode | None]:
    """Grade one submission file; never raises for a bad submission (its status says what happened)."""
    start = time.perf_counter()
    try:
        data, refused = read_submission(path), None
    except Refused as error:
        data, refused = b"", str(error)
    result = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "week": week.name,
        "solution_sha256": week.sha256,
        "profile": settings.profile,
        "status": "",
        "detail": "",
        "notes": [],
        "checks": [],
        "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    outcomes, executed, submission = {}, None, None
    try:
        if refused is None:
            submission = nbformat.reads(data.decode("utf-8"), as_version=4)
            if not isinstance(submission.get("cells"), list):
                raise TypeError("it has no list of cells")
            check_code_size(submission)
    except Refused as error:
        refused, submission = str(error), None
    except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, it is that submission's status
        result["status"] = "invalid"
        result["detail"] = f"not a readable .ipynb notebook ({type(error).__name__}: {str(error)[:200]})"
        submission = None
    if refused is not None:
        result["status"], result["detail"] = "refused", refused
    if submission is not None:
        notebook, result["notes"] = graded_notebook(week, submission)
        result["status"], result["detail"], executed = run_notebook(notebook, settings, judges)
        outcomes = check_outcomes(week, executed)
        stopped = [
            c.metadata.get("grader", {})
            for c in (executed.cells if executed is not None else [])
            if any(o.get("ename") == "KeyboardInterrupt" for o in c.get("outputs", []))
        ]
        if stopped and result["status"] == "graded":
            result["status"] = "cell-timeout"
        for info in stopped:
            if info.get("kind") in ("answer", "extra"):
                result["notes"].append(
                    f"A cell of yours (with answer {info['answer']}) ran longer than the limit of "
                    f"{settings.cell_timeout:g} s for one cell and was stopped."
                )
    for check in week.checks:
        passed, message = outcomes.get(check.id, (False, result["detail"]))
        result["checks"].append(
            {
                "id": check.id,
                "question": check.question,
                "points": check.points,
                "hidden": check.hidden,
                "passed": passed,
                "message": message,
            }
        )
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result, (_truncate_outputs(executed) if executed is not None else None)


def model_submission(root: Path, week: str) -> nbformat.NotebookNode:
    """The handout (the exercise's Colab notebook) filled in with the solution: what a perfect student hands in.

    Grading it must give full marks; the tests and the benchmark start from it.
    """
    path = find_solution(root, week)
    handout = nbformat.reads(build.generated_files(root)[Path("exercises") / f"{path.stem}.ipynb"], as_version=4)
    solved = iter(
        "\n".join(
            line for line in c.source.splitlines() if line.strip() not in (build.BEGIN_SOLUTION, build.END_SOLUTION)
        )
        for c in build.read_source(path).cells
        if c.cell_type == "code" and build.BEGIN_SOLUTION in c.source
    )
    for cell in handout.cells:
        if cell.cell_type == "code" and PLACEHOLDER_START in cell.source:
            cell.source = next(solved)
    return handout


# --- the run: stored results, gradebook, feedback -------------------------------------------------


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


def result_key(file_name: str) -> str:
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
    results = []
    for path in sorted((out / "results").glob("*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a result half-written by an interrupted run: that file is graded again
    return sorted([r for r in results if r.get("week") == week.name], key=lambda r: r["file"])


def question_points(result: dict) -> dict[str, float]:
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


def grade(
    week_name: str,
    submissions: Path,
    out: Path,
    *,
    root: Path | None = None,
    solutions: Path | None = None,
    workers: int = 1,
    force: bool = False,
    settings: Settings | None = None,
    progress: bool = True,
) -> Path:
    """Grade every new or changed submission of a folder, then rewrite the gradebook; return its path.

    ``solutions``: a folder with the week's solution file to grade from instead of the repository's
    ``solutions/`` (a private copy, whose hidden tests students have not seen)."""
    from tqdm import tqdm

    settings = settings or Settings()
    week = load_week(Path(root or Path.cwd()), week_name, solutions)
    if settings.isolate and (reason := sandbox.unavailable()):
        raise GradingError(
            f"cannot confine the submissions: {reason}. The grader runs students' code; to run it "
            "unconfined, with your permissions, pass --no-isolation (only inside a throwaway "
            "virtual machine or container, or for code you trust)."
        )
    files = submission_files(submissions)
    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    private = (Path(root or Path.cwd()), week.path.parent, PACKAGE_DIR.parent, submissions, out)
    settings = dataclasses.replace(settings, hide=tuple(settings.hide) + tuple(Path(p).resolve() for p in private))
    others = {r.get("week") for r in map(_read_json, results_dir.glob("*.json"))} - {week.name, None}
    if others:
        raise GradingError(
            f"{out} already holds grades of {', '.join(sorted(others))}; use one output folder per week."
        )
    # A student keeps the name given at their first grading, whatever files come later.
    known = {r["file"]: r["student"] for r in load_results(out, week) if r.get("student")}
    known.update(student_names([p.name for p in files if p.name not in known], set(known.values())))
    todo = []
    for path in files:
        stored = _read_json(results_dir / f"{result_key(path.name)}.json")
        try:
            digest = hashlib.sha256(read_submission(path)).hexdigest()
        except Refused:
            digest = None  # listed again as refused: nothing is run for it
        same = (
            stored.get("sha256") == digest
            and stored.get("solution_sha256") == week.sha256
            and stored.get("profile") == settings.profile
        )
        if force or not same:
            todo.append(path)
    bar = tqdm(
        total=len(files),
        initial=len(files) - len(todo),
        desc=f"grading {week.name}",
        unit="notebook",
        disable=not progress,
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))  # each thread drives one judge process
    # Each worker gets its share of the cores: threads of several workers fighting over every core are slower.
    judges = Judges(threads=max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0)
    try:
        futures = {pool.submit(grade_file, week, path, settings, judges): path for path in todo}
        for future in concurrent.futures.as_completed(futures):
            try:
                result, executed = future.result()
            except GradingError:
                raise
            except Exception as error:  # noqa: BLE001 - the grader's failure on one file must not stop the others
                result, executed = failed_result(week, futures[future], settings, error), None
            result["student"] = known[result["file"]]
            key = result_key(result["file"])  # stored as soon as graded: an interrupted run resumes from here
            if executed is not None:
                nbformat.write(executed, results_dir / f"{key}.ipynb")
            _write_json(results_dir / f"{key}.json", result)
            bar.update(1)
        pool.shutdown()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with _running_lock:
            running = list(_running.items())
        judges.close()  # interrupted: stop the judges, then the notebooks they were running
        for _, marker in running:
            _kill_marked(f"{judge.MARKER}={marker}")
        raise
    finally:
        judges.close()
        bar.close()
        write_reports(out, week)
    return out / "gradebook.csv"


def failed_result(week: Week, path: Path, settings: Settings, error: BaseException) -> dict:
    """The result of a submission the grader itself failed on: listed with status ``error``, no point, graded again
    on the next run (its solution hash is left out)."""
    return {
        "file": path.name,
        "sha256": "",
        "week": week.name,
        "solution_sha256": "",
        "profile": settings.profile,
        "status": "error",
        "detail": f"the grader failed on this file ({type(error).__name__}: {str(error)[:200]})",
        "notes": [],
        "checks": [
            {
                "id": c.id,
                "question": c.question,
                "points": c.points,
                "hidden": c.hidden,
                "passed": False,
                "message": "not run",
            }
            for c in week.checks
        ],
        "graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": 0,
    }


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")  # ASCII escapes: any file name survives
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading", description=__doc__.split("\n\n")[0])
    parser.add_argument("week", help="the exercise: a file stem of solutions/ (week1_exercise) or a week number (1)")
    parser.add_argument("submissions", type=Path, help="folder of the students' .ipynb files (one per student)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: gradebook.csv, feedback/, results/")
    parser.add_argument("--workers", type=int, default=1, help="submissions graded in parallel (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds one cell may run before it is interrupted (default 120)"
    )
    parser.add_argument(
        "--notebook-timeout",
        type=float,
        default=None,
        help="seconds a whole submission may run before it is stopped (default 5 x --timeout)",
    )
    parser.add_argument(
        "--memory", type=float, default=8, help="address-space cap per submission in GiB, 0 for none (default 8)"
    )
    parser.add_argument(
        "--profile", default="cpu", choices=("smoke", "cpu", "gpu"), help="PROFILE injected into every notebook"
    )
    parser.add_argument("--force", action="store_true", help="grade again the submissions already graded")
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="repository root holding solutions/ (default: current folder)"
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=None,
        help="folder holding the solution files to grade from (a private copy; default: ROOT/solutions)",
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="run submissions unconfined, with your permissions (where bubblewrap cannot run; "
        "only in a throwaway machine or container)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        args.profile,
        args.timeout,
        args.notebook_timeout or 5 * args.timeout,
        args.memory,
        isolate=not args.no_isolation,
    )
    try:
        gradebook = grade(
            args.week,
            args.submissions,
            args.out,
            root=args.root.resolve(),
            solutions=args.solutions,
            workers=args.workers,
            force=args.force,
            settings=settings,
        )
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Gradebook written to {gradebook}; feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
