"""What a cell's Python source binds and reads, parsed once per cell.

Every source here may be a student's: anything that does not parse (a syntax error, a
cell nested too deep for the parser) counts as binding and reading nothing (one exception:
:func:`top_level_names`, which cell matching uses).
"""

from __future__ import annotations

import ast
import builtins
import functools
import re

_BUILTINS = frozenset(dir(builtins))


def without_magics(source: str) -> str:
    """A cell's source with its IPython lines (``%magic``, ``!shell``) blanked, so that ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


@functools.lru_cache(maxsize=1024)
def parse(source: str) -> ast.Module | None:
    """The syntax tree of a cell without its magics, or None if it does not parse (cached: the grader asks
    about the same cells many times)."""
    try:
        return ast.parse(without_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@functools.lru_cache(maxsize=1024)
def bound_names(source: str) -> frozenset:
    """Every name a cell binds anywhere (assignments, loops, definitions, imports, arguments, ``except ... as``)."""
    tree = parse(source)
    names = set()
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(_imported(node))
    return frozenset(names)


@functools.lru_cache(maxsize=1024)
def free_names(source: str) -> frozenset:
    """The names a cell reads and does not bind itself (nor are builtins): what it needs from elsewhere."""
    tree = parse(source)
    if tree is None:
        return frozenset()
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return frozenset(read - bound_names(source) - _BUILTINS)


def top_level_names(source: str) -> set:
    """Top-level names a cell binds (functions, classes, assignments, imports): what a student's cell defines for
    the cells after it. A cell that does not parse is read line by line (``def f``, ``x =``), so that a student's
    cell with a syntax error still finds the answer it was meant for, and runs there to show its error."""
    tree = parse(source)
    if tree is None:
        return {a or b for a, b in re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.MULTILINE)}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(_imported(node))
        else:
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def defined_functions(source: str) -> set:
    """The functions and classes a cell defines at its top level."""
    tree = parse(source)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {n.name for n in tree.body if isinstance(n, kinds)} if tree is not None else set()


def function_source(source: str, name: str) -> str | None:
    """The source of the function ``name`` defined at the top level of a cell, or None."""
    tree = parse(source)
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(without_magics(source), node)
    return None


def _imported(node: ast.Import | ast.ImportFrom) -> set:
    return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
