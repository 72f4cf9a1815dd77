"""The visible checks of week 3's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from course_utils import detection
from course_utils.checks import check, check_close, check_equal, check_own_work, check_shape
from course_utils.detection.anchors import match_anchors
from course_utils.detection.evaluation import match_detections as match_detections_reference


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


def week3_label_anchors(label_anchors, random_boxes, rng) -> None:
    """The visible check of week 3's anchor labels."""
    check_own_work(label_anchors, match_anchors, "label_anchors")
    anchors = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [4, 0, 14, 10], [30, 30, 40, 40]], np.float32)
    # IoU with the object [0, 0, 10, 10]: 1, 90/110 = 0.82, 60/140 = 0.43, 0.
    labels, matched = label_anchors(anchors, np.array([[0, 0, 10, 10]], np.float32))
    check_equal(
        list(labels),
        [1, 1, -1, 0],
        "labels of four anchors against one object (IoU 1, 0.82, 0.43 and 0)",
        mistakes={
            "an anchor between the two thresholds is ignored (-1), not background.": [1, 1, 0, 0],
            "an anchor between the two thresholds is ignored (-1), not a positive.": [1, 1, 1, 0],
        },
    )
    check_equal(list(matched), [0, 0, 0, 0], "matched: each anchor's best-overlapping object")
    labels, matched = label_anchors(anchors, np.zeros((0, 4), np.float32))
    check_equal(list(labels), [0, 0, 0, 0], "with no object every anchor is background")
    check_equal(list(matched), [-1, -1, -1, -1], "with no object no anchor is matched")
    anchors, objects = random_boxes(100, rng), random_boxes(5, rng)
    expected_labels, expected_matched, _ = match_anchors(anchors, objects, 0.5, 0.4)
    labels, matched = label_anchors(anchors, objects)
    check_equal(list(labels), list(expected_labels), "label_anchors on 100 random anchors and 5 objects")
    check_equal(list(matched), list(expected_matched), "matched on 100 random anchors and 5 objects")


CORNER_OFFSETS = (
    "the first two numbers place the CENTRE, and the last two (the size) must not change when the box moves: "
    "corner offsets do neither."
)


def _offsets(anchors, boxes) -> np.ndarray:
    """The centre/size regression targets (R-CNN's parameterisation, without the variance scaling)."""
    anchor_size = anchors[:, 2:] - anchors[:, :2]
    shift = ((boxes[:, :2] + boxes[:, 2:]) - (anchors[:, :2] + anchors[:, 2:])) / 2
    return np.concatenate([shift / anchor_size, np.log((boxes[:, 2:] - boxes[:, :2]) / anchor_size)], axis=1)


def week3_box_encoding(encode_boxes, decode_boxes, random_boxes, rng) -> None:
    """The visible check of week 3's box encoding: the five properties of the prompt, then the round trip."""
    anchor = np.array([[20, 40, 30, 60]], np.float64)  # 10 wide, 20 tall, centre (25, 50)
    check_close(encode_boxes(anchor, anchor), [[0, 0, 0, 0]], "encode_boxes of a box identical to its anchor")
    moved = anchor + [10, 20, 10, 20]  # one anchor width right, one anchor height down
    check_close(
        encode_boxes(anchor, moved),
        [[1, 1, 0, 0]],
        "a box moved one anchor width right and one anchor height down",
        mistakes={
            "divide the vertical shift by the anchor's height, not its width.": [[1, 2, 0, 0]],
            "the shift is measured in anchor sizes: divide it by the anchor's width and height.": [[10, 20, 0, 0]],
            CORNER_OFFSETS: [[1, 1, 1, 1]],
        },
    )
    wide = np.array([[15, 30, 35, 70]], np.float64)  # the same centre, twice as wide and tall
    half = np.array([[22.5, 45, 27.5, 55]], np.float64)  # the same centre, half as wide and tall
    check_close(
        encode_boxes(np.repeat(anchor, 2, 0), np.concatenate([wide, half])),
        [[0, 0, np.log(2), np.log(2)], [0, 0, -np.log(2), -np.log(2)]],
        "boxes twice and half as large as their anchor, on its centre",
        mistakes={
            "the size numbers must add when sizes multiply: that is a logarithm of the size ratio, not the ratio "
            "minus 1.": [[0, 0, 1, 1], [0, 0, -0.5, -0.5]],
            CORNER_OFFSETS: [[-0.5, -0.5, 0.5, 0.5], [0.25, 0.25, -0.25, -0.25]],
        },
    )
    anchors, boxes = random_boxes(30, rng).astype(np.float64), random_boxes(30, rng).astype(np.float64)
    offsets = encode_boxes(anchors, boxes)
    check_shape(offsets, (30, 4), "encode_boxes of 30 pairs")
    check_close(encode_boxes(3 * anchors + 7, 3 * boxes + 7), offsets, "the same boxes shifted and scaled", atol=1e-6)
    check_close(
        decode_boxes(anchors, offsets), boxes, "decoding the offsets encode_boxes gave: the boxes back?", atol=1e-4
    )
    check_close(offsets, _offsets(anchors, boxes), "encode_boxes on 30 random pairs", atol=1e-4)


