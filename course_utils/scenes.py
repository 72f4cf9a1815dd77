"""Synthetic scenes: the built-in data of weeks 2-5 (classification, detection,
segmentation, metric learning).

:func:`make_scenes` draws ``n`` RGB images of simple filled shapes on textured,
noisy backgrounds, together with every annotation the course needs, all derived
from the same drawing so they always agree:

* ``images`` -- ``(n, size, size, 3)`` float32 in ``[0, 1]``.
* ``labels`` -- ``(n,)`` int32, the class id of the *largest* object (by pixel
  area) in each image; with ``objects=(1, 1)`` that is the only object. An image
  without objects (possible when ``objects[0] == 0``) has label ``-1``.
* ``boxes`` -- ``(n, max_objects, 4)`` float32 pixel coordinates
  ``[x_min, y_min, x_max, y_max]`` with *exclusive* ``x_max``/``y_max`` (last
  mask column/row + 1), i.e. the Keras ``"xyxy"`` format; equivalently the
  continuous coordinates of the object's outer pixel edges. ``max_objects`` is
  ``objects[1]``; rows after an image's last object are ``-1``.
* ``box_classes`` -- ``(n, max_objects)`` int32 class ids, ``-1`` for padding.
* ``masks`` -- ``(n, size, size)`` uint8, ``0`` for background and
  ``1 + class id`` on the pixels of an object.
* ``class_names`` -- the names of the class ids, ``class_names[k]`` for id ``k``.

The shapes are a filled circle, an axis-aligned square, an equilateral triangle
with a random orientation and a diamond (a square turned by 45 degrees). Objects
never overlap and keep at least one background pixel between their boxes, so
each box is exactly the tight bounding box of that object's mask pixels and the
mask is zero outside the union of the boxes.

Why synthetic? The data are generated in a fraction of a second, need no
download, are identical for every student with the same seed, and the difficulty
can be turned up (more and smaller objects, more noise) to show when a model
starts to struggle. The shape, not the colour, tells the class: every class draws
its colour from the same distribution, chosen to contrast with the background
under the object.

Generation is deterministic: the same arguments (including ``seed``) give
bit-identical arrays on a given installation (another CPU or NumPy build may
round the float pixels differently in the last bits). Only
:func:`numpy.random.default_rng` is used, never the global NumPy random state.
Generating ``n`` images and keeping the first ``k`` is *not* guaranteed to give
the same images as generating ``k``.

It is fast enough to regenerate the data instead of storing it (several
thousand 64x64 images per second on one CPU core): the backgrounds of a whole
batch come from one batched matrix product, and each object is a cached pixel
stencil pasted into its box.

Pure NumPy: importing this module does not import TensorFlow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from course_utils.data import check_integer

SHAPES = ("circle", "square", "triangle", "diamond")
"""The default shape names; a shape's class id is its index in ``classes`` (by default this tuple)."""

EXTRA_SHAPES = ("pentagon", "hexagon", "cross", "rectangle")
"""Shapes that are never drawn unless ``classes`` names them: other classes for a source task.

Week 2 pretrains a network on them and transfers it to :data:`SHAPES`. A
pentagon and a hexagon are regular and turned at random, a cross is a plus
sign with arms a third of its extent wide, a rectangle is twice as long as
it is wide, lying or standing.
"""

_TURNING = ("triangle", "pentagon", "hexagon", "rectangle")  # shapes drawn at a random orientation

_MIN_OBJECT_PX = 4  # smallest allowed object extent: smaller shapes are indistinct blobs
_DEFAULT_MIN_PX = 6  # smallest default extent: below about 8 px shapes get hard to tell apart
_TRIANGLE_ANGLES = 64  # triangle orientations, quantised so their stencils can be cached
_SUPERSAMPLE = 8  # sample lines per pixel row when rasterising a shape
_CANDIDATES = 24  # positions tried at once for one object
_COLOUR_CANDIDATES = 8  # random colours tried per object, the first contrasting one wins
_MIN_CONTRAST = 0.5  # wanted RGB distance between an object and the background under it
_IMAGE_RETRIES = 20  # times an image's objects are re-drawn before giving up
_CHUNK_PIXELS = 1 << 18  # images are generated in chunks of about this many pixels


