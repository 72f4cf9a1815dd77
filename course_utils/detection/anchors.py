"""Anchor boxes: their layout over the pyramid levels, and RetinaNet's matching of anchors to objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from course_utils.detection.boxes import iou_matrix
from course_utils.detection.data import DetectionData

LEVEL_STRIDES = {"P3": 8, "P4": 16, "P5": 32, "P6": 64, "P7": 128}
"""Downsampling factor of each pyramid level: level ``Pk`` has stride ``2**k``."""


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor boxes: one base size per pyramid level, times ``scales``, times ``aspect_ratios``.

    Level ``P3`` (stride 8) gets ``sizes[0]``, ``P4`` ``sizes[1]`` and so on; at
    every cell of a level's grid sit ``len(scales) * len(aspect_ratios)`` anchors
    centred on the cell. ``aspect_ratios`` are height / width (KerasCV's
    convention); the course's shapes need only 1.0.
    """

    sizes: tuple[float, ...] = (16.0, 32.0, 64.0)
    scales: tuple[float, ...] = (1.0, 2**0.5)
    aspect_ratios: tuple[float, ...] = (1.0,)

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(f"P{3 + k}" for k in range(len(self.sizes)))

    @property
    def per_location(self) -> int:
        return len(self.scales) * len(self.aspect_ratios)

    @property
    def strides(self) -> tuple[int, ...]:
        """The stride of each level, in pixels (:data:`LEVEL_STRIDES`)."""
        return tuple(LEVEL_STRIDES[level] for level in self.levels)

    def generator(self):
        """The ``keras_cv.layers.AnchorGenerator`` with these settings (``xyxy``)."""
        from course_utils.detection.kerascv import anchor_generator  # on use: KerasCV loads some 800 modules

        return anchor_generator(self)


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
    stats = {
        "images": len(data),
        "anchors_per_image": len(all_anchors),
        "objects": 0,
        "positive": 0,
        "ignored": 0,
        "negative": 0,
        "unmatched_objects": 0,
        "positives_per_level": dict.fromkeys(anchors, 0),
        "unmatched_sides": [],
        "object_sides": [],
    }
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
