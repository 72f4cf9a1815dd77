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
    raise NotImplementedError("Blank 1 of week3_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK iou points=2
exercise_checks.week3_iou(iou, random_boxes, rng)
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
exercise_checks.week3_focal(focal_loss, rng)
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
exercise_checks.week3_nms(nms, random_boxes, rng)
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
exercise_checks.week3_ap(average_precision)
passed("average precision")

# %% [markdown]
# Done: every check above passed. In the chapter, `course_utils.detection`
# uses the same four ideas: IoU to match anchors and to score detections, the
# focal loss to train, NMS to clean up the predictions and AP to evaluate them.