@dataclass(frozen=True, eq=False)
class Scenes:
    """Images with their labels, boxes and masks, as returned by :func:`make_scenes`.

    See the module docstring for the exact format of every field. (``eq=False``:
    comparing arrays with ``==`` would be ambiguous.)
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    box_classes: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def object_counts(self) -> np.ndarray:
        """Number of real (non-padding) objects in each image, shape ``(n,)``."""
        return np.sum(self.box_classes >= 0, axis=1).astype(np.int32)

    def binary_masks(self) -> np.ndarray:
        """Object-versus-background masks, ``(n, size, size)`` uint8 of 0/1."""
        return (self.masks > 0).astype(np.uint8)

    def subset(self, index) -> Scenes:
        """The scenes selected by ``index`` (integer array, boolean mask or slice).

        A single integer gives a one-image ``Scenes``, so arrays keep their batch axis.
        """
        if isinstance(index, numbers.Integral):
            index = [index]
        return Scenes(
            images=self.images[index],
            labels=self.labels[index],
            boxes=self.boxes[index],
            box_classes=self.box_classes[index],
            masks=self.masks[index],
            class_names=self.class_names,
        )


# --------------------------------------------------------------------------- shapes


@lru_cache(maxsize=4096)
def _stencil(shape: str, extent: int, turn: int) -> np.ndarray:
    """Boolean pixel mask of one shape, cropped to its tight bounding box.

    ``extent`` is the diameter / side in pixels; ``turn`` (shapes in ``_TURNING``
    only) picks one of ``_TRIANGLE_ANGLES`` orientations (for a rectangle,
    its parity). The shape lives in the continuous square ``[0, extent]^2`` and a pixel is on when at least half of
    it is covered, which keeps small shapes recognisable. Coverage is computed from the
    shape's horizontal extent ``[x_left, x_right]`` on ``_SUPERSAMPLE`` lines per
    pixel row (every shape meets each such line in one interval), exact along x. Only the object's own
    box is rasterised, and results are cached: the same stencil recurs often.
    """
    s = extent
    y = (np.arange(s * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE  # sample lines in [0, s]
    c = s / 2.0
    if shape == "circle":
        half = np.sqrt(np.maximum(c * c - (y - c) ** 2, 0.0))
        left, right = c - half, c + half
    elif shape == "square":
        left, right = np.zeros_like(y), np.full_like(y, float(s))
    elif shape == "diamond":
        half = c - np.abs(y - c)  # negative outside: an empty interval
        left, right = c - half, c + half
    elif shape == "triangle":
        left, right = _triangle_span(s, turn, y)
    elif shape in ("pentagon", "hexagon"):
        left, right = _polygon_span(s, 5 if shape == "pentagon" else 6, turn, y)
    elif shape == "cross":  # a plus sign: each horizontal line meets it in one interval
        arm = max(s / 3.0, 1.0)
        band = np.abs(y - c) <= arm / 2.0
        left = np.where(band, 0.0, c - arm / 2.0)
        right = np.where(band, float(s), c + arm / 2.0)
    elif shape == "rectangle":  # 2:1, lying (even turn) or standing (odd turn)
        short = max(s / 2.0, 1.0)
        if turn % 2 == 0:
            inside = np.abs(y - c) <= short / 2.0
            left, right = np.where(inside, 0.0, c), np.where(inside, float(s), c - 1.0)
        else:
            left, right = np.full_like(y, c - short / 2.0), np.full_like(y, c + short / 2.0)
    else:  # pragma: no cover - names are validated before
        raise ValueError(f"unknown shape {shape!r}")
    cols = np.arange(s, dtype=np.float64)
    overlap = np.minimum(right[:, None], cols + 1.0) - np.maximum(left[:, None], cols)
    coverage = np.maximum(overlap, 0.0).reshape(s, _SUPERSAMPLE, s).mean(axis=1)
    mask = coverage >= 0.5 - 1e-9  # ties (pixels halved by an edge) count as inside
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    mask = np.ascontiguousarray(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    mask.setflags(write=False)
    return mask


def _triangle_span(s: int, turn: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right x of an equilateral triangle on the horizontal lines ``y``.

    The triangle is turned by ``turn / _TRIANGLE_ANGLES`` of 120 degrees (0 points
    up), scaled so that its larger bounding-box side is ``s`` and centred in
    ``[0, s]^2``. It is the intersection of three half-planes ``a x + b >= 0``;
    each one bounds x from the left (a > 0) or the right (a < 0) on every line.
    """
    theta = 2.0 * math.pi / 3.0 * turn / _TRIANGLE_ANGLES - math.pi / 2.0
    ang = theta + 2.0 * math.pi / 3.0 * np.arange(3)
    vx, vy = np.cos(ang), np.sin(ang)  # counter-clockwise in x-right, y-down pixels
    scale = s / max(np.ptp(vx), np.ptp(vy))
    vx = (vx - vx.min()) * scale
    vy = (vy - vy.min()) * scale
    vx += (s - vx.max()) / 2.0
    vy += (s - vy.max()) / 2.0
    left = np.full_like(y, -np.inf)
    right = np.full_like(y, np.inf)
    for i in range(3):
        j = (i + 1) % 3
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


