"""The generator: :func:`make_scenes` and the :class:`Scenes` it returns (see :mod:`course_utils.scenes`)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from course_utils.data import check_integer
from course_utils.scenes.backgrounds import backgrounds
from course_utils.scenes.shapes import ORIENTATIONS, SHAPES, TURNING, stencil
from course_utils.scenes.validation import (
    check_objects_fit,
    validate_classes,
    validate_noise,
    validate_object_size,
    validate_objects,
)

_CANDIDATES = 24  # positions tried at once for one object
_COLOUR_CANDIDATES = 8  # random colours tried per object, the first contrasting one wins
_MIN_CONTRAST = 0.5  # wanted RGB distance between an object and the background under it
_IMAGE_RETRIES = 20  # times an image's objects are re-drawn before giving up
_CHUNK_PIXELS = 1 << 18  # images are generated in chunks of about this many pixels


@dataclass(frozen=True, eq=False)
class Scenes:
    """Images with their labels, boxes and masks, as returned by :func:`make_scenes`.

    See :mod:`course_utils.scenes` for the exact format of every field. (``eq=False``:
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


# ------------------------------------------------------------------------- objects


def _place(rng, size, count, lo, sizes, shape_ids, turns, classes, min_px):
    """Positions for up to ``count`` objects that keep a 1-pixel gap between boxes.

    Returns a list of ``(class id, stencil mask, x0, y0)`` with at least ``lo``
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
        turn = int(turns[j]) if name in TURNING else 0
        for extent in (int(sizes[j]), min_px):
            mask = stencil(name, extent, turn)
            h, w = mask.shape
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
            placed.append((cls, mask, x, y))
            break
        else:
            break  # this object fits nowhere: keep what we have
    return placed if len(placed) >= lo else None


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
    turns = rng.integers(0, ORIENTATIONS, size=(m, max(hi, 1)))
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
    for j, (cls, mask, x, y) in enumerate(placed):
        h, w = mask.shape
        region = img[y : y + h, x : x + w]
        region[mask] = _contrasting_colour(colours[j], region)
        scenes.masks[g, y : y + h, x : x + w][mask] = cls + 1
        scenes.boxes[g, j] = (x, y, x + w, y + h)
        scenes.box_classes[g, j] = cls
        area = int(np.count_nonzero(mask))
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
        See :mod:`course_utils.scenes` for the format.
    """
    n = check_integer(n, "n", minimum=0)
    size = check_integer(size, "size", minimum=16)
    lo, hi = validate_objects(objects)
    min_px, max_px = validate_object_size(object_size, size, hi)
    noise = validate_noise(noise)
    classes = validate_classes(classes)
    check_objects_fit(lo, min_px, max_px, size, objects)

    rng = np.random.default_rng(seed)
    scenes = _empty_scenes(n, size, hi, classes)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        _fill_chunk(rng, scenes, start, min(n, start + chunk), lo, hi, min_px, max_px, noise, objects)
    return scenes


def _fill_chunk(rng, scenes: Scenes, start, stop, lo, hi, min_px, max_px, noise, objects) -> None:
    """Draw scenes ``start`` to ``stop - 1`` into ``scenes``: backgrounds, objects, then noise (the order of draws)."""
    size, classes = scenes.images.shape[1], scenes.class_names
    img = backgrounds(rng, stop - start, size)
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
