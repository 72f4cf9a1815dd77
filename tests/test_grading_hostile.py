"""One grading run over hostile and odd submissions of a tiny exercise: each gets exactly its points and status,
the host and the other students' results are untouched, and the gradebook lists everyone.

The exercise is made up here (no TensorFlow), so the run takes seconds; the week 1 suite in test_grading.py
covers loops, huge outputs, broken files and an interrupted run on a real exercise.
"""

import contextlib
import csv
import hashlib
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

import course_utils
from course_utils import build
from course_utils.grading import cli, limits, reports, sandbox, workers

SOLUTION = """\
# %% tags=["parameters"]
PROFILE = None

# %%
import numpy as np
from course_utils.checks import check_close, passed

# %% [markdown]
# Write `double(x)`: twice the array `x`.

# %%
def double(x):
    ### BEGIN SOLUTION
    return 2 * np.asarray(x, dtype=float)
    ### END SOLUTION

# %%
# CHECK double points=2
def twice(x):
    return [2 * v for v in x]


check_close(double([1, 2]), twice([1, 2]), "double")
passed("double")

# %%
### BEGIN HIDDEN TESTS
# CHECK double_hidden points=1
check_close(double(np.arange(5.0)), twice(np.arange(5.0)), "double (hidden)")
### END HIDDEN TESTS
"""
ANSWER = "def double(x):\n    return 2 * np.asarray(x, dtype=float)\n"

SABOTEUR = (
    ANSWER
    + """
import os, pathlib, subprocess
planted = []
for status in pathlib.Path("/proc").glob("[0-9]*/cmdline"):  # look for the grader's --out folder
    try:
        words = status.read_bytes().split(b"\\0")
    except OSError:
        continue
    for word in words:
        folder = pathlib.Path(word.decode(errors="ignore"))
        if folder.is_absolute() and (folder / "results").is_dir():
            for result in (folder / "results").glob("*.json"):
                try:
                    result.write_text("{}")
                    planted.append(str(result))
                except OSError:
                    pass
for target in [pathlib.Path(HOME) / "planted", pathlib.Path(HOST_TMP) / "planted",
               pathlib.Path(course_utils_checks)]:
    try:
        with open(target, "a") as handle:
            handle.write("# planted\\n")
        planted.append(str(target))
    except OSError:
        pass
subprocess.Popen(["sh", "-c", "sleep 4; echo late > " + HOST_TMP + "/late"], start_new_session=True)
print("planted:", planted)
"""
)

