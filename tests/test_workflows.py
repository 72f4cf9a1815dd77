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


def test_cpu_workflow_runs_the_readme_test_command_on_every_push(root):
    workflow, triggers = load(root, "tests.yml")
    assert "push" in triggers and "pull_request" in triggers
    job = workflow["jobs"]["cpu-tests"]
    assert "make test" in steps_text(job)
    assert "make test" in (root / "README.md").read_text()


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


def test_a_weekly_workflow_tries_the_newest_keras_beyond_the_cap(root):
    workflow, triggers = load(root, "newest-keras.yml")
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    text = steps_text(workflow["jobs"]["newest-keras"])
    assert text.index("make env") < text.index("install --upgrade keras") < text.index('-m "not notebooks"')
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    keras = next(r for r in project["dependencies"] if re.match(r"keras\b", r))
    assert any(s.operator == "<" for s in SpecifierSet(keras.removeprefix("keras"))), "no cap to test beyond"
