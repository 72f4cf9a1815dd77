"""The box format of the course, and converting and comparing boxes (IoU)."""

from __future__ import annotations

import keras
import numpy as np

BOX_FORMAT = "xyxy"
"""The box format used throughout the course: pixel corners, exclusive maxima."""


def convert_boxes(boxes, source: str, target: str, image_size=None) -> np.ndarray:
    """Convert boxes between Keras' formats (``xyxy``, ``yxyx``, ``xywh``, ``center_xywh``, ``rel_xyxy`` ...).

    A thin wrapper of ``keras.utils.bounding_boxes.convert_format`` returning NumPy;
    relative formats need ``image_size`` ``(height, width)``.
    """
    height, width = image_size if image_size is not None else (None, None)
    out = keras.utils.bounding_boxes.convert_format(
        np.asarray(boxes, np.float32), source=source, target=target, height=height, width=width
    )
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
