"""The worker processes that run submissions: one judge (:mod:`course_utils.grading.judge`) per grading thread.

A worker is kept across submissions (starting one costs about 5 s of a core: Python,
TensorFlow, Keras) and replaced after :data:`JOBS_PER_WORKER` of them, or as soon as a
submission takes it down.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil

from course_utils.grading import judge, sandbox
from course_utils.grading.exercise import GradingError
from course_utils.grading.limits import MESSAGE_CHARS, shorten

WORKER = "import sys; from course_utils.grading.judge import main; sys.exit(main(sys.argv[1:]))"
JOBS_PER_WORKER = 50
"""Submissions one worker grades before a fresh one takes over (what a long run leaks stays bounded)."""
_running: dict[int, str] = {}  # worker process id -> the marker of the submission it is grading
_running_lock = threading.Lock()


def _kill_marked(marker: str) -> None:
    """Kill every process started for one submission (found by the environment marker its judge gave it)."""
    name, _, value = marker.partition("=")
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(name) == value:
                process.kill()


@dataclass
class Settings:
    """How submissions run. ``isolate``: confine each one with :mod:`course_utils.grading.sandbox` (Linux); ``hide``:
    host folders it must not see, besides the home folder and ``/tmp`` (the grader adds the repository, the
    solutions, the submissions and the output folder); ``package``: the copy of ``course_utils`` its kernel imports
    instead of the package, without the references of the week's blanks (:mod:`course_utils.grading.withheld`;
    the grader makes it), or None for the package itself."""

    profile: str = "cpu"
    cell_timeout: float = 120.0
    notebook_timeout: float = 600.0
    memory_gb: float = 8.0
    isolate: bool = True
    hide: tuple = ()
    package: Path | None = None


class Worker:
    """One worker process, running :func:`course_utils.grading.judge.main`, kept for many submissions in turn.

    A submission that runs past its time limit takes its worker down with it; the next
    one gets a fresh worker.
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
            and self.jobs < JOBS_PER_WORKER
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


class WorkerPool:
    """The worker processes of one grading run: one per thread that grades, each kept across its submissions."""

    def __init__(self, threads: int = 0):
        """``threads``: computation threads of each worker and its kernels (0: TensorFlow's default, every core)."""
        self._local, self._all, self._lock = threading.local(), [], threading.Lock()
        self.threads = threads

    def take(self, memory_bytes: int) -> Worker:
        """This thread's worker, or a fresh one if it has none that can take another submission."""
        current = getattr(self._local, "worker", None)
        if current is None or not current.usable(memory_bytes):
            if current is not None:
                self.drop(current)
            current = self._local.worker = Worker(memory_bytes, self.threads)
            with self._lock:
                self._all.append(current)
        return current

    def drop(self, worker: Worker) -> None:
        worker.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        if getattr(self._local, "worker", None) is worker:
            self._local.worker = None

    def close(self) -> None:
        with self._lock:
            every = list(self._all)
        for worker in every:
            self.drop(worker)


def run_notebook(
    notebook: nbformat.NotebookNode, settings: Settings, pool: WorkerPool | None = None
) -> tuple[str, str, nbformat.NotebookNode | None]:
    """Execute a graded notebook with a worker of ``pool`` (a one-off worker if None) in a fresh empty folder;
    return (status, detail, executed)."""
    if settings.isolate and (reason := sandbox.unavailable()):
        raise GradingError(f"cannot confine the notebook: {reason}")
    own = pool is None
    pool = pool or WorkerPool()
    folder = Path(tempfile.mkdtemp(prefix="grading-"))
    try:
        job = _prepare_job(folder, notebook, settings)
        status, detail = _run_job(job, settings, pool)
        try:
            executed = nbformat.read(job["executed"], as_version=4)
        except Exception:  # noqa: BLE001 - missing, or half-written when the run was killed
            executed = None
    finally:
        if own:
            pool.close()
        # The student's code could write to scratch/: removed without following its links or trusting its modes.
        if problem := sandbox.remove_tree(folder):
            print(f"warning: the grader could not clean up after a submission: {problem}", file=sys.stderr)
    return status, detail, executed


def _prepare_job(folder: Path, notebook: nbformat.NotebookNode, settings: Settings) -> dict:
    """Lay out a submission's folder (the notebook, an empty scratch folder) and describe the job for
    :func:`course_utils.grading.judge.main`."""
    (folder / "nb").mkdir()
    for part in ("home", "work"):  # the kernel's scratch folder: its home, and its (empty) working folder
        (folder / "scratch" / part).mkdir(parents=True)
    nbformat.write(notebook, folder / "nb" / "graded.ipynb")
    return {
        "notebook": str(folder / "nb" / "graded.ipynb"),
        "executed": str(folder / "nb" / "executed.ipynb"),
        "scratch": str(folder / "scratch"),
        "cell_timeout": settings.cell_timeout,
        "profile": settings.profile,
        "isolate": settings.isolate,
        "hide": [str(p) for p in settings.hide],
        "package": str(settings.package) if settings.package is not None else None,
        "marker": secrets.token_hex(8),
        "log": str(folder / "nb" / "worker.log"),
        "cwd": str(folder / "nb"),
    }


def _run_job(job: dict, settings: Settings, pool: WorkerPool) -> tuple[str, str]:
    """Run one job on this thread's worker (the judge runs unconfined: it holds the checks, and confines the
    student's kernel itself); its (status, detail). Whatever the submission left running is killed."""
    worker = pool.take(int(settings.memory_gb * 2**30))
    with _running_lock:
        _running[worker.process.pid] = job["marker"]
    try:
        code = worker.run(job, settings.notebook_timeout)
        if code is None:
            pool.drop(worker)
            return "timeout", f"stopped after {settings.notebook_timeout:g} s (the limit for a whole notebook)"
        if code == 0:
            return "graded", ""
        return "crashed", _crash_detail(Path(job["log"]), f"the judge ended the run with code {code}")
    except ChildProcessError as error:
        pool.drop(worker)
        return "crashed", _crash_detail(Path(job["log"]), str(error))
    finally:
        _kill_marked(f"{judge.MARKER}={job['marker']}")
        with _running_lock:
            _running.pop(worker.process.pid, None)


def _crash_detail(log: Path, detail: str) -> str:
    """What a crashed run's log says, in a line: the kernel's death named as such, then the log's last lines."""
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    if any("DeadKernelError" in line or "Kernel died" in line for line in tail):
        detail = "the kernel died (out of memory, or the code ended the process)"
    return detail + (shorten(": " + " | ".join(tail), MESSAGE_CHARS) if tail else "")
