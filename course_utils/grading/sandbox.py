"""Run untrusted code (a student's notebook) confined with bubblewrap.

The grader runs each submission through :func:`command`: a ``bwrap`` command line
that gives the process

* no network (its own network namespace holds only the loopback device; the judge
  talks to the kernel over Unix sockets in the scratch folder);
* its own process namespace: it sees only its own processes, and when the
  notebook's runner ends, everything it started is killed with it;
* its own user namespace, with every capability dropped, and no way to make more;
* a read-only view of the system, in which the home folders, the course repository
  (its ``solutions/``, hidden tests and ``.git`` included), the submissions, the
  output folder, the host's temporary folders and ``/run`` (the sockets of the
  host's services) are hidden behind empty read-only folders; only the Python
  installation and the ``course_utils`` package are shown again, read-only (the
  package, or in its place the week's copy without the references of its blanks:
  :mod:`course_utils.grading.withheld`);
* one writable folder, its own scratch folder, at :data:`SCRATCH` (the rest of
  ``/tmp`` is an empty, size-capped, private tmpfs that vanishes with it).

Bubblewrap is a Debian/Ubuntu package (``apt-get install bubblewrap``); ``make sandbox``
installs it when it may. Where it is missing or the kernel refuses namespaces
(macOS, some container hosts, Ubuntu 24.04's AppArmor rule for unprivileged
user namespaces), :func:`unavailable` says why, and the grader refuses to run
untrusted code unless told otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRATCH = "/tmp/grading"
"""Where a confined process finds its scratch folder (the only host folder it may write to)."""
INBOX = "/tmp/grading-inbox"
"""Where a confined process finds the read-only folder of :func:`command`'s ``inbox``."""
TMP_BYTES = 1 << 30
"""Size cap of the private ``/tmp`` of a confined process (it lives in memory)."""
PACKAGE = Path(__file__).resolve().parents[1]
"""The ``course_utils`` folder, of which the grader is a part: shown to a confined process, or a copy in its place."""


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """``None`` if :func:`command` works on this machine, else why not, in one sentence."""
    if not sys.platform.startswith("linux"):
        return f"confinement needs Linux namespaces, and this is {sys.platform}"
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap (bwrap) is not installed: sudo apt-get install bubblewrap"
    try:
        probe = subprocess.run(command(["true"], Path("/"), hide=[]), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not be started: {error}"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit code {probe.returncode}"
        if "ermission denied" in reason or "not permitted" in reason:
            reason += (
                "; the kernel refuses namespaces to this user (on Ubuntu 24.04, AppArmor's rule for "
                "unprivileged user namespaces: see the instructors' page)"
            )
        return f"bubblewrap cannot confine a process here: {reason}"
    return None


def _shown_again() -> list[Path]:
    """What a confined Python needs to run: its installation and the course_utils package (read-only)."""
    paths = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent.parent,
        PACKAGE,
    }
    return sorted(p for p in paths if p.exists())


def command(
    args: list[str],
    scratch: Path,
    hide: list[Path],
    inbox: Path | None = None,
    chdir: str = SCRATCH,
    limits: TreeLimits | None = None,
    package: Path | None = None,
) -> list[str]:
    """The ``bwrap`` command line that runs ``args`` confined, with ``scratch`` writable at :data:`SCRATCH`.

    ``hide`` lists host folders to cover with empty ones (the repository, the
    submissions, the output folder); the home folder and ``/tmp`` are always
    hidden. ``inbox``, if given, is shown read-only at :data:`INBOX` (where the
    grader leaves requests that the confined code must not alter). The working
    directory inside is ``chdir`` (default :data:`SCRATCH`). ``limits``, if given, caps the
    whole process tree (:class:`TreeLimits`). ``package``, if given, is a copy of ``course_utils`` shown
    read-only at :data:`PACKAGE` instead of the package (:func:`course_utils.grading.withheld.stripped_copy`).
    """
    # Home folders, the host's temporary folders (the grader's own scratch folders among them, wherever TMPDIR
    # points) and /run, where the sockets of the host's services live (a read-only mount still lets a
    # process connect to a socket it can see).
    hidden = {
        Path.home(),
        Path("/home"),
        Path("/root"),
        Path("/var/tmp"),
        Path(tempfile.gettempdir()).resolve(),
        Path("/run").resolve(),
        Path("/var/run").resolve(),
        *[Path(p).resolve() for p in hide],
    }
    line = [
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "grading",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # The private /tmp first: what is shown again below may live under the host's /tmp (a clone there).
        "--size",
        str(TMP_BYTES),
        "--tmpfs",
        "/tmp",
    ]
    covered = sorted(p for p in hidden if p.is_dir() and p not in (Path("/"), Path("/tmp")))  # /tmp: private above
    for path in covered:
        line += ["--tmpfs", str(path)]
    for path in _shown_again():
        line += ["--ro-bind", str(path), str(path)]
    if package is not None:  # over the package, wherever it was shown (its own folder, or inside sys.prefix)
        line += ["--ro-bind", str(Path(package).resolve()), str(PACKAGE)]
    for path in covered:  # read-only once the folders shown again have their mount points
        line += ["--remount-ro", str(path)]
    line += ["--bind", str(Path(scratch).resolve()), SCRATCH]
    if inbox is not None:
        line += ["--ro-bind", str(Path(inbox).resolve()), INBOX]
    line += ["--chdir", chdir, "--"]
    if limits is None:
        return line + list(args)
    return limits.wrap(line + limits.inside(list(args)))


