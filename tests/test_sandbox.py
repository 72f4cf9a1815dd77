"""A confined submission cannot read, write, reach or outlive what it must not (course_utils.sandbox).

One hostile notebook tries each attack in its own cell and prints what happened;
the test then checks the host: nothing planted, nothing left running.
"""

import os
import shutil
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import course_utils
from course_utils.grading import cli, exercise, sandbox, workers

# Skipped only where bubblewrap is not installed (make test installs it where it may): installed but
# refused, the tests fail with the reason.
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None or not sys.platform.startswith("linux"),
    reason="bubblewrap is not installed (apt-get install bubblewrap)",
)


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources]
    return nb


def printed(executed):
    return "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def attempt(label, code):
    """A cell that runs ``code`` and prints ``label: done`` or ``label: refused (<error>)``."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    return (
        f"try:\n{body}\n    print({label!r} + ': done')\n"
        f"except Exception as e:\n    print({label!r} + ': refused', type(e).__name__)"
    )


@pytest.fixture(scope="module")
def hostile_run(root, tmp_path_factory):
    host = tmp_path_factory.mktemp("host")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    # A service's socket where services keep them: a read-only mount would still let a process connect to it.
    service = (Path("/run") if os.access("/run", os.W_OK) else host) / f"course-test-{os.getpid()}.sock"
    unix_listener = socket.socket(socket.AF_UNIX)
    unix_listener.bind(str(service))
    unix_listener.listen()
    os.environ["COURSE_TEST_SECRET"] = "instructor-only"
    package = Path(course_utils.__file__).resolve().parent
    home = Path.home()
    cells = [
        "import os, socket, subprocess, sys, pathlib\nimport course_utils\n"
        "repo = pathlib.Path(course_utils.__file__).resolve().parents[1]",
        attempt("read solutions", "open(repo / 'solutions' / 'week1_exercise.py').read()"),
        attempt("read git history", "os.listdir(repo / '.git')"),
        attempt("rewrite the course", f"open({str(package / 'checks.py')!r}, 'a').write('# planted')"),
        attempt("write home", f"open({str(home / 'planted-by-student')!r}, 'w').write('x')"),
        attempt("write host tmp", f"open({str(host / 'planted')!r}, 'w').write('x')"),
        attempt("write scratch", "open('mine.txt', 'w').write('x')"),
        attempt("reach the host", f"socket.create_connection(('127.0.0.1', {port}), timeout=3)"),
        attempt("reach the internet", "socket.create_connection(('1.1.1.1', 53), timeout=3)"),
        attempt("reach a host service's socket", f"socket.socket(socket.AF_UNIX).connect({str(service)!r})"),
        "print('processes seen:', sum(p.isdigit() for p in os.listdir('/proc')))",
        "print('secret seen:', os.environ.get('COURSE_TEST_SECRET'))",
        "subprocess.Popen(['sleep', '3333.25'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '3333.5'])\nprint('daemons started')",
    ]
    try:
        status, detail, executed = workers.run_notebook(
            notebook(*cells), workers.Settings(cell_timeout=30, notebook_timeout=120, hide=(root,))
        )
    finally:
        listener.close()
        unix_listener.close()
        service.unlink()
        del os.environ["COURSE_TEST_SECRET"]
    return status, detail, executed, host, package, home


@needs_bwrap
def test_a_confined_notebook_runs_and_writes_only_its_scratch(hostile_run):
    status, detail, executed, *_ = hostile_run
    assert status == "graded", detail
    assert "write scratch: done" in printed(executed)


@needs_bwrap
@pytest.mark.parametrize(
    "attack",
    [
        "read solutions",
        "read git history",
        "rewrite the course",
        "write home",
        "write host tmp",
        "reach the host",
        "reach the internet",
        "reach a host service's socket",
    ],
)
def test_each_attack_is_refused(hostile_run, attack):
    text = printed(hostile_run[2])
    assert f"{attack}: refused" in text, text


@needs_bwrap
def test_nothing_was_planted_on_the_host(hostile_run, root):
    _, _, _, host, package, home = hostile_run
    assert not (host / "planted").exists()
    assert not (home / "planted-by-student").exists()
    assert "# planted" not in (package / "checks.py").read_text()


@needs_bwrap
def test_the_notebook_sees_only_its_own_processes_and_no_instructor_variables(hostile_run):
    text = printed(hostile_run[2])
    seen = int(text.split("processes seen:")[1].split()[0])
    assert seen < 10, text
    assert "secret seen: None" in text


@needs_bwrap
def test_nothing_it_started_outlives_it(hostile_run):
    time.sleep(1)
    left = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and p.info["cmdline"][:1] == ["sleep"] and p.info["cmdline"][1:2][0].startswith("3333.")
    ]
    assert "daemons started" in printed(hostile_run[2])
    assert left == []


@needs_bwrap
def test_its_parent_is_out_of_reach():
    """The kernel's parent is the namespace's init, which ignores the signal: the grader (the judge) lives on."""
    status, detail, executed = workers.run_notebook(
        notebook(
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('parent', os.getppid())",
            "print('still running')",
        ),
        workers.Settings(cell_timeout=30, notebook_timeout=60),
    )
    assert status == "graded", detail
    assert "parent 1\n" in printed(executed) and "still running" in printed(executed)


def test_an_impossible_sandbox_is_refused_with_the_reason(root, tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "unavailable", lambda: "bubblewrap (bwrap) is not installed")
    (tmp_path / "in").mkdir()
    with pytest.raises(exercise.GradingError, match="bwrap.*--no-isolation"):
        cli.grade("week1_exercise", tmp_path / "in", tmp_path / "out", root=root, progress=False)


def test_the_probe_names_a_missing_bubblewrap(monkeypatch):
    sandbox.unavailable.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        assert "apt-get install bubblewrap" in sandbox.unavailable()
    finally:
        sandbox.unavailable.cache_clear()


def test_the_private_tmp_is_mounted_before_what_is_shown_again(tmp_path):
    """A course cloned under /tmp (as CI does) must stay visible: /tmp's tmpfs comes before the re-binds."""
    line = sandbox.command(["true"], tmp_path, hide=[])
    pairs = list(zip(line, line[1:]))
    private_tmp = pairs.index(("--tmpfs", "/tmp"))
    shown = [k for k, (option, _) in enumerate(pairs) if option == "--ro-bind"][1:]  # after "--ro-bind / /"
    assert shown and private_tmp < min(shown)


def test_the_hosts_temporary_folder_is_hidden_wherever_tmpdir_points(tmp_path, monkeypatch):
    """The grader's scratch folders (other submissions', the graded notebook with its hidden tests) live there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    line = sandbox.command(["true"], tmp_path, hide=[])
    assert ("--tmpfs", str(elsewhere)) in list(zip(line, line[1:]))
