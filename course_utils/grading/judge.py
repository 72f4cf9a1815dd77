"""Run graded notebooks: the student's cells in a confined kernel, the checks in this process.

The grader (:mod:`course_utils.grading`) starts this module as a worker process
that grades submissions one after the other. The worker is the *judge*: for each
one, it starts the student's kernel (confined by :mod:`course_utils.grading.sandbox`
unless told otherwise) and sends it the notebook's cells one by one, except the
checks. Each check runs here, in a fresh namespace
holding the solution's own set-up (imports, seeded generators), where every name
the check reads from the student's notebook is fetched from the kernel as data and
every student function is called there (:mod:`course_utils.grading.wire`). So the expected
answers never enter the student's process, and a verdict is what this process
computed: nothing the student's code does to its own interpreter (input
transformers, trace functions, patched NumPy or builtins, printing) reaches it.

Which names a check fetches is decided from the solution, not from the submission
(:func:`course_utils.grading.exercise.plan_checks`): helpers and inputs that earlier checks
bound here stay this process's own. A visible check also runs in the kernel when it
binds a name that the student's later cells use (``lenet = build_lenet5()`` before
the student trains ``lenet``); its output there is not kept. Hidden tests never run
in the kernel.

The executed notebook, with each check's output and its verdict in the cell's
metadata (``grader.verdict``), is written after every check, so a run stopped at
any moment keeps the verdicts reached.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError

from course_utils.grading import sandbox, wire
from course_utils.grading.kernel import CappedClient, CellTimeout, ConfinedKernelManager, Kernel
from course_utils.grading.limits import MESSAGE_CHARS, OUTPUT_CHARS, shorten
from course_utils.grading.source import bound_names, free_names, without_magics

WIRE = ".grader"
"""The folder, inside the scratch folder, where the kernel leaves its replies."""
MARKER = "COURSE_UTILS_GRADING_RUN"
"""The environment variable that marks every process started for one submission (the grader kills them by it)."""
GRADER_PID = "COURSE_UTILS_GRADER_PID"
"""The grader's process id, given to each judge it starts (see :func:`_die_with_grader`)."""
THREADS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
"""Environment variables that cap the computation threads of TensorFlow and OpenMP (set when several workers
share the machine's cores)."""
KERNEL_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND", *THREADS)
"""Environment variables of the grader that the confined kernel gets (besides the run's marker)."""


class Judge:
    """Holds the solution's set-up namespace and reaches each check's verdict."""

    def __init__(self, kernel: Kernel):
        self.kernel, self.base = kernel, {"__name__": "__grader__"}
        self.carried: dict = {}  # what earlier checks bound here, for later checks (grading.plan_checks)

    def setup(self, source: str) -> None:
        """Run a solution cell here too if all it reads is already here (imports, ``profile``, ``rng``)."""
        if free_names(source) <= set(self.base):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    exec(compile(without_magics(source), "<solution set-up>", "exec"), self.base)
                except Exception:  # noqa: BLE001 - a check that needs what failed says so itself
                    pass

    def check(self, source: str, name: str, fetch) -> tuple[bool, str, str]:
        """(passed, message, printed output) of one check run here against the student's kernel.

        Of the names the check reads, only ``fetch`` (decided from the solution by
        :func:`course_utils.grading.exercise.plan_checks`) come from the student's kernel; the others are
        this process's own: the solution's set-up, and what earlier checks bound here.
        """
        fetch = set(fetch) - set(self.base)
        namespace = {**self.base, **{k: v for k, v in self.carried.items() if k not in fetch}}
        self.kernel.namespace = namespace
        self.kernel.check_sources[f"<check {name}>"] = source
        printed, unavailable = io.StringIO(), {}
        try:
            with self.kernel.serving():
                values, unavailable = self.kernel.fetch(fetch)
                namespace.update(values)
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    exec(compile(without_magics(source), f"<check {name}>", "exec"), namespace)
        except CellTimeout as error:
            return False, str(error), printed.getvalue()
        except DeadKernelError:
            raise
        except wire.StudentError as error:
            return False, shorten(error, MESSAGE_CHARS), printed.getvalue()
        except NameError as error:
            why = unavailable.get(getattr(error, "name", None))
            message = f"{error.name}: {why}" if why else f"NameError: {error}"
            return False, shorten(message, MESSAGE_CHARS), printed.getvalue()
        except Exception as error:  # noqa: BLE001 - any error of the check is its failure, with its message
            return False, shorten(f"{type(error).__name__}: {error}", MESSAGE_CHARS), printed.getvalue()
        finally:
            self.carried.update({k: namespace[k] for k in bound_names(source) if k in namespace})
        return True, "", printed.getvalue()