def environment(extra: dict | None = None) -> dict:
    """A clean environment for confined code: none of the instructor's variables, a home in the scratch folder."""
    home = f"{SCRATCH}/home"
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": "/tmp",
        "JUPYTER_RUNTIME_DIR": f"{home}/runtime",
        "MPLCONFIGDIR": f"{home}/matplotlib",
        "KERAS_HOME": f"{home}/keras",
        "PYTHONNOUSERSITE": "1",
    }
    if os.environ.get("VIRTUAL_ENV"):
        env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
    return {**env, **(extra or {})}


def remove_tree(path: Path) -> str | None:
    """Delete a folder that confined code could write to, following no link: ``None``, or why some was left.

    The code may have left links to host folders in it, made sub-folders read-only (0500) and swapped entries
    while we delete. Every folder is opened with ``O_NOFOLLOW`` and emptied through its descriptor, and only
    those descriptors are made writable again, so nothing outside ``path`` is deleted or has its mode changed
    (Python 3.11.7's ``TemporaryDirectory`` clean-up follows such a link: CVE-2023-6597). No recursion, so a
    tree nested thousands deep is removed too.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        stack = [(os.open(path, flags), None)]  # (descriptor of a folder, its name in the folder above)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"{path} is not a folder that can be removed ({error.strerror})"
    try:
        while stack:
            folder, _ = stack[-1]
            with contextlib.suppress(OSError):
                os.fchmod(folder, 0o700)  # a folder the code made read-only: only this very folder
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries]
            sub = None
            for name in names:
                try:
                    sub = os.open(name, flags, dir_fd=folder)
                    break
                except OSError:  # a file or a link (never followed), or gone already
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=folder)
            if sub is not None:
                stack.append((sub, name))
                continue
            _, done = stack.pop()
            os.close(folder)
            if stack:  # the emptied folder, removed from the folder above by its name there
                os.rmdir(done, dir_fd=stack[-1][0])
        os.rmdir(path)
    except OSError as error:
        return f"left {path} partly in place ({error.strerror})"
    finally:
        for folder, _ in stack:
            with contextlib.suppress(OSError):
                os.close(folder)
    return None


PIDS_MAX = 512
"""Processes and threads one submission may have at once (TensorFlow's thread pools need a few dozen)."""
FILE_BYTES = 1 << 30
"""The largest file a submission may write (``RLIMIT_FSIZE``): past it, the write fails with "File too large"."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Inside the sandbox, before the kernel: RLIMIT_NPROC counts only the sandbox's processes there (its own user
# namespace), and RLIMIT_FSIZE caps every file it writes. Root is exempt from RLIMIT_NPROC: a cgroup caps it.
_LIMITER = (
    "import os, resource, sys; nproc, fsize = int(sys.argv[1]), int(sys.argv[2]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize)); "
    "nproc and resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc)); os.execvp(sys.argv[3], sys.argv[3:])"
)


class TreeLimits:
    """Caps on a submission's whole process tree, by the best means this machine gives the grader.

    * ``cgroup v2`` or ``cgroup v1``: a control group of its own for the submission, with ``pids.max`` =
      :data:`PIDS_MAX` and a memory limit on all its processes together (memory.max, or v1's
      memory.limit_in_bytes); everything in it is killed at the end.
    * ``rlimits``, where the grader may not make control groups (an ordinary user on cgroup v1, say):
      ``RLIMIT_NPROC`` in the sandbox's user namespace (not for root, which the kernel exempts) and the
      per-process address-space cap of the judge, which each process inherits.

    Whichever holds, every file is capped at :data:`FILE_BYTES`. :attr:`described` says what holds here.
    """

    def __init__(self, memory_bytes: int, pids: int = PIDS_MAX):
        self.memory_bytes, self.pids, self.folders, self.kind = memory_bytes, pids, [], "rlimits"
        name = f"{_CGROUP_PREFIX}{os.getpid()}-{id(self):x}"
        for kind, folders in _cgroup_folders(name):
            for parent in {folder.parent for folder in folders}:
                _remove_stale_cgroups(parent)
            try:
                for folder in folders:
                    folder.mkdir()
                    self.folders.append(folder)
                self._write_limits(kind)
                self.kind = kind
                break
            except OSError:
                self.close()
                self.folders = []

    def _write_limits(self, kind: str) -> None:
        for folder in self.folders:
            if (folder / "pids.max").exists():
                (folder / "pids.max").write_text(str(self.pids))
            if self.memory_bytes > 0 and kind == "cgroup v2" and (folder / "memory.max").exists():
                (folder / "memory.max").write_text(str(self.memory_bytes))
                if (folder / "memory.swap.max").exists():
                    (folder / "memory.swap.max").write_text("0")
            elif self.memory_bytes > 0 and (folder / "memory.limit_in_bytes").exists():
                (folder / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        if not any((f / "pids.max").exists() for f in self.folders):
            raise OSError("no pids controller")

    @property
    def described(self) -> str:
        memory = f"{self.memory_bytes / 2**30:g} GiB" if self.memory_bytes > 0 else "no cap"
        if self.kind != "rlimits":
            return (
                f"{self.kind}: at most {self.pids} processes and threads, {memory} of memory for the whole "
                f"submission; files up to {FILE_BYTES >> 20} MiB"
            )
        processes = (
            "no cap on processes (root is exempt from RLIMIT_NPROC)"
            if os.geteuid() == 0
            else (f"at most {self.pids} processes and threads (RLIMIT_NPROC)")
        )
        return f"rlimits: {processes}, {memory} of address space per process; files up to {FILE_BYTES >> 20} MiB"

    def wrap(self, args: list[str]) -> list[str]:
        """``args`` (a ``bwrap`` command line) started inside this submission's control groups, if any."""
        if not self.folders:
            return list(args)
        joins = " && ".join(f"echo $$ > {shlex.quote(str(f / 'cgroup.procs'))}" for f in self.folders)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *args]

    def inside(self, args: list[str]) -> list[str]:
        """``args`` run, inside the sandbox, with the per-process limits set first."""
        nproc = 0 if self.folders else self.pids
        return [sys.executable, "-c", _LIMITER, str(nproc), str(FILE_BYTES), *args]

    def close(self) -> None:
        """Kill whatever is left in the control groups and remove them."""
        for folder in reversed(self.folders):
            _remove_cgroup(folder)
        self.folders = []


