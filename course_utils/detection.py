"""Object detection for week 3: data, a CPU-sized RetinaNet, anchors, losses and mAP.

Everything that depends on KerasCV lives in this one module, so that the
course can move to keras-hub's RetinaNet by changing one file. Core Keras is
used where it has the tool: ``keras.utils.bounding_boxes`` for format
conversion and IoU, and the box-aware ``keras.layers.RandomFlip`` and
``keras.layers.RandomZoom`` for augmentation.

The box format
--------------
A :class:`DetectionData` holds

* ``images`` -- ``(n, height, width, 3)`` float32 in ``[0, 1]``;
* ``boxes`` -- ``(n, max_boxes, 4)`` float32 **pixel** ``xyxy`` boxes
  ``[x_min, y_min, x_max, y_max]``, ``x_max``/``y_max`` exclusive (the outer
  pixel edges, Keras' ``"xyxy"`` format); rows after an image's last box are ``-1``;
* ``classes`` -- ``(n, max_boxes)`` int32 class ids in ``0 .. len(class_names) - 1``,
  ``-1`` for padding;
* ``class_names`` and ``names`` (one name per image, used in error messages).

:meth:`DetectionData.targets` gives the ``{"boxes", "classes"}`` dict that
KerasCV's RetinaNet trains on. Predictions (:func:`predict`) come back as a dict
of NumPy arrays ``boxes`` (``xyxy``), ``classes``, ``confidence`` (padded with
``-1``) and ``num_detections``.

Where the data come from (:func:`load_detection_data`)
-------------------------------------------------------
* ``"scenes"``: the synthetic scenes of :mod:`course_utils.scenes` (default, offline);
* a path to a COCO JSON file, with the image folder next to it or given as
  ``image_dir`` (:func:`load_coco`); bad annotations raise :class:`AnnotationError`
  naming the image and the box;
* ``"tfds:<name>"``, e.g. ``"tfds:voc/2007"``: a TensorFlow Datasets set, for
  Colab users (needs ``tensorflow-datasets`` and a download; :func:`load_tfds`).

TensorFlow, Keras and KerasCV are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOX_FORMAT = "xyxy"
"""The box format used throughout the course: pixel corners, exclusive maxima."""

LEVEL_STRIDES = {"P3": 8, "P4": 16, "P5": 32, "P6": 64, "P7": 128}
"""Downsampling factor of each pyramid level: level ``Pk`` has stride ``2**k``."""

BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)  # KerasCV's RetinaNet scales its box targets by these


class AnnotationError(ValueError):
    """An annotation that cannot be used; the message names the image and the box."""


# ----------------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class DetectionData:
    """Images with boxes and classes; see the module docstring for the format."""

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images."""
        return tuple(self.images.shape[1:3])

    def object_counts(self) -> np.ndarray:
        """Number of real (non-padding) boxes of each image."""
        return np.sum(self.classes >= 0, axis=1).astype(np.int32)

    def targets(self) -> dict:
        """The ``{"boxes", "classes"}`` dict KerasCV's RetinaNet trains on (float32, padded with -1)."""
        return {"boxes": self.boxes.astype(np.float32), "classes": self.classes.astype(np.float32)}

    def subset(self, index) -> DetectionData:
        """The images selected by ``index`` (slice, integer array or boolean mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        names = np.asarray(self.names, dtype=object)[index]
        return DetectionData(self.images[index], self.boxes[index], self.classes[index], self.class_names,
                             tuple(names))


def from_scenes(scenes) -> DetectionData:
    """A :class:`~course_utils.scenes.Scenes` as detection data (its boxes are already ``xyxy`` pixels)."""
    return DetectionData(
        images=scenes.images,
        boxes=scenes.boxes.astype(np.float32),
        classes=scenes.box_classes.astype(np.int32),
        class_names=tuple(scenes.class_names),
        names=tuple(f"scene {i}" for i in range(len(scenes))),
    )


def make_detection_scenes(n: int, size: int = 128, seed: int = 0, objects=(1, 4), object_size=(12, 48),
                          **kwargs) -> DetectionData:
    """Synthetic scenes with several objects of varied sizes, as :class:`DetectionData`.

    The defaults (1-4 objects of 12-48 pixels on 128x128 images) spread the
    objects over the three finest pyramid levels of :func:`build_retinanet`.
    Extra keyword arguments go to :func:`course_utils.scenes.make_scenes`.
    """
    from course_utils.scenes import make_scenes

    return from_scenes(make_scenes(n, size=size, seed=seed, objects=objects, object_size=object_size, **kwargs))


def validate_boxes(boxes, classes, image_size, num_classes: int, names=None) -> None:
    """Raise :class:`AnnotationError` for a box outside the image, of negative or zero size, or of an unknown class.

    ``boxes`` ``(n, m, 4)`` pixel ``xyxy`` and ``classes`` ``(n, m)`` padded with -1;
    ``image_size`` is ``(height, width)`` (or a list of them, one per image).
    """
    boxes, classes = np.asarray(boxes, dtype=np.float64), np.asarray(classes)
    for i in range(len(boxes)):
        height, width = image_size[i] if isinstance(image_size, list) else image_size
        name = names[i] if names is not None else f"image {i}"
        for j in np.flatnonzero(classes[i] >= 0) if classes.ndim == 2 else []:
            _check_box(boxes[i, j], int(classes[i, j]), width, height, num_classes, name, j)
        extra = np.flatnonzero(classes[i] < -1)
        if extra.size:
            raise AnnotationError(f"{name}, box {extra[0]}: class id {int(classes[i, extra[0]])} is negative "
                                  "(only -1 is allowed, for padding)")


def _check_box(box, cls, width, height, num_classes, image_name, box_name, tolerance=1e-3):
    x0, y0, x1, y1 = (float(v) for v in box)
    where = f"{image_name}, box {box_name} {[round(v, 2) for v in (x0, y0, x1, y1)]} (xyxy)"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise AnnotationError(f"{where}: coordinates must be finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise AnnotationError(f"{where}: negative or zero size (width {x1 - x0:g}, height {y1 - y0:g})")
    if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
        raise AnnotationError(f"{where}: box outside the image of {width}x{height} pixels")
    if not 0 <= cls < num_classes:
        raise AnnotationError(f"{where}: unknown class id {cls} (expected 0 .. {num_classes - 1})")


def load_coco(annotation_file, image_dir=None, image_size: int = 128, max_boxes: int | None = None) -> DetectionData:
    """Read a COCO-format detection file and its images, resized to ``image_size`` squared.

    ``image_dir`` defaults to the folder of ``annotation_file``. COCO boxes are
    ``[x, y, width, height]`` in pixels of the original image; they are checked
    against the image's size *before* resizing (the error names the image file and
    the annotation id), converted to ``xyxy`` and scaled with the image. Category
    ids become class ids ``0 ..`` in the order of the file's ``categories``;
    ``class_names`` are their names. Crowd annotations (``iscrowd: 1``) are skipped.
    """
    from PIL import Image

    from course_utils.data import read_rgb

    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir) if image_dir is not None else annotation_file.parent
    try:
        coco = json.loads(annotation_file.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{annotation_file} is not valid JSON: {error}") from None
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise AnnotationError(f"{annotation_file} has no {key!r} list: is it a COCO detection file?")
    categories = list(coco["categories"])
    class_of = {c["id"]: k for k, c in enumerate(categories)}
    class_names = tuple(str(c.get("name", c["id"])) for c in categories)
    per_image: dict = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if ann["image_id"] not in per_image:
            raise AnnotationError(f"annotation {ann.get('id')} refers to image id {ann['image_id']}, "
                                  f"which is not in the file's 'images'")
        per_image[ann["image_id"]].append(ann)
    m = max_boxes or max([len(v) for v in per_image.values()] + [1])
    n = len(coco["images"])
    images = np.zeros((n, image_size, image_size, 3), np.float32)
    boxes = np.full((n, m, 4), -1.0, np.float32)
    classes = np.full((n, m), -1, np.int32)
    names = []
    for i, info in enumerate(coco["images"]):
        name = str(info["file_name"])
        names.append(name)
        path = image_dir / name
        if not path.is_file():
            raise AnnotationError(f"image {name!r} (id {info['id']}): file not found at {path}")
        try:
            im = read_rgb(path)  # the course's one reader: EXIF orientation as annotation tools show it
        except ValueError as error:
            raise AnnotationError(f"image {name!r} (id {info['id']}): {error}") from error
        width, height = im.size
        images[i] = np.asarray(im.resize((image_size, image_size), Image.BILINEAR), np.float32) / 255.0
        anns = per_image[info["id"]]
        if len(anns) > m:
            raise AnnotationError(f"image {name!r} has {len(anns)} boxes, more than max_boxes={m}")
        for j, ann in enumerate(anns):
            x, y, w, h = (float(v) for v in ann["bbox"])
            cat = ann.get("category_id")
            box_name = f"{j} (annotation id {ann.get('id')})"
            if cat not in class_of:
                raise AnnotationError(f"image {name!r}, box {box_name}: unknown class id {cat!r} "
                                      f"(categories: {sorted(class_of)})")
            _check_box((x, y, x + w, y + h), class_of[cat], width, height, len(categories), f"image {name!r}", box_name)
            sx, sy = image_size / width, image_size / height
            boxes[i, j] = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
            classes[i, j] = class_of[cat]
    return DetectionData(images, boxes, classes, class_names, tuple(names))


def load_tfds(name: str = "voc/2007", split: str = "train", image_size: int = 128, max_images: int = 2000,
              max_boxes: int = 20, data_dir=None) -> DetectionData:
    """A named TensorFlow Datasets detection set (e.g. ``voc/2007``, ``coco/2017``) as :class:`DetectionData`.

    For Colab users: the first call downloads the set. Images are resized to
    ``image_size`` squared; tfds' normalised ``[y_min, x_min, y_max, x_max]``
    boxes become pixel ``xyxy``. Only the first ``max_images`` images and
    ``max_boxes`` boxes per image are kept.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
    objects = info.features["objects"]
    class_names = tuple(objects["label"].names)
    rows = []
    for example in dataset.take(max_images):
        image = tf.image.resize(tf.cast(example["image"], tf.float32) / 255.0, (image_size, image_size)).numpy()
        bbox = example["objects"]["bbox"].numpy()[:max_boxes] * image_size
        labels = example["objects"]["label"].numpy()[:max_boxes].astype(np.int32)
        bbox, labels = bbox[: len(labels)], labels[: len(bbox)]
        rows.append((image, bbox[:, [1, 0, 3, 2]], labels))
    n = len(rows)
    images = np.zeros((n, image_size, image_size, 3), np.float32)
    boxes = np.full((n, max_boxes, 4), -1.0, np.float32)
    classes = np.full((n, max_boxes), -1, np.int32)
    for i, (image, bbox, labels) in enumerate(rows):
        images[i], boxes[i, : len(labels)], classes[i, : len(labels)] = np.clip(image, 0, 1), bbox, labels
    data = DetectionData(images, boxes, classes, class_names, tuple(f"{name} {split} {i}" for i in range(n)))
    validate_boxes(data.boxes, data.classes, data.image_size, len(class_names), data.names)
    return data


