"""Checks for the exercise notebooks: each passes with a short confirmation or fails saying what is wrong.

A failed check raises ``AssertionError`` with a message written for the student
(what was expected, what was found), so the notebook stops where the problem is.
"""

from __future__ import annotations

import numpy as np


def check(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def check_shape(array, expected: tuple, what: str) -> None:
    """``array`` has exactly the shape ``expected``."""
    shape = tuple(np.shape(array))
    check(shape == tuple(expected), f"{what}: expected shape {tuple(expected)}, got {shape}.")


def check_close(actual, expected, what: str, atol: float = 1e-4) -> None:
    """``actual`` has the shape of ``expected`` and every value within ``atol`` of it."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    check_shape(actual, expected.shape, what)
    error = np.abs(actual - expected).max() if actual.size else 0.0
    check(error <= atol, f"{what}: values differ from the expected ones by up to {error:.3g} (tolerance {atol}).")


def check_equal(actual, expected, what: str) -> None:
    """``actual == expected`` (for numbers, shapes, strings)."""
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}.")


def passed(what: str) -> None:
    """Say that a group of checks passed."""
    print(f"✔ {what}: all checks passed")
