"""IoU and Dice of hard predictions: as Keras metrics accumulated over batches, and in NumPy."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from course_utils.segmentation.losses import align


def predicted_labels(y_pred, threshold: float = 0.5):
    """Class ids from probabilities: ``p > threshold`` for one channel, the arg-max otherwise."""
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] == 1:
        return ops.cast(y_pred[..., 0] > threshold, "int32")
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


class _ConfusionMetric(keras.metrics.Metric):
    """Accumulates a (num_classes x num_classes) confusion matrix of hard predictions over batches."""

    def __init__(self, num_classes: int, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="float32", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = align(y_true, y_pred)
        truth = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes, dtype="float32")
        guess = ops.one_hot(ops.reshape(predicted_labels(y_pred), (-1,)), self.num_classes, dtype="float32")
        self.matrix.assign_add(ops.matmul(ops.transpose(truth), guess))

    def reset_state(self):
        self.matrix.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def _per_class(self, double_intersection: bool):
        inter = ops.diagonal(self.matrix)
        truth, guess = ops.sum(self.matrix, axis=1), ops.sum(self.matrix, axis=0)
        if double_intersection:  # Dice
            num, den = 2.0 * inter, truth + guess
        else:  # IoU
            num, den = inter, truth + guess - inter
        return num / ops.maximum(den, 1.0), den > 0

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="course_utils")
class MeanIoU(_ConfusionMetric):
    """Mean intersection over union of hard predictions, accumulated over the batches of an epoch.

    IoU of class k = pixels predicted k and truly k / pixels predicted k or truly k.
    Classes that appear neither in the truth nor in the predictions are left out
    of the mean. Use ``num_classes=2`` for a one-channel (binary) model.
    """

    def __init__(self, num_classes: int, name: str = "mean_iou", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        iou, present = self._per_class(False)
        present = ops.cast(present, "float32")
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)


@keras.saving.register_keras_serializable(package="course_utils")
class ClassIoU(_ConfusionMetric):
    """IoU of one class (``class_id``), accumulated over the batches; NaN while the class has not appeared."""

    def __init__(self, num_classes: int, class_id: int, name: str | None = None, dtype=None):
        super().__init__(num_classes, name=name or f"iou_{class_id}", dtype=dtype)
        if not 0 <= class_id < num_classes:
            raise ValueError(f"class_id must be in 0..{num_classes - 1}, got {class_id}")
        self.class_id = int(class_id)

    def result(self):
        iou, present = self._per_class(False)
        return ops.where(present[self.class_id], iou[self.class_id], float("nan"))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


@keras.saving.register_keras_serializable(package="course_utils")
class DiceScore(_ConfusionMetric):
    """Dice score of hard predictions averaged over the foreground classes (1 .. num_classes-1) that appear."""

    def __init__(self, num_classes: int = 2, name: str = "dice", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        dice, present = self._per_class(True)
        present = ops.cast(present[1:], "float32")
        return ops.sum(dice[1:] * present) / ops.maximum(ops.sum(present), 1.0)


def confusion(y_true, y_pred_labels, num_classes: int) -> np.ndarray:
    """Confusion matrix of two integer label arrays: rows true class, columns predicted class (NumPy)."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred_labels = np.asarray(y_pred_labels).ravel().astype(np.int64)
    if y_true.shape != y_pred_labels.shape:
        raise ValueError(f"true and predicted masks differ in size: {y_true.size} and {y_pred_labels.size} pixels")
    for what, values in (("true", y_true), ("predicted", y_pred_labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{what} mask has values outside 0..{num_classes - 1}: {np.unique(values)}")
    return np.bincount(y_true * num_classes + y_pred_labels, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_iou(y_true, y_pred_labels, num_classes: int) -> np.ndarray:
    """IoU of each class between two integer masks (any shape); NaN for a class absent from both."""
    return _per_class_iou(y_true, y_pred_labels, num_classes)


def _per_class_iou(y_true, y_pred_labels, num_classes: int) -> np.ndarray:
    # What mean_iou calls: the grader withholds per_class_iou from week 4's exercise, where it is a blank's answer,
    # and mean_iou must keep working there (course_utils.grading.withheld).
    matrix = confusion(y_true, y_pred_labels, num_classes).astype(float)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(y_true, y_pred_labels, num_classes: int) -> float:
    """Mean of :func:`per_class_iou` over the classes present in the truth or the prediction."""
    return float(np.nanmean(_per_class_iou(y_true, y_pred_labels, num_classes)))


def objects_found(scenes, predicted, min_share: float = 0.5) -> float:
    """The share of the objects of ``scenes`` (from :func:`course_utils.scenes.make_scenes`) that ``predicted`` finds.

    ``predicted``: masks of the scenes' shape, nonzero where a pixel is predicted as an object (any class). An
    object counts as found when at least ``min_share`` of the object pixels inside its box are predicted: one vote
    per object, where a pixel average such as IoU lets the large objects dominate.
    """
    shares = _object_shares(scenes, predicted, own_class=False)
    if shares.size == 0:
        raise ValueError("the scenes hold no objects")
    return float(np.mean(shares >= min_share))


def misread_objects(scenes, predicted) -> tuple[int, int]:
    """``(misread, total)``: how many objects of ``scenes`` had under half of their pixels given their own class by
    ``predicted`` (class-id masks of the scenes' shape), out of how many: a whole shape misread, where
    :func:`edge_pixels` counts the seams. An object hidden under others has no pixels to misread."""
    shares = _object_shares(scenes, predicted, own_class=True)
    return int(np.sum(shares < 0.5)), int(shares.size)


def _object_shares(scenes, predicted, own_class: bool) -> np.ndarray:
    """Per object, the share of its visible pixels (inside its box) that ``predicted`` gives its own class
    (``own_class``) or any object class; NaN for an object with no visible pixel."""
    predicted = np.asarray(predicted)
    if predicted.shape != scenes.masks.shape:
        raise ValueError(f"predicted masks have shape {predicted.shape}, the scenes' masks {scenes.masks.shape}")
    shares = []
    for i, (boxes, classes) in enumerate(zip(scenes.boxes.astype(int), scenes.box_classes)):
        for (x0, y0, x1, y1), cls in zip(boxes, classes):
            if cls < 0:  # -1 pads the box lists
                continue
            truth, guess = scenes.masks[i, y0:y1, x0:x1], predicted[i, y0:y1, x0:x1]
            inside = truth == cls + 1 if own_class else truth > 0
            hit = guess == cls + 1 if own_class else guess > 0
            shares.append(hit[inside].mean() if inside.any() else np.nan)
    return np.array(shares, float)


def edge_pixels(masks) -> np.ndarray:
    """Where the class changes: the pixels of ``masks`` (a stack of class-id masks) with a differently labelled
    neighbour above, below, left or right, the band one pixel wide on each side of every outline."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be a stack (count, height, width), not of shape {masks.shape}")
    edge = np.zeros(masks.shape, bool)
    across = masks[:, :, 1:] != masks[:, :, :-1]
    down = masks[:, 1:] != masks[:, :-1]
    edge[:, :, 1:] |= across
    edge[:, :, :-1] |= across
    edge[:, 1:] |= down
    edge[:, :-1] |= down
    return edge


def border_weight_map(instances, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The original U-Net's pixel weights for touching objects (Ronneberger et al., 2015, eq. 2; w0 = 10 and
    sigma of about 5 pixels in the paper): ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))``.

    ``instances``: (H, W) integers, 0 for the background and 1, 2, ... for the objects. ``d1`` and ``d2`` are a
    background pixel's distances to the nearest and the second-nearest object; the separation term is added on
    the background only (object pixels keep ``w_c``), and needs two objects. ``w_c`` balances the two classes:
    each pixel of a class that covers ``n_c`` of the ``n`` pixels weighs ``n / (2 n_c)``, so both classes weigh
    the same in total. A cross-entropy weighted by the map makes the thin gaps between objects expensive to get
    wrong, so that touching objects stay apart.
    """
    from scipy import ndimage  # on use: only this function needs it

    instances = np.asarray(instances)
    if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer) or instances.min() < 0:
        raise ValueError(
            f"instances must be a 2-D array of non-negative integers, got {instances.dtype} of shape {instances.shape}"
        )
    objects = instances > 0
    share = objects.mean()
    if share in (0.0, 1.0):
        raise ValueError("instances must hold both background (0) and objects (1, 2, ...)")
    weights = np.where(objects, 1 / (2 * share), 1 / (2 * (1 - share)))
    ids = [i for i in np.unique(instances) if i > 0]
    if len(ids) >= 2:
        distances = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
        separation = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
        weights = weights + np.where(objects, 0.0, separation)
    return weights