def load_detection_data(source: str = "scenes", n: int = 1000, image_size: int = 128, seed: int = 0,
                        image_dir=None, **kwargs) -> DetectionData:
    """The one entry point for detection data: ``"scenes"``, a COCO JSON path, or ``"tfds:<name>"``.

    * ``"scenes"``: ``n`` synthetic scenes of ``image_size`` pixels (``seed``;
      ``kwargs`` go to :func:`make_detection_scenes`);
    * a path ending in ``.json``: :func:`load_coco` (``image_dir`` defaults to the JSON's folder);
    * ``"tfds:voc/2007"`` and the like: :func:`load_tfds` with ``max_images=n`` (``kwargs`` go to it).
    """
    source = str(source)
    if source == "scenes":
        return make_detection_scenes(n, size=image_size, seed=seed, **kwargs)
    if source.startswith("tfds:"):
        return load_tfds(source[len("tfds:"):], image_size=image_size, max_images=n, **kwargs)
    if source.endswith(".json"):
        return load_coco(source, image_dir=image_dir, image_size=image_size, **kwargs)
    raise ValueError(f"unknown detection data source {source!r}: use 'scenes', a COCO .json path or 'tfds:<name>'")


def write_coco(data: DetectionData, folder, annotation_name: str = "annotations.json") -> Path:
    """Write ``data`` as PNG images plus a COCO JSON file in ``folder``; returns the JSON path.

    Handy to try :func:`load_coco` (the tests build their fixtures with it).
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(data.class_names)]}
    height, width = data.image_size
    for i in range(len(data)):
        file_name = f"image_{i:04d}.png"
        Image.fromarray(np.round(data.images[i] * 255).astype(np.uint8)).save(folder / file_name)
        coco["images"].append({"id": i + 1, "file_name": file_name, "width": width, "height": height})
        for j in np.flatnonzero(data.classes[i] >= 0):
            x0, y0, x1, y1 = (float(v) for v in data.boxes[i, j])
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1,
                                        "category_id": int(data.classes[i, j]) + 1,
                                        "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                        "iscrowd": 0})
    path = folder / annotation_name
    path.write_text(json.dumps(coco))
    return path


# --------------------------------------------------------------------- boxes and IoU


def convert_boxes(boxes, source: str, target: str, image_size=None) -> np.ndarray:
    """Convert boxes between Keras' formats (``xyxy``, ``yxyx``, ``xywh``, ``center_xywh``, ``rel_xyxy`` ...).

    A thin wrapper of ``keras.utils.bounding_boxes.convert_format`` returning NumPy;
    relative formats need ``image_size`` ``(height, width)``.
    """
    import keras

    height, width = image_size if image_size is not None else (None, None)
    out = keras.utils.bounding_boxes.convert_format(np.asarray(boxes, np.float32), source=source, target=target,
                                                    height=height, width=width)
    return np.asarray(out)


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise intersection over union of ``xyxy`` boxes: ``(n, 4)`` and ``(m, 4)`` give ``(n, m)``."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


# ---------------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor boxes: one base size per pyramid level, times ``scales``, times ``aspect_ratios``.

    Level ``P3`` (stride 8) gets ``sizes[0]``, ``P4`` ``sizes[1]`` and so on; at
    every cell of a level's grid sit ``len(scales) * len(aspect_ratios)`` anchors
    centred on the cell. ``aspect_ratios`` are height / width (KerasCV's
    convention); the course's shapes need only 1.0.
    """

    sizes: tuple[float, ...] = (16.0, 32.0, 64.0)
    scales: tuple[float, ...] = (1.0, 2 ** 0.5)
    aspect_ratios: tuple[float, ...] = (1.0,)

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(f"P{3 + k}" for k in range(len(self.sizes)))

    @property
    def per_location(self) -> int:
        return len(self.scales) * len(self.aspect_ratios)

    def generator(self):
        """The ``keras_cv.layers.AnchorGenerator`` with these settings (``xyxy``)."""
        import keras_cv

        return keras_cv.layers.AnchorGenerator(
            bounding_box_format=BOX_FORMAT, sizes=list(self.sizes), scales=list(self.scales),
            aspect_ratios=list(self.aspect_ratios), strides=[LEVEL_STRIDES[level] for level in self.levels],
            clip_boxes=True,
        )


