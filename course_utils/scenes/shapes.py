"""The shapes of the scenes, rasterised to cached pixel stencils."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
"""The default shape names; a shape's class id is its index in ``classes`` (by default this tuple)."""

EXTRA_SHAPES = ("pentagon", "hexagon", "cross", "rectangle")
"""Shapes that are never drawn unless ``classes`` names them: other classes for a source task.

Week 2 pretrains a network on them and transfers it to :data:`SHAPES`. A
pentagon and a hexagon are regular and turned at random, a cross is a plus
sign with arms a third of its extent wide, a rectangle is twice as long as
it is wide, lying or standing.
"""

TURNING = ("triangle", "pentagon", "hexagon", "rectangle")  # shapes drawn at a random orientation
ORIENTATIONS = 64  # orientations of a turning shape, quantised so their stencils can be cached

_SUPERSAMPLE = 8  # sample lines per pixel row when rasterising a shape
_POLYGON_SIDES = {"triangle": 3, "pentagon": 5, "hexagon": 6}


@lru_cache(maxsize=4096)
def stencil(shape: str, extent: int, turn: int) -> np.ndarray:
    """Boolean pixel mask of one shape, cropped to its tight bounding box.

    ``extent`` is the diameter / side in pixels; ``turn`` (shapes in ``TURNING``
    only) picks one of ``ORIENTATIONS`` orientations (for a rectangle,
    its parity). The shape lives in the continuous square ``[0, extent]^2`` and a pixel is on when at least half of
    it is covered, which keeps small shapes recognisable. Coverage is computed from the
    shape's horizontal extent ``[x_left, x_right]`` on ``_SUPERSAMPLE`` lines per
    pixel row (every shape meets each such line in one interval), exact along x. Only the object's own
    box is rasterised, and results are cached: the same stencil recurs often.
    """
    s = extent
    y = (np.arange(s * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE  # sample lines in [0, s]
    left, right = _span(shape, s, turn, y)
    cols = np.arange(s, dtype=np.float64)
    overlap = np.minimum(right[:, None], cols + 1.0) - np.maximum(left[:, None], cols)
    coverage = np.maximum(overlap, 0.0).reshape(s, _SUPERSAMPLE, s).mean(axis=1)
    mask = coverage >= 0.5 - 1e-9  # ties (pixels halved by an edge) count as inside
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    mask = np.ascontiguousarray(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    mask.setflags(write=False)
    return mask


def _span(shape: str, s: int, turn: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right x of ``shape`` (extent ``s``, orientation ``turn``) on the horizontal lines ``y``."""
    c = s / 2.0
    if shape == "circle":
        half = np.sqrt(np.maximum(c * c - (y - c) ** 2, 0.0))
        return c - half, c + half
    if shape == "square":
        return np.zeros_like(y), np.full_like(y, float(s))
    if shape == "diamond":
        half = c - np.abs(y - c)  # negative outside: an empty interval
        return c - half, c + half
    if shape in _POLYGON_SIDES:
        return _regular_polygon_span(s, _POLYGON_SIDES[shape], turn, y)
    if shape == "cross":  # a plus sign: each horizontal line meets it in one interval
        arm = max(s / 3.0, 1.0)
        band = np.abs(y - c) <= arm / 2.0
        return np.where(band, 0.0, c - arm / 2.0), np.where(band, float(s), c + arm / 2.0)
    if shape == "rectangle":  # 2:1, lying (even turn) or standing (odd turn)
        short = max(s / 2.0, 1.0)
        if turn % 2 == 0:
            inside = np.abs(y - c) <= short / 2.0
            return np.where(inside, 0.0, c), np.where(inside, float(s), c - 1.0)
        return np.full_like(y, c - short / 2.0), np.full_like(y, c + short / 2.0)
    raise ValueError(f"unknown shape {shape!r}")  # pragma: no cover - names are validated before


def _regular_polygon_span(s: int, sides: int, turn: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right x of a regular polygon with ``sides`` corners on the horizontal lines ``y``.

    The polygon is turned by ``turn / ORIENTATIONS`` of its symmetry angle
    (360 / ``sides`` degrees; 0 puts a corner at the top), scaled so that its
    larger bounding-box side is ``s`` and centred in ``[0, s]^2``. It is the
    intersection of ``sides`` half-planes ``a x + b >= 0``; each one bounds x
    from the left (a > 0) or the right (a < 0) on every line.
    """
    step = 2.0 * math.pi / sides
    ang = step * turn / ORIENTATIONS - math.pi / 2.0 + step * np.arange(sides)
    vx, vy = np.cos(ang), np.sin(ang)  # counter-clockwise in x-right, y-down pixels
    scale = s / max(np.ptp(vx), np.ptp(vy))
    vx = (vx - vx.min()) * scale
    vy = (vy - vy.min()) * scale
    vx += (s - vx.max()) / 2.0
    vy += (s - vy.max()) / 2.0
    left = np.full_like(y, -np.inf)
    right = np.full_like(y, np.inf)
    for i in range(sides):
        j = (i + 1) % sides
        # Inside: (vx_j - vx_i) (y - vy_i) - (vy_j - vy_i) (x - vx_i) >= 0 for this winding.
        a = -(vy[j] - vy[i])
        b = (vx[j] - vx[i]) * (y - vy[i]) + (vy[j] - vy[i]) * vx[i]
        if a > 1e-12:
            left = np.maximum(left, -b / a)
        elif a < -1e-12:
            right = np.minimum(right, -b / a)
        else:  # horizontal edge: a whole line is in or out
            right = np.where(b >= 0.0, right, -np.inf)
    return left, right