def _polygon_span(s: int, sides: int, turn: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right x of a regular polygon with ``sides`` corners on the lines ``y``.

    Like :func:`_triangle_span`: turned by ``turn / _TRIANGLE_ANGLES`` of the
    polygon's symmetry angle (360 / ``sides`` degrees), scaled so that its larger
    bounding-box side is ``s``, centred, and cut out of ``sides`` half-planes.
    """
    step = 2.0 * math.pi / sides
    ang = step * turn / _TRIANGLE_ANGLES - math.pi / 2.0 + step * np.arange(sides)
    vx, vy = np.cos(ang), np.sin(ang)
    scale = s / max(np.ptp(vx), np.ptp(vy))
    vx = (vx - vx.min()) * scale
    vy = (vy - vy.min()) * scale
    vx += (s - vx.max()) / 2.0
    vy += (s - vy.max()) / 2.0
    left = np.full_like(y, -np.inf)
    right = np.full_like(y, np.inf)
    for i in range(sides):
        j = (i + 1) % sides
        a = -(vy[j] - vy[i])
        b = (vx[j] - vx[i]) * (y - vy[i]) + (vy[j] - vy[i]) * vx[i]
        if a > 1e-12:
            left = np.maximum(left, -b / a)
        elif a < -1e-12:
            right = np.minimum(right, -b / a)
        else:
            right = np.where(b >= 0.0, right, -np.inf)
    return left, right


# ---------------------------------------------------------------------- backgrounds


def _upsample_matrix(k: int, size: int) -> np.ndarray:
    """(size, k) matrix that interpolates k grid values linearly to size pixels."""
    pos = np.linspace(0.0, k - 1.0, size)
    lo = np.minimum(np.floor(pos).astype(int), k - 2)
    frac = pos - lo
    mat = np.zeros((size, k), dtype=np.float32)
    mat[np.arange(size), lo] = 1.0 - frac
    mat[np.arange(size), lo + 1] = frac
    return mat


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
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


# ------------------------------------------------------------------------- objects


def _place(rng, size, count, lo, sizes, shape_ids, turns, classes, min_px):
    """Positions for up to ``count`` objects that keep a 1-pixel gap between boxes.

    Returns a list of ``(class id, stencil, x0, y0)`` with at least ``lo``
    entries, or ``None`` if the image could not be filled. Each object tries a
    batch of random positions at once; if none fits it retries at the smallest
    size; if that fails too, the image keeps the objects placed so far (if
    there are at least ``lo`` of them).
    """
    placed = []
    boxes = np.empty((count, 4), dtype=np.int64)  # x0, y0, x1, y1 (exclusive)
    for j in range(count):
        cls = int(shape_ids[j])
        name = classes[cls]
        turn = int(turns[j]) if name in _TURNING else 0
        for extent in (int(sizes[j]), min_px):
            stencil = _stencil(name, extent, turn)
            h, w = stencil.shape
            u = rng.random((_CANDIDATES, 2))
            x0 = (u[:, 0] * (size - w + 1)).astype(np.int64)
            y0 = (u[:, 1] * (size - h + 1)).astype(np.int64)
            if placed:
                b = boxes[: len(placed)]
                # Overlap (gap < 1 pixel) with any placed box rules a candidate out.
                clash = (
                    (x0[:, None] <= b[None, :, 2])
                    & (b[None, :, 0] <= x0[:, None] + w)
                    & (y0[:, None] <= b[None, :, 3])
                    & (b[None, :, 1] <= y0[:, None] + h)
                ).any(axis=1)
                free = np.flatnonzero(~clash)
                if free.size == 0:
                    continue
                pick = free[0]
            else:
                pick = 0
            x, y = int(x0[pick]), int(y0[pick])
            boxes[len(placed)] = (x, y, x + w, y + h)
            placed.append((cls, stencil, x, y))
            break
        else:
            break  # this object fits nowhere: keep what we have
    return placed if len(placed) >= lo else None


# ---------------------------------------------------------------------- validation


def _as_pair(value, name: str) -> tuple[int, int]:
    """``value``, one integer or a pair ``(low, high)`` of them, as a pair of non-negative ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = check_integer(value, name, minimum=0)
        return value, value
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of integers, got {value!r}") from None
    return check_integer(lo, f"{name}[0]", minimum=0), check_integer(hi, f"{name}[1]", minimum=0)


def _default_object_size(size: int, max_objects: int) -> tuple[int, int]:
    """Default (min_px, max_px): large objects alone, smaller ones in crowds."""
    if max_objects <= 1:
        lo, hi = size // 6, size // 2
    else:
        lo, hi = size // 8, int(size / (1.0 + math.sqrt(max_objects)))
    lo = max(_DEFAULT_MIN_PX, lo)
    return lo, max(lo, hi)


def _validate_objects(objects) -> tuple[int, int]:
    """``objects`` as ``(lo, hi)``, refusing ``lo > hi``: the range of object counts per image."""
    lo, hi = _as_pair(objects, "objects")
    if lo > hi:
        raise ValueError(f"objects=(lo, hi) needs lo <= hi, got objects={objects!r}")
    return lo, hi


def _validate_object_size(object_size, size: int, max_objects: int) -> tuple[int, int]:
    """``(min_px, max_px)``: the default for ``size`` and ``max_objects``, or ``object_size`` if it fits the image."""
    if object_size is None:
        return _default_object_size(size, max_objects)
    min_px, max_px = _as_pair(object_size, "object_size")
    if not _MIN_OBJECT_PX <= min_px <= max_px <= size:
        raise ValueError(
            f"object_size=(min_px, max_px) needs {_MIN_OBJECT_PX} <= min_px <= max_px <= size "
            f"(size={size}), got object_size={object_size!r}"
        )
    return min_px, max_px


def _validate_noise(noise) -> float:
    """``noise`` as a float, refusing anything but a finite number >= 0 (a standard deviation)."""
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be a number, got noise={noise!r}") from None
    if not (math.isfinite(noise) and noise >= 0.0):
        raise ValueError(f"noise must be a finite number >= 0, got noise={noise!r}")
    return noise


def _validate_classes(classes) -> tuple[str, ...]:
    """``classes`` as a tuple of distinct known shape names (one string is one class): class id k is ``classes[k]``."""
    if isinstance(classes, str):
        classes = (classes,)
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPES + EXTRA_SHAPES]
    if unknown:
        raise ValueError(f"unknown class names in classes: {unknown!r}; choose from {SHAPES + EXTRA_SHAPES}")
    if not classes:
        raise ValueError("classes must name at least one shape")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a shape, got classes={classes!r}")
    return classes