_CGROUP_PREFIX = "course-utils-grading-"


def _remove_cgroup(folder: Path) -> None:
    """Kill every process in a control group, then remove it."""
    for _ in range(50):
        try:
            pids = (folder / "cgroup.procs").read_text().split()
        except OSError:
            break
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), 9)
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_stale_cgroups(parent: Path) -> None:
    """Remove the control groups of judges that were killed before they could remove their own."""
    with contextlib.suppress(OSError):
        for folder in parent.glob(f"{_CGROUP_PREFIX}*"):
            owner = folder.name[len(_CGROUP_PREFIX) :].split("-")[0]
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:
                _remove_cgroup(folder)
            except (ValueError, OSError):
                continue


def _cgroup_folders(name: str):
    """(kind, folders to make) for each way to make a control group here, the preferred first."""
    own = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path.lstrip("/")
    if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:  # the unified hierarchy (v2)
        yield "cgroup v2", [CGROUP_ROOT / own[""] / name]
    if (CGROUP_ROOT / "pids" / "cgroup.procs").exists():
        folders = [CGROUP_ROOT / "pids" / own.get("pids", "") / name]
        if (CGROUP_ROOT / "memory" / "cgroup.procs").exists():
            folders.append(CGROUP_ROOT / "memory" / own.get("memory", "") / name)
        yield "cgroup v1", folders
