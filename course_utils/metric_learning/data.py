"""The few-labels regime of week 5: a small labelled set, a test set and a class held out of training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from course_utils.scenes import SHAPES, make_scenes


@dataclass(frozen=True, eq=False)
class FewLabels:
    """The few-labels regime: a small labelled set, a test set, and one class held out of training.

    * ``x_labelled, y_labelled`` -- ``per_class`` images of each *training* class:
      all the labels the embedding (and every model compared with it) sees;
    * ``x_reference, y_reference`` -- the labelled set plus ``per_class`` images of
      the held-out class: the kNN reference set, for all classes;
    * ``x_test, y_test`` -- test images of all classes, seen by no model;
    * ``class_names`` and ``held_out`` (the id of the held-out class, or None).
    """

    x_labelled: np.ndarray
    y_labelled: np.ndarray
    x_reference: np.ndarray
    y_reference: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    held_out: int | None

    @property
    def seen(self) -> np.ndarray:
        """Boolean mask of the test images whose class was used in training."""
        return self.y_test != self.held_out if self.held_out is not None else np.ones(len(self.y_test), bool)


def few_label_split(
    images, labels, class_names, per_class: int = 20, held_out=None, test_per_class: int | None = None, seed: int = 0
) -> FewLabels:
    """Split ``(images, labels)`` into the few-labels regime of :class:`FewLabels`.

    ``held_out`` is a class name or id (or None). For each class, ``per_class``
    random images become labelled (reference only, for the held-out class) and
    up to ``test_per_class`` others (default: all the others) the test set.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int32)
    class_names = tuple(class_names)
    if isinstance(held_out, str):
        if held_out not in class_names:
            raise ValueError(f"held_out={held_out!r} is not one of the classes {class_names}")
        held_out = class_names.index(held_out)
    rng = np.random.default_rng(seed)
    labelled, reference, test = [], [], []
    for c in range(len(class_names)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < per_class + 1:
            raise ValueError(f"class {class_names[c]!r} has {len(idx)} images; per_class={per_class} needs more")
        reference.append(idx[:per_class])
        if c != held_out:
            labelled.append(idx[:per_class])
        rest = idx[per_class:]
        test.append(rest if test_per_class is None else rest[:test_per_class])
    labelled, reference, test = (np.sort(np.concatenate(part)) for part in (labelled, reference, test))
    return FewLabels(
        images[labelled],
        labels[labelled],
        images[reference],
        labels[reference],
        images[test],
        labels[test],
        class_names,
        held_out,
    )


def scenes_few_labels(
    size: int = 32, per_class: int = 20, test_per_class: int = 150, held_out="diamond", seed: int = 0, **scene_kwargs
) -> FewLabels:
    """:func:`few_label_split` on synthetic scenes with one shape per image (``course_utils.scenes``)."""
    classes = scene_kwargs.pop("classes", SHAPES)
    # Enough images that every class has per_class + test_per_class with a wide margin.
    n = math.ceil(len(classes) * (per_class + test_per_class) * 1.3) + 40
    scenes = make_scenes(n, size=size, seed=seed, objects=(1, 1), classes=classes, **scene_kwargs)
    return few_label_split(scenes.images, scenes.labels, scenes.class_names, per_class, held_out, test_per_class, seed)