def _check_objects_fit(lo: int, min_px: int, max_px: int, size: int, objects) -> None:
    """Refuse settings whose ``lo`` smallest objects cannot fit, before any drawing: placement would never end."""
    # Equal boxes with 1-pixel gaps fit at most per_row**2 times into the image.
    per_row = (size + 1) // (min_px + 1)
    if lo > per_row * per_row:
        raise ValueError(
            f"impossible settings: {lo} objects of at least {min_px} px with 1-pixel gaps do "
            f"not fit into a {size}x{size} image (size={size}, objects={objects!r}, "
            f"object_size={(min_px, max_px)}); use fewer or smaller objects or a larger size"
        )


# ------------------------------------------------------------------------ generator


def _empty_scenes(n: int, size: int, max_objects: int, classes: tuple[str, ...]) -> Scenes:
    """Scenes with no objects yet (labels, boxes and box classes -1, masks 0) for :func:`make_scenes` to fill in."""
    return Scenes(
        images=np.empty((n, size, size, 3), dtype=np.float32),
        labels=np.full(n, -1, dtype=np.int32),
        boxes=np.full((n, max_objects, 4), -1.0, dtype=np.float32),
        box_classes=np.full((n, max_objects), -1, dtype=np.int32),
        masks=np.zeros((n, size, size), dtype=np.uint8),
        class_names=classes,
    )