def _check_outputs(printed: str, passed: bool, message: str) -> list:
    printed = shorten(printed, OUTPUT_CHARS)
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)] if printed else []
    if not passed:
        ename, _, evalue = message.partition(": ")
        outputs.append(nbformat.v4.new_output("error", ename=ename or "Error", evalue=evalue, traceback=[message]))
    return outputs


def run(job: dict, memory_bytes: int = 0) -> int:
    """Execute the graded notebook of a job (see :func:`main`); write it, outputs and verdicts included, to the
    job's ``executed`` file after every check. Returns 0, or 3 if the kernel died, 4 if the judge failed.

    Confined (``isolate``), the kernel's whole process tree gets :class:`course_utils.grading.sandbox.TreeLimits`
    (``memory_bytes`` for all of it where a control group can be made); what holds is printed to the job's log.
    """
    notebook = nbformat.read(job["notebook"], as_version=4)
    scratch, target = Path(job["scratch"]), Path(job["executed"])
    limits = sandbox.TreeLimits(memory_bytes) if job["isolate"] else None
    if limits is not None:
        print(f"limits: {limits.described}", file=sys.stderr)
    package = Path(job["package"]) if job.get("package") else None
    manager, env, inbox, replies = _kernel_manager(scratch, [Path(p) for p in job["hide"]], limits, package)
    client = CappedClient(
        notebook,
        km=manager,
        timeout=job["cell_timeout"],
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(scratch / "work")}},
    )
    kernel = Kernel(client, notebook, inbox, replies, job["cell_timeout"])
    code = 0
    try:
        with client.setup_kernel(env=env, cwd=str(scratch / "work")):
            _run_cells(notebook, kernel, job["profile"], save=lambda: _save(notebook, target))
    except DeadKernelError:
        print("DeadKernelError: Kernel died", file=sys.stderr)
        code = 3
    except Exception:  # noqa: BLE001 - the grader reports the tail of this log as the run's detail
        traceback.print_exc()
        code = 4
    finally:
        _save(notebook, target)
        kernel.close()
        if limits is not None:
            limits.close()
    return code


def _kernel_manager(scratch: Path, hide: list, limits: sandbox.TreeLimits | None, package: Path | None) -> tuple:
    """The manager of the student's kernel (confined when ``limits`` are given), its environment, and the
    inbox and replies folders, each as (path here, path in the kernel).

    ``package``: a copy of ``course_utils`` (:mod:`course_utils.grading.withheld`) that the kernel imports instead
    of the package: shown in its place when confined, first on ``PYTHONPATH`` otherwise."""
    inbox, replies = scratch.parent / "inbox", scratch / WIRE
    inbox.mkdir(exist_ok=True)
    replies.mkdir(exist_ok=True)
    if limits is None:
        manager = AsyncKernelManager(kernel_name="python3")
        env = {**os.environ, "PYTHONNOUSERSITE": "1"}
        if package is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package.parent), env.get("PYTHONPATH")) if p)
        return manager, env, (inbox, str(inbox)), (replies, str(replies))
    passed_on = {k: v for k, v in os.environ.items() if k in KERNEL_VARIABLES or k == MARKER}
    env = sandbox.environment(passed_on)
    manager = ConfinedKernelManager(
        transport="ipc", ip=str(scratch / ".k"), connection_file=str(scratch / ".kernel.json")
    )
    manager.configure(scratch, hide, env, inbox, limits, package)
    return manager, env, (inbox, sandbox.INBOX), (replies, f"{sandbox.SCRATCH}/{WIRE}")


