"""Evaluation: matching detections to objects, AP and mAP (our own and COCO's), the mistakes by kind, and counting
objects."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from course_utils.detection.boxes import iou_matrix
from course_utils.detection.data import DetectionData


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


def class_matches(predictions: dict, data: DetectionData, class_id: int, iou_threshold: float = 0.5):
    """The detections of one class over all images, matched to its objects: ``(scores, is_true_positive, n_objects)``.

    In each image a detection counts as found (:func:`match_detections`) when it covers
    an object of its class not already found with IoU >= ``iou_threshold``, taken in
    order of confidence: what AP and the precision and recall at any threshold count.
    """
    scores, true_positives, n_objects = [], [], 0
    for i in range(len(data)):
        objects = data.boxes[i][data.classes[i] == class_id]
        n_objects += len(objects)
        keep = (predictions["classes"][i] == class_id) & (predictions["confidence"][i] >= 0)
        keep[int(predictions["num_detections"][i]) :] = False
        if keep.any():
            scores.append(predictions["confidence"][i][keep])
            true_positives.append(match_detections(predictions["boxes"][i][keep], scores[-1], objects, iou_threshold))
    return (
        np.concatenate(scores) if scores else np.zeros(0),
        np.concatenate(true_positives) if true_positives else np.zeros(0, bool),
        n_objects,
    )


def mean_average_precision(predictions: dict, data: DetectionData, iou_thresholds=(0.5,)) -> dict:
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
            ap, recall, precision = average_precision(*class_matches(predictions, data, c, t))
            aps[c] = ap
            curves.append((recall, precision))
        result["ap"][t] = aps
        result["map"][t] = float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")
        result["curves"][t] = curves
    return result


ERROR_KINDS = (
    "right",
    "duplicate",
    "wrong class",
    "poorly located",
    "wrong class, poorly located",
    "background",
    "missed",
)
"""The outcomes :func:`detection_errors` counts, the kinds of the TIDE toolbox (Bolya et al., 2020): every
detection is right or one of the next five, and every object no detection claims is missed."""


def error_slug(kind: str) -> str:
    """``kind`` of :data:`ERROR_KINDS` as a record name's last part: "wrong class, poorly located" becomes
    ``wrong_class_and_poorly_located``."""
    return kind.replace(", ", "_and_").replace(" ", "_")


def detection_errors(
    predictions: dict, data: DetectionData, confidence_threshold: float, iou: float = 0.5, background_iou: float = 0.1
) -> dict:
    """How many detections at or above ``confidence_threshold`` are of each kind of :data:`ERROR_KINDS`, and how
    many objects are missed, over every image of ``data``.

    Detections are taken by decreasing score, as AP takes them. One that covers an unclaimed object of its class
    with IoU >= ``iou`` is right and claims it; otherwise, with its largest IoU with an object of its class (taken
    or not) and with an object of another class: a duplicate (>= ``iou`` with its class), the wrong class (>= ``iou``
    with another), poorly located (>= ``background_iou`` with its class), both (>= ``background_iou`` with another),
    or background. TIDE's thresholds are 0.5 and 0.1; it counts as missed only the objects that no mistake of
    another kind accounts for, and goes on to measure what each kind costs in mAP, which this does not.
    """
    counts = dict.fromkeys(ERROR_KINDS, 0)
    for i in range(len(data)):
        objects, object_classes = np.asarray(data.boxes[i]), np.asarray(data.classes[i])
        real = object_classes >= 0
        objects, object_classes = objects[real], object_classes[real]
        n = int(predictions["num_detections"][i])
        scores = np.asarray(predictions["confidence"][i])[:n]
        kept = np.flatnonzero(scores >= confidence_threshold)
        kept = kept[np.argsort(-scores[kept], kind="stable")]
        boxes, classes = np.asarray(predictions["boxes"][i])[kept], np.asarray(predictions["classes"][i])[kept]
        overlaps = iou_matrix(boxes, objects) if len(objects) and len(boxes) else np.zeros((len(boxes), len(objects)))
        claimed = np.zeros(len(objects), bool)
        for overlap, detected in zip(overlaps, classes):
            same = object_classes == detected
            free = np.where(same & ~claimed, overlap, -1.0)
            if free.size and free.max() >= iou:
                claimed[int(np.argmax(free))] = True
                counts["right"] += 1
                continue
            with_class = overlap[same].max(initial=0.0)
            with_other = overlap[~same].max(initial=0.0)
            if with_class >= iou:
                kind = "duplicate"
            elif with_other >= iou:
                kind = "wrong class"
            elif with_class >= background_iou:
                kind = "poorly located"
            elif with_other >= background_iou:
                kind = "wrong class, poorly located"
            else:
                kind = "background"
            counts[kind] += 1
        counts["missed"] += int(np.sum(~claimed))
    return counts


def coco_metrics(predictions: dict, data: DetectionData) -> dict:
    """COCO evaluation with pycocotools' ``COCOeval`` over **every** image of ``data``.

    Returns ``{"map": mAP@[.5:.95], "map50": mAP@0.5, "map75": mAP@0.75}``.
    Images without any detection count (they lower recall); KerasCV 0.9's
    ``BoxCOCOMetrics`` leaves them out (keras-cv issue 2504) and so inflates the
    mAP. COCO boxes are ``[x, y, width, height]``; pycocotools' printed summary
    is silenced.
    """
    # Imported on use: only this function needs pycocotools.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = _coco_ground_truth(data)
    detections = _coco_detections(predictions, len(data))
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


def _coco_ground_truth(data: DetectionData) -> dict:
    """``data``'s boxes as a COCO data set: image ``i`` has id ``i``, class ``c`` category id ``c``."""
    height, width = data.image_size
    truth = {
        "images": [{"id": i, "height": height, "width": width} for i in range(len(data))],
        "categories": [{"id": c, "name": n} for c, n in enumerate(data.class_names)],
        "annotations": [],
    }
    for i in range(len(data)):
        for box, c in zip(data.boxes[i], data.classes[i]):
            if c >= 0:
                w, h = float(box[2] - box[0]), float(box[3] - box[1])
                truth["annotations"].append(
                    {
                        "id": len(truth["annotations"]) + 1,
                        "image_id": i,
                        "category_id": int(c),
                        "bbox": [float(box[0]), float(box[1]), w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
    return truth


def _coco_detections(predictions: dict, n_images: int) -> list[dict]:
    """The detections of the first ``n_images`` images of ``predictions`` (padding left out) in COCO's format."""
    detections = []
    for i in range(n_images):
        for k in range(int(predictions["num_detections"][i])):
            if predictions["confidence"][i][k] >= 0:
                x0, y0, x1, y1 = (float(v) for v in predictions["boxes"][i][k])
                detections.append(
                    {
                        "image_id": i,
                        "category_id": int(predictions["classes"][i][k]),
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": float(predictions["confidence"][i][k]),
                    }
                )
    return detections


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


COUNT_THRESHOLDS = np.arange(0.05, 0.96, 0.05)
"""The confidence thresholds :func:`choose_count_threshold` tries: 0.05 to 0.95 in steps of 0.05."""


def choose_count_threshold(
    predictions: dict, data: DetectionData, thresholds=COUNT_THRESHOLDS, merge_iou: float | None = 0.5
):
    """The confidence threshold whose counts are closest to the truth on ``data`` (a validation split).

    Returns ``(threshold, mean absolute count error at each of thresholds)``, counting as
    :func:`count_objects` does with ``merge_iou``; ties go to the lower threshold. Choose it on images the final
    score is not computed on, or the test error is optimistic.
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
    return {
        "boxes": np.where(valid[..., None], data.boxes, -1).astype(np.float32),
        "classes": data.classes.astype(np.int32),
        "confidence": np.where(valid, 1.0, -1.0).astype(np.float32),
        "num_detections": valid.sum(axis=1).astype(np.int32),
    }
