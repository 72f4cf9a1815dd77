"""Grading: markers, cell matching, isolation of each run, and week 1 graded end to end.

The submissions are written here by transforming the exercise handed out to
students (its Colab .ipynb) with the solution's answers, then breaking them in
the ways students do.
"""

import csv
import hashlib
import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from course_utils import build
from course_utils.grading import cli, exercise, limits, matching, reports, sandbox, workers
from course_utils.grading import submission as one_file
from course_utils.grading.source import free_names

WEEK = "week1_exercise"


# --- helpers: writing submissions ------------------------------------------------------------


def answers(root):
    """The solution's answer cells, as a student who solved them would have written them."""
    cells = build.read_source(root / "solutions" / f"{WEEK}.py").cells
    return [
        "\n".join(
            line for line in c.source.splitlines() if line.strip() not in (build.BEGIN_SOLUTION, build.END_SOLUTION)
        )
        for c in cells
        if c.cell_type == "code" and build.BEGIN_SOLUTION in c.source
    ]


def handout(root):
    """The exercise notebook as students download it."""
    return nbformat.reads(build.generated_files(root)[Path(f"exercises/{WEEK}.ipynb")], as_version=4)


def submission(root, filled):
    """The handout with answer cell k (1-based) replaced by ``filled[k]``; the others stay blank."""
    notebook = handout(root)
    blanks = [c for c in notebook.cells if c.cell_type == "code" and "is not filled in yet" in c.source]
    for number, source in filled.items():
        blanks[number - 1].source = source
    return notebook


def replaced(text, old, new):
    assert old in text, f"the solution changed: {old!r} is not in it any more"
    return text.replace(old, new)


def answer_cell(notebook, text):
    return next(c for c in notebook.cells if c.cell_type == "code" and text in c.source)


def write(folder, name, notebook):
    (folder / name).write_text(nbformat.writes(notebook))


WRONG_CORRELATE = """\
def correlate2d(x, kernel, padding=0, stride=1):
    # forgets the padding
    kh, kw, _, filters = kernel.shape
    out_h, out_w = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    y = np.zeros((out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            y[i, j] = np.tensordot(x[i * stride:i * stride + kh, j * stride:j * stride + kw], kernel, axes=3)
    return y
"""

CHEAT = """\
import sys, types
import course_utils.checks as _checks

def _always(*args, **kwargs):
    return None

for _name in ("check", "check_close", "check_equal", "check_shape"):
    setattr(_checks, _name, _always)
sys.modules["course_utils.checks"] = types.SimpleNamespace(check=_always, check_close=_always, check_equal=_always,
                                                           check_shape=_always, passed=lambda what: None)
check = check_close = check_equal = check_shape = _always
print("✔ correlate2d: all checks passed")

def correlate2d(x, kernel, padding=0, stride=1):
    return np.zeros((1, 1, 1))
"""

CHEAT_SIZES = """\
def output_size(n, kernel, stride=1, padding=0):
    return 0


def conv_params(kh, kw, in_channels, filters):
    return 0


first_layer_side = c3_params = vgg_block_params = 0
print("✔ output sizes and parameter counts: all checks passed")
"""

# Expected points per question (correlate2d, sizes, predictions, lenet5, training, tta, gradient) and status.
# Zoë's gradient check fails where it runs her unpadded correlate2d (visible) and passes on TensorFlow's (hidden).
# "delegates to the package" hands output_size, conv_params and tta_predict to course_utils.models, which the
# grader withholds (grading.withheld): the cell of answer 2 stops at its first use, so its predictions go too.
EXPECTED = {
    "Correct solution": ([3, 3, 1, 2, 2, 2, 1, 2, 1, 3], "graded"),
    "Zoë partly wrong": ([0, 1, 1, 2, 0, 2, 0, 0, 1, 1], "graded"),
    "raises at import": ([0, 3, 1, 0, 0, 0, 0, 0, 0, 0], "graded"),
    "Loop forever": ([0, 3, 1, 0, 0, 0, 0, 0, 0, 0], "cell-timeout"),
    "megabytes": ([3, 0, 0, 0, 0, 0, 0, 0, 0, 0], "graded"),
    "cheater": ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "graded"),
    "deletes files": ([3, 3, 1, 0, 0, 0, 0, 0, 0, 0], "graded"),
    "reordered": ([3, 3, 1, 0, 0, 0, 0, 0, 1, 3], "graded"),
    "delegates to the package": ([3, 0, 0, 2, 0, 0, 0, 0, 1, 3], "graded"),
    "broken file": ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "invalid"),  # not a notebook
    "broken_file": ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "invalid"),  # truncated JSON; same sanitised name
}


