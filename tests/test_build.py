"""Exercise generation, Colab notebooks and the sync check."""

import shutil
import subprocess
import sys
import tomllib

import jupytext
import nbformat
import pytest

from course_utils import build

SOLUTION = """\
# %% [markdown]
# # A title

# %%
def add(a, b):
    ### BEGIN SOLUTION
    total = a + b
    return total
    ### END SOLUTION

# %%
assert add(1, 2) == 3

# %%
### BEGIN HIDDEN TESTS
assert add(2, 2) == 4
### END HIDDEN TESTS

# %%
value = 1
### BEGIN SOLUTION
value = 2
### END SOLUTION
print(value)
"""


def exercise_text(source=SOLUTION, name="demo"):
    solution = jupytext.reads(source, fmt=build.SOURCE_FORMAT)
    return jupytext.writes(build.exercise_from_solution(solution, name), fmt=build.SOURCE_FORMAT)


def test_solution_blocks_become_numbered_placeholders_at_their_indentation():
    text = exercise_text()
    assert "total = a + b" not in text and "value = 2" not in text
    assert '    raise NotImplementedError("Blank 1 of demo is not filled in yet' in text
    assert '\nraise NotImplementedError("Blank 2 of demo is not filled in yet' in text
    assert "assert add(1, 2) == 3" in text  # visible checks stay
    assert "### " not in text  # no marker is left behind


def test_hidden_tests_are_removed_with_their_cell():
    text = exercise_text()
    assert "add(2, 2)" not in text
    solution_cells = jupytext.reads(SOLUTION, fmt=build.SOURCE_FORMAT).cells
    exercise_cells = jupytext.reads(text, fmt=build.SOURCE_FORMAT).cells
    assert len(exercise_cells) == len(solution_cells) - 1


def test_running_the_exercise_stops_at_the_first_blank_with_a_clear_message():
    namespace = {}
    cells = jupytext.reads(exercise_text(), fmt=build.SOURCE_FORMAT).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    exec(code[0], namespace)  # defining the function is fine
    with pytest.raises(NotImplementedError, match="Blank 1 of demo is not filled in yet"):
        exec(code[1], namespace)


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "closes no"),
        ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION\n", "opens inside"),
        ("### BEGIN HIDDEN TESTS\nx = 1\n### END SOLUTION\n", "closes no"),
    ],
)
def test_unbalanced_markers_are_reported_with_the_notebook_name(source, problem):
    with pytest.raises(build.MarkerError, match=problem) as error:
        build.strip_solutions(source, "week9_exercise")
    assert "week9_exercise" in str(error.value)


def test_colab_notebook_has_badge_and_install_cell_that_only_acts_on_colab(root):
    notebook = jupytext.reads(SOLUTION, fmt=build.SOURCE_FORMAT)
    colab = build.colab_notebook(notebook, root, "exercises/demo.ipynb")
    assert colab.cells[0].source == "# A title"  # the title stays first
    badge, install, keep = colab.cells[1], colab.cells[2], colab.cells[3]
    url, ref = build.repository(root)
    assert ref == build.revision(root) == "main"  # main's links name main; only a release's commit names its tag
    assert f"/blob/{ref}/exercises/demo.ipynb" in badge.source  # the notebook and the package: one revision
    assert badge.source.startswith("[![Open In Colab]")
    assert 'if "google.colab" in sys.modules:' in install.source
    requirement = install.source.split("course_utils @ ")[1].split('"')[0]
    assert requirement == f"git+{url}@{ref}"  # no extra: Colab's own TensorFlow and Keras stay
    assert "Save a copy in Drive" in keep.source and "Download .ipynb" in keep.source
    assert not any("Save a copy" in c.source for c in build.colab_notebook(notebook, root, "book/week1.ipynb").cells)
    nbformat.validate(colab)


def install_cell(root, url=None):
    source = build.colab_notebook(jupytext.reads(SOLUTION, fmt=build.SOURCE_FORMAT), root, "x.ipynb").cells[2].source
    return source if url is None else source.replace(f"git+{build.repository(root)[0]}", url)


