"""The visible checks of week 3's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from course_utils import detection
from course_utils.checks import check, check_close, check_equal, check_own_work, check_shape


def week3_iou(iou, random_boxes, rng) -> None:
    """The visible check of week 3's iou."""
    check_own_work(iou, detection.iou_matrix, "iou")
    # Two 10x10 boxes overlapping on a 5x5 square: intersection 25, union 100 + 100 - 25 = 175.
    check_close(
        iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])),
        [[25 / 175]],
        "IoU of two shifted 10x10 boxes",
        mistakes={
            "you counted pixels inclusively (width x_max - x_min + 1); here x_max is exclusive, so the "
            "width is x_max - x_min.": [[36 / (121 + 121 - 36)]],
            "the union subtracts the intersection twice: it is area_a + area_b - intersection.": [[25 / 150]],
            "the union must subtract the intersection (counted in both areas).": [[25 / 200]],
            "you divided by the smaller box's area, not by the union.": [[25 / 100]],
        },
    )
    check_close(
        iou(np.array([[0, 0, 10, 10]]), np.array([[20, 20, 30, 30]])),
        [[0.0]],
        "IoU of two boxes far apart",
        mistakes={
            "boxes far apart have a negative overlap width AND height, whose product is positive: clip "
            "each of them at 0 before multiplying.": lambda value: np.asarray(value).item() > 0.5
        },
    )
    a, b = random_boxes(7, rng), random_boxes(5, rng)
    result = iou(a, b)
    check_shape(result, (7, 5), "iou of 7 boxes against 5")
    expected = keras.utils.bounding_boxes.compute_iou(a, b, "xyxy")
    check_close(result, np.asarray(expected), "iou against keras.utils.bounding_boxes.compute_iou on random boxes")


def week3_focal(focal_loss, rng) -> None:
    """The visible check of week 3's focal."""
    check_own_work(focal_loss, detection.binary_focal_loss, "focal_loss")
    y = (rng.random((6, 10)) < 0.2).astype(np.float32)
    logits = rng.normal(0, 3, size=(6, 10)).astype(np.float32)
    for gamma, alpha in [(2.0, 0.25), (0.0, 0.5), (1.0, 0.75)]:

        def library(alpha=alpha, gamma=gamma):
            """Keras' focal loss, summed over every entry (a trailing axis of 1: Keras averages over the last axis)."""
            loss = keras.losses.BinaryFocalCrossentropy(
                apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True, reduction="sum"
            )
            return float(loss(y[..., None], logits[..., None]))

        expected = library()
        check_close(
            focal_loss(y, logits, gamma, alpha),
            expected,
            f"focal_loss with gamma={gamma}, alpha={alpha}",
            atol=1e-3,
            mistakes={
                "alpha_t is swapped: alpha weighs the positives (y = 1), 1 - alpha the negatives.": library(
                    alpha=1 - alpha
                )
                if alpha != 0.5
                else None,
                "you averaged the entries; the loss asked for is their sum.": expected / y.size,
                "the modulating factor is (1 - p_t) ** gamma: you wrote p_t ** gamma (it must shrink "
                "for easy examples, where p_t is near 1).": None
                if gamma == 0
                else float(
                    np.sum(
                        np.where(y == 1, alpha, 1 - alpha)
                        * np.where(y == 1, 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits))) ** gamma
                        * (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))
                    )
                ),
            },
        )
    easy = focal_loss(np.zeros(1), np.array([-4.0]))
    hard = focal_loss(np.zeros(1), np.array([4.0]))
    check(hard > 1000 * easy, "an easy negative (logit -4) should cost far less than a hard one (logit +4)")


def week3_nms(nms, random_boxes, rng) -> None:
    """The visible check of week 3's nms."""
    two_close = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]], np.float32)
    check_equal(
        list(nms(two_close, np.array([0.9, 0.8, 0.7]))),
        [0, 2],
        "nms keeps the best of two overlapping boxes",
        mistakes={
            "you removed the boxes that overlap LITTLE: remove those whose IoU is greater than the "
            "threshold, keep the others.": [0, 1],
            "nothing was removed: drop every box whose IoU with the kept one is above the threshold.": [0, 1, 2],
        },
    )
    check_equal(
        list(nms(two_close, np.array([0.6, 0.8, 0.7]))),
        [1, 2],
        "nms keeps the higher score, whichever it is",
        mistakes={"you took the boxes in their input order: sort them by decreasing score first.": [0, 2]},
    )
    for threshold in (0.3, 0.5, 0.7):
        boxes = random_boxes(40, rng)
        scores = rng.random(40).astype(np.float32)
        # TensorFlow wants yxyx boxes; IoU does not care about the order of the axes.
        expected = tf.image.non_max_suppression(
            boxes[:, [1, 0, 3, 2]], scores, max_output_size=40, iou_threshold=threshold
        ).numpy()
        in_input_order = tf.image.non_max_suppression(
            boxes[:, [1, 0, 3, 2]],
            np.linspace(1, 0.5, 40, dtype=np.float32),
            max_output_size=40,
            iou_threshold=threshold,
        ).numpy()
        check_equal(
            list(nms(boxes, scores, threshold)),
            list(expected),
            f"nms against TensorFlow, threshold {threshold}",
            mistakes={
                "you took the boxes in their input order: sort them by decreasing score first.": list(in_input_order),
                "return the kept boxes best score first, not in index order.": sorted(expected),
            },
        )


def week3_ap(average_precision) -> None:
    """The visible check of week 3's ap."""
    check_own_work(average_precision, detection.average_precision, "average_precision")
    check_close(average_precision([0.9, 0.8, 0.7], [True, True, True], 3), 1.0, "AP of three correct detections")
    check_close(
        average_precision([0.9, 0.8, 0.7], [True, False, True], 3),
        1 / 3 + 1 / 3 * 2 / 3,
        "AP of correct, wrong, correct with 3 objects",
        mistakes={
            "recall divides by the number of objects (3), not by the number of true positives.": 1 / 2 + 1 / 2 * 2 / 3
        },
    )
    # Ranked by score: 0.9 wrong, 0.8 right, 0.7 right: precision 0, 1/2, 2/3, made monotone 2/3 everywhere.
    check_close(
        average_precision([0.7, 0.9, 0.8], [True, False, True], 3),
        2 / 3 * 2 / 3,
        "AP must sort by score first",
        mistakes={
            "you kept the detections in their input order: sort them by decreasing score first.": 1 / 3 + 1 / 3 * 2 / 3,
            "you sorted by increasing score: the best-scored detection comes first.": 2 / 3,
            "you did not make the precision monotone: replace each precision by the largest one at the "
            "same or a later rank.": 1 / 3 * 1 / 2 + 1 / 3 * 2 / 3,
        },
    )
    check_close(
        average_precision([0.9, 0.8], [True, True], 4),
        0.5,
        "AP when half of the objects are never found",
        mistakes={"recall divides by all the objects (4), found or not: missed objects cap the recall.": 1.0},
    )
    check_close(
        average_precision([0.9, 0.8, 0.5], [False, True, True], 2),
        2 / 3,
        "AP when the best-scored detection is wrong (precision 2/3 is kept back to recall 0)",
        mistakes={
            "you did not make the precision monotone: replace each precision by the largest one at the "
            "same or a later rank.": 1 / 2 * 1 / 2 + 1 / 2 * 2 / 3
        },
    )
