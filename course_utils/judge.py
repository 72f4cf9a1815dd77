"""Run graded notebooks: the student's cells in a confined kernel, the checks in this process.

The grader (:mod:`course_utils.grading`) starts this module as a worker process
that grades submissions one after the other. The worker is the *judge*: for each
one, it starts the student's kernel (confined by :mod:`course_utils.sandbox`
unless told otherwise) and sends it the notebook's cells one by one, except the
checks. Each check runs here, in a fresh namespace
holding the solution's own set-up (imports, seeded generators), where every name
the check reads from the student's notebook is fetched from the kernel as data and
every student function is called there (:mod:`course_utils.wire`). So the expected
answers never enter the student's process, and a verdict is what this process
computed: nothing the student's code does to its own interpreter (input
transformers, trace functions, patched NumPy or builtins, printing) reaches it.

Which names a check fetches is decided from the solution, not from the submission
(:func:`course_utils.grading.plan_checks`): helpers and inputs that earlier checks
bound here stay this process's own. A visible check also runs in the kernel when it
binds a name that the student's later cells use (``lenet = build_lenet5()`` before
the student trains ``lenet``); its output there is not kept. Hidden tests never run
in the kernel.

The executed notebook, with each check's output and its verdict in the cell's
metadata (``grader.verdict``), is written after every check, so a run stopped at
any moment keeps the verdicts reached.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import queue
import select
import sys
import time
import traceback
import types
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from course_utils import sandbox, wire

OUTPUT_CAP = 200_000
"""Characters of output kept per cell while it runs (a student may print gigabytes)."""
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


class CellTimeout(Exception):
    """A cell (or a call of the student's function) ran past the limit for one cell and was interrupted."""


def without_magics(source: str) -> str:
    """A cell's source with its IPython lines (``%magic``, ``!shell``) blanked, so that ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def bound_names(source: str) -> set:
    """Every name a cell binds anywhere (assignments, loops, definitions, imports, arguments, ``except ... as``)."""
    try:
        tree = ast.parse(without_magics(source))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def free_names(source: str) -> set:
    """The names a cell reads and does not bind itself (nor are builtins): what it needs from elsewhere."""
    try:
        tree = ast.parse(without_magics(source))
    except SyntaxError:
        return set()
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound_names(source) - set(dir(builtins))


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel started through bubblewrap, talking over Unix sockets in its scratch folder.

    The confined kernel has its own network namespace (no TCP to the judge), so the
    ZeroMQ channels are ``ipc`` sockets in the scratch folder, which both sides
    see, under different paths.
    """

    def configure(self, scratch: Path, hide: list, env: dict, inbox: Path, limits: sandbox.TreeLimits) -> None:
        self.scratch, self.hide, self.inbox, self.limits = Path(scratch), hide, inbox, limits
        self._kernel_spec = KernelSpec(
            argv=["python"], display_name="graded", language="python", interrupt_mode="message", env=env
        )

    def format_kernel_cmd(self, extra_arguments=None) -> list:
        inside = json.loads(Path(self.connection_file).read_text())
        inside["ip"] = inside["ip"].replace(str(self.scratch), sandbox.SCRATCH, 1)
        (self.scratch / ".kernel-inside.json").write_text(json.dumps(inside))
        # The kernel's parent is bubblewrap's init in its own PID namespace: no parent polling.
        args = [
            "/usr/bin/env",
            "-u",
            "JPY_PARENT_PID",
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            f"{sandbox.SCRATCH}/.kernel-inside.json",
        ]
        return sandbox.command(
            args, self.scratch, hide=self.hide, inbox=self.inbox, chdir=f"{sandbox.SCRATCH}/work", limits=self.limits
        )


class CappedClient(NotebookClient):
    """nbclient's client, keeping at most :data:`OUTPUT_CAP` characters of output per cell."""

    def output(self, outs, msg, display_id, cell_index):
        sizes = self.__dict__.setdefault("_sizes", {})  # id of an output list -> (that list, characters so far)
        kept, size = sizes.get(id(outs), (None, 0))
        content = msg.get("content", {})
        size = (
            (size if kept is outs else 0) + len(str(content.get("text", ""))) + len(json.dumps(content.get("data", {})))
        )
        sizes[id(outs)] = (outs, size)
        if size > OUTPUT_CAP:
            if not (outs and str(outs[-1].get("text", "")).startswith("[output cut")):
                outs.append(
                    nbformat.v4.new_output(
                        "stream", name="stdout", text=f"[output cut by the grader after {OUTPUT_CAP:,} characters]\n"
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


class Kernel:
    """The student's kernel seen from the judge: run cells, fetch names, call functions.

    Requests go to ``inbox`` (read-only for the kernel, so it cannot plant a link
    there for the judge to write through), replies come back in ``replies``, which
    the kernel can write to: the judge opens it once, before the kernel starts, and
    reads and empties it only through that descriptor (:class:`course_utils.wire.Folder`),
    so a kernel that swaps it for a link between requests changes nothing outside it.
    Each folder is given as (path here, path in the kernel).

    Whatever a reply holds is data answering exactly the request: a fetch binds only
    the names asked for, a call returns its result and, where the judge passed a
    Keras model, that model as the call left it; anything else refuses the reply.
    """

    def __init__(self, client: NotebookClient, notebook, inbox: tuple, replies: tuple, cell_timeout: float):
        self.client, self.notebook, self.cell_timeout = client, notebook, cell_timeout
        self.inbox, self.replies = inbox, replies
        self.replies_folder = wire.Folder(replies[0])
        self.ledger = wire.ModelLedger()  # the models the kernel sent: each crosses once
        pipes = []
        for name in (wire.REQUESTS_PIPE, wire.ANSWERS_PIPE):
            os.mkfifo(inbox[0] / name, 0o644)
            pipes.append(os.open(inbox[0] / name, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
        self.to_kernel, self.from_kernel = pipes
        self.loop = None  # the message id of the kernel's wire.serve_loop while one runs (see serving)
        self.namespace: dict = {}  # the check's namespace, where models changed by a call are rebound
        # "<check id>" -> source, of the checks run so far: their functions may be passed on
        self.check_sources: dict = {}

    def source_of(self, value):
        """A function a check (this one or an earlier one) defined at its top level: (its source, the modules it
        uses), else None."""
        code = getattr(value, "__code__", None)
        check_source = self.check_sources.get(code.co_filename) if code is not None else None
        if check_source is None:
            return None
        for node in ast.parse(without_magics(check_source)).body:
            if isinstance(node, ast.FunctionDef) and node.name == value.__name__:
                source = ast.get_source_segment(without_magics(check_source), node)
                modules = {
                    name: v.__name__
                    for name in free_names(source)
                    if isinstance(v := self.namespace.get(name), types.ModuleType)
                }
                return source, modules
        return None

    def run(self, cell, index: int) -> None:
        """Execute ``cell`` in the kernel as cell ``index`` of the notebook (nbclient stores it there)."""
        kept = self.notebook.cells[index] if index < len(self.notebook.cells) else None
        if kept is not cell and kept is not None:
            try:
                self.client.execute_cell(cell, index)
            finally:
                self.notebook.cells[index] = kept
        else:
            self.client.execute_cell(cell, index)

    def _request(self, message: dict, values_sent: dict, answers) -> tuple[dict, dict]:
        """Send one request; the reply and its values, of which ``answers`` are the only names allowed."""
        for stale in self.inbox[0].glob("request*"):  # only the judge writes here
            stale.unlink()
        self.replies_folder.clear()
        unavailable = wire.write(
            self.inbox[0], "request", message, values_sent, source_of=self.source_of, ledger=self.ledger
        )
        if unavailable:  # an argument that cannot cross: the check itself is at fault
            raise wire.WireError(
                f"the grader could not pass {', '.join(unavailable)} to your code: " + "; ".join(unavailable.values())
            )
        if self.loop is None:
            self.loop = self.client.kc.execute(
                f"__import__('course_utils.wire', fromlist=['serve_loop']).serve_loop(globals(), "
                f"{self.inbox[1]!r}, {self.replies[1]!r})",
                silent=True,
                store_history=False,
                allow_stdin=False,
                stop_on_error=False,
            )
        with contextlib.suppress(BlockingIOError):  # whatever the kernel wrote ahead of time is not an answer
            while os.read(self.from_kernel, 1 << 16):
                pass
        os.write(self.to_kernel, b"r")
        self._wait_for_answer()
        reply, values = wire.read(
            self.replies_folder,
            "response",
            call=lambda handle: StudentFunction(self, handle),
            names=answers,
            ledger=self.ledger,
        )
        if not reply.get("ok") and reply.get("ename") == "StaleModel" and self.ledger.enabled:
            self.ledger.enabled = False  # the kernel's copy changed: send the models themselves, once
            try:
                return self._request(message, values_sent, answers)
            finally:
                self.ledger.enabled = True
        if not reply.get("ok"):
            raise wire.StudentError(str(reply.get("ename", "Error")), str(reply.get("evalue", "")))
        return reply, values

    def _wait_for_answer(self) -> None:
        """Wait for the kernel's ``d``; past the cell time limit interrupt it, as nbclient would."""
        deadline, interrupted = time.monotonic() + self.cell_timeout, False
        waiting = select.poll()
        waiting.register(self.from_kernel, select.POLLIN)
        while True:
            ready = waiting.poll(1000 * max(0.0, min(0.5, deadline - time.monotonic())))
            if ready and b"d" in os.read(self.from_kernel, 1 << 16):
                return
            if ready:
                continue
            if (error := self._loop_ended(0)) is not None:
                self._raise_for(error, "the grader could not reach the values of your notebook")
            if not run_sync(self.client.km.is_alive)():
                raise DeadKernelError("Kernel died")
            if time.monotonic() < deadline:
                continue
            if interrupted:
                raise DeadKernelError("the kernel did not answer after an interrupt")
            run_sync(self.client.km.interrupt_kernel)()
            deadline, interrupted = time.monotonic() + 10, True

    def _loop_ended(self, timeout: float) -> dict | None:
        """The error of the kernel's serve_loop if it has ended ({} if none), None while it runs."""
        if self.loop is None:
            return {}
        reply = run_sync(self._async_reply)(self.loop, timeout)
        if reply is None:
            return None
        self.loop = None
        content = reply.get("content", {})
        return content if content.get("status") == "error" else {}

    async def _async_reply(self, msg_id: str, timeout: float) -> dict | None:
        """The kernel's reply to ``msg_id`` if it comes within ``timeout``; what the kernel printed is dropped."""
        kc, end = self.client.kc, time.monotonic() + timeout
        reply = None
        while reply is None:
            try:
                message = await kc.shell_channel.get_msg(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if message["parent_header"].get("msg_id") == msg_id:
                reply = message
        with contextlib.suppress(queue.Empty):  # what the calls printed, and status messages: not kept
            while True:
                await kc.iopub_channel.get_msg(timeout=0)
        return reply

    def _raise_for(self, error: dict, what: str) -> None:
        if error.get("ename") == "KeyboardInterrupt":
            raise CellTimeout(f"stopped: your code ran longer than the limit of {self.cell_timeout:g} s for one cell")
        raise wire.WireError(f"{what} ({error.get('ename')}: {str(error.get('evalue', ''))[:300]})")

    @contextlib.contextmanager
    def serving(self):
        """Around a check: its requests are answered by one :func:`course_utils.wire.serve_loop` in the kernel,
        which is told to end when the check does, so that the kernel is free for the next cell."""
        try:
            yield
        finally:
            if self.loop is not None and run_sync(self.client.km.is_alive)():  # a dead kernel has nothing to end
                os.write(self.to_kernel, b"e")
                error = self._loop_ended(self.cell_timeout)
                if error is None:  # it does not end: interrupted, as a cell past its limit would be
                    run_sync(self.client.km.interrupt_kernel)()
                    if self._loop_ended(10) is None:
                        raise DeadKernelError("the kernel did not answer after an interrupt")

    def close(self) -> None:
        self.replies_folder.close()
        for pipe in (self.to_kernel, self.from_kernel):
            with contextlib.suppress(OSError):
                os.close(pipe)

    def fetch(self, names) -> tuple[dict, dict]:
        """The values of those ``names`` that the student's notebook defines, and why others could not be passed."""
        if not names:
            return {}, {}
        reply, values = self._request({"op": "get", "names": sorted(names)}, {}, answers=set(names))
        unavailable = reply.get("unavailable", {})
        if not isinstance(unavailable, dict) or set(unavailable) - set(names):
            raise wire.WireError("the reply explains values that were not asked for: it was refused")
        return values, {str(k): str(v)[:300] for k, v in unavailable.items()}

    def call(self, handle: wire.Handle, args: tuple, kwargs: dict):
        """Call the student's function in the kernel on copies of ``args`` and ``kwargs`` (a model the kernel sent
        and that neither side changed since is the kernel's own, as in the student's notebook); its result.

        A Keras model among the arguments that the call changed (trained, recompiled) comes back, and the names
        of the check bound to that model are bound to the changed one; nothing else is ever rebound.
        """
        sent = {
            "args": [_encode_handles(a) for a in args],
            "kwargs": {k: _encode_handles(v) for k, v in kwargs.items()},
        }
        models = {(True, i): a for i, a in enumerate(args) if wire._is_keras_model(a)}
        models.update({(False, k): a for k, a in kwargs.items() if wire._is_keras_model(a)})
        reply, values = self._request(
            {"op": "call", "handle": handle.id},
            sent,
            answers={"result", *(f"changed{n}" for n in range(len(models)))},
        )
        unavailable = reply.get("unavailable", {})
        if isinstance(unavailable, dict) and "result" in unavailable:
            raise wire.WireError(f"{handle.name} returned {str(unavailable['result'])[:300]}")
        changed = reply.get("changed", [])
        if not isinstance(changed, list) or len(changed) > len(models):
            raise wire.WireError(f"the reply to {handle.name} claims arguments changed that it was not given")
        rebind, claimed = {}, set()
        for n, claim in enumerate(changed):
            plain = isinstance(claim, list) and len(claim) == 2 and all(isinstance(p, (int, str)) for p in claim)
            key = tuple(claim) if plain else None
            if key not in models or key in claimed or f"changed{n}" not in values:
                raise wire.WireError(
                    f"the reply to {handle.name} claims that {str(claim)[:60]} changed, which is not a model it "
                    "was given (only a Keras model passed to your function comes back changed)"
                )
            if not wire._is_keras_model(values[f"changed{n}"]):
                raise wire.WireError(f"the reply to {handle.name} returned a changed model that is not a model")
            claimed.add(key)
            rebind[id(models[key])] = models[key], values[f"changed{n}"]
        for name, value in list(self.namespace.items()):  # the model the check holds is the changed one now
            if id(value) in rebind and rebind[id(value)][0] is value:
                self.namespace[name] = rebind[id(value)][1]
        return values.get("result")


class StudentFunction:
    """A function of the student's notebook: calling it runs it in their kernel, on copies of the arguments."""

    def __init__(self, kernel: Kernel, handle: wire.Handle):
        self.kernel, self.handle, self.__name__ = kernel, handle, handle.name

    def __call__(self, *args, **kwargs):
        return self.kernel.call(self.handle, args, kwargs)

    def __repr__(self) -> str:
        return f"<your function {self.handle.name}>"


def _encode_handles(value):
    return value.handle if isinstance(value, StudentFunction) else value


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
        :func:`course_utils.grading.plan_checks`) come from the student's kernel; the others are
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
            return False, str(error)[:600], printed.getvalue()
        except NameError as error:
            why = unavailable.get(getattr(error, "name", None))
            message = f"{error.name}: {why}" if why else f"NameError: {error}"
            return False, message[:600], printed.getvalue()
        except Exception as error:  # noqa: BLE001 - any error of the check is its failure, with its message
            return False, f"{type(error).__name__}: {error}"[:600], printed.getvalue()
        finally:
            self.carried.update({k: namespace[k] for k in bound_names(source) if k in namespace})
        return True, "", printed.getvalue()


def _check_outputs(printed: str, passed: bool, message: str) -> list:
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)] if printed else []
    if not passed:
        ename, _, evalue = message.partition(": ")
        outputs.append(nbformat.v4.new_output("error", ename=ename or "Error", evalue=evalue, traceback=[message]))
    return outputs


def run(
    source: Path,
    target: Path,
    scratch: Path,
    cell_timeout: float,
    profile: str,
    isolate: bool,
    hide: list,
    memory_bytes: int = 0,
) -> int:
    """Execute the graded notebook ``source``; write it, outputs and verdicts included, to ``target``.

    Confined (``isolate``), the kernel's whole process tree gets :class:`course_utils.sandbox.TreeLimits`
    (``memory_bytes`` for all of it where a control group can be made); what holds is printed to the job's log.
    """
    notebook = nbformat.read(source, as_version=4)
    inbox, replies = scratch.parent / "inbox", scratch / WIRE
    inbox.mkdir(exist_ok=True)
    replies.mkdir(exist_ok=True)
    passed_on = {k: v for k, v in os.environ.items() if k in KERNEL_VARIABLES or k == MARKER}
    limits = None
    if isolate:
        limits = sandbox.TreeLimits(memory_bytes)
        print(f"limits: {limits.described}", file=sys.stderr)
        env = sandbox.environment(passed_on)
        manager = ConfinedKernelManager(
            transport="ipc", ip=str(scratch / ".k"), connection_file=str(scratch / ".kernel.json")
        )
        manager.configure(scratch, hide, env, inbox, limits)
        inbox_inside, replies_inside = sandbox.INBOX, f"{sandbox.SCRATCH}/{WIRE}"
    else:
        env = {**os.environ, "PYTHONNOUSERSITE": "1"}
        manager = AsyncKernelManager(kernel_name="python3")
        inbox_inside, replies_inside = str(inbox), str(replies)
    client = CappedClient(
        notebook,
        km=manager,
        timeout=cell_timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(scratch / "work")}},
    )
    kernel = Kernel(client, notebook, (inbox, inbox_inside), (replies, replies_inside), cell_timeout)
    judge = Judge(kernel)
    judge.base["PROFILE"] = profile

    def save():  # plain JSON: nbformat.write would validate the whole notebook each time
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, target)

    code = 0
    try:
        with client.setup_kernel(env=env, cwd=str(scratch / "work")):
            for index, cell in enumerate(list(notebook.cells)):
                if cell.cell_type != "code":
                    continue
                info = cell.metadata.get("grader", {})
                if info.get("kind") == "check":
                    if info.get("in_kernel") and not info.get("hidden"):
                        kernel.run(nbformat.v4.new_code_cell(cell.source), index)  # its state, for later cells
                    passed, message, printed = judge.check(
                        cell.source, info.get("id", str(index)), info.get("fetch", ())
                    )
                    cell.outputs = _check_outputs(printed, passed, message)
                    info["verdict"] = {"passed": passed, "message": message}
                    save()
                else:
                    kernel.run(cell, index)
                    if info.get("kind") == "fixed":
                        judge.setup(cell.source)
                        judge.base["PROFILE"] = profile  # the parameters cell sets None; the run's value wins
                    if "parameters" in cell.metadata.get("tags", []):
                        injected = nbformat.v4.new_code_cell(
                            f"PROFILE = {profile!r}", metadata={"tags": ["injected-parameters"]}
                        )
                        notebook.cells.insert(index + 1, injected)
                        kernel.run(injected, index + 1)
                        notebook.cells.pop(index + 1)
    except DeadKernelError:
        print("DeadKernelError: Kernel died", file=sys.stderr)
        code = 3
    except Exception:  # noqa: BLE001 - the grader reports the tail of this log as the run's detail
        traceback.print_exc()
        code = 4
    finally:
        save()
        kernel.close()
        if limits is not None:
            limits.close()
    return code


