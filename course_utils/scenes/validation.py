"""The checks of :func:`~course_utils.scenes.make_scenes`'s arguments, before anything is drawn."""

from __future__ import annotations

import math
import numbers

from course_utils.data import check_integer
from course_utils.scenes.shapes import EXTRA_SHAPES, SHAPES

_MIN_OBJECT_PX = 4  # smallest allowed object extent: smaller shapes are indistinct blobs
_DEFAULT_MIN_PX = 6  # smallest default extent: below about 8 px shapes get hard to tell apart


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


def validate_objects(objects) -> tuple[int, int]:
    """``objects`` as ``(lo, hi)``, refusing ``lo > hi``: the range of object counts per image."""
    lo, hi = _as_pair(objects, "objects")
    if lo > hi:
        raise ValueError(f"objects=(lo, hi) needs lo <= hi, got objects={objects!r}")
    return lo, hi


def validate_object_size(object_size, size: int, max_objects: int) -> tuple[int, int]:
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


def validate_noise(noise) -> float:
    """``noise`` as a float, refusing anything but a finite number >= 0 (a standard deviation)."""
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be a number, got noise={noise!r}") from None
    if not (math.isfinite(noise) and noise >= 0.0):
        raise ValueError(f"noise must be a finite number >= 0, got noise={noise!r}")
    return noise


def validate_classes(classes) -> tuple[str, ...]:
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


def check_objects_fit(lo: int, min_px: int, max_px: int, size: int, objects) -> None:
    """Refuse settings whose ``lo`` smallest objects cannot fit, before any drawing: placement would never end."""
    # Equal boxes with 1-pixel gaps fit at most per_row**2 times into the image.
    per_row = (size + 1) // (min_px + 1)
    if lo > per_row * per_row:
        raise ValueError(
            f"impossible settings: {lo} objects of at least {min_px} px with 1-pixel gaps do "
            f"not fit into a {size}x{size} image (size={size}, objects={objects!r}, "
            f"object_size={(min_px, max_px)}); use fewer or smaller objects or a larger size"
        )
