"""The focal loss: in NumPy, to look at, and as the Keras loss RetinaNet trains with."""

from __future__ import annotations

import math

import numpy as np


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
    from course_utils.detection.kerascv import FocalLoss  # on use: KerasCV loads some 800 modules

    return FocalLoss(alpha=float(alpha), gamma=float(gamma), from_logits=True, reduction="sum")
