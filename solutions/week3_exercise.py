# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
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

from course_utils import config, exercise_checks, predictions
from course_utils.checks import check_close, check_equal, passed

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
    ### BEGIN SOLUTION
    a = np.asarray(boxes_a, np.float64)
    b = np.asarray(boxes_b, np.float64)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)
    ### END SOLUTION


# %%
# CHECK iou points=2
exercise_checks.week3_iou(iou, random_boxes, rng)
passed("IoU")

# %%
### BEGIN HIDDEN TESTS
# CHECK iou points=1
hidden_rng = np.random.default_rng(11)
a, b = random_boxes(20, hidden_rng), random_boxes(13, hidden_rng)
check_close(iou(a, b), np.asarray(keras.utils.bounding_boxes.compute_iou(a, b, "xyxy")), "iou (hidden) on more boxes")
check_close(iou(a, a).diagonal(), np.ones(20), "iou (hidden) of each box with itself")
### END HIDDEN TESTS

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
    ### BEGIN SOLUTION
    y = np.asarray(y_true, np.float64)
    z = np.asarray(logits, np.float64)
    p = 1 / (1 + np.exp(-z))
    cross_entropy = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    return float(np.sum(alpha_t * (1 - p_t) ** gamma * cross_entropy))
    ### END SOLUTION


# %%
# CHECK focal points=2
exercise_checks.week3_focal(focal_loss, rng)
passed("focal loss")

# %%
### BEGIN HIDDEN TESTS
# CHECK focal points=1
y = (np.random.default_rng(5).random((3, 50)) < 0.1).astype(np.float32)
logits = np.random.default_rng(6).normal(0, 5, size=(3, 50)).astype(np.float32)
expected = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True,
                                                reduction="sum")(y[..., None], logits[..., None])
check_close(focal_loss(y, logits), float(expected), "focal_loss (hidden) with large logits", atol=1e-3)
### END HIDDEN TESTS

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
### BEGIN SOLUTION
predicted_kept = 2  # IoU(A, B) = 80/120 > 0.5: B goes; IoU(A, C) = 60/140 keeps C (B, removed, suppresses nothing)
### END SOLUTION

# %%
# CHECK prediction points=1
predictions.week3_nms(predicted_kept)
passed("prediction")


# %%
def nms(boxes, scores, iou_threshold=0.5):
    ### BEGIN SOLUTION
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        if order:
            overlaps = iou(boxes[[best]], boxes[order])[0]
            order = [k for k, o in zip(order, overlaps) if o <= iou_threshold]
    return np.array(keep, dtype=np.int64)
    ### END SOLUTION


# %%
# CHECK nms points=2
exercise_checks.week3_nms(nms, random_boxes, rng)
passed("non-maximum suppression")

# %%
### BEGIN HIDDEN TESTS
# CHECK nms points=1
hidden_rng = np.random.default_rng(21)
boxes = random_boxes(80, hidden_rng)
scores = hidden_rng.random(80).astype(np.float32)
expected = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], scores, 80, iou_threshold=0.4).numpy()
check_equal(list(nms(boxes, scores, 0.4)), list(expected), "nms (hidden) on 80 boxes")
### END HIDDEN TESTS

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
    ### BEGIN SOLUTION
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(is_true_positive, bool)[order]
    true_so_far = np.cumsum(tp)
    recall = true_so_far / n_objects
    precision = true_so_far / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    gained = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(gained * precision))
    ### END SOLUTION


# %%
# CHECK ap points=2
exercise_checks.week3_ap(average_precision)
passed("average precision")

# %%
### BEGIN HIDDEN TESTS
# CHECK ap points=1
from course_utils.detection import average_precision as reference_ap

hidden_rng = np.random.default_rng(3)
scores = hidden_rng.random(60)
tp = hidden_rng.random(60) < 0.6
check_close(average_precision(scores, tp, 50), reference_ap(scores, tp, 50)[0], "AP (hidden) against the reference")
### END HIDDEN TESTS

# %% [markdown]
# Done: every check above passed. In the chapter, `course_utils.detection`
# uses the same four ideas: IoU to match anchors and to score detections, the
# focal loss to train, NMS to clean up the predictions and AP to evaluate them.