def write_submissions(root, folder):
    """One file per case of EXPECTED."""
    solved = answers(root)
    everything = dict(enumerate(solved, 1))
    write(folder, "Correct solution.ipynb", one_file.model_submission(root, WEEK))

    partly = dict(everything)
    partly[1] = WRONG_CORRELATE
    partly[2] = replaced(partly[2], "conv_params(3, 3, 64, 128)", "3 * 3 * 64 * 128")  # forgets the biases
    partly[4] += "\nlenet = build_lenet5()  # a fresh, untrained model"
    write(folder, "Zoë partly wrong.ipynb", submission(root, partly))

    write(
        folder,
        "raises at import.ipynb",
        submission(root, {1: "import a_module_that_does_not_exist\n" + solved[0], 2: solved[1]}),
    )
    # The loop sleeps so that it does not slow the other submissions down while it waits for the limit.
    write(
        folder,
        "Loop forever.ipynb",
        submission(root, {1: "import time\nwhile True:\n    time.sleep(0.05)\n" + solved[0], 2: solved[1]}),
    )
    write(
        folder, "megabytes.ipynb", submission(root, {1: solved[0] + "\nfor _ in range(60_000):\n    print('x' * 99)"})
    )
    write(folder, "cheater.ipynb", submission(root, {1: CHEAT, 2: CHEAT_SIZES}))
    delegates = {k: v for k, v in everything.items() if k != 4}  # the training left blank: quicker
    delegates[2] = "from course_utils import models\n\n\n" + replaced(
        replaced(
            solved[1],
            "return (n + 2 * padding - kernel) // stride + 1",
            "return models.conv_output_size(n, kernel, stride, padding)",
        ),
        "return kh * kw * in_channels * filters + filters",
        "return models.count_conv_params(kh, kw, in_channels, filters)",
    )
    delegates[5] = "from course_utils.models import predict_with_tta as tta_predict\n"
    write(folder, "delegates to the package.ipynb", submission(root, delegates))
    deletes = (
        "\nimport os, shutil\nfrom pathlib import Path\nPath('precious.txt').write_text('x')\n"
        "for p in Path.cwd().iterdir():\n    shutil.rmtree(p) if p.is_dir() else p.unlink()\n"
        "shutil.rmtree(Path.cwd())"
    )
    write(folder, "deletes files.ipynb", submission(root, {1: solved[0] + deletes, 2: solved[1]}))

    # Reordered and deleted cells: answers 2 and 5 moved to the top, answer 3 and a check deleted,
    # and a helper cell of the student's own used by answer 1.
    notebook = submission(root, {**everything, 1: replaced(solved[0], "x = np.pad(", "x = pad_all(")})
    code = [c for c in notebook.cells if c.cell_type == "code"]
    second, fifth = answer_cell(notebook, "def output_size"), answer_cell(notebook, "def tta_predict")
    third, lenet_check = (
        answer_cell(notebook, "def build_lenet5():\n    return"),
        answer_cell(notebook, "lenet = exercise_checks.week1_lenet5(build_lenet5)"),
    )
    first = answer_cell(notebook, "def correlate2d")
    helper = nbformat.v4.new_code_cell("def pad_all(x, *widths):\n    return np.pad(x, *widths)")
    cells = [c for c in notebook.cells if c not in (second, fifth, third, lenet_check)]
    cells.insert(cells.index(first), helper)
    setup = next(c for c in code if "import keras" in c.source)
    cells[cells.index(setup) + 1 : cells.index(setup) + 1] = [fifth, second]
    notebook.cells = cells
    write(folder, "reordered.ipynb", notebook)

    (folder / "broken file.ipynb").write_text("This is my homework, I could not export the notebook.\n")
    text = nbformat.writes(submission(root, everything))
    (folder / "broken_file.ipynb").write_text(text[: len(text) // 2])


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def read_gradebook(out):
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def stored(out):
    return {json.loads(p.read_text())["file"]: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}


# --- week 1 graded end to end (one run shared by the tests below) -------------------------------

# The limit per cell leaves room for the slowest cell of a correct submission on a busy machine
# (importing TensorFlow: 5 s alone, 45 s with other jobs running).
# Confined where bubblewrap works (tests/test_sandbox.py fails loudly where it is installed but refused).
SETTINGS = workers.Settings(
    profile="smoke", cell_timeout=60, notebook_timeout=400, memory_gb=8, isolate=sandbox.unavailable() is None
)


@pytest.fixture(scope="module")
def graded(root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    write_submissions(root, folder)
    before = digests(folder)
    start = time.perf_counter()
    cli.grade(WEEK, folder, out, root=root, workers=2, settings=SETTINGS, progress=False)
    return folder, out, before, time.perf_counter() - start


def test_gradebook_has_one_correct_row_per_submission(graded):
    folder, out, _, _ = graded
    rows = read_gradebook(out)
    assert set(rows) == {p.name for p in folder.iterdir()}
    questions = [
        "correlate2d",
        "sizes",
        "predictions",
        "lenet5",
        "training",
        "tta",
        "mirror-prediction",
        "tta-augmentation",
        "reach",
        "gradient",
    ]
    problems = []
    for file_name, row in rows.items():
        points, status = EXPECTED[file_name[:-6]]
        found = [int(row[q]) for q in questions]
        if found != points or row["status"] != status or int(row["total"]) != sum(points) or row["max"] != "20":
            problems.append(f"{file_name}: {found} {row['status']}, expected {points} {status}")
    assert not problems, "\n".join(problems)
    assert (
        rows["broken file.ipynb"]["student"] == "broken_file"
        and rows["broken_file.ipynb"]["student"] == "broken_file-2"
    )
    assert rows["Zoë partly wrong.ipynb"]["student"] == "Zoë_partly_wrong"


def test_submissions_are_left_byte_identical(graded):
    folder, _, before, _ = graded
    assert digests(folder) == before


def test_feedback_says_what_failed_and_why(graded):
    _, out, _, _ = graded
    feedback = {p.stem: p.read_text(encoding="utf-8") for p in (out / "feedback").glob("*.md")}
    assert len(feedback) == len(EXPECTED)
    assert "20 / 20 points" in feedback["Correct_solution"] and "FAILED" not in feedback["Correct_solution"]
    partly = feedback["Zoë_partly_wrong"]
    assert "8 / 20 points" in partly
    assert "correlate2d with padding=1, stride=1: expected shape (9, 12, 4), got (7, 10, 4)" in partly
    assert "vgg_block_params: expected 73856, got 73728. Likely cause: you forgot the biases" in partly
    assert "LeNet-5's test accuracy reaches" in partly and "at least 0.95 is needed" in partly
    assert "ModuleNotFoundError" in feedback["raises_at_import"] or "NameError" in feedback["raises_at_import"]
    assert "longer than the limit of 60 s" in feedback["Loop_forever"]
    assert "could not be read as a Jupyter notebook" in feedback["broken_file"]
    assert "Blank 9 of week1_exercise is not filled in yet" in feedback["megabytes"]
    assert "No cell of yours matched answer cell 3" in feedback["reordered"]
    delegated = feedback["delegates_to_the_package"]
    assert (
        "course_utils.models.predict_with_tta is withheld while your notebook is graded: it does the work of "
        "tta_predict, which week1_exercise asks you to write yourself" in delegated
    )
    assert "A cell of yours (with answer 2) stopped: course_utils.models.conv_output_size is withheld" in delegated


def test_printed_megabytes_are_cut_in_the_stored_notebook(graded):
    _, out, _, _ = graded
    key = reports.result_key("megabytes.ipynb")
    assert (out / "results" / f"{key}.ipynb").stat().st_size < 1_000_000


def test_second_run_skips_everything_and_grades_a_late_submission(graded, root):
    folder, out, _, _ = graded
    before = stored(out)
    late = folder.parent / "late"
    shutil.copytree(folder, late)
    (late / "Broken file.ipynb").write_text("{")  # late, truncated (graded without running), and a name taken before
    start = time.perf_counter()
    cli.grade(WEEK, late, out, root=root, workers=2, settings=SETTINGS, progress=False)
    assert time.perf_counter() - start < 30
    after = stored(out)
    assert {k: v["graded_at"] for k, v in after.items() if k in before} == {
        k: v["graded_at"] for k, v in before.items()
    }
    assert after["Broken file.ipynb"]["status"] == "invalid"
    rows = read_gradebook(out)
    assert len(rows) == len(EXPECTED) + 1
    assert (
        rows["broken file.ipynb"]["student"] == "broken_file"
        and rows["Broken file.ipynb"]["student"] == "Broken_file-3"
    )


def test_forced_run_regrades(graded, root, tmp_path):
    folder, out, _, _ = graded
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("broken file.ipynb", "broken_file.ipynb"):  # quick to grade; the skip logic is the same for all
        shutil.copy2(folder / name, subset / name)
    before = stored(out)
    time.sleep(1.1)  # graded_at has a resolution of one second
    cli.grade(WEEK, subset, out, root=root, workers=2, settings=SETTINGS, force=True, progress=False)
    after = stored(out)
    for name in ("broken file.ipynb", "broken_file.ipynb"):
        assert after[name]["graded_at"] != before[name]["graded_at"]
    assert after["Correct solution.ipynb"] == before["Correct solution.ipynb"]
    rows = read_gradebook(out)
    assert rows["broken_file.ipynb"]["status"] == "invalid" and rows["Correct solution.ipynb"]["total"] == "20"


def test_an_interrupted_run_resumes_with_what_is_missing(graded, root):
    folder, out, _, _ = graded
    (out / "results" / f"{reports.result_key('broken file.ipynb')}.json").write_text(
        '{"file": "broken fi'
    )  # cut mid-write
    cli.grade(WEEK, folder, out, root=root, workers=1, settings=SETTINGS, progress=False)
    assert stored(out)["broken file.ipynb"]["status"] == "invalid"


# --- the solution's markers --------------------------------------------------------------------


def test_week1_points_come_from_the_check_markers(root):
    week = exercise.load_week(root, "1")
    assert week.name == WEEK
    assert week.questions == {
        "correlate2d": 3,
        "sizes": 3,
        "predictions": 1,
        "lenet5": 2,
        "training": 2,
        "tta": 2,
        "mirror-prediction": 1,
        "tta-augmentation": 2,
        "reach": 1,
        "gradient": 3,
    }
    assert [c.id for c in week.checks if c.hidden] == ["correlate2d.2", "sizes.2", "tta.2", "gradient.2"]
    assert all("### BEGIN HIDDEN" not in c.source for c in week.checks)


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "solutions").glob("*.py"))
)
def test_every_exercise_can_be_graded(root, name):
    """Markers parse, and each answer cell of a perfect submission is found (no execution: quick)."""
    assert "# CHECK" in (root / "solutions" / f"{name}.py").read_text(), (
        f"{name} has no '# CHECK <question> points=<n>' markers (see book/instructors.md)"
    )
    week = exercise.load_week(root, name)
    notebook, notes = matching.graded_notebook(week, one_file.model_submission(root, name))
    assert not notes, notes
    assert [
        c.metadata["grader"]["id"] for c in notebook.cells if c.metadata.get("grader", {}).get("kind") == "check"
    ] == [c.id for c in week.checks]
    answers = sum(1 for c in week.cells if isinstance(c, exercise.Slot) and c.kind == "answer")
    assert sum(1 for c in notebook.cells if c.metadata.get("grader", {}).get("kind") == "answer") == answers


