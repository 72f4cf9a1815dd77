"""The conda environment installs what `make env` installs, for a Python the package supports."""

import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet


def test_environment_yml_installs_the_package_as_make_env_does(root):
    """One list of dependencies (pyproject.toml, pinned by constraints.txt): the conda file names the same extras
    and the same constraints as the Makefile, and asks for a Python that pyproject.toml accepts."""
    environment = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    make = re.search(r"pip install .*-c constraints.txt -e '\.\[(?P<extras>[^]]+)\]'", (root / "Makefile").read_text())
    assert pip == ["-c constraints.txt", f"-e .[{make['extras']}]"]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert set(make["extras"].split(",")) <= set(project["optional-dependencies"])
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python.removeprefix("python=") + ".0" in SpecifierSet(project["requires-python"])