def week3_match_detections(match_detections, random_boxes, rng) -> None:
    """The visible check of week 3's matching of detections to objects."""
    check_own_work(match_detections, match_detections_reference, "match_detections")
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float64)
    check_equal(
        list(match_detections(np.array([[0, 0, 10, 11], [0, 0, 10, 10]]), np.array([0.6, 0.9]), truth[:1])),
        [False, True],
        "two detections of one object: the higher score claims it",
        mistakes={
            "detections claim objects in order of decreasing score, not in their input order.": [True, False],
            "an object is found at most once: the second detection is a duplicate.": [True, True],
        },
    )
    straddling = np.array([[4, 0, 24, 10]], np.float64)  # IoU 60 / 240 = 0.25 with each object
    check_equal(list(match_detections(straddling, np.array([0.9]), truth)), [False], "a box between two objects")
    # D1 (0.82 with A) claims A; D2 (0.67 with A, 0 with B) finds A taken: a duplicate.
    detections = np.array([[1, 0, 11, 10], [2, 0, 12, 10]], np.float64)
    check_equal(
        list(match_detections(detections, np.array([0.9, 0.8]), truth)),
        [True, False],
        "a second detection of an object already claimed",
        mistakes={"an object is found at most once: the second detection is a duplicate.": [True, True]},
    )
    # Overlapping objects A and B: D1 is A; D2 overlaps A by 0.67 (taken) and B by 0.43, above the threshold 0.4.
    overlapping = np.array([[0, 0, 10, 10], [6, 0, 16, 10]], np.float64)
    check_equal(
        list(match_detections(np.array([[0, 0, 10, 10], [2, 0, 12, 10]]), np.array([0.9, 0.8]), overlapping, 0.4)),
        [True, True],
        "a detection whose best object is taken claims the best of those still unfound",
        mistakes={
            "when a detection's best object is already found, it claims the best of the objects still unfound "
            "(if that overlap reaches the threshold).": [True, False]
        },
    )
    loose_first = np.array([[0, 0, 10, 16], [0, 0, 10, 11]], np.float64)
    check_equal(
        list(match_detections(loose_first, np.array([0.9, 0.8]), truth[:1], 0.7)),
        [False, True],
        "at threshold 0.7 the loose box (IoU 0.63) finds nothing and the tight one (0.91) the object",
    )
    for threshold in (0.5, 0.7):
        objects = random_boxes(6, rng).astype(np.float64)
        boxes = np.concatenate([objects + rng.normal(0, 2, objects.shape), random_boxes(8, rng)])
        scores = rng.random(len(boxes))
        check_equal(
            list(match_detections(boxes, scores, objects, threshold)),
            list(match_detections_reference(boxes, scores, objects, threshold)),
            f"match_detections on 14 detections of 6 objects, threshold {threshold}",
        )