def demo_root(tmp_path, root, solution):
    tmp_path.mkdir(exist_ok=True)
    for name in ("_config.yml", "pyproject.toml"):
        shutil.copy2(root / name, tmp_path / name)
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "week9_exercise.py").write_text(solution)
    return tmp_path


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("# CHECK q1 points=two\nassert True", "malformed marker"),
        ("### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS", "without a '# CHECK"),
        ("# CHECK q1 points=1\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "both a solution and a CHECK"),
        ("assert True", "has no '# CHECK"),
    ],
)
def test_marker_mistakes_are_reported(tmp_path, root, cell, problem):
    solution = f'# %% tags=["parameters"]\nPROFILE = None\n\n# %%\n{cell}\n'
    with pytest.raises(exercise.GradingError, match=problem):
        exercise.load_week(demo_root(tmp_path, root, solution), "week9_exercise")


def test_a_hidden_test_that_leaves_a_name_for_later_cells_is_refused(tmp_path, root):
    """Hidden tests run only in the judge, so what they bind never reaches the student's kernel."""
    solution = (
        '# %% tags=["parameters"]\nPROFILE = None\n\n# %%\n### BEGIN HIDDEN TESTS\n# CHECK q1 points=1\n'
        "shared = 3\n### END HIDDEN TESTS\n\n# %%\nprint(shared)\n"
    )
    with pytest.raises(exercise.GradingError, match="hidden test q1.1 binds shared"):
        exercise.load_week(demo_root(tmp_path, root, solution), "week9_exercise")


