"""The student's kernel as the judge sees it: started confined, sent cells, asked for values and calls.

The judge (:mod:`course_utils.grading.judge`) holds one :class:`Kernel` per submission. Whatever
comes back from it crosses as data (:mod:`course_utils.grading.wire`) and answers exactly
the request made: a fetch binds only the names asked for, a call returns its result and,
where the judge passed a Keras model, that model as the call left it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import sys
import time
import types
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from course_utils.grading import sandbox, wire
from course_utils.grading.limits import OUTPUT_CHARS, shorten
from course_utils.grading.source import free_names, function_source


class CellTimeout(Exception):
    """A cell (or a call of the student's function) ran past the limit for one cell and was interrupted."""


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel started through bubblewrap, talking over Unix sockets in its scratch folder.

    The confined kernel has its own network namespace (no TCP to the judge), so the
    ZeroMQ channels are ``ipc`` sockets in the scratch folder, which both sides
    see, under different paths.
    """

    def configure(
        self, scratch: Path, hide: list, env: dict, inbox: Path, limits: sandbox.TreeLimits, package: Path | None
    ) -> None:
        """``package``: the copy of ``course_utils`` the kernel sees in place of the package (None: the package)."""
        self.scratch, self.hide, self.inbox, self.limits = Path(scratch), hide, inbox, limits
        self.package = package
        self.graded_spec = KernelSpec(
            argv=["python"], display_name="graded", language="python", interrupt_mode="message", env=env
        )

    @property
    def kernel_spec(self) -> KernelSpec:
        """The confined kernel's own spec, never one of the machine's installed kernels."""
        return self.graded_spec

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
            args,
            self.scratch,
            hide=self.hide,
            inbox=self.inbox,
            chdir=f"{sandbox.SCRATCH}/work",
            limits=self.limits,
            package=self.package,
        )


class CappedClient(NotebookClient):
    """nbclient's client, keeping at most :data:`~course_utils.grading.limits.OUTPUT_CHARS` characters of output
    per cell."""

    def output(self, outs, msg, display_id, cell_index):
        sizes = self.__dict__.setdefault("_sizes", {})  # id of an output list -> (that list, characters so far)
        kept, size = sizes.get(id(outs), (None, 0))
        content = msg.get("content", {})
        size = (
            (size if kept is outs else 0) + len(str(content.get("text", ""))) + len(json.dumps(content.get("data", {})))
        )
        sizes[id(outs)] = (outs, size)
        if size > OUTPUT_CHARS:
            if not (outs and str(outs[-1].get("text", "")).startswith("[output cut")):
                outs.append(
                    nbformat.v4.new_output(
                        "stream", name="stdout", text=f"[output cut by the grader after {OUTPUT_CHARS:,} characters]\n"
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


class Kernel:
    """The student's kernel seen from the judge: run cells, fetch names, call functions.

    Requests go to ``inbox`` (read-only for the kernel, so it cannot plant a link
    there for the judge to write through), replies come back in ``replies``, which
    the kernel can write to: the judge opens it once, before the kernel starts, and
    reads and empties it only through that descriptor (:class:`course_utils.grading.wire.Folder`),
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
        source = function_source(check_source, value.__name__) if check_source is not None else None
        if source is None:
            return None
        modules = {
            name: v.__name__
            for name in free_names(source)
            if isinstance(v := self.namespace.get(name), types.ModuleType)
        }
        return source, modules

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
                f"__import__('course_utils.grading.wire', fromlist=['serve_loop']).serve_loop(globals(), "
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
        raise wire.WireError(f"{what} ({error.get('ename')}: {shorten(error.get('evalue', ''))})")

    @contextlib.contextmanager
    def serving(self):
        """Around a check: its requests are answered by one :func:`course_utils.grading.wire.serve_loop` in the kernel,
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
        return values, {str(k): shorten(v) for k, v in unavailable.items()}

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
            raise wire.WireError(f"{handle.name} returned {shorten(unavailable['result'])}")
        changed = reply.get("changed", [])
        if not isinstance(changed, list) or len(changed) > len(models):
            raise wire.WireError(f"the reply to {handle.name} claims arguments changed that it was not given")
        rebind, claimed = {}, set()
        for n, claim in enumerate(changed):
            plain = isinstance(claim, list) and len(claim) == 2 and all(isinstance(p, (int, str)) for p in claim)
            key = tuple(claim) if plain else None
            if key not in models or key in claimed or f"changed{n}" not in values:
                raise wire.WireError(
                    f"the reply to {handle.name} claims that {shorten(claim, 60)} changed, which is not a model it "
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
