"""The code follows one style: ruff's linter and formatter, configured in pyproject.toml."""

import subprocess
import sys

import jupytext
import pytest

# The book's code column holds about 83 characters of monospace at 1280 px (tests/test_browser.py measures it).
PAGE_COLUMNS = 80


def ruff(root, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments, "--no-cache", "."], cwd=root, capture_output=True, text=True
    )


def test_the_linter_finds_nothing(root):
    result = ruff(root, "check", "--output-format", "concise")
    assert result.returncode == 0, f"ruff check found:\n{result.stdout}{result.stderr}"


def test_the_code_is_formatted(root):
    """Chapters and exercise sources too, at the page's width (book/ruff.toml, solutions/ruff.toml)."""
    result = ruff(root, "format", "--check")
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}{result.stderr}"


def long_code_lines(path, limit=PAGE_COLUMNS):
    """(cell, line) of every code line of a jupytext notebook longer than ``limit``: strings and comments, which
    the formatter cannot break, included."""
    cells = jupytext.read(path).cells
    return [
        (number, line)
        for number, cell in enumerate(cells, 1)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > limit
    ]


@pytest.mark.parametrize("folder", ["book", "solutions", "exercises"])
def test_code_cells_fit_the_pages_code_column(root, folder):
    paths = sorted((root / folder).glob("week*.py"))
    assert paths, f"no notebooks in {folder}/"
    too_long = {path.name: lines for path in paths if (lines := long_code_lines(path))}
    assert not too_long, f"code lines over {PAGE_COLUMNS} characters scroll sideways on the page: {too_long}"


def test_the_width_check_sees_long_strings_and_ignores_prose(tmp_path):
    path = tmp_path / "demo.py"
    long_prose, long_string = "# " + "word " * 30, 'print("' + "x" * 80 + '")'
    path.write_text(f"# %% [markdown]\n{long_prose}\n\n# %%\nshort = 1\n{long_string}\n")
    assert long_code_lines(path) == [(2, long_string)]


def headings_in_code(path):
    """(cell, line) of every comment line of a code cell that is written as a Markdown heading (``# ## ...``): a
    ``# %% [markdown]`` marker left out before it, which hides the heading and its section in a code cell."""
    return [
        (number, line)
        for number, cell in enumerate(jupytext.read(path).cells, 1)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.startswith("# #")
    ]


@pytest.mark.parametrize("folder", ["book", "solutions", "exercises"])
def test_every_heading_is_in_a_markdown_cell(root, folder):
    found = {path.name: lines for path in sorted((root / folder).glob("week*.py")) if (lines := headings_in_code(path))}
    assert not found, f"headings inside code cells (a missing '# %% [markdown]'): {found}"


def test_the_heading_check_finds_a_section_swallowed_by_a_code_cell(tmp_path):
    path = tmp_path / "demo.py"
    path.write_text("# %% [markdown]\n# ## 1. Start\n\n# %%\nx = 1\n\n# ## 2. Lost\n# Its text.\n")
    assert headings_in_code(path) == [(2, "# ## 2. Lost")]


def lint_imports(root):
    """import-linter's verdict on the contracts of pyproject.toml, run on the package found from ``root``."""
    command = [
        sys.executable,
        "-c",
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
    ]
    return subprocess.run(
        [*command, "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_the_import_layers_hold(root):
    """Teaching code imports neither the grader nor the build; the grader's rooms import only those below them;
    the student's kernel reaches only the wire; no package of course_utils has an import cycle."""
    result = lint_imports(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_import_contracts_catch_what_they_forbid(root, tmp_path):
    """The contracts fail on each thing they forbid, planted in a copy of the package: a chapter module that
    imports the grader, a cycle hidden in a function-local import, and the wire reaching into the judge."""
    import shutil

    shutil.copy2(root / "pyproject.toml", tmp_path / "pyproject.toml")
    plants = {
        "course_utils/plots.py": "from course_utils import build\n",
        "course_utils/config.py": "def _late():\n    from course_utils import models\n",
        "course_utils/grading/wire.py": "from course_utils.grading import judge\n",
    }
    for path, line in plants.items():
        shutil.rmtree(tmp_path / "course_utils", ignore_errors=True)
        shutil.copytree(root / "course_utils", tmp_path / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
        with open(tmp_path / path, "a") as handle:
            handle.write("\n" + line)
        result = lint_imports(tmp_path)
        assert result.returncode != 0 and "BROKEN" in result.stdout, f"{path}: {line!r} was not caught"


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60


def function_lengths(path):
    """``(name, lines)`` of every function of a module: from the first statement after its docstring to its end,
    less the lines of literal tables (a list, dict, set or tuple of constants written over several lines)."""
    import ast

    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
        tables = {
            line
            for literal in ast.walk(node)
            if isinstance(literal, (ast.List, ast.Dict, ast.Set, ast.Tuple))
            and literal.end_lineno > literal.lineno
            and all(
                isinstance(e, ast.Constant)
                for e in ast.walk(literal)
                if isinstance(e, ast.expr)
                and e is not literal
                and not isinstance(e, (ast.List, ast.Dict, ast.Set, ast.Tuple))
            )
            for line in range(literal.lineno + 1, literal.end_lineno)
        }
        lines = set(range(body[0].lineno, node.end_lineno + 1)) - tables
        found.append((node.name, len(lines)))
    return found


def python_files(root):
    return sorted((root / "course_utils").rglob("*.py")) + sorted((root / "bench").glob("*.py"))


def test_every_module_and_function_is_a_size_a_reader_can_hold(root):
    too_long = [
        f"{path.relative_to(root)}: {n} lines"
        for path in python_files(root)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    too_long += [
        f"{path.relative_to(root)}: {name}, {n} lines"
        for path in python_files(root)
        for name, n in function_lengths(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)


def test_the_size_check_measures_bodies_and_spares_literal_tables(tmp_path):
    body = "\n".join(f"    x{k} = {k}" for k in range(61))
    table = "    table = [\n" + "\n".join(f"        {k}," for k in range(100)) + "\n    ]\n    return table"
    path = tmp_path / "sizes.py"
    path.write_text(f'def long():\n    """Doc."""\n{body}\n\n\ndef tabled():\n{table}\n')
    assert dict(function_lengths(path)) == {"long": 61, "tabled": 3}


def test_the_pre_commit_hooks_run_the_makefiles_checks(root):
    """Every hook of .pre-commit-config.yaml runs a target the Makefile has, or the sync check, locally."""
    import re

    import yaml

    hooks = [
        hook
        for repo in yaml.safe_load((root / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    targets = set(re.search(r"^\.PHONY: (.*)$", (root / "Makefile").read_text(), re.MULTILINE).group(1).split())
    assert {hook["id"] for hook in hooks} == {"format", "lint", "sync"}
    for hook in hooks:
        assert hook["language"] == "system", "a hook that downloads its tool would not run offline"
        command = hook["entry"].split()
        sync_check = command[-3:] == ["course_utils.build", "sync", "--check"]
        assert (command[0] == "make" and command[1] in targets) or sync_check