def test_a_check_that_reads_data_the_student_could_change_is_refused(tmp_path, root):
    """Data loaded in an answer cell is the student's to change (their own test labels): checks may not trust it."""
    solution = (
        '# %% tags=["parameters"]\nPROFILE = None\n\n# %%\nlabels = [0, 1]\n### BEGIN SOLUTION\n'
        "guess = [0, 1]\n### END SOLUTION\n\n# %%\n# CHECK q1 points=1\nassert guess == labels\n"
    )
    with pytest.raises(exercise.GradingError, match="check q1.1 reads labels from the student's notebook"):
        exercise.load_week(demo_root(tmp_path, root, solution), "week9_exercise")
    moved = solution.replace("labels = [0, 1]\n### BEGIN", "labels = [0, 1]\n\n# %%\n### BEGIN")
    assert exercise.load_week(demo_root(tmp_path / "moved", root, moved), "week9_exercise").checks[0].fetch == (
        "guess",
    )


def test_checks_keep_their_own_helpers_and_fetch_what_the_student_changed(root):
    """Week 1: the hidden gradient test uses the visible check's tape_gradients, never the student's; the
    training check takes the student's trained lenet, but the judge loads the digits itself."""
    checks = {c.id: c for c in exercise.load_week(root, "1").checks}
    assert checks["gradient.2"].fetch == ("correlate2d_backward",)
    assert checks["tta.2"].fetch == ("lenet", "tta_predict")
    assert checks["training.1"].fetch == ("lenet",)
    assert checks["lenet5.1"].in_kernel and not checks["gradient.1"].in_kernel


