# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# <!-- Generated from solutions/week3_exercise.py by `make sync`: edit that file, not this one. -->
# # Exercise, week 3: object detection
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# You write, in NumPy, the four small algorithms at the heart of a detector and
# of its evaluation, and the checks compare them with the library versions:
#
# 1. Intersection over union between two sets of boxes (against KerasCV)
# 2. Focal loss (against `keras.losses.BinaryFocalCrossentropy`)
# 3. Greedy non-maximum suppression (against `tf.image.non_max_suppression`)
# 4. Average precision from ranked detections
#
# Boxes are `[x_min, y_min, x_max, y_max]` in pixels (the `xyxy` format of the
# chapter), with `x_max`, `y_max` exclusive, so a box's width is `x_max - x_min`.
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Part 3 asks you to *predict* what
# non-maximum suppression keeps before you write it.

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
import tensorflow as tf

from course_utils import config, predictions
from course_utils.checks import check, check_close, check_equal, check_shape, passed

profile = config.setup(PROFILE, seed=0)
rng = np.random.default_rng(0)


def random_boxes(n, rng, size=100.0):
    """n random xyxy boxes inside a size x size image."""
    corner = rng.uniform(0, size * 0.8, size=(n, 2))
    extent = rng.uniform(2, size * 0.4, size=(n, 2))
    return np.concatenate([corner, np.minimum(corner + extent, size)], axis=1).astype(np.float32)


# %% [markdown]
# ## 1. Intersection over union
#
# Write `iou(boxes_a, boxes_b)`: for `boxes_a` of shape `(n, 4)` and `boxes_b` of
# shape `(m, 4)` it returns the `(n, m)` array whose entry `[i, j]` is the area
# of the intersection of box `i` of `a` and box `j` of `b`, divided by the area
# of their union. Boxes that do not overlap have IoU 0. Avoid Python loops: use
# broadcasting (`a[:, None, 0]` against `b[None, :, 0]`).


# %%
def iou(boxes_a, boxes_b):
    raise NotImplementedError("Blank 1 of week3_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK iou points=2
# Two 10x10 boxes overlapping on a 5x5 square: intersection 25, union 100 + 100 - 25 = 175.
check_close(iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])), [[25 / 175]], "IoU of two shifted 10x10 boxes",
            mistakes={"you counted pixels inclusively (width x_max - x_min + 1); here x_max is exclusive, so the "
                      "width is x_max - x_min.": [[36 / (121 + 121 - 36)]],
                      "the union subtracts the intersection twice: it is area_a + area_b - intersection.":
                          [[25 / 150]],
                      "the union must subtract the intersection (counted in both areas).": [[25 / 200]],
                      "you divided by the smaller box's area, not by the union.": [[25 / 100]]})
check_close(iou(np.array([[0, 0, 10, 10]]), np.array([[20, 20, 30, 30]])), [[0.0]], "IoU of two boxes far apart",
            mistakes={"boxes far apart have a negative overlap width AND height, whose product is positive: clip "
                      "each of them at 0 before multiplying.": lambda value: np.asarray(value).item() > 0.5})
a, b = random_boxes(7, rng), random_boxes(5, rng)
result = iou(a, b)
check_shape(result, (7, 5), "iou of 7 boxes against 5")
expected = keras.utils.bounding_boxes.compute_iou(a, b, "xyxy")
check_close(result, np.asarray(expected), "iou against keras.utils.bounding_boxes.compute_iou on random boxes")
passed("IoU")

# %% [markdown]
# ## 2. Focal loss
#
# Write `focal_loss(y_true, logits, gamma=2.0, alpha=0.25)`, the **sum** over all
# entries of the binary focal loss. With $p = \sigma(\text{logit})$ the predicted
# probability, $p_t = p$ where `y_true` is 1 and $1 - p$ where it is 0, and
# $\alpha_t = \alpha$ for positives and $1 - \alpha$ for negatives,
#
# $$ \text{FL} = -\alpha_t\,(1 - p_t)^\gamma \log p_t . $$
#
# Compute $-\log p_t$ from the logits in a numerically safe way: it is the
# sigmoid cross-entropy, $\max(z, 0) - z\,y + \log(1 + e^{-|z|})$ for logit $z$.