def make_anchors(config: AnchorConfig, image_size) -> dict:
    """The anchors of every level as ``{level: (count, 4) xyxy NumPy array}`` for an image of ``image_size``.

    Computed by KerasCV's anchor generator, exactly the anchors the model uses.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    anchors = config.generator()(image_shape=(image_size[0], image_size[1], 3))
    return {level: np.asarray(anchors[k]) for k, level in enumerate(config.levels)}


def match_anchors(anchors, gt_boxes, positive_threshold: float = 0.5, negative_threshold: float = 0.4):
    """RetinaNet's matching rule, in NumPy: each anchor is positive, negative or ignored.

    An anchor whose best IoU with a ground-truth box is at least
    ``positive_threshold`` is a positive for that box (label 1), below
    ``negative_threshold`` it is background (label 0), in between it is ignored
    (label -1). Returns ``(labels, best_box, best_iou)``, one entry per anchor.
    """
    anchors = np.asarray(anchors).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    if len(gt_boxes) == 0:
        return np.zeros(len(anchors), np.int32), np.full(len(anchors), -1), np.zeros(len(anchors))
    iou = iou_matrix(anchors, gt_boxes)
    best_box = iou.argmax(axis=1)
    best_iou = iou.max(axis=1)
    labels = np.full(len(anchors), -1, np.int32)
    labels[best_iou >= positive_threshold] = 1
    labels[best_iou < negative_threshold] = 0
    return labels, best_box, best_iou


def matching_statistics(data: DetectionData, config: AnchorConfig, positive_threshold=0.5, negative_threshold=0.4):
    """Counts that show the imbalance: anchors per image, positives, ignored, negatives, unmatched objects.

    Returns a dict of totals over ``data`` plus ``positives_per_level``, the
    number of objects that no anchor matches (which the detector cannot learn),
    and the larger box side of those objects and of all objects (``unmatched_sides``,
    ``object_sides``).
    """
    anchors = make_anchors(config, data.image_size)
    all_anchors = np.concatenate(list(anchors.values()))
    level_of = np.concatenate([np.full(len(a), k) for k, a in enumerate(anchors.values())])
    stats = {"images": len(data), "anchors_per_image": len(all_anchors), "objects": 0, "positive": 0, "ignored": 0,
             "negative": 0, "unmatched_objects": 0, "positives_per_level": dict.fromkeys(anchors, 0),
             "unmatched_sides": [], "object_sides": []}
    for i in range(len(data)):
        gt = data.boxes[i][data.classes[i] >= 0]
        labels, best_box, _ = match_anchors(all_anchors, gt, positive_threshold, negative_threshold)
        stats["objects"] += len(gt)
        stats["positive"] += int(np.sum(labels == 1))
        stats["ignored"] += int(np.sum(labels == -1))
        stats["negative"] += int(np.sum(labels == 0))
        missed = np.setdiff1d(np.arange(len(gt)), best_box[labels == 1])
        stats["unmatched_objects"] += len(missed)
        stats["unmatched_sides"].extend(np.max(gt[missed, 2:] - gt[missed, :2], axis=1).tolist())
        stats["object_sides"].extend(np.max(gt[:, 2:] - gt[:, :2], axis=1).tolist())
        for k, level in enumerate(anchors):
            stats["positives_per_level"][level] += int(np.sum((labels == 1) & (level_of == k)))
    return stats


# ------------------------------------------------------------------------------ losses


def focal_loss_values(p_true, gamma: float = 2.0, alpha: float | None = None) -> np.ndarray:
    """Focal loss ``-alpha (1 - p)^gamma log(p)`` of the probability ``p`` given to the true class.

    ``gamma=0`` (and no ``alpha``) is the ordinary cross-entropy ``-log p``.
    """
    p = np.clip(np.asarray(p_true, np.float64), 1e-12, 1.0)
    loss = -((1.0 - p) ** gamma) * np.log(p)
    return loss if alpha is None else alpha * loss


def binary_focal_loss(y_true, logits, gamma: float = 2.0, alpha: float = 0.25) -> np.ndarray:
    """Per-element binary focal loss from logits, NumPy (the sum is what RetinaNet minimises).

    ``alpha`` weighs positives, ``1 - alpha`` negatives, as in KerasCV's ``FocalLoss``.
    """
    y = np.asarray(y_true, np.float64)
    z = np.asarray(logits, np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    ce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # stable sigmoid cross-entropy
    p_t = y * p + (1 - y) * (1 - p)
    a_t = y * alpha + (1 - y) * (1 - alpha)
    return a_t * (1 - p_t) ** gamma * ce


# ------------------------------------------------------------------------------- model


def _feature_pyramid_class():
    import keras

    class FeaturePyramid(keras.layers.Layer):
        """Top-down pyramid with lateral 1x1 connections, ``channels`` wide, levels P3.. (stride 8 up).

        Takes the backbone's ``{"P3", "P4", "P5"}`` outputs (called C3-C5 in the
        paper) and returns ``levels`` maps: P3-P5 from the top-down path, then
        P6, P7 ... from stride-2 convolutions on top, as in RetinaNet.
        """

        def __init__(self, channels=64, levels=3, **kwargs):
            super().__init__(**kwargs)
            self.channels, self.levels = channels, levels
            conv = keras.layers.Conv2D
            self.lateral = [conv(channels, 1, padding="same", name=f"lateral_c{k}") for k in (3, 4, 5)]
            self.smooth = [conv(channels, 3, padding="same", name=f"output_p{k}") for k in (3, 4, 5)]
            self.extra = [conv(channels, 3, strides=2, padding="same", name=f"output_p{6 + k}")
                          for k in range(max(0, levels - 3))]
            self.upsample = keras.layers.UpSampling2D(2)

        def build(self, input_shape):
            for layer, key in zip(self.lateral, ("P3", "P4", "P5")):
                layer.build(input_shape[key])
            for layer in self.smooth:
                layer.build((None, None, None, self.channels))
            for k, layer in enumerate(self.extra):
                layer.build(input_shape["P5"] if k == 0 else (None, None, None, self.channels))
            self.built = True

        def call(self, inputs):
            c3, c4, c5 = inputs["P3"], inputs["P4"], inputs["P5"]
            p5 = self.lateral[2](c5)
            p4 = self.lateral[1](c4) + self.upsample(p5)
            p3 = self.lateral[0](c3) + self.upsample(p4)
            outputs = [self.smooth[0](p3), self.smooth[1](p4), self.smooth[2](p5)][: self.levels]
            x = c5
            for k, layer in enumerate(self.extra):
                x = layer(x if k == 0 else keras.ops.relu(x))
                outputs.append(x)
            return tuple(outputs)

        def compute_output_shape(self, input_shape):
            shapes = [tuple(input_shape[k][:-1]) + (self.channels,) for k in ("P3", "P4", "P5")]
            return tuple(shapes[: self.levels] + [(None, None, None, self.channels)] * max(0, self.levels - 3))

        def get_config(self):
            return {**super().get_config(), "channels": self.channels, "levels": self.levels}

    return FeaturePyramid


def _head_class():
    import keras

    class Head(keras.layers.Layer):
        """``depth`` 3x3 convolutions of ``width`` channels with ReLU, then a 3x3 output convolution.

        One head is shared by every pyramid level, as in RetinaNet.
        """

        def __init__(self, outputs, width=64, depth=2, bias=0.0, **kwargs):
            super().__init__(**kwargs)
            self.outputs, self.width, self.depth, self.bias = outputs, width, depth, bias
            self.convs = [keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                              kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
                          for _ in range(depth)]
            self.out = keras.layers.Conv2D(outputs, 3, padding="same",
                                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                           bias_initializer=keras.initializers.Constant(bias))

        def build(self, input_shape):
            shape = tuple(input_shape)
            for conv in self.convs:
                conv.build(shape)
                shape = shape[:-1] + (self.width,)
            self.out.build(shape)
            self.built = True

        def call(self, x):
            for conv in self.convs:
                x = conv(x)
            return self.out(x)

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:-1]) + (self.outputs,)

        def get_config(self):
            return {**super().get_config(), "outputs": self.outputs, "width": self.width, "depth": self.depth,
                    "bias": self.bias}

    return Head


def build_backbone(image_size: int = 128, filters=(16, 32, 64, 128), blocks=(1, 1, 1, 1), block_type="block"):
    """A small ResNet (KerasCV ``ResNetBackbone``) built from its arguments: nothing is downloaded.

    A stride-4 stem (7x7 convolution with 64 filters, max pooling), then four
    stacks with strides 1, 2, 2, 2 give the outputs P2-P5 (strides 4 to 32);
    RetinaNet uses P3-P5. ``block_type="block"`` is the bottleneck block
    (1x1, 3x3, 1x1 convolutions; a stack outputs ``4 * filters`` channels);
    ``"basic_block"`` (two 3x3) needs ``filters[0] == 64`` to match the stem.
    """
    import keras_cv

    if len(filters) != 4 or len(blocks) != 4:
        raise ValueError("the backbone needs four stacks (filters and blocks of length 4) to reach stride 32")
    return keras_cv.models.ResNetBackbone(
        stackwise_filters=list(filters), stackwise_blocks=list(blocks), stackwise_strides=[1, 2, 2, 2],
        include_rescaling=False, input_shape=(image_size, image_size, 3), block_type=block_type,
    )


def build_retinanet(num_classes: int, image_size: int = 128, backbone_filters=(16, 32, 64, 128),
                    backbone_blocks=(1, 1, 1, 1), pyramid_channels: int = 64, head_width: int = 64,
                    head_depth: int = 2, anchors: AnchorConfig | None = None, positive_threshold: float = 0.5,
                    negative_threshold: float = 0.4, confidence_threshold: float = 0.05,
                    iou_threshold: float = 0.5, max_detections: int = 20, learning_rate: float = 1e-3,
                    compile: bool = True, classification_loss=None, features_from=None):
    """KerasCV RetinaNet sized for a CPU, compiled with focal loss and smooth L1.

    The pyramid has as many levels as ``anchors.sizes`` (P3 upwards); every
    level gets ``anchors.per_location`` anchors per cell. Heads are shared
    across levels, ``head_depth`` convolutions of ``head_width`` channels; the
    classification head's bias starts at ``-log(99)`` so that every anchor first
    predicts "object" with probability 0.01 (the focal-loss paper's prior).
    The prediction decoder (:func:`PerClassNMS`) keeps detections with confidence
    >= ``confidence_threshold`` (low, for mAP; see :func:`set_decoder`) and applies
    per-class non-maximum suppression at ``iou_threshold``. Adam with ``global_clipnorm=10``.
    ``classification_loss`` defaults to :func:`focal_loss` with the paper's
    ``gamma=2, alpha=0.25``; ``focal_loss(gamma=0, alpha=...)`` trains with
    (alpha-balanced) binary cross-entropy instead. Any loss given must sum over
    anchors and classes (``reduction="sum"``): RetinaNet divides the sum by
    the number of positive anchors itself.
    ``features_from``: another RetinaNet of the same backbone and pyramid sizes
    whose backbone and feature-pyramid weights are copied in and frozen, so
    that only the two heads train (fresh, and free to use other anchors): a
    cheap way to compare losses or anchor layouts on the same features.

    The model is float32 even under the gpu profile's ``mixed_float16`` policy:
    KerasCV's RetinaNet then outputs float16 boxes and scores, which its box
    decoding and non-maximum suppression reject. Build it inside
    ``with strategy.scope():`` to train it with a ``tf.distribute`` strategy.
    """
    import keras
    import keras_cv
    from keras_cv.models.retinanet import LabelEncoder as RetinaNetLabelEncoder

    anchors = anchors or AnchorConfig()
    per_location = anchors.per_location
    if classification_loss is None:
        classification_loss = focal_loss()
    elif not isinstance(classification_loss, keras.losses.Loss):
        raise TypeError(f"classification_loss must be a keras.losses.Loss such as det.focal_loss(gamma=0, alpha=0.75), "
                        f"not {type(classification_loss).__name__} {classification_loss!r}")
    elif getattr(classification_loss, "reduction", None) != "sum":
        raise ValueError(f"classification_loss must sum over anchors and classes (reduction='sum'): RetinaNet divides "
                         f"by the number of positive anchors itself; got reduction={classification_loss.reduction!r}")
    prior = -math.log((1 - 0.01) / 0.01)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # float16 outputs break KerasCV's decoding (see above)
    try:
        encoder = RetinaNetLabelEncoder(bounding_box_format=BOX_FORMAT, anchor_generator=anchors.generator(),
                                        positive_threshold=positive_threshold, negative_threshold=negative_threshold,
                                        box_variance=BOX_VARIANCE)
        model = keras_cv.models.RetinaNet(
            backbone=build_backbone(image_size, backbone_filters, backbone_blocks),
            num_classes=num_classes,
            bounding_box_format=BOX_FORMAT,
            label_encoder=encoder,
            prediction_decoder=PerClassNMS(confidence_threshold, iou_threshold, max_detections),
            feature_pyramid=_feature_pyramid_class()(pyramid_channels, len(anchors.sizes), name="feature_pyramid"),
            classification_head=_head_class()(per_location * num_classes, head_width, head_depth, prior,
                                              name="classification_head"),
            box_head=_head_class()(per_location * 4, head_width, head_depth, 0.0, name="box_head"),
        )
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if features_from is not None:
        for part in ("backbone", "feature_pyramid"):
            source, target = getattr(features_from, part, None), getattr(model, part)
            shapes = [tuple(w.shape) for w in source.weights] if source is not None else None
            if shapes != [tuple(w.shape) for w in target.weights]:
                raise ValueError(f"features_from must be a RetinaNet with the same {part.replace('_', ' ')} "
                                 f"(backbone_filters, backbone_blocks, pyramid_channels and pyramid levels) as this one")
            target.set_weights(source.get_weights())
            target.trainable = False
    if compile:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=10.0),
            classification_loss=classification_loss,
            box_loss=_replica_share(keras_cv.losses.SmoothL1Loss)(l1_cutoff=1.0, reduction="sum"),
        )
    return model


def focal_loss(gamma: float = 2.0, alpha: float = 0.25):
    """RetinaNet's classification loss as a Keras loss: the alpha-balanced focal loss from logits, summed.

    ``alpha`` weighs the positive targets and ``1 - alpha`` the negative ones (KerasCV's
    ``FocalLoss``); ``gamma`` is the focusing exponent. ``gamma=0`` is alpha-balanced binary
    cross-entropy (``alpha=0.5`` is plain cross-entropy at half weight), the baseline the
    focal loss is compared with. The defaults are those of Lin et al. (2017).
    """
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a number >= 0 (0 gives cross-entropy), got {gamma!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (the weight of positives), got {alpha!r}")
    return _replica_share(_focal_loss_class())(alpha=float(alpha), gamma=float(gamma), from_logits=True,
                                               reduction="sum")


def _focal_loss_class():
    """KerasCV's ``FocalLoss``, with ``gamma=0`` computed as a stable cross-entropy from the logits.

    KerasCV computes ``(1 - p_t) ** gamma`` even for ``gamma=0``; once a sigmoid
    saturates (``p_t`` exactly 1 in float32) the gradient of that power is
    ``0 * inf``, NaN, and training with cross-entropy diverges. For ``gamma > 0``
    the class is KerasCV's own.
    """
    import keras_cv
    from keras import ops

    class FocalLoss(keras_cv.losses.FocalLoss):
        def call(self, y_true, y_pred):
            if self.gamma != 0 or not self.from_logits or self.label_smoothing:
                return super().call(y_true, y_pred)
            y_pred = ops.convert_to_tensor(y_pred)
            y_true = ops.cast(y_true, y_pred.dtype)
            weight = ops.where(ops.equal(y_true, 1.0), self.alpha, 1.0 - self.alpha)
            # max(z, 0) - z y + log(1 + exp(-|z|)): sigmoid cross-entropy without computing the sigmoid
            cross_entropy = ops.relu(y_pred) - y_pred * y_true + ops.log1p(ops.exp(-ops.abs(y_pred)))
            return ops.sum(weight * cross_entropy, axis=-1)  # over the classes, as KerasCV's FocalLoss

    return FocalLoss


def _replica_share(loss_class):
    """A subclass of ``loss_class`` whose value passes through :func:`course_utils.config.replica_share`.

    RetinaNet's losses are sums over the anchors divided by the number of
    matched anchors, not means that Keras would divide by the number of
    replicas itself: under ``tf.distribute`` each replica must contribute its share.
    """
    from course_utils.config import replica_share

    class ReplicaShare(loss_class):
        def __call__(self, *args, **kwargs):
            return replica_share(super().__call__(*args, **kwargs))

    return ReplicaShare


def _per_class_nms_class():
    import keras
    import tensorflow as tf

    class PerClassNMS(keras.layers.Layer):
        """Score threshold, then non-maximum suppression **within each class**, as the RetinaNet paper does.

        KerasCV's ``NonMaxSuppression`` keeps only each anchor's best class and
        suppresses across classes: a square would then remove a circle it
        overlaps. Here every (anchor, class) pair whose sigmoid score is at least
        ``confidence_threshold`` is a candidate, duplicates are removed class by
        class (``tf.image.combined_non_max_suppression``), and the best
        ``max_detections`` of all classes are kept. Takes and returns ``xyxy``
        pixel boxes; padding is -1, as everywhere in this module.
        """

        def __init__(self, confidence_threshold=0.05, iou_threshold=0.5, max_detections=20, **kwargs):
            super().__init__(dtype="float32", **kwargs)
            self.confidence_threshold = float(confidence_threshold)
            self.iou_threshold = float(iou_threshold)
            self.max_detections = int(max_detections)
            self.bounding_box_format = BOX_FORMAT
            self.built = True

        def call(self, box_prediction, class_prediction, images=None, image_shape=None):
            scores = tf.sigmoid(tf.cast(class_prediction, tf.float32))
            boxes = tf.cast(box_prediction, tf.float32)[:, :, None, :]
            # IoU does not care whether x or y comes first, so xyxy boxes go in as they are.
            out = tf.image.combined_non_max_suppression(
                boxes, scores, max_output_size_per_class=self.max_detections, max_total_size=self.max_detections,
                iou_threshold=self.iou_threshold, score_threshold=self.confidence_threshold, clip_boxes=False)
            valid = tf.range(self.max_detections)[None, :] < out.valid_detections[:, None]
            return {"boxes": tf.where(valid[..., None], out.nmsed_boxes, -1.0),
                    "confidence": tf.where(valid, out.nmsed_scores, -1.0),
                    "classes": tf.where(valid, out.nmsed_classes, -1.0),
                    "num_detections": out.valid_detections}

    return PerClassNMS


def PerClassNMS(confidence_threshold=0.05, iou_threshold=0.5, max_detections=20):  # noqa: N802 (a layer factory)
    """The prediction decoder of our RetinaNet: per-class non-maximum suppression (see the layer's docstring)."""
    return _per_class_nms_class()(confidence_threshold, iou_threshold, max_detections)


def set_decoder(model, confidence_threshold: float = 0.05, iou_threshold: float = 0.5, max_detections: int = 20):
    """Change how ``model.predict`` turns scores into detections.

    ``iou_threshold=1.0`` switches non-maximum suppression off (no box has an
    IoU above 1 with another), to show what it removes.
    """
    model.prediction_decoder = PerClassNMS(confidence_threshold, iou_threshold, max_detections)


def pyramid_shapes(model, image_size: int) -> dict:
    """Output shapes of the backbone stages (C3-C5) and of the pyramid levels (P3..) for one image."""
    x = np.zeros((1, image_size, image_size, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        backbone_out = model.feature_extractor(x)
        pyramid_out = model.feature_pyramid(backbone_out)
    shapes = {f"C{k[1:]}": tuple(backbone_out[k].shape[1:]) for k in ("P3", "P4", "P5")}
    for k, level in enumerate(pyramid_out):
        shapes[f"P{3 + k}"] = tuple(level.shape[1:])
    return shapes


def parameter_counts(model) -> dict:
    """Parameters of the backbone, the pyramid, the two heads and the whole model."""
    return {
        "backbone": model.backbone.count_params(),
        "feature pyramid": model.feature_pyramid.count_params(),
        "classification head": model.classification_head.count_params(),
        "box head": model.box_head.count_params(),
        "total": model.count_params(),
    }


# ------------------------------------------------------------------------ augmentation


def augmenter(flip: bool = True, scale: float = 0.25, seed: int | None = None):
    """Box-aware augmentation from core Keras: horizontal flip and scale jitter.

    Returns a function ``(images, boxes, classes) -> (images, boxes, classes)``
    on a batch (NumPy or tensors, ``xyxy`` pixels, padded with -1). The scale
    jitter zooms in or out by up to ``scale`` (``keras.layers.RandomZoom``,
    aspect ratio kept, black border when zooming out). Afterwards boxes are clipped
    to the image, padding rows are restored to -1 and boxes that lost more than
    half of their area (pushed out of the frame) are dropped, so every box stays
    valid and tight on the visible part of its object.
    """
    import keras
    from keras import ops

    layers = []  # float32 like the model, also under a mixed_float16 policy
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, bounding_box_format=BOX_FORMAT,
                                              dtype="float32"))
    if scale:
        layers.append(keras.layers.RandomZoom((-scale, scale), seed=None if seed is None else seed + 1,
                                              fill_mode="constant", bounding_box_format=BOX_FORMAT, dtype="float32"))

    def apply(images, boxes, classes):
        height, width = int(images.shape[1]), int(images.shape[2])
        images = ops.cast(images, "float32")
        boxes = ops.cast(boxes, "float32")
        classes = ops.cast(classes, "int32")
        valid = classes >= 0
        n = ops.shape(boxes)[0]
        # A small reference box at the centre (zoom keeps the centre in the frame) measures the
        # zoom factor, so that we know each box's area before any clipping.
        ref = ops.convert_to_tensor([[width / 2 - 4, height / 2 - 4, width / 2 + 4, height / 2 + 4]], "float32")
        ref = ops.broadcast_to(ref[None], (n, 1, 4))
        data = {"images": images,
                "bounding_boxes": {"boxes": ops.concatenate([boxes, ref], axis=1),
                                   "labels": ops.concatenate([classes, ops.zeros((n, 1), "int32")], axis=1)}}
        for layer in layers:
            data = layer(data, training=True)
        out = data["bounding_boxes"]["boxes"]
        zoom = (out[:, -1, 2] - out[:, -1, 0]) / 8.0  # lengths are multiplied by this
        out = out[:, :-1]
        area_zoomed = ops.prod(ops.maximum(boxes[..., 2:] - boxes[..., :2], 0.0), axis=-1) * (zoom**2)[:, None]
        limit = ops.convert_to_tensor([width, height, width, height], dtype=out.dtype)
        out = ops.clip(out, 0.0, limit)
        size = ops.maximum(out[..., 2:] - out[..., :2], 0.0)
        keep = valid & (size[..., 0] >= 1.0) & (size[..., 1] >= 1.0)
        keep = keep & (ops.prod(size, axis=-1) >= 0.5 * area_zoomed)
        out = ops.where(keep[..., None], out, -1.0)
        return data["images"], out, ops.where(keep, classes, -1)

    return apply


def make_train_dataset(data: DetectionData, batch_size: int = 16, augment: bool = True, seed: int = 0,
                       scale: float = 0.25):
    """A shuffled, batched ``tf.data.Dataset`` of ``(images, {"boxes", "classes"})`` with box-aware augmentation."""
    import tensorflow as tf

    targets = data.targets()
    ds = tf.data.Dataset.from_tensor_slices((data.images, targets["boxes"], targets["classes"]))
    ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True).batch(batch_size, drop_remainder=True)
    if augment:
        apply = augmenter(flip=True, scale=scale, seed=seed)

        def augment_batch(images, boxes, classes):
            images, boxes, classes = apply(images, boxes, classes)
            return images, boxes, tf.cast(classes, tf.float32)

        ds = ds.map(augment_batch)
    ds = ds.map(lambda x, b, c: (x, {"boxes": b, "classes": c}))
    return ds.prefetch(2)


def train(model, data: DetectionData, epochs: int, batch_size: int = 16, augment: bool = True, seed: int = 0,
          validation: DetectionData | None = None, callbacks=None, strategy=None):
    """Fit ``model`` on ``data``; returns ``(history, seconds)``. Validation loss uses the unaugmented ``validation`` set.

    ``strategy``: a ``tf.distribute`` strategy the model was built (and compiled)
    under (default: the model's own, see :func:`course_utils.config.distribute`);
    ``batch_size`` is per replica.
    """
    from course_utils.config import distribute

    _, batch_size = distribute(model, batch_size, strategy)
    val = None
    if validation is not None:
        import tensorflow as tf

        val = tf.data.Dataset.from_tensor_slices((validation.images, validation.targets())).batch(batch_size)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras' notes on input structure and shuffling
        history = model.fit(make_train_dataset(data, batch_size, augment, seed), epochs=epochs, validation_data=val,
                            callbacks=callbacks, verbose=0)
    return history, time.perf_counter() - start


def raw_outputs(model, images, batch_size: int = 64) -> dict:
    """The model's undecoded outputs ``{"box", "classification"}`` (one row per anchor), computed eagerly.

    Computing them once and decoding them with several thresholds (:func:`predict`
    with ``raw=``) avoids re-tracing ``model.predict`` for every setting.
    """
    images = np.asarray(images, np.float32)
    parts = {"box": [], "classification": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for start in range(0, len(images), batch_size):
            out = model(images[start : start + batch_size], training=False)
            for key in parts:
                parts[key].append(np.asarray(out[key]))
    return {key: np.concatenate(value) for key, value in parts.items()}


def predict(model, images, confidence_threshold: float | None = None, iou_threshold: float | None = None,
            max_detections: int | None = None, raw: dict | None = None, batch_size: int = 64) -> dict:
    """Decoded detections as NumPy: ``boxes`` (xyxy), ``classes``, ``confidence`` padded with -1, ``num_detections``.

    Without thresholds it uses the model's own decoder (see :func:`build_retinanet`);
    with them, a decoder with those settings (``iou_threshold=1.0`` switches
    non-maximum suppression off). ``raw`` reuses :func:`raw_outputs` of the same images.
    """
    from keras import ops
    from keras.utils import bounding_boxes

    images = np.asarray(images, np.float32)
    raw = raw if raw is not None else raw_outputs(model, images, batch_size)
    decoder = model.prediction_decoder
    if confidence_threshold is not None or iou_threshold is not None or max_detections is not None:
        decoder = PerClassNMS(decoder.confidence_threshold if confidence_threshold is None else confidence_threshold,
                           decoder.iou_threshold if iou_threshold is None else iou_threshold,
                           decoder.max_detections if max_detections is None else max_detections)
    image_shape = tuple(images.shape[1:])
    anchors = model.anchor_generator(image_shape=image_shape)
    anchors = ops.concatenate(list(anchors.values()), axis=0)
    boxes = bounding_boxes.decode_deltas_to_boxes(anchors=anchors, boxes_delta=ops.convert_to_tensor(raw["box"]),
                                                  anchor_format=model.anchor_generator.bounding_box_format,
                                                  box_format=decoder.bounding_box_format, variance=BOX_VARIANCE,
                                                  image_shape=image_shape)
    out = decoder(boxes, ops.convert_to_tensor(raw["classification"]), image_shape=image_shape)
    result = {k: np.asarray(out[k]) for k in ("boxes", "classes", "confidence", "num_detections")}
    result["classes"] = result["classes"].astype(np.int32)
    return result


def anchor_targets(model, data: DetectionData, batch_size: int = 64) -> np.ndarray:
    """Every anchor's classification target under the model's own matching, ``(images, anchors)`` int32.

    A class id (``0 ..``) for a positive anchor, ``-1`` for background, ``-2`` for an
    ignored anchor: computed by the model's label encoder (KerasCV's
    ``RetinaNetLabelEncoder`` with the model's anchors and IoU thresholds), the
    very targets training sees, without augmentation. Same anchor order as
    :func:`raw_outputs`.
    """
    parts = []
    for start in range(0, len(data), batch_size):
        part = data.subset(slice(start, start + batch_size))
        _, classes = model.label_encoder(np.asarray(part.images, np.float32), part.targets())
        parts.append(np.asarray(classes))
    return np.rint(np.concatenate(parts)).astype(np.int32)


def anchor_scores(raw: dict, targets) -> dict:
    """The model's sigmoid scores split by what each anchor should say (``targets`` from :func:`anchor_targets`).

    ``"object"``: at every positive anchor, the probability given to its true class;
    ``"background"``: at every background anchor, the highest probability over the
    classes (the score a false detection there would get). Ignored anchors are left out.
    """
    logits = np.asarray(raw["classification"], np.float64)
    targets = np.asarray(targets)
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"raw outputs cover {logits.shape[:2]} (images, anchors) but the targets {targets.shape}: "
                         "compute both on the same images with the same model")
    probability = 1.0 / (1.0 + np.exp(-logits))
    positive = targets >= 0
    return {"object": probability[positive, targets[positive]],
            "background": probability[targets == -1].max(axis=-1)}


def plot_score_distributions(scores: dict, threshold: float | None = 0.05, title: str | None = None):
    """Histograms of anchor scores, background anchors and object anchors side by side, one line per model.

    ``scores`` maps a model's name to :func:`anchor_scores`. Scores are drawn on a
    log axis (background scores span several decades, down to 1e-8, where lower
    scores are counted in the first bin); each histogram shows the share of its
    anchors per bin. ``threshold`` (the decoder's score threshold)
    is marked: background anchors to its right become candidate false detections.
    """
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    if not scores:
        raise ValueError("scores is empty: pass {model name: det.anchor_scores(...)} for at least one model")
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.9), sharey=False, layout="constrained")
    low = min(max(float(np.min(v[k], initial=1.0)), 1e-8) for v in scores.values() for k in ("object", "background"))
    bins = np.logspace(np.floor(np.log10(low)), 0, 41)
    for ax, key, name in zip(axes, ("background", "object"),
                             ("background anchors: highest class score", "object anchors: score of the true class")):
        for k, (model_name, groups) in enumerate(scores.items()):
            values = np.clip(np.asarray(groups[key]), bins[0], 1.0)
            share = np.histogram(values, bins=bins)[0] / max(len(values), 1)
            ax.stairs(share, bins, color=_COLOURS[[1, 0, 2, 3][k % 4]], lw=1.6,
                      label=f"{model_name} ({len(values):,} anchors)")
        if threshold is not None:
            ax.axvline(threshold, color="grey", ls="--", lw=1)
            ax.text(threshold, ax.get_ylim()[1] * 0.97, f" {threshold:g}", color="grey", fontsize=8, va="top")
        ax.set_xscale("log")
        ax.set_xlabel("score (sigmoid probability)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("share of anchors")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# -------------------------------------------------------------------------- evaluation


def match_detections(pred_boxes, pred_scores, gt_boxes, iou_threshold: float = 0.5):
    """Greedy matching of one image's detections of one class to its ground truth.

    Detections are taken by decreasing score; each takes the unmatched
    ground-truth box it overlaps most if that IoU is at least ``iou_threshold``
    (a true positive), otherwise it is a false positive. Returns a boolean
    array ``tp`` in the order of the input detections.
    """
    order = np.argsort(-np.asarray(pred_scores), kind="stable")
    tp = np.zeros(len(order), bool)
    if len(gt_boxes) == 0 or len(order) == 0:
        return tp
    iou = iou_matrix(np.asarray(pred_boxes)[order], gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    for k in range(len(order)):
        candidates = np.where(taken, -1.0, iou[k])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            tp[order[k]] = True
    return tp


def average_precision(scores, tp, n_positives: int):
    """Area under the precision-recall curve of ranked detections (all-point interpolation, as in VOC 2010+).

    ``scores`` and ``tp`` (true positive or not) over all images, ``n_positives``
    the number of ground-truth objects. Precision is first made monotone
    (each point takes the best precision at any higher recall). Returns
    ``(ap, recall, precision)``; with no objects, AP is ``nan``.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(tp, bool)[order]
    if n_positives == 0:
        return float("nan"), np.zeros(0), np.zeros(0)
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(~tp)
    recall = tp_cum / n_positives
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    ap = float(np.sum((r[1:] - r[:-1]) * p[1:]))
    return ap, recall, precision


def evaluate(predictions: dict, data: DetectionData, iou_thresholds=(0.5,)) -> dict:
    """Our own VOC-style evaluation: AP per class and mAP at each IoU threshold.

    Returns ``{"ap": {threshold: array of AP per class}, "map": {threshold: mAP},
    "curves": {threshold: [(recall, precision) per class]}}``; the mean skips
    classes without ground truth.
    """
    result = {"ap": {}, "map": {}, "curves": {}}
    num_classes = len(data.class_names)
    for t in iou_thresholds:
        aps, curves = np.full(num_classes, np.nan), []
        for c in range(num_classes):
            scores, tps, n_pos = [], [], 0
            for i in range(len(data)):
                gt = data.boxes[i][data.classes[i] == c]
                n_pos += len(gt)
                keep = (predictions["classes"][i] == c) & (predictions["confidence"][i] >= 0)
                keep[int(predictions["num_detections"][i]):] = False
                if keep.any():
                    scores.append(predictions["confidence"][i][keep])
                    tps.append(match_detections(predictions["boxes"][i][keep], scores[-1], gt, t))
            ap, recall, precision = average_precision(np.concatenate(scores) if scores else np.zeros(0),
                                                      np.concatenate(tps) if tps else np.zeros(0, bool), n_pos)
            aps[c] = ap
            curves.append((recall, precision))
        result["ap"][t] = aps
        result["map"][t] = float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")
        result["curves"][t] = curves
    return result


def coco_metrics(predictions: dict, data: DetectionData) -> dict:
    """COCO evaluation with pycocotools' ``COCOeval`` over **every** image of ``data``.

    Returns ``{"map": mAP@[.5:.95], "map50": mAP@0.5, "map75": mAP@0.75}``.
    Images without any detection count (they lower recall); KerasCV 0.9's
    ``BoxCOCOMetrics`` leaves them out (keras-cv issue 2504) and so inflates the
    mAP. COCO boxes are ``[x, y, width, height]``; pycocotools' printed summary
    is silenced.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    height, width = data.image_size
    truth = {"images": [{"id": i, "height": height, "width": width} for i in range(len(data))],
             "categories": [{"id": c, "name": n} for c, n in enumerate(data.class_names)], "annotations": []}
    for i in range(len(data)):
        for box, c in zip(data.boxes[i], data.classes[i]):
            if c >= 0:
                w, h = float(box[2] - box[0]), float(box[3] - box[1])
                truth["annotations"].append({"id": len(truth["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                             "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h,
                                             "iscrowd": 0})
    detections = []
    for i in range(len(data)):
        for k in range(int(predictions["num_detections"][i])):
            if predictions["confidence"][i][k] >= 0:
                x0, y0, x1, y1 = (float(v) for v in predictions["boxes"][i][k])
                detections.append({"image_id": i, "category_id": int(predictions["classes"][i][k]),
                                   "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(predictions["confidence"][i][k])})
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = truth
        ground_truth.createIndex()
        if not detections:
            return {"map": 0.0, "map50": 0.0, "map75": 0.0}
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
        evaluation.params.imgIds = list(range(len(data)))
        evaluation.params.maxDets = [1, 10, max(100, int(np.max(predictions["num_detections"], initial=0)))]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": float(evaluation.stats[0]), "map50": float(evaluation.stats[1]), "map75": float(evaluation.stats[2])}


def count_objects(predictions: dict, confidence_threshold: float = 0.5, merge_iou: float | None = 0.5) -> np.ndarray:
    """Number of objects per image: detections with confidence at least ``confidence_threshold``.

    Per-class NMS leaves one box per class on an object whose class the model
    hesitates over; for counting, a detection that overlaps a better-scored one
    of *any* class by more than ``merge_iou`` is the same object and is not
    counted again (class-agnostic suppression). ``merge_iou=None`` counts every
    detection.
    """
    conf = np.asarray(predictions["confidence"])
    if merge_iou is None:
        return np.sum(conf >= confidence_threshold, axis=1).astype(np.int32)
    counts = np.zeros(len(conf), np.int32)
    for i in range(len(conf)):
        keep = np.flatnonzero(conf[i] >= confidence_threshold)
        keep = keep[np.argsort(-conf[i][keep], kind="stable")]
        overlap = iou_matrix(predictions["boxes"][i][keep], predictions["boxes"][i][keep]) > merge_iou
        counted = []
        for k in range(len(keep)):
            if not overlap[k, counted].any():
                counted.append(k)
        counts[i] = len(counted)
    return counts


def choose_count_threshold(predictions: dict, data: DetectionData, thresholds=np.arange(0.05, 0.96, 0.05),
                           merge_iou: float | None = 0.5):
    """The confidence threshold whose counts are closest to the truth on ``data`` (a validation split).

    Returns ``(threshold, mean absolute count error at each of thresholds)``, counting as
    :func:`count_objects` does with ``merge_iou``; ties go to the lower threshold. Choose it on images the final score is not
    computed on, or the test error is optimistic.
    """
    thresholds = np.round(np.asarray(thresholds, float), 4)
    truth = data.object_counts()
    errors = np.array([np.mean(np.abs(count_objects(predictions, t, merge_iou) - truth)) for t in thresholds])
    return float(thresholds[int(np.argmin(errors))]), errors


def shuffled_predictions(data: DetectionData, seed: int = 0) -> dict:
    """Ground truth of *other* images presented as predictions (a sanity baseline whose mAP must be low)."""
    rng = np.random.default_rng(seed)
    perm = np.roll(np.arange(len(data)), 1 + int(rng.integers(max(1, len(data) - 1))))
    return perfect_predictions(data.subset(perm))


def perfect_predictions(data: DetectionData) -> dict:
    """The ground truth as predictions with confidence 1 (mAP must be 1): a check of the evaluation.

    To draw the ground truth, pass it to :func:`plot_detections` as ``true_boxes``
    and ``true_classes``: it is labelled with class names there, not with scores
    of 1.00 as these predictions would be.
    """
    valid = data.classes >= 0
    return {"boxes": np.where(valid[..., None], data.boxes, -1).astype(np.float32),
            "classes": data.classes.astype(np.int32),
            "confidence": np.where(valid, 1.0, -1.0).astype(np.float32),
            "num_detections": valid.sum(axis=1).astype(np.int32)}


# ------------------------------------------------------------------------------ figures


_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628", "#f781bf", "#999999")


_LABEL_SIZE = 9  # pt, the labels on the boxes; figures are at most plots.PAGE_WIDTH wide, so they show at this size


def _box_patch(ax, box, colour, style="-", width=1.5, label=None, pixels_per_point=0.0, image_shape=None):
    """Draw ``box`` (xyxy pixels) on ``ax``, with ``label`` on a patch of its colour.

    The label sits above the box, or below it when there is no room above, and
    ends at the box's right edge when it would run past the image's, so that it
    stays inside its panel (``pixels_per_point``: image pixels per typographic
    point of the panel; ``image_shape``: ``(height, width)``).
    """
    import matplotlib.patches as patches

    x0, y0, x1, y1 = box
    # Pixel edges sit at half-integers in imshow's coordinates.
    ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                                   linestyle=style, linewidth=width))
    if label:
        height, width_px = image_shape if image_shape is not None else (float("inf"), float("inf"))
        label_height = (_LABEL_SIZE + 3) * pixels_per_point
        label_width = (0.6 * _LABEL_SIZE * len(label) + 2) * pixels_per_point  # about 0.6 em a character
        room_below = y1 + label_height <= height
        above = y0 - 1.0 - label_height >= -0.5 or not room_below
        left = x0 - 0.5 + label_width <= width_px - 0.5 or x1 - 0.5 - label_width < -0.5
        ax.text(x0 - 0.5 if left else x1 - 0.5, y0 - 1.0 if above else y1, label, color="white",
                fontsize=_LABEL_SIZE, va="bottom" if above else "top", ha="left" if left else "right", clip_on=True,
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1, "alpha": 0.85})


def plot_detections(images, class_names, true_boxes=None, true_classes=None, predictions=None,
                    min_confidence: float = 0.0, ncols: int = 4, title: str | None = None, titles=None,
                    label_truth: bool | None = None):
    """Images with ground-truth boxes (dashed) and predicted boxes (solid, colour per class).

    Predictions are labelled with their class and score. Ground truth is
    labelled with its class name only: drawn alone (no ``predictions``), its
    boxes take their class colour and carry the name; beside predictions they
    are white and unlabelled, so that the labels on the image are the model's
    (``label_truth`` overrides either default).

    (``keras.visualization.plot_bounding_box_gallery`` draws with OpenCV, which the
    course does not install; this is the matplotlib equivalent.)
    """
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH, TITLE_SIZE

    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    label_truth = predictions is None if label_truth is None else label_truth
    cell = min(2.6, PAGE_WIDTH / ncols)
    title_room = TITLE_SIZE * 1.3 / 72 if titles is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(cell * ncols, nrows * (cell + title_room + 0.05) + (0.35 if title else 0.05)))
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    for ax in axes.flat:
        ax.axis("off")
    shape = images.shape[1:3] if images.ndim >= 3 else None
    # Image pixels per point: the panel is about `cell` inches for the image's larger side.
    per_point = max(shape) / (cell * 72) if shape is not None else 0.0
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(np.clip(images[i], 0, 1))
        if true_boxes is not None:
            for box, c in zip(true_boxes[i], true_classes[i]):
                if c >= 0 and label_truth:
                    _box_patch(ax, box, _COLOURS[int(c) % len(_COLOURS)], style="--", label=str(class_names[int(c)]),
                               pixels_per_point=per_point, image_shape=shape)
                elif c >= 0:
                    _box_patch(ax, box, "white", style="--", width=1.0)
        if predictions is not None:
            k = int(predictions["num_detections"][i])
            for box, c, s in zip(predictions["boxes"][i][:k], predictions["classes"][i][:k],
                                 predictions["confidence"][i][:k]):
                if s >= min_confidence and c >= 0:
                    colour = _COLOURS[int(c) % len(_COLOURS)]
                    _box_patch(ax, box, colour, label=f"{class_names[int(c)]} {s:.2f}",
                               pixels_per_point=per_point, image_shape=shape)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=TITLE_SIZE)
    if title:
        fig.suptitle(title)
    return fig


def plot_anchors(image, config: AnchorConfig, gt_boxes=None, centre=None, title: str | None = None):
    """One panel per pyramid level: the centres of the level's grid cells and the anchors of one cell.

    ``centre`` ``(x, y)`` picks the cell whose anchors are drawn (default: the
    image centre). Anchors are drawn before clipping to the image.
    """
    import matplotlib.pyplot as plt

    image = np.asarray(image)
    height, width = image.shape[:2]
    centre = centre or (width / 2, height / 2)
    from course_utils.plots import PAGE_WIDTH

    cell = min(3.2, PAGE_WIDTH / len(config.levels))  # the row of levels fits the page, so its titles stay legible
    fig, axes = plt.subplots(1, len(config.levels), figsize=(cell * len(config.levels), cell + (0.6 if title else 0.35)),
                             squeeze=False, layout="constrained")
    for ax, level, size in zip(axes.flat, config.levels, config.sizes):
        stride = LEVEL_STRIDES[level]
        ax.imshow(np.clip(image, 0, 1))
        gx, gy = np.meshgrid((np.arange(math.ceil(width / stride)) + 0.5) * stride,
                             (np.arange(math.ceil(height / stride)) + 0.5) * stride)
        ax.scatter(gx.ravel() - 0.5, gy.ravel() - 0.5, s=4, c="yellow")
        cx = (math.floor(centre[0] / stride) + 0.5) * stride
        cy = (math.floor(centre[1] / stride) + 0.5) * stride
        k = 0
        for scale in config.scales:
            for ratio in config.aspect_ratios:  # KerasCV: ratio = height / width
                h, w = size * scale * math.sqrt(ratio), size * scale / math.sqrt(ratio)
                _box_patch(ax, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), _COLOURS[k % len(_COLOURS)])
                k += 1
        if gt_boxes is not None:
            for box in gt_boxes:
                _box_patch(ax, box, "white", style="--", width=1.0)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(f"{level}: stride {stride}, {gx.size} cells", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def plot_precision_recall(curves, class_names, aps, title: str | None = None):
    """Precision-recall curves, one per class, with the AP in the legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for c, (recall, precision) in enumerate(curves):
        if len(recall):
            ax.plot(recall, precision, label=f"{class_names[c]} (AP {aps[c]:.2f})", color=_COLOURS[c % 8])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no detections", ha="center")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_counts(true_counts, predicted_counts, title: str | None = None):
    """Predicted against true number of objects per image, as a count matrix, with the mean absolute error.

    Each (true, predicted) pair that occurs is one disc whose area grows with the
    number of images that have it, and that number is written on it, so that
    images with the same counts do not hide one another. Both axes have integer
    ticks and span the counts that occur (the same range, so that the diagonal
    of exact counts runs at 45 degrees).
    """
    import matplotlib.pyplot as plt

    true_counts = np.asarray(true_counts, dtype=int).ravel()
    predicted_counts = np.asarray(predicted_counts, dtype=int).ravel()
    if true_counts.shape != predicted_counts.shape:
        raise ValueError(f"true and predicted counts differ in length: {len(true_counts)} and {len(predicted_counts)}")
    fig, ax = plt.subplots(figsize=(4.4, 4.2), layout="constrained")
    def extent(values):
        return (int(values.min()), int(values.max())) if len(values) else (0, 1)

    # x spans the true counts; y the predicted ones and the true ones, so that the diagonal of exact counts shows.
    x_lo, x_hi = extent(true_counts)
    y_lo, y_hi = extent(np.concatenate([true_counts, predicted_counts]))
    x_span, y_span = x_hi - x_lo + 1, y_hi - y_lo + 1
    ax.plot((x_lo - 0.5, x_hi + 0.5), (x_lo - 0.5, x_hi + 0.5), color="grey", lw=1, ls="--", zorder=1)
    unit = min(3.3 / x_span, 3.0 / y_span) * 72  # points per count on the axis with the least room per count
    if len(true_counts):
        pairs, images = np.unique(np.stack([true_counts, predicted_counts], axis=1), axis=0, return_counts=True)
        diameter = min(unit * 0.92, 40) * np.sqrt(images / images.max())
        exact = pairs[:, 0] == pairs[:, 1]
        ax.scatter(pairs[:, 0], pairs[:, 1], s=np.maximum(diameter, 4) ** 2, zorder=2, alpha=0.85, linewidths=0,
                   color=np.where(exact, "#0072B2", "#E69F00"))  # Okabe-Ito blue: exact, orange: off
        if unit >= 14:  # room to write the number of images on its disc
            for (t, p), k, d in zip(pairs, images, diameter):
                inside = d >= 16
                ax.annotate(str(k), (t, p), xytext=(0, 0) if inside else (0, d / 2 + 1), textcoords="offset points",
                            ha="center", va="center" if inside else "bottom", fontsize=9, zorder=3,
                            color="white" if inside else "black")
        kinds = [(c, text) for c, text, shown in (("#0072B2", "exact count", exact.any()),
                                                  ("#E69F00", "too few or too many", (~exact).any())) if shown]
        ax.legend(handles=[plt.Line2D([], [], ls="", marker="o", color=c, label=text) for c, text in kinds],
                  loc="best", fontsize=9, framealpha=0.9)
    mae = np.mean(np.abs(true_counts - predicted_counts)) if len(true_counts) else float("nan")
    ax.set_xlim(x_lo - 0.5, x_hi + 0.5)
    ax.set_ylim(y_lo - 0.5, y_hi + 0.5)
    ax.xaxis.set_major_locator(plt.MaxNLocator(nbins=min(x_span, 10), integer=True))
    ax.yaxis.set_major_locator(plt.MaxNLocator(nbins=min(y_span, 10), integer=True))
    ax.set_xlabel("true number of objects")
    ax.set_ylabel("predicted number of objects")
    key = "number on a disc: images with those counts" if unit >= 14 else "disc area: number of images"
    ax.set_title(title or f"object counts (mean absolute error {mae:.2f})\n{key}", fontsize=10)
    ax.grid(alpha=0.3, zorder=0)
    ax.set_axisbelow(True)
    return fig