def _draw_chunk_objects(rng, m, lo, hi, min_px, max_px, n_classes):
    """Per-object random numbers for a chunk of ``m`` images, drawn at once: faster than image by image.

    Returns ``(counts, sizes, shape_ids, turns, colours)``: the number of objects
    per image, their extents (largest first, which packs better), class ids,
    orientations and ``_COLOUR_CANDIDATES`` candidate colours each.
    """
    counts = rng.integers(lo, hi + 1, size=m)
    sizes = rng.integers(min_px, max_px + 1, size=(m, max(hi, 1)))
    # Largest first (packs better); slots beyond an image's count sort last.
    sizes[np.arange(sizes.shape[1])[None, :] >= counts[:, None]] = 0
    sizes = -np.sort(-sizes, axis=1)
    shape_ids = rng.integers(0, n_classes, size=(m, max(hi, 1)))
    turns = rng.integers(0, _TRIANGLE_ANGLES, size=(m, max(hi, 1)))
    colours = rng.random((m, max(hi, 1), _COLOUR_CANDIDATES, 3), dtype=np.float32)
    return counts, sizes, shape_ids, turns, colours


def _place_objects(rng, size, count, lo, sizes, shape_ids, turns, classes, min_px, max_px, objects):
    """One image's placed objects (see :func:`_place`), re-drawing their sizes when fewer than ``lo`` fit.

    Gives up with a ``ValueError`` after ``_IMAGE_RETRIES`` re-draws: the
    settings are then too crowded to fill an image in reasonable time.
    """
    placed = _place(rng, size, count, lo, sizes, shape_ids, turns, classes, min_px)
    retry = 0
    while placed is None:
        retry += 1
        if retry > _IMAGE_RETRIES:
            raise ValueError(
                f"could not place {lo} non-overlapping objects after {_IMAGE_RETRIES} "
                f"tries: settings too crowded (size={size}, objects={objects!r}, "
                f"object_size={(min_px, max_px)}); use fewer or smaller objects "
                "or a larger size"
            )
        redraw = -np.sort(-rng.integers(min_px, max_px + 1, size=count))
        placed = _place(rng, size, count, lo, redraw, shape_ids, turns, classes, min_px)
    return placed