def test_names_a_check_binds_itself_are_not_fetched(root):
    """Week 4's U-Net check names the exception it catches and its loop variable: they are its own, not the
    student's; what it fetches is the student's function and nothing else."""
    checks = {c.id: c for c in exercise.load_week(root, "4").checks}
    assert checks["u-net.1"].fetch == ("build_unet",)
    assert free_names("try:\n    f()\nexcept ValueError as error:\n    print(error)\n") == {"f"}


def test_cells_are_matched_whatever_their_order(root):
    week = exercise.load_week(root, WEEK)
    slots = [c for c in week.cells if isinstance(c, exercise.Slot)]
    solved = answers(root)
    student = [solved[4], "x = 1  # scratch", solved[1], solved[0]]  # answers 5, 2, 1; 3 and 4 deleted
    matched = matching.match_cells(student, slots)
    by_answer = {slots[j].number: i for j, i in matched.items() if slots[j].kind == "answer"}
    assert by_answer == {5: 0, 2: 2, 1: 3}


def test_student_names_are_safe_and_unique():
    names = reports.student_names(
        ["a b.ipynb", "a_b.ipynb", "A B.ipynb", "../../etc.ipynb", "Łukasz Żak.ipynb", ".ipynb", "notes.txt"]
    )
    assert len({n.lower() for n in names.values()}) == len(names)
    assert names["Łukasz Żak.ipynb"] == "Łukasz_Żak"
    assert all("/" not in n and not n.startswith(".") and n for n in names.values())
    assert names[".ipynb"] == "student" and names["notes.txt"] == "notes.txt"
    assert reports.student_names(["a b.ipynb"], taken={"A_B"}) == {"a b.ipynb": "a_b-2"}