# Replaces the kernel's side of the judge's protocol: every reply also binds the judge's helpers to a no-op
# of the kernel's, rebinds the data the check holds, and claims that every call changed its first argument.
FORGES_REPLIES = """
import json, os, course_utils.grading.wire as _wire
_real_serve = _wire.serve
def _forged(namespace, requests, responses):
    _real_serve(namespace, requests, responses)
    path = os.path.join(responses, "response.json")
    reply = json.load(open(path))
    _wire._HANDLES.append(lambda *args, **kwargs: None)
    no_op = {"handle": len(_wire._HANDLES) - 1, "name": "no_op"}
    reply["values"].update(check_close=no_op, passed=no_op, twice=no_op, np=no_op, changed0=0)
    reply.update(ok=True, changed=[[True, 0]])
    json.dump(reply, open(path, "w"))
_wire.serve = _forged
"""
# Between requests, swaps the replies' folder for a link to one host folder after another (the grader's own
# clean-up used to empty whatever it pointed to), and puts the real one back while it answers.
SWAPS_REPLIES_FOLDER = """
import os, course_utils.grading.wire as _wire
_real_serve, _folder, _requests = _wire.serve, "/tmp/grading/.grader", []
def _swapping(namespace, requests, responses):
    if os.path.islink(_folder):
        os.unlink(_folder)
        os.rename(_folder + "-real", _folder)
    _real_serve(namespace, requests, responses)
    os.rename(_folder, _folder + "-real")
    os.symlink(DECOYS[len(_requests) % len(DECOYS)], _folder)
    _requests.append(1)
_wire.serve = _swapping
"""
# Leaves a read-only folder holding links to host folders in its scratch folder (CVE-2023-6597: Python 3.11.7's
# TemporaryDirectory clean-up made the link's target 0700 when the grader ran as an ordinary user).
LEAVES_LINKS = """
import os
os.makedirs("/tmp/grading/trap/inner")
for n, target in enumerate(DECOYS):
    os.symlink(target, f"/tmp/grading/trap/inner/link{n}")
os.chmod("/tmp/grading/trap/inner", 0o500)
os.chmod("/tmp/grading/trap", 0o500)
"""
# Forks sleepers until refused: the cap on processes holds for the whole tree (the host's table is not filled).
FORKS = """
import os, time
started = 0
for _ in range(2000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    started += 1
print("sleepers started:", started)
"""
# Three children each hold 1.6 GiB: together above the 4 GiB the run gives a submission, each one below it.
HOARDS_IN_CHILDREN = """
import os, signal, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        hoard = bytearray(int(1.6 * 2**30))
        hoard[::4096] = b"x" * len(hoard[::4096])
        time.sleep(5)
        os._exit(0)
    children.append(pid)
killed = sum(os.waitpid(pid, 0)[1] == signal.SIGKILL for pid in children)
print("children killed:", killed)
"""
WRONG = "def double(x):\n    return None\n"
# Each tries to earn points for a wrong answer by acting on its own interpreter; the checks run in the judge.
FORGERS = {
    "input transformer.ipynb": "def _skip_checks(lines):\n"
    "    return ['pass\\n'] if any('check' in l for l in lines) else lines\n"
    "get_ipython().input_transformers_post.append(_skip_checks)\n",
    "AST transformer and events.ipynb": "import ast\nclass Empty(ast.NodeTransformer):\n"
    "    def visit_Module(self, node):\n        return ast.Module([], [])\n"
    "get_ipython().ast_transformers.append(Empty())\n"
    "get_ipython().events.register('post_run_cell', lambda r: print('passed'))\n",
    "trace function.ipynb": "import sys\ndef _tracer(frame, event, arg):\n"
    "    if event == 'exception' and arg[0] is AssertionError:\n"
    "        frame.f_globals['__builtins__']['AssertionError'] = type('Nothing', (Exception,), {})\n"
    "    return _tracer\nsys.settrace(_tracer)\n"
    "import inspect\ncaller = inspect.currentframe().f_back\n",
    "patches NumPy, builtins and stdout.ipynb": "import builtins, sys\nimport numpy as np\n"
    "import course_utils.checks as c\n"
    "np.allclose = lambda *a, **k: True\nnp.testing.assert_allclose = print\n"
    "c.check_close = c.check = c.passed = lambda *a, **k: None\n"
    "builtins.AssertionError = KeyboardInterrupt\n"
    "sys.stdout.write('all checks passed\\n')\n",
    "returns an object equal to anything.ipynb": "class Anything:\n    def __eq__(self, other):\n        return True\n"
    "    __array_priority__ = 1000\n"
    "def double(x):\n    return Anything()\n",
    # The hidden test compares with the visible check's helper `twice`: this makes it the wrong answer itself.
    "rebinds the check's helper.ipynb": "def double(x):\n    return np.zeros(len(x))\n"
    "get_ipython().events.register('post_run_cell', "
    "lambda result: globals().update(twice=double))\n",
}

# Expected points per question (double, double_hidden) and status, by file name.
EXPECTED = {
    **{name: ([0, 0], "graded") for name in FORGERS},
    "correct.ipynb": ([2, 1], "graded"),
    "blank.ipynb": ([0, 0], "graded"),
    "saboteur.ipynb": ([2, 1], "graded"),
    "exits.ipynb": ([0, 0], "crashed"),
    "kills its parent.ipynb": ([2, 1], "graded"),  # confined, its parent is the namespace's init: nothing happens
    "memory bomb.ipynb": ([0, 0], "graded"),
    "nbformat 3.ipynb": ([2, 1], "graded"),
    "saved on Colab.ipynb": ([2, 1], "graded"),
    "Zoë Ünal (2).ipynb": ([2, 1], "graded"),
    "broken JSON.ipynb": ([0, 0], "invalid"),
    "nested too deeply.ipynb": ([0, 0], "graded"),  # Python's parser gives up; the grader does not
    "Zo\\xebl, a Latin-1 name.ipynb": ([2, 1], "graded"),  # from a zip made elsewhere: not UTF-8
    "forges its replies.ipynb": ([0, 0], "graded"),
    "forks 2000 sleepers.ipynb": ([2, 1], "graded"),
    "hoards memory in children.ipynb": ([2, 1], "graded"),
    "swaps the replies folder.ipynb": ([2, 1], "graded"),
    "leaves links in scratch.ipynb": ([2, 1], "graded"),
    "huge cell.ipynb": ([0, 0], "refused"),
    "linked.ipynb": ([0, 0], "refused"),  # a link to the private solution file
    "folder.ipynb": ([0, 0], "refused"),
    '\'=HYPERLINK("http:\\\\evil.example","marks").ipynb': ([2, 1], "graded"),
    "\\x1b]0;owned\\x07 new\\nline.ipynb": ([2, 1], "graded"),  # escapes and a newline, shown as text
}
FORMULA_NAME = '=HYPERLINK("http:\\\\evil.example","marks").ipynb'
ESCAPE_NAME = "\x1b]0;owned\x07 new\nline.ipynb"
LATIN1_NAME = "Zo\xebl, a Latin-1 name.ipynb".encode("latin-1")


