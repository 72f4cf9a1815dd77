"""Classification data for week 2: synthetic scenes (balanced, imbalanced or of other shapes), folders, tfds.

:func:`load_classification` is the one entry point; every source comes back as a
:class:`course_utils.data.Split` of float32 images in ``[0, 1]``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from course_utils.data import Split, check_image_size, check_integer, load_image_folder, tfds_name
from course_utils.scenes import EXTRA_SHAPES, SHAPES, make_scenes

SOURCE_CLASSES = EXTRA_SHAPES
"""The classes of the source task (pentagon, hexagon, cross, rectangle): none of them is a target class."""

SCENE_SOURCES = ("scenes", "scenes-imbalanced", "scenes-source")
"""The names :func:`load_classification` draws synthetic scenes for."""


def load_classification(
    source="scenes",
    image_size: int = 96,
    n_train: int = 2000,
    n_test: int = 800,
    seed: int = 0,
    imbalance: float = 0.1,
    noise: float = 0.04,
    object_fraction=(0.3, 0.75),
    test_fraction: float = 0.2,
    max_images: int | None = None,
    data_dir=None,
    split: str = "train",
):
    """One entry point for image-classification data; returns a :class:`course_utils.data.Split`.

    ``source`` chooses the data:

    * ``"scenes"``: synthetic scenes with one shape each (4 classes: circle,
      square, triangle, diamond), ``n_train`` + ``n_test`` images of
      ``image_size`` pixels from ``seed``; nothing is downloaded. The shape spans
      ``object_fraction`` of the image side (see :func:`classification_object_size`).
      ``n_train`` and ``n_test`` must be integers.
      ``n_test`` may be 0 (more training scenes from another seed, say).
    * ``"scenes-imbalanced"``: the same, with class sizes falling geometrically so
      that the last class has ``imbalance`` times as many images as the first;
      train and test keep the same proportions.
    * ``"scenes-source"``: scenes like ``"scenes"`` but of four *other* shapes
      (:data:`SOURCE_CLASSES`: pentagon, hexagon, cross, rectangle), the source
      task on which :func:`pretrain_source` pretrains a base for transfer learning.
    * a folder (a ``Path``, or a string naming an existing folder) with one
      sub-folder of images per class, read by
      :func:`course_utils.data.load_image_folder`; a stratified ``test_fraction``
      is held out (each class needs at least 2 images). A string that looks like
      a path (it contains a path separator or starts with ``.`` or ``~``) but names
      no folder raises ``FileNotFoundError``.
    * ``"tfds:<name>"``, e.g. ``"tfds:tf_flowers"``: a TensorFlow Datasets set
      (downloaded to ``data_dir`` on first use: for Colab), its ``split``, at most
      ``max_images`` images, resized to ``image_size`` and split like a folder.

    Images are float32 ``(n, image_size, image_size, 3)`` in ``[0, 1]``;
    ``image_size`` is an int or a square ``(size, size)`` pair.
    """
    size = _square_side(image_size)
    if max_images is not None:
        max_images = check_integer(max_images, "max_images")
    if _names_a_folder(source):
        return _from_folder(source, size, seed, test_fraction, max_images)
    if not isinstance(source, str):
        raise TypeError(f"source must be a string or a path, got {type(source).__name__}")
    if source in SCENE_SOURCES:
        return _from_scene_source(source, size, n_train, n_test, seed, imbalance, noise, object_fraction)
    if (name := tfds_name(source)) is not None:
        return _from_tfds(name, size, seed, test_fraction, max_images, data_dir, split)
    raise ValueError(
        f"Unknown data source {source!r}: use 'scenes', 'scenes-imbalanced', 'scenes-source', 'tfds:<name>' "
        "(e.g. 'tfds:tf_flowers') or the path of an existing folder with one sub-folder per class"
    )


def imbalanced_counts(n: int, num_classes: int, ratio: float) -> np.ndarray:
    """Images per class falling geometrically from the first class to the last, which gets ``ratio`` times as many."""
    if not 0 < ratio <= 1:
        raise ValueError(f"imbalance ratio must be in (0, 1], got {ratio!r}")
    share = ratio ** (np.arange(num_classes) / max(num_classes - 1, 1))
    counts = np.floor(n * share / share.sum()).astype(int)
    counts[0] += n - counts.sum()
    return counts


def classification_object_size(size: int, object_fraction=(0.3, 0.75)) -> tuple[int, int]:
    """``(min_px, max_px)`` of the one shape in a classification scene of ``size`` pixels.

    ``object_fraction`` is the shape's extent as a fraction of the image side. The
    default makes the shape the subject of the picture, as in a photo taken to
    be classified, and keeps it at least 10 pixels across in a 32-pixel image: a
    network such as MobileNetV2, which halves the resolution in its very first
    layer, cannot tell shapes a few pixels across apart (small objects are the
    business of detection, week 3).
    """
    try:
        low, high = (float(f) for f in object_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"object_fraction must be a pair (low, high), got {object_fraction!r}") from None
    if not 0 < low <= high <= 1:
        raise ValueError(f"object_fraction needs 0 < low <= high <= 1, got {object_fraction!r}")
    min_px = max(4, round(low * size))
    return min_px, max(min_px, round(high * size))


def _square_side(image_size) -> int:
    """The side of the square images :func:`load_classification` makes, refusing a non-square ``image_size``."""
    size, width = check_image_size(image_size)
    if size != width:
        raise ValueError(
            f"load_classification makes square images: image_size must be an int or (size, size), got {image_size!r}"
        )
    return size


def _names_a_folder(source) -> bool:
    """Whether ``source`` is a folder to read: a ``Path``, or a string that is no named source and looks like a path.

    A string looks like a path when it contains a path separator, starts with
    ``.`` or ``~``, or names an existing folder; a mistyped path then fails with
    ``FileNotFoundError`` instead of "unknown data source".
    """
    named = isinstance(source, str) and (source in SCENE_SOURCES or tfds_name(source) is not None)
    looks_like_path = (
        isinstance(source, str)
        and not named
        and ("/" in source or os.sep in source or source.startswith((".", "~")) or Path(source).is_dir())
    )
    return isinstance(source, Path) or looks_like_path


def _from_folder(source, size, seed, test_fraction, max_images):
    """A stratified split of a folder of one sub-folder per class, after keeping ``max_images`` at random."""
    images, labels, class_names = load_image_folder(source, (size, size))  # raises if there is no such folder
    if max_images is not None:
        keep = np.random.default_rng(seed).permutation(len(images))[:max_images]
        images, labels = images[keep], labels[keep]
    return _stratified(images, labels, class_names, test_fraction, seed, f"folder {source}")


def _from_scene_source(source, size, n_train, n_test, seed, imbalance, noise, object_fraction):
    """The split of one of :data:`SCENE_SOURCES`: imbalanced ones need a test image, source ones other shapes."""
    imbalanced = source.endswith("imbalanced")
    n_train = check_integer(n_train, "n_train")
    n_test = check_integer(n_test, "n_test", minimum=1 if imbalanced else 0)
    object_size = classification_object_size(size, object_fraction)
    if imbalanced:
        return _imbalanced_scenes(n_train + n_test, n_test, size, seed, imbalance, noise, object_size)
    classes = SOURCE_CLASSES if source == "scenes-source" else SHAPES
    scenes = make_scenes(
        n_train + n_test, size=size, seed=seed, objects=(1, 1), object_size=object_size, noise=noise, classes=classes
    )
    images, labels = scenes.images, scenes.labels
    test_masks = scenes.masks[n_train:] > 0
    return Split(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], scenes.class_names, test_masks)


def _imbalanced_scenes(total, n_test, size, seed, imbalance, noise, object_size):
    """``total`` scenes of the four shapes, class sizes falling geometrically to ``imbalance``; a stratified split.

    Enough balanced scenes are drawn (30% spare), then the first ``count`` of each class are kept.
    """
    wanted = imbalanced_counts(total, len(SHAPES), imbalance)
    scenes = make_scenes(
        int(wanted[0] * len(SHAPES) * 1.3) + 64,
        size=size,
        seed=seed,
        objects=(1, 1),
        object_size=object_size,
        noise=noise,
    )
    keep = []
    for label, count in enumerate(wanted):
        found = np.flatnonzero(scenes.labels == label)
        if len(found) < count:  # pragma: no cover - 30% spare makes this vanishingly rare
            raise RuntimeError("not enough scenes of one class were drawn; try another seed")
        keep.append(found[:count])
    order = np.random.default_rng(seed).permutation(np.concatenate(keep))
    return _stratified(
        scenes.images[order],
        scenes.labels[order],
        scenes.class_names,
        n_test / total,
        seed,
        "the imbalanced scenes (raise n_train and n_test)",
    )


def _from_tfds(name, size, seed, test_fraction, max_images, data_dir, split):
    """A stratified split of a TensorFlow Datasets set, its images resized to ``size`` and made RGB in ``[0, 1]``."""
    import tensorflow_datasets as tfds  # takes seconds to import, and only this source needs it

    dataset, info = tfds.load(name, split=split, as_supervised=True, with_info=True, data_dir=data_dir)
    class_names = tuple(info.features[info.supervised_keys[1]].names)

    def prepare(image, label):
        image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return tf.image.resize(image, (size, size)), label

    if max_images is not None:
        dataset = dataset.take(int(max_images))
    images, labels = [], []
    for image, label in dataset.map(prepare).batch(256).as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"TensorFlow Datasets set {name!r} (split {split!r}) is empty")
    images = np.clip(np.concatenate(images), 0.0, 1.0).astype(np.float32)
    labels = np.concatenate(labels).astype(np.int32)
    return _stratified(images, labels, class_names, test_fraction, seed, f"TensorFlow Datasets set {name!r}")


def _stratified(images, labels, class_names, test_fraction, seed, where="the data"):
    """A stratified train/test :class:`~course_utils.data.Split`; ``where`` names the data in errors."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    # scikit-learn holds out ceil(test_fraction * n) images and needs room for every class on both sides.
    counts = np.bincount(labels, minlength=len(class_names))
    present = np.count_nonzero(counts)
    n_test = math.ceil(test_fraction * len(labels))
    if counts[counts > 0].min() < 2 or not present <= n_test <= len(labels) - present:
        per_class = ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts))
        raise ValueError(
            f"Too few images in {where} to hold out test_fraction={test_fraction:g} with every class in both "
            f"the training and the test part (images per class: {per_class}): each class needs at least 2 "
            f"images, and the {n_test} held out of {len(labels)} must leave one of each of the {present} "
            "classes on both sides"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), tuple(class_names))