def test_command_line_errors_are_clear(root, tmp_path, capsys):
    assert cli.main(["week42", str(tmp_path), "--out", str(tmp_path / "o"), "--root", str(root)]) == 2
    assert "Unknown week 'week42'" in capsys.readouterr().err
    assert cli.main(["1", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--root", str(root)]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["1", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--root", str(root)]) == 2
    assert "is empty" in capsys.readouterr().err


# --- isolation of one run (tiny notebooks, no TensorFlow) ---------------------------------------


def tiny(*sources):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return notebook


def cell_with(notebook, text):
    return next(c for c in notebook.cells if c.cell_type == "code" and text in c.source)


def outputs_text(notebook):
    return "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))


def test_a_cell_over_the_limit_is_interrupted_and_the_next_cells_run():
    status, _, executed = workers.run_notebook(
        tiny("import os\nprint(os.listdir('.'), os.getcwd())", "while True:\n    pass", "print('after')"),
        workers.Settings(cell_timeout=3, notebook_timeout=60, isolate=SETTINGS.isolate),
    )
    assert status == "graded"
    assert cell_with(executed, "listdir").outputs[0].text.startswith("[] /")  # an empty folder of its own
    assert cell_with(executed, "while True").outputs[-1].ename == "KeyboardInterrupt"
    assert "after" in outputs_text(executed)


def test_a_notebook_over_its_limit_is_stopped_with_its_processes(tmp_path):
    """Unconfined (--no-isolation), the grader still finds and kills the kernel; confined, see test_sandbox.py."""
    pid_file = tmp_path / "pid"
    stubborn = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n"
        "    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass"
    )
    start = time.perf_counter()
    status, detail, _ = workers.run_notebook(
        tiny(stubborn), workers.Settings(cell_timeout=2, notebook_timeout=12, isolate=False)
    )
    assert status == "timeout" and "12 s" in detail
    assert time.perf_counter() - start < 30
    assert not alive(int(pid_file.read_text())), "the kernel was left running"