def handout(course):
    return nbformat.reads(build.generated_files(course)[Path("exercises/week9_exercise.ipynb")], as_version=4)


def filled(course, source):
    notebook = handout(course)
    blank = next(c for c in notebook.cells if c.cell_type == "code" and "is not filled in yet" in c.source)
    blank.source = source
    return notebook


@pytest.fixture(scope="module")
def graded(root, tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    for name in ("_config.yml", "pyproject.toml"):
        (course / name).write_bytes((root / name).read_bytes())
    (course / "solutions").mkdir()
    (course / "solutions" / "week9_exercise.py").write_text(SOLUTION)
    host_tmp = tmp_path_factory.mktemp("host_tmp")
    checks_file = Path(course_utils.__file__).with_name("checks.py")
    names = f"HOME = {str(Path.home())!r}\nHOST_TMP = {str(host_tmp)!r}\ncourse_utils_checks = {str(checks_file)!r}\n"
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    decoy = tmp_path_factory.mktemp("decoy")
    (decoy / "sub").mkdir()
    for k, where in enumerate((decoy, decoy / "sub")):
        (where / f"precious{k}.txt").write_text(f"keep me {k}\n")
    (out / "results").mkdir()
    decoys = [str(decoy), str(decoy / "sub"), str(out / "results"), str(folder), str(course / "solutions")]
    names += f"DECOYS = {decoys!r}\n"

    def write(name, notebook):
        (folder / name).write_text(nbformat.writes(notebook))

    write("correct.ipynb", filled(course, ANSWER))
    write("blank.ipynb", handout(course))
    write("saboteur.ipynb", filled(course, names + SABOTEUR))
    for name, attack in FORGERS.items():
        write(name, filled(course, attack + (WRONG if "def double" not in attack else "")))
    write("exits.ipynb", filled(course, "import os\nos._exit(3)\n" + ANSWER))
    write(
        "kills its parent.ipynb", filled(course, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + ANSWER)
    )
    write("memory bomb.ipynb", filled(course, "hoard = bytearray(64 * 2**30)\n" + ANSWER))
    (folder / "nbformat 3.ipynb").write_text(nbformat.writes(nbformat.convert(filled(course, ANSWER), 3), version=3))
    colab = filled(course, ANSWER)
    colab.metadata.update({"colab": {"provenance": [], "toc_visible": True}, "accelerator": "GPU"})
    for k, cell in enumerate(colab.cells):
        cell.metadata.update({"id": f"x{k}", "colab": {"base_uri": "https://localhost:8080/"}})
    write("saved on Colab.ipynb", colab)
    write("Zoë Ünal (2).ipynb", filled(course, ANSWER))
    text = nbformat.writes(filled(course, ANSWER))
    (folder / "broken JSON.ipynb").write_text(text[: len(text) // 2])
    write("nested too deeply.ipynb", filled(course, ANSWER + "x = " + "-" * 200_000 + "1\n"))
    (folder / os.fsdecode(LATIN1_NAME)).write_text(nbformat.writes(filled(course, ANSWER)))
    write("forges its replies.ipynb", filled(course, FORGES_REPLIES + WRONG))
    write("forks 2000 sleepers.ipynb", filled(course, FORKS + ANSWER))
    write("hoards memory in children.ipynb", filled(course, HOARDS_IN_CHILDREN + ANSWER))
    write("swaps the replies folder.ipynb", filled(course, names + SWAPS_REPLIES_FOLDER + ANSWER))
    write("leaves links in scratch.ipynb", filled(course, names + LEAVES_LINKS + ANSWER))
    write("huge cell.ipynb", filled(course, ANSWER + "# " + "x" * (limits.MAX_CELL_CHARS + 1) + "\n"))
    (folder / "linked.ipynb").symlink_to(course / "solutions" / "week9_exercise.py")
    (folder / "folder.ipynb").mkdir()
    write(FORMULA_NAME, filled(course, ANSWER))
    write(ESCAPE_NAME, filled(course, ANSWER))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}
    host = {"decoy": tree_state(decoy), "solutions": tree_state(course / "solutions")}
    checks_before = checks_file.read_bytes()
    # No submission here should reach a time limit (slow.ipynb below tests them): limits with room to spare keep
    # a loaded CI host from turning the children's 4.8 GiB of page touching into a timeout.
    settings = workers.Settings(
        profile="smoke", cell_timeout=90, notebook_timeout=240, memory_gb=4, isolate=sandbox.unavailable() is None
    )
    cli.grade("week9_exercise", folder, out, root=course, workers=2, settings=settings, progress=False)
    return dict(
        folder=folder,
        out=out,
        before=before,
        host_tmp=host_tmp,
        checks_file=checks_file,
        checks_before=checks_before,
        isolated=settings.isolate,
        host=host,
        decoy=decoy,
        course=course,
    )


def tree_state(folder: Path) -> dict:
    """Every entry under ``folder``: its mode, and its bytes for a file (links not followed)."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_mode, p.read_bytes() if p.is_file() else None)
        for p in sorted([folder, *folder.rglob("*")])
    }


def gradebook(out):
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_submission_gets_exactly_its_points_and_status(graded, name):
    row = gradebook(graded["out"])[name]
    points, status = EXPECTED[name]
    if name == "kills its parent.ipynb" and not graded["isolated"]:
        points, status = [0, 0], "crashed"  # unconfined, its parent is the judge
    assert [float(row["double"]), float(row["double_hidden"])] == points, row
    assert row["status"] == status, row


def test_the_gradebook_lists_every_submission_and_only_the_grader_wrote_results(graded):
    assert set(gradebook(graded["out"])) == set(EXPECTED)
    results = sorted((graded["out"] / "results").glob("*.json"))
    assert len(results) == len(EXPECTED)
    assert all(
        reports.csv_cell(reports.printable(json.loads(p.read_text()).get("file", ""))) in EXPECTED for p in results
    )  # none emptied by the saboteur


def test_submissions_stay_byte_identical(graded):
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in graded["folder"].iterdir() if p.is_file()}
    assert after == graded["before"]
    assert (graded["folder"] / "linked.ipynb").is_symlink() and (graded["folder"] / "folder.ipynb").is_dir()


def test_links_swapped_into_the_protocol_and_left_in_scratch_change_nothing_on_the_host(graded):
    """The replies' folder swapped for links to the decoy, the results, the submissions and the private solutions
    between requests, and read-only folders of links left for the clean-up: every one byte-identical, modes too."""
    assert tree_state(graded["decoy"]) == graded["host"]["decoy"]
    assert tree_state(graded["course"] / "solutions") == graded["host"]["solutions"]


def printed(graded, name):
    executed = nbformat.read(graded["out"] / "results" / f"{reports.result_key(name)}.ipynb", 4)
    return "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_the_whole_process_tree_is_capped(graded):
    """Processes: fewer sleepers than the cap, wherever the cap holds. Memory together: a child killed where a
    control group caps the submission (rlimits cap each process only, as book/grading_sandbox.md says)."""
    if not graded["isolated"]:
        pytest.skip("bubblewrap is not installed: unconfined, nothing caps the tree")
    limits = sandbox.TreeLimits(1 << 30)
    kind = limits.kind
    limits.close()
    started = int(printed(graded, "forks 2000 sleepers.ipynb").split("sleepers started:")[1].split()[0])
    if kind == "rlimits" and os.geteuid() == 0:
        pytest.skip(f"no control group here and root is exempt from RLIMIT_NPROC: {started} sleepers started")
    assert started < sandbox.PIDS_MAX
    killed = int(printed(graded, "hoards memory in children.ipynb").split("children killed:")[1].split()[0])
    assert killed >= 1 if kind != "rlimits" else killed == 0


def test_a_refused_file_is_listed_with_why_and_never_read(graded):
    feedback = {p.name: p.read_text() for p in (graded["out"] / "feedback").glob("*.md")}
    linked = next(text for name, text in feedback.items() if name.startswith("linked"))
    assert "symbolic link" in linked and "BEGIN SOLUTION" not in linked and "double" in linked
    assert "not a regular file" in next(text for name, text in feedback.items() if name.startswith("folder"))
    huge = next(text for name, text in feedback.items() if name.startswith("huge"))
    assert f"the grader reads cells up to {limits.MAX_CELL_CHARS:,}" in huge


def test_file_names_reach_the_gradebook_and_feedback_as_plain_text(graded):
    text = (graded["out"] / "gradebook.csv").read_text(encoding="utf-8")
    with open(graded["out"] / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == len(EXPECTED) + 1  # one line a row: no name broke a line
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert not any(ord(c) < 32 and c not in "\r\n" for c in text)
    for path in (graded["out"] / "feedback").glob("*.md"):
        content = path.read_text(encoding="utf-8")
        assert "\x1b" not in content and "\x07" not in content, path.name


def test_the_saboteur_touched_nothing_outside_its_scratch_folder(graded):
    if not graded["isolated"]:
        pytest.skip("bubblewrap is not installed: unconfined, the saboteur's writes would land")
    assert graded["checks_file"].read_bytes() == graded["checks_before"]
    assert not (Path.home() / "planted").exists()
    assert list(graded["host_tmp"].iterdir()) == []  # neither its file nor its late background write
    executed = nbformat.read(graded["out"] / "results" / f"{reports.result_key('saboteur.ipynb')}.ipynb", 4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "planted: []" in printed


def test_a_grader_killed_mid_run_leaves_nothing_running_and_the_next_run_completes(root, tmp_path):
    """SIGKILL gives the grader no chance to clean up: its judges and their kernels must die with it."""
    import signal
    import subprocess
    import sys

    import psutil

    if sandbox.unavailable() is not None:
        pytest.skip("bubblewrap is not installed: unconfined kernels do not die with their judge")
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    for name in ("_config.yml", "pyproject.toml"):
        (course / name).write_bytes((root / name).read_bytes())
    (course / "solutions" / "week9_exercise.py").write_text(SOLUTION)
    folder, out = tmp_path / "submissions", tmp_path / "grades"
    folder.mkdir()
    (folder / "slow.ipynb").write_text(nbformat.writes(filled(course, ANSWER + "import time\ntime.sleep(30)\n")))
    (folder / "quick.ipynb").write_text(nbformat.writes(filled(course, ANSWER)))
    command = [
        sys.executable,
        "-m",
        "course_utils.grading",
        "9",
        str(folder),
        "--out",
        str(out),
        "--root",
        str(course),
        "--profile",
        "smoke",
        "--timeout",
        "60",
    ]
    grader = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline, started = time.monotonic() + 90, []
    while time.monotonic() < deadline and not any("ipykernel" in " ".join(p.cmdline()) for p in started):
        time.sleep(0.5)
        with contextlib.suppress(psutil.Error):
            started = psutil.Process(grader.pid).children(recursive=True)
    assert started, "the grader started no kernel within 90 s"
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    rows = gradebook(out)
    assert {name: (row["double"], row["status"]) for name, row in rows.items()} == {
        "slow.ipynb": ("2", "graded"),
        "quick.ipynb": ("2", "graded"),
    }


def test_a_judge_dies_with_the_grader_that_started_it(tmp_path):
    """judge._die_with_grader: the kernel kills the judge when its grader ends, whatever signal ended it."""
    import signal
    import subprocess
    import sys

    import psutil

    from course_utils.grading import judge

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    pid_file = tmp_path / "judge.pid"
    stand_in_judge = (
        "import os, time; from course_utils.grading import judge; judge._die_with_grader(); "
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    stand_in_grader = (
        "import os, subprocess, sys, time; "
        f"env = {{**os.environ, {judge.GRADER_PID!r}: str(os.getpid())}}; "
        f"subprocess.Popen([sys.executable, '-c', {stand_in_judge!r}], env=env, start_new_session=True); "
        "time.sleep(120)"
    )
    grader = subprocess.Popen([sys.executable, "-c", stand_in_grader])
    try:
        for _ in range(300):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        judge_process = psutil.Process(int(pid_file.read_text()))
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    gone, alive = psutil.wait_procs([judge_process], timeout=10)
    assert alive == [], "the judge outlived its grader"
