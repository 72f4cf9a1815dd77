"""The CI workflows for the public repository: valid YAML that runs what the README says."""

import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet


def load(root, name):
    workflow = yaml.safe_load((root / ".github" / "workflows" / name).read_text())
    # YAML reads the key `on` as True.
    return workflow, workflow.get("on", workflow.get(True))


def steps_text(job):
    return "\n".join(step.get("run", "") + step.get("uses", "") for step in job["steps"])


def test_cpu_workflow_runs_the_readme_test_command_on_every_push_on_python_3_11_and_3_12(root):
    workflow, triggers = load(root, "tests.yml")
    assert "push" in triggers and "pull_request" in triggers
    job = workflow["jobs"]["cpu-tests"]
    assert "make test" in steps_text(job)
    assert "make test" in (root / "README.md").read_text()
    assert job["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]  # 3.12: Colab's
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert all(f"{v}.0" in SpecifierSet(project["requires-python"]) for v in ("3.11", "3.12"))


def test_gpu_workflow_executes_checks_builds_and_publishes_in_that_order(root):
    workflow, triggers = load(root, "gpu-book.yml")
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["execute-and-build"]
    assert "gpu" in job["runs-on"]
    text = steps_text(job)
    order = ["build execute --profile gpu", "--nbval-lax", "build html", "upload-artifact", "upload-pages-artifact"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "pytest -n 0 " in text, "nbval runs a notebook's cells in order in one kernel: no xdist workers there"
    assert workflow["jobs"]["deploy"]["needs"] == "execute-and-build"
    assert "actions/cache" not in text, "notebook outputs must not be cached across changes"


def test_keras_has_no_cap_and_a_weekly_workflow_tries_the_newest_one_on_colabs_python(root):
    """No upper bound on Keras, so that Colab's install cell keeps the Keras Colab ships; the weekly run of the
    package's tests with the newest Keras is the guard a cap would have been (CONTRIBUTING, "Keras on Colab")."""
    workflow, triggers = load(root, "newest-keras.yml")
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["newest-keras"]
    text = steps_text(job)
    assert text.index("make env") < text.index("install --upgrade keras") < text.index('-m "not notebooks"')
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.12"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    keras = next(r for r in project["dependencies"] if re.match(r"keras\b", r))
    assert not any(s.operator in ("<", "<=", "==", "~=") for s in SpecifierSet(keras.removeprefix("keras"))), keras


def test_a_pushed_tag_is_checked_against_the_version_then_tested_built_and_published(root):
    workflow, triggers = load(root, "release.yml")
    assert triggers == {"push": {"tags": ["v*"]}}
    text = steps_text(workflow["jobs"]["release"])
    order = ['build release-check "$GITHUB_REF_NAME"', "make test", "make book STRICT=1", "pip wheel", "gh release"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert workflow["permissions"] == {"contents": "write"}
    assert "## Making a release" in (root / "CONTRIBUTING.md").read_text()