def _contrasting_colour(candidates: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The first candidate colour that contrasts with ``region``, else the most contrasting one.

    The rule ignores the class, so the colour tells nothing about the shape.
    """
    dist = np.linalg.norm(candidates - region.mean(axis=(0, 1)), axis=1)
    ok = np.flatnonzero(dist >= _MIN_CONTRAST)
    return candidates[ok[0]] if ok.size else candidates[np.argmax(dist)]


def _paint_objects(img: np.ndarray, placed, colours: np.ndarray, scenes: Scenes, g: int) -> None:
    """Paint ``placed`` objects into ``img`` and record them as scene ``g``: mask, boxes, classes, label.

    The label is the class of the largest object (by pixel area; the first of equals).
    """
    best_area = -1
    for j, (cls, stencil, x, y) in enumerate(placed):
        h, w = stencil.shape
        region = img[y : y + h, x : x + w]
        region[stencil] = _contrasting_colour(colours[j], region)
        scenes.masks[g, y : y + h, x : x + w][stencil] = cls + 1
        scenes.boxes[g, j] = (x, y, x + w, y + h)
        scenes.box_classes[g, j] = cls
        area = int(np.count_nonzero(stencil))
        if area > best_area:
            best_area, scenes.labels[g] = area, cls


def _add_noise(rng, img: np.ndarray, noise: float) -> None:
    """Add Gaussian pixel noise of standard deviation ``noise`` to ``img`` in place; no draw at all if it is 0."""
    if noise > 0.0:
        jitter = rng.standard_normal(img.shape, dtype=np.float32)
        jitter *= noise
        img += jitter


def make_scenes(
    n: int,
    size: int = 64,
    seed: int = 0,
    objects: tuple[int, int] = (1, 1),
    object_size: tuple[int, int] | None = None,
    noise: float = 0.04,
    classes: Sequence[str] = SHAPES,
) -> Scenes:
    """Generate ``n`` synthetic scenes with labels, boxes and masks.

    Parameters
    ----------
    n : number of images (0 allowed).
    size : image height and width in pixels, at least 16.
    seed : seed for :func:`numpy.random.default_rng`; same arguments, same arrays.
    objects : ``(lo, hi)``, the number of objects per image is drawn uniformly
        from ``lo .. hi`` (inclusive); a single integer means exactly that many.
        In crowded settings an image may keep fewer than drawn, never fewer
        than ``lo``; if ``lo`` objects cannot be fitted a ``ValueError`` is
        raised (after a bounded number of attempts).
    object_size : ``(min_px, max_px)``, the extent (diameter or side) of an
        object in pixels, drawn uniformly; a triangle's longer box side, before
        its sharp corners lose a pixel or so. Default: ``(size//6, size//2)``
        for one object per image, smaller for several
        (``(size//8, size/(1 + sqrt(hi)))``), never below 6 pixels.
    noise : standard deviation of the Gaussian pixel noise added everywhere
        (background and objects) before clipping to ``[0, 1]``.
    classes : shape names to use, from :data:`SHAPES` and :data:`EXTRA_SHAPES`,
        in any order; class id ``k`` means ``classes[k]``.

    Returns
    -------
    Scenes
        See the module docstring for the format.
    """
    n = check_integer(n, "n", minimum=0)
    size = check_integer(size, "size", minimum=16)
    lo, hi = _validate_objects(objects)
    min_px, max_px = _validate_object_size(object_size, size, hi)
    noise = _validate_noise(noise)
    classes = _validate_classes(classes)
    _check_objects_fit(lo, min_px, max_px, size, objects)

    rng = np.random.default_rng(seed)
    scenes = _empty_scenes(n, size, hi, classes)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        img = _backgrounds(rng, stop - start, size)
        counts, sizes, shape_ids, turns, colours = _draw_chunk_objects(
            rng, stop - start, lo, hi, min_px, max_px, len(classes)
        )
        for i in range(stop - start):
            count = int(counts[i])
            if count == 0:
                continue
            placed = _place_objects(
                rng, size, count, lo, sizes[i], shape_ids[i], turns[i], classes, min_px, max_px, objects
            )
            _paint_objects(img[i], placed, colours[i], scenes, start + i)
        _add_noise(rng, img, noise)
        np.clip(img, 0.0, 1.0, out=scenes.images[start:stop])
    return scenes