def test_a_file_the_grader_fails_on_is_listed_and_the_run_goes_on(root, tmp_path, monkeypatch):
    """A bug of the grader's on one file (here a planted one) costs that file a status 'error', not the run."""
    real = one_file.grade_file

    def flaky(week, path, settings, judges=None):
        if path.name == "unlucky.ipynb":
            raise RuntimeError("planted")
        return real(week, path, settings, judges)

    monkeypatch.setattr(cli, "grade_file", flaky)  # the name the run calls
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "unlucky.ipynb").write_text("{}")
    (folder / "unreadable.ipynb").write_text("not a notebook")
    cli.grade(
        WEEK,
        folder,
        tmp_path / "out",
        root=root,
        progress=False,
        settings=workers.Settings(profile="smoke", isolate=False),
    )
    with open(tmp_path / "out" / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert (rows["unlucky.ipynb"]["status"], rows["unlucky.ipynb"]["total"]) == ("error", "0")
    assert rows["unreadable.ipynb"]["status"] == "invalid"
    assert "RuntimeError: planted" in (tmp_path / "out" / "feedback" / "unlucky.md").read_text()


def test_workers_share_the_cores():
    """With several workers, each judge's kernel gets its share of the cores for TensorFlow's and OpenMP's threads."""
    judges = workers.WorkerPool(threads=1)
    try:
        status, _, executed = workers.run_notebook(
            tiny(
                "import os\nprint('threads', os.environ.get('TF_NUM_INTRAOP_THREADS'), "
                "os.environ.get('OMP_NUM_THREADS'))"
            ),
            workers.Settings(cell_timeout=30, notebook_timeout=60, isolate=SETTINGS.isolate),
            judges,
        )
    finally:
        judges.close()
    assert status == "graded"
    assert "threads 1 1" in outputs_text(executed)


def test_one_judge_grades_submissions_in_turn_and_one_stopped_is_replaced():
    """Unconfined, the kernel's parent is the judge: the same one for consecutive submissions, a fresh one after a
    submission ran past its notebook's limit (which takes its judge down with it)."""
    judges = workers.WorkerPool()
    parent = "import os\nprint('judge', os.getppid())"
    quick = workers.Settings(cell_timeout=30, notebook_timeout=60, isolate=False)
    try:
        first = workers.run_notebook(tiny(parent), quick, judges)
        second = workers.run_notebook(tiny(parent), quick, judges)
        stopped = workers.run_notebook(
            tiny("import time\ntime.sleep(60)"),
            workers.Settings(cell_timeout=60, notebook_timeout=8, isolate=False),
            judges,
        )
        after = workers.run_notebook(tiny(parent), quick, judges)
    finally:
        judges.close()
    assert [first[0], second[0], stopped[0], after[0]] == ["graded", "graded", "timeout", "graded"]
    judge_of = [outputs_text(run[2]).split("judge")[1].split()[0] for run in (first, second, after)]
    assert judge_of[0] == judge_of[1] != judge_of[2]
    assert not alive(int(judge_of[0]), wait=1), "the judge of the stopped submission was left running"


def alive(pid, wait=5.0):
    """True if the process still runs after ``wait`` seconds (a zombie waiting to be reaped counts as ended)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.2)
    return True


def test_a_dying_kernel_is_reported_as_crashed():
    status, _, _ = workers.run_notebook(
        tiny("print('before')", "import os\nos._exit(1)", "print('never')"),
        workers.Settings(cell_timeout=20, notebook_timeout=60, isolate=SETTINGS.isolate),
    )
    assert status == "crashed"


def test_memory_is_capped():
    status, _, executed = workers.run_notebook(
        tiny("big = bytearray(4 * 2**30)", "print('still here')"),
        workers.Settings(cell_timeout=30, notebook_timeout=60, memory_gb=2, isolate=SETTINGS.isolate),
    )
    assert status == "graded"
    assert cell_with(executed, "bytearray").outputs[-1].ename == "MemoryError"
    assert "still here" in outputs_text(executed)


def test_a_private_copy_of_the_solutions_is_graded_from(root, tmp_path, capsys):
    private = tmp_path / "private"
    private.mkdir()
    source = (root / "solutions" / "week1_exercise.py").read_text()
    extra = "\n# %%\n### BEGIN HIDDEN TESTS\n# CHECK private_question points=3\nassert True\n### END HIDDEN TESTS\n"
    (private / "week1_exercise.py").write_text(source + extra)
    week = exercise.load_week(root, "1", solutions=private)
    assert week.path == private / "week1_exercise.py"
    assert week.questions["private_question"] == 3
    assert "private_question" not in exercise.load_week(root, "1").questions
    assert (
        cli.main(
            [
                "1",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--root",
                str(root),
                "--solutions",
                str(tmp_path / "missing"),
            ]
        )
        == 2
    )
    assert "No solutions folder" in capsys.readouterr().err


def test_a_refused_file_keeps_its_own_hash_so_the_next_run_does_not_refuse_it_again(root, tmp_path):
    """A file refused for its size is recorded with the hash of its bytes: an unchanged file is not read, parsed
    and refused again on every run."""
    import hashlib

    week = exercise.load_week(root, WEEK)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# " + "x" * (limits.MAX_CELL_CHARS + 1))])
    path = tmp_path / "huge.ipynb"
    path.write_text(nbformat.writes(notebook))
    result, executed = one_file.grade_file(week, path, workers.Settings(profile="smoke", isolate=False))
    assert (result["status"], executed) == ("refused", None) and "characters" in result["detail"]
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    results = tmp_path / "results"
    results.mkdir()
    reports.write_json(results / f"{reports.result_key(path.name)}.json", result)
    assert cli._graded_already(path, week, workers.Settings(profile="smoke"), results)