# %%
def focal_loss(y_true, logits, gamma=2.0, alpha=0.25):
    raise NotImplementedError("Blank 2 of week3_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK focal points=2
y = (rng.random((6, 10)) < 0.2).astype(np.float32)
logits = rng.normal(0, 3, size=(6, 10)).astype(np.float32)
for gamma, alpha in [(2.0, 0.25), (0.0, 0.5), (1.0, 0.75)]:
    def library(alpha=alpha, gamma=gamma):
        """Keras' focal loss, summed over every entry (a trailing axis of 1: Keras averages over the last axis)."""
        loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=alpha, gamma=gamma,
                                                    from_logits=True, reduction="sum")
        return float(loss(y[..., None], logits[..., None]))

    expected = library()
    check_close(focal_loss(y, logits, gamma, alpha), expected, f"focal_loss with gamma={gamma}, alpha={alpha}",
                atol=1e-3,
                mistakes={"alpha_t is swapped: alpha weighs the positives (y = 1), 1 - alpha the negatives.":
                              library(alpha=1 - alpha) if alpha != 0.5 else None,
                          "you averaged the entries; the loss asked for is their sum.": expected / y.size,
                          "the modulating factor is (1 - p_t) ** gamma: you wrote p_t ** gamma (it must shrink "
                          "for easy examples, where p_t is near 1).": None if gamma == 0 else float(np.sum(
                              np.where(y == 1, alpha, 1 - alpha)
                              * np.where(y == 1, 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits))) ** gamma
                              * (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))))})
easy = focal_loss(np.zeros(1), np.array([-4.0]))
hard = focal_loss(np.zeros(1), np.array([4.0]))
check(hard > 1000 * easy, "an easy negative (logit -4) should cost far less than a hard one (logit +4)")
passed("focal loss")

# %% [markdown]
# ## 3. Non-maximum suppression
#
# Write `nms(boxes, scores, iou_threshold)`: the greedy algorithm that keeps the
# highest-scoring box, removes every remaining box whose IoU with it is
# **greater than** `iou_threshold`, and repeats with the best of what remains.
# Return the indices of the kept boxes, best score first, as an integer array.
# Use your `iou` from part 1.
#
# **Predict, then verify.** First, by hand: three 10×10 boxes in a row,
# `A = [0, 0, 10, 10]` (score 0.9), `B = [2, 0, 12, 10]` (0.8) and
# `C = [4, 0, 14, 10]` (0.7), threshold 0.5. How many boxes does non-maximum
# suppression keep? Store your answer in `predicted_kept` (work out the IoU of
# each pair first).


# %%
# Your prediction: how many of A, B and C does non-maximum suppression keep (threshold 0.5)?
raise NotImplementedError("Blank 3 of week3_exercise is not filled in yet: replace this line with your code.")

# %%
# CHECK prediction points=1
predictions.week3_nms(predicted_kept)
passed("prediction")


# %%
def nms(boxes, scores, iou_threshold=0.5):
    raise NotImplementedError("Blank 4 of week3_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK nms points=2
two_close = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]], np.float32)
check_equal(list(nms(two_close, np.array([0.9, 0.8, 0.7]))), [0, 2], "nms keeps the best of two overlapping boxes",
            mistakes={"you removed the boxes that overlap LITTLE: remove those whose IoU is greater than the "
                      "threshold, keep the others.": [0, 1],
                      "nothing was removed: drop every box whose IoU with the kept one is above the threshold.":
                          [0, 1, 2]})
