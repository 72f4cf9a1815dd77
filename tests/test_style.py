"""The code follows one style: ruff's linter and formatter, configured in pyproject.toml."""

import subprocess
import sys


def ruff(root, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments, "--no-cache", "."], cwd=root, capture_output=True, text=True
    )


def test_the_linter_finds_nothing(root):
    result = ruff(root, "check", "--output-format", "concise")
    assert result.returncode == 0, f"ruff check found:\n{result.stdout}{result.stderr}"


def test_the_code_is_formatted(root):
    """Chapters and exercise sources are excluded in pyproject.toml: they are linted, laid out by hand."""
    result = ruff(root, "format", "--check")
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}{result.stderr}"