def _run_cells(notebook, kernel: Kernel, profile: str, save) -> None:
    """The notebook's code cells in order: the student's and the fixed ones in the kernel, each check here."""
    judge = Judge(kernel)
    judge.base["PROFILE"] = profile
    for index, cell in enumerate(list(notebook.cells)):
        if cell.cell_type != "code":
            continue
        info = cell.metadata.get("grader", {})
        if info.get("kind") == "check":
            if info.get("in_kernel") and not info.get("hidden"):
                kernel.run(nbformat.v4.new_code_cell(cell.source), index)  # its state, for later cells
            passed, message, printed = judge.check(cell.source, info.get("id", str(index)), info.get("fetch", ()))
            cell.outputs = _check_outputs(printed, passed, message)
            info["verdict"] = {"passed": passed, "message": message}
            save()
            continue
        kernel.run(cell, index)
        if info.get("kind") == "fixed":
            judge.setup(cell.source)
            judge.base["PROFILE"] = profile  # the parameters cell sets None; the run's value wins
        if "parameters" in cell.metadata.get("tags", []):
            injected = nbformat.v4.new_code_cell(f"PROFILE = {profile!r}", metadata={"tags": ["injected-parameters"]})
            notebook.cells.insert(index + 1, injected)
            kernel.run(injected, index + 1)
            notebook.cells.pop(index + 1)


def _save(notebook, target: Path) -> None:
    """Write the notebook as plain JSON (nbformat.write would validate the whole notebook each time)."""
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, target)


def main(argv: list[str]) -> int:
    """Worker entry: ``memory_bytes``; then one job per line on standard input, its exit code per line on stdout.

    A job is a JSON object (made by :func:`course_utils.grading.workers._prepare_job`): ``notebook`` (the graded
    notebook), ``executed`` (where the run goes), ``scratch`` (the kernel's writable folder), ``cell_timeout``,
    ``profile``, ``isolate``, ``hide`` (host folders the kernel must not see), ``package`` (the copy of
    ``course_utils`` the kernel imports instead of the package, or None), ``marker`` (this submission's
    value of :data:`MARKER`), ``log`` (the file that gets this job's output) and ``cwd``. One worker grades
    many submissions in turn, so TensorFlow, which most checks need, is imported once
    (about 5 s of a core per submission otherwise). Nothing of one submission stays for the next:
    each gets a fresh kernel and a fresh namespace for its checks, and Keras' state is cleared.
    """
    limit = int(argv[0])
    _die_with_grader()
    if limit > 0:  # the judge and the kernels it starts (which inherit it)
        with contextlib.suppress(OSError, ValueError):  # no address-space limit on this platform
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    while line := sys.stdin.readline():
        job = json.loads(line)
        sys.stdout.flush(), sys.stderr.flush()
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1), os.dup2(log, 2), os.close(log)  # the job's output, the kernel's included, goes to its log
        os.environ[MARKER] = job["marker"]
        os.chdir(job["cwd"])
        code = run(job, limit)
        sys.stdout.flush(), sys.stderr.flush()
        if "keras" in sys.modules:  # the models this submission's checks loaded
            sys.modules["keras"].backend.clear_session(free_memory=True)
        # Past half its memory limit, this judge asks to be replaced rather than risk a check failing for want of it.
        retire = limit > 0 and _address_space() > limit // 2
        replies.write(json.dumps({"code": code, "retire": retire}) + "\n")
        replies.flush()
        if retire:
            break
    return 0


def _die_with_grader() -> None:
    """Linux: have the kernel kill this judge when the grader's thread that started it ends (the grader killed
    with SIGKILL, say), so that no judge grades on unseen; its confined kernel dies with it (bubblewrap's
    ``--die-with-parent``)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux
    if str(os.getppid()) != os.environ.get(GRADER_PID, str(os.getppid())):  # the grader died before we asked
        os._exit(1)


def _address_space() -> int:
    """This process's virtual memory in bytes, which the memory limit caps (0 where /proc is missing)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