check_equal(list(nms(two_close, np.array([0.6, 0.8, 0.7]))), [1, 2], "nms keeps the higher score, whichever it is",
            mistakes={"you took the boxes in their input order: sort them by decreasing score first.": [0, 2]})
for threshold in (0.3, 0.5, 0.7):
    boxes = random_boxes(40, rng)
    scores = rng.random(40).astype(np.float32)
    # TensorFlow wants yxyx boxes; IoU does not care about the order of the axes.
    expected = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], scores, max_output_size=40,
                                            iou_threshold=threshold).numpy()
    in_input_order = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], np.linspace(1, 0.5, 40, dtype=np.float32),
                                                  max_output_size=40, iou_threshold=threshold).numpy()
    check_equal(list(nms(boxes, scores, threshold)), list(expected), f"nms against TensorFlow, threshold {threshold}",
                mistakes={"you took the boxes in their input order: sort them by decreasing score first.":
                              list(in_input_order),
                          "return the kept boxes best score first, not in index order.": sorted(expected)})
passed("non-maximum suppression")

# %% [markdown]
# ## 4. Average precision
#
# A detector's detections of one class, over a whole test set, are ranked by
# score; each is a true positive (it matches an object not matched before) or a
# false positive. Write `average_precision(scores, is_true_positive, n_objects)`:
#
# 1. sort the detections by decreasing score;
# 2. after each detection, compute recall (true positives so far / `n_objects`)
#    and precision (true positives so far / detections so far);
# 3. make precision monotone: replace each precision by the largest precision at
#    the same or any later rank (higher recall);
# 4. return the area under this step curve: the sum, over the ranks, of the
#    recall gained at that rank times the (monotone) precision there.
#
# Objects that no detection finds simply cap the recall below 1.


# %%
def average_precision(scores, is_true_positive, n_objects):
    raise NotImplementedError("Blank 5 of week3_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK ap points=2
check_close(average_precision([0.9, 0.8, 0.7], [True, True, True], 3), 1.0, "AP of three correct detections")
check_close(average_precision([0.9, 0.8, 0.7], [True, False, True], 3), 1 / 3 + 1 / 3 * 2 / 3,
            "AP of correct, wrong, correct with 3 objects",
            mistakes={"recall divides by the number of objects (3), not by the number of true positives.":
                          1 / 2 + 1 / 2 * 2 / 3})
# Ranked by score: 0.9 wrong, 0.8 right, 0.7 right: precision 0, 1/2, 2/3, made monotone 2/3 everywhere.
check_close(average_precision([0.7, 0.9, 0.8], [True, False, True], 3), 2 / 3 * 2 / 3,
            "AP must sort by score first",
            mistakes={"you kept the detections in their input order: sort them by decreasing score first.":
                          1 / 3 + 1 / 3 * 2 / 3,
                      "you sorted by increasing score: the best-scored detection comes first.": 2 / 3,
                      "you did not make the precision monotone: replace each precision by the largest one at the "
                      "same or a later rank.": 1 / 3 * 1 / 2 + 1 / 3 * 2 / 3})
check_close(average_precision([0.9, 0.8], [True, True], 4), 0.5, "AP when half of the objects are never found",
            mistakes={"recall divides by all the objects (4), found or not: missed objects cap the recall.": 1.0})
check_close(average_precision([0.9, 0.8, 0.5], [False, True, True], 2), 2 / 3,
            "AP when the best-scored detection is wrong (precision 2/3 is kept back to recall 0)",
            mistakes={"you did not make the precision monotone: replace each precision by the largest one at the "
                      "same or a later rank.": 1 / 2 * 1 / 2 + 1 / 2 * 2 / 3})
passed("average precision")

# %% [markdown]
# Done: every check above passed. In the chapter, `course_utils.detection`
# uses the same four ideas: IoU to match anchors and to score detections, the
# focal loss to train, NMS to clean up the predictions and AP to evaluate them.