FAKE_COLAB = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
NO_PIP = "import subprocess, sys; subprocess.run = lambda *args, **kwargs: sys.exit('would install: ' + args[0][-1])\n"


def test_install_cell_does_nothing_outside_colab(root):
    """Run in a plain Python process, the cell calls no pip at all; on Colab it installs this release."""
    result = subprocess.run([sys.executable, "-c", NO_PIP + install_cell(root)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr
    result = subprocess.run(
        [sys.executable, "-c", NO_PIP + FAKE_COLAB + install_cell(root)], capture_output=True, text=True
    )
    assert f"would install: course_utils @ git+{build.repository(root)[0]}@{build.revision(root)}" in result.stderr


def test_a_failed_install_on_colab_stops_with_a_clear_error(root):
    """No network or a release that does not exist: the cell raises, so "Run all" stops there."""
    code = install_cell(root, url="git+file:///nonexistent/course-repository")
    result = subprocess.run([sys.executable, "-c", FAKE_COLAB + code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    expected = f"RuntimeError: Could not install the course package (course_utils at {build.revision(root)})"
    assert expected in result.stderr
    assert "connected to the internet" in result.stderr and "pip said" in result.stderr


def test_generated_files_are_in_sync_with_their_sources(root):
    stale = build.sync(root, check=True)
    assert not stale, f"out of date: {stale}; run `python -m course_utils.build sync`"


def test_sync_check_notices_an_edited_solution_and_sync_repairs_it(root, tmp_path):
    for part in ("book", "solutions", "exercises"):
        shutil.copytree(root / part, tmp_path / part)
    for name in ("_config.yml", "pyproject.toml"):  # the repository and the release of the Colab cells
        shutil.copy2(root / name, tmp_path / name)
    assert build.sync(tmp_path, check=True) == []
    solution = tmp_path / "solutions" / "week1_exercise.py"
    solution.write_text(solution.read_text().replace("## 1. Cross-correlation", "## 1. Correlation"))
    (tmp_path / "exercises" / "orphan.py").write_text("# left over\n")
    stale = {p.as_posix() for p in build.sync(tmp_path, check=True)}
    assert stale == {"exercises/week1_exercise.py", "exercises/week1_exercise.ipynb", "exercises/orphan.py"}
    assert build.main(["--root", str(tmp_path), "sync", "--check"]) == 1
    build.sync(tmp_path)
    assert build.sync(tmp_path, check=True) == []
    assert "## 1. Correlation" in (tmp_path / "exercises" / "week1_exercise.py").read_text()


def test_a_release_is_a_tag_of_the_version_whose_every_link_names_it(root, tmp_path):
    tree = tmp_path  # what a release's commit holds: the sources, the generated files and the two settings
    for part in ("book", "solutions", "exercises"):
        shutil.copytree(root / part, tree / part)
    for name in ("_config.yml", "pyproject.toml"):
        shutil.copy2(root / name, tree / name)
    build.sync(tree)  # the generated files as main's would be (a source edited by someone else may be unsynced)
    tag = build.release_tag(tree)
    assert tag == "v" + tomllib.loads((tree / "pyproject.toml").read_text())["project"]["version"]
    # main as it is: its links name main, so it cannot be released as it stands.
    assert any("repository.branch is 'main'" in p for p in build.release_problems(tree, tag))
    assert any("not v + the version" in p for p in build.release_problems(tree, "v99.0.0"))
    # The release's commit (CONTRIBUTING, "Making a release"): the tag in _config.yml, then make sync.
    config = tree / "_config.yml"
    config.write_text(config.read_text().replace("  branch: main\n", f"  branch: {tag}\n"))
    assert any("generated files out of date" in p for p in build.release_problems(tree, tag))
    build.sync(tree)
    assert build.release_problems(tree, tag) == []
    assert build.main(["--root", str(tree), "release-check", tag]) == 0
    assert build.main(["--root", str(tree), "release-check", "v99.0.0"]) == 1
    chapter = (tree / "book" / "week1_cnn_basics.ipynb").read_text()
    url = build.repository(tree)[0]
    assert f"/blob/{tag}/book/week1_cnn_basics.ipynb" in chapter and f"git+{url}@{tag}" in chapter
    assert "/blob/main/" not in chapter and f"git+{url}@main" not in chapter


def test_every_notebook_source_is_in_the_table_of_contents(root):
    listed = set(build.toc_files(root))
    for chapter in (root / "book").glob("*.py"):
        assert f"book/{chapter.stem}" in listed
    for solution in (root / "solutions").glob("*.py"):
        assert f"exercises/{solution.stem}" in listed
    assert not any(doc.startswith("solutions/") for doc in listed), "solutions must not be published in the book"


def test_every_source_has_a_tagged_parameters_cell_with_profile(root):
    for path in [*(root / "book").glob("*.py"), *(root / "solutions").glob("*.py")]:
        cells = [c for c in build.read_source(path).cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters'"
        assert "PROFILE = None" in cells[0].source, path.name


def test_the_parameters_cell_and_papermills_copy_are_removed_from_the_page(tmp_path):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = jupytext.reads(
        '# %% tags=["parameters"]\nPROFILE = None\n\n# %%\nprint(PROFILE)\n', fmt=build.SOURCE_FORMAT
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "demo.ipynb")
    # What papermill.execute_notebook does before running the kernel.
    injected = parameterize_notebook(
        load_notebook_node(str(tmp_path / "demo.ipynb")), {"PROFILE": "smoke"}, kernel_name="python3", language="python"
    )
    assert build.hide_parameters(injected) == 2
    tags = [c.metadata.get("tags", []) for c in injected.cells]
    assert tags[0] == ["parameters", "remove-cell"]  # papermill still finds it by its tag
    assert "injected-parameters" in tags[1] and "remove-cell" in tags[1]
    assert tags[2] == []  # the run itself stays on the page
    assert build.hide_parameters(injected) == 0  # already tagged: nothing to do


def test_a_chapters_kernel_is_encrypted_and_keeps_its_log_out_of_the_build_log(tmp_path):
    """ipykernel warns on standard error, once per kernel, when its messages go over TCP unencrypted; the book's
    kernels get CurveZMQ keys (checked inside the kernel), so there is nothing to warn of. Nor does the kernel log
    its own errors there: jupyter_client interrupts a kernel before shutting it down, and a kernel caught in a
    message handler then logs "ERROR | KeyboardInterrupt caught in kernel" after a chapter that ran well (a failing
    cell fails the build on its own, through papermill)."""
    cells = '# %% tags=["parameters"]\nPROFILE = None\n\n# %%\nfrom ipykernel.kernelapp import IPKernelApp\n'
    cells += "kernel = IPKernelApp.instance()\nprint(PROFILE, kernel.log_level, kernel.curve_secretkey is not None)\n"
    notebook = jupytext.reads(cells, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "demo.ipynb")
    code = "import sys, pathlib, course_utils.build as b; b.execute(pathlib.Path(sys.argv[1]), 'smoke')"
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "demo.ipynb")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert nbformat.read(tmp_path / "demo.ipynb", as_version=4).cells[-1].outputs[0].text == "smoke 50 True\n"


def test_the_build_summary_says_which_differing_records_another_processor_measured():
    from course_utils import claims
    from course_utils.build import book
    from course_utils.config import processor

    said = []
    stale = [
        "  book/w: a = 1 in this build, 2 in the seed-0 record (abc, X, d)",
        f"  book/w: b ...: {claims.ANOTHER_PROCESSOR}",
    ]
    book._log_summary(said.append, [], stale, "cpu")
    assert (
        "2 record(s) the text quotes differ" in said[-1] and "1 of them were measured on another processor" in said[-1]
    )
    assert processor() in said[-1] and said[-1].endswith(stale[-1])
    said.clear()
    book._log_summary(said.append, [], [], "cpu")
    assert said == [
        "every claim of the text held in this run",
        "every record the text quotes for seed 0 is this build's value",
    ]
