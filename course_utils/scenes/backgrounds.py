"""The backgrounds of the scenes: smooth random colour fields with faint stripes, a whole batch at once."""

from __future__ import annotations

import math

import numpy as np


def _upsample_matrix(k: int, size: int) -> np.ndarray:
    """(size, k) matrix that interpolates k grid values linearly to size pixels."""
    pos = np.linspace(0.0, k - 1.0, size)
    lo = np.minimum(np.floor(pos).astype(int), k - 2)
    frac = pos - lo
    mat = np.zeros((size, k), dtype=np.float32)
    mat[np.arange(size), lo] = 1.0 - frac
    mat[np.arange(size), lo + 1] = frac
    return mat


def backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Smooth random colour fields plus faint stripes, ``(n, size, size, 3)`` float32.

    Each image gets a base colour, coarse (3x3) and finer (7x7) random colour
    grids interpolated bilinearly to the image, and a sinusoidal stripe pattern
    of random direction, period, phase and colour. All of it is low rank in
    (row, column), so the whole batch is one batched matrix product::

        image[y, x, c] = sum_a U[y, a] T[a, x, c]                  (blobs)
                       + sin(fy y + p) A[c] cos(fx x) + cos(fy y + p) A[c] sin(fx x)

    with ``U`` the interpolation matrix and ``T`` the grid interpolated along x.
    """
    k = 7
    base = rng.uniform(0.15, 0.85, size=(n, 1, 1, 3))
    coarse = rng.uniform(-0.18, 0.18, size=(n, 3, 3, 3))
    fine = rng.uniform(-0.07, 0.07, size=(n, k, k, 3))
    # The coarse grid's knots fall on fine-grid knots, so adding it to the fine grid
    # first gives exactly the same piecewise-linear field; interpolation weights
    # sum to 1, so the base colour can be added to the grid as well.
    up3 = _upsample_matrix(3, k)
    coarse = np.matmul(up3, coarse.reshape(n, 3, 9)).reshape(n, k, 3, 3)  # along y
    grid = base + fine + np.matmul(up3, coarse)  # and along x: (n, k, k, 3)
    up = _upsample_matrix(k, size)
    along_x = np.matmul(up, grid)  # (n, k, size, 3)
    # Stripes: amp * sin(fx x + fy y + phase), split into separable products.
    angle = rng.uniform(0.0, math.pi, size=n)
    period = rng.uniform(3.0, 10.0, size=n)
    phase = rng.uniform(0.0, 2.0 * math.pi, size=n)
    amp = rng.uniform(0.02, 0.08, size=(n, 1)) * rng.uniform(0.4, 1.0, size=(n, 3))
    freq = 2.0 * math.pi / period
    coords = np.arange(size)
    ax = (freq * np.cos(angle))[:, None] * coords  # (n, size) along x
    ay = (freq * np.sin(angle))[:, None] * coords + phase[:, None]  # along y
    left = np.empty((n, size, k + 2), dtype=np.float32)
    left[:, :, :k] = up
    left[:, :, k] = np.sin(ay)
    left[:, :, k + 1] = np.cos(ay)
    right = np.empty((n, k + 2, size, 3), dtype=np.float32)
    right[:, :k] = along_x
    right[:, k] = np.cos(ax)[:, :, None] * amp[:, None, :]
    right[:, k + 1] = np.sin(ax)[:, :, None] * amp[:, None, :]
    return np.matmul(left, right.reshape(n, k + 2, size * 3)).reshape(n, size, size, 3)