def main(argv: list[str]) -> int:
    """Worker entry: ``memory_bytes``; then one job per line on standard input, its exit code per line on stdout.

    A job is a JSON object: ``argv`` (``graded.ipynb executed.ipynb scratch cell_timeout profile
    isolate hide_json``, as :func:`run` takes them), ``marker`` (this submission's value of
    :data:`MARKER`), ``log`` (the file that gets this job's output) and ``cwd``. One worker grades
    many submissions in turn, so TensorFlow, which most checks need, is imported once
    (about 5 s of a core per submission otherwise). Nothing of one submission stays for the next:
    each gets a fresh kernel and a fresh namespace for its checks, and Keras' state is cleared.
    """
    limit = int(argv[0])
    _die_with_grader()
    try:
        import resource

        if limit > 0:  # the judge and the kernels it starts (which inherit it)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError):
        pass  # no address-space limit on this platform
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    while line := sys.stdin.readline():
        job = json.loads(line)
        sys.stdout.flush(), sys.stderr.flush()
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1), os.dup2(log, 2), os.close(log)  # the job's output, the kernel's included, goes to its log
        os.environ[MARKER] = job["marker"]
        os.chdir(job["cwd"])
        source, target, scratch, cell_timeout, profile, isolate, hide = job["argv"]
        code = run(
            Path(source),
            Path(target),
            Path(scratch),
            float(cell_timeout),
            profile,
            isolate == "1",
            [Path(p) for p in json.loads(hide)],
            limit,
        )
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
        import ctypes
        import signal

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
