"""Gradient checks: is a hand-written backward pass right?

A backward pass written by hand (the chapter's NumPy convolution, a student's
exercise) is checked against the definition of the derivative: nudge each input
a little up and down and see how the output moves. :func:`numerical_gradient`
does that with central differences; :func:`relative_error` says how far two
gradients are apart on a scale that does not depend on their size.
"""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x, eps: float = 1e-5) -> np.ndarray:
    """The gradient of a scalar function ``f`` at ``x`` by central differences.

    For every element ``x[i]``: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``,
    whose error shrinks like ``eps**2`` (a one-sided difference only like ``eps``).
    ``x`` is copied to float64 (in float32, rounding would swamp the difference)
    and ``f`` receives arrays of its shape; ``x`` itself is left untouched. Costs
    two calls of ``f`` per element, so keep ``x`` small.
    """
    if not callable(f):
        raise TypeError(f"numerical_gradient needs a function of x as its first argument, got {type(f).__name__}")
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive step, got {eps}")
    try:
        point = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"x must be an array of numbers, got {type(x).__name__}: {error}") from None
    if point.size == 0:
        raise ValueError("x is empty: there is no gradient to compute")
    grad = np.zeros_like(point)
    flat, flat_grad = point.reshape(-1), grad.reshape(-1)  # views: writing to them changes point and grad
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        up = _scalar(f(point))
        flat[i] = original - eps
        down = _scalar(f(point))
        flat[i] = original
        flat_grad[i] = (up - down) / (2 * eps)
    return grad


def relative_error(a, b) -> float:
    """``|a - b| / (|a| + |b|)`` with Euclidean norms over all elements: 0 for equal arrays, 1 at most.

    About 1e-7 or less when a float64 backward pass agrees with
    :func:`numerical_gradient`; above about 1e-3, something is wrong (a flipped
    kernel, a missing term). Two zero arrays have error 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error compares arrays of one shape, got {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def _scalar(value) -> float:
    if hasattr(value, "numpy"):  # a TensorFlow tensor
        value = value.numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"numerical_gradient needs f to return one number (a loss), got shape {array.shape}")
    return float(array.reshape(()))
