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
# You write, in NumPy, the small algorithms at the heart of a detector's
# training and of its evaluation. Parts 1 to 4 follow a rule the prompt (or the
# chapter) gives you, and the checks compare them with the library versions;
# from part 5 on, the prompt says what the result must satisfy and you decide
# how to get it:
#
# 1. Intersection over union between two sets of boxes (against KerasCV)
# 2. Focal loss (against `keras.losses.BinaryFocalCrossentropy`)
# 3. Greedy non-maximum suppression (against `tf.image.non_max_suppression`)
# 4. Which anchors learn an object, which learn background, which are ignored
# 5. The four numbers that turn an anchor into a box, and back
# 6. Which detections are right: matching detections to objects
# 7. Average precision from ranked detections
#
# Boxes are `[x_min, y_min, x_max, y_max]` in pixels (the `xyxy` format of the
# chapter), with `x_max`, `y_max` exclusive, so a box's width is `x_max - x_min`.
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Parts 3 and 6 ask you to *predict*
# what the algorithm does before you write it.

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
    return np.concatenate(
        [corner, np.minimum(corner + extent, size)], axis=1
    ).astype(np.float32)


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
    raise NotImplementedError("Blank 1 of week3_exercise is not filled in yet")


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
    raise NotImplementedError("Blank 2 of week3_exercise is not filled in yet")


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
# Your prediction: how many of A, B and C does non-maximum suppression keep
# (threshold 0.5)?
raise NotImplementedError("Blank 3 of week3_exercise is not filled in yet")

# %%
# CHECK prediction points=1
predictions.week3_nms(predicted_kept)
passed("prediction")


# %%
def nms(boxes, scores, iou_threshold=0.5):
    raise NotImplementedError("Blank 4 of week3_exercise is not filled in yet")


# %%
# CHECK nms points=2
exercise_checks.week3_nms(nms, random_boxes, rng)
passed("non-maximum suppression")

# %% [markdown]
# ## 4. Anchors: object, background or ignored
#
# Training needs a target for every anchor. Write
# `label_anchors(anchors, truth_boxes, positive=0.5, negative=0.4)` for the
# anchors `(n, 4)` and the objects `(m, 4)` of one image. It returns
# `(labels, matched)`, two integer arrays of length `n`: `matched[i]` is the
# object anchor `i` overlaps most (by IoU), and `labels[i]` is 1 when anchor `i`
# should learn that object's class and box, 0 when it should learn
# "background", and -1 when training should ignore it. Use RetinaNet's rule
# from section 3 of the chapter, with the two thresholds as arguments, and your
# `iou` from part 1. An image with no objects has every anchor background (and
# `matched` all -1).


# %%
def label_anchors(anchors, truth_boxes, positive=0.5, negative=0.4):
    raise NotImplementedError("Blank 5 of week3_exercise is not filled in yet")


# %%
# CHECK anchors points=2
exercise_checks.week3_label_anchors(label_anchors, random_boxes, rng)
passed("anchor labels")

# %% [markdown]
# ## 5. From anchor to box: the four regression targets
#
# A positive anchor learns four numbers that move and stretch it onto its
# object. Write `encode_boxes(anchors, boxes)`, which turns each `box` into the
# four numbers of its `anchor` (both `(n, 4)`, row `i` with row `i`; it returns
# an `(n, 4)` array), and `decode_boxes(anchors, offsets)`, its inverse. The
# first two numbers place the box's **centre**, the last two give its **width**
# and **height**. Nobody tells you the formulas; these are the properties the
# network needs, and the checks test them:
#
# 1. a box equal to its anchor gets four zeros;
# 2. the numbers depend only on the box *relative to its anchor*: shifting both
#    by the same amount, or scaling both about the origin by the same factor,
#    changes nothing (so a 100-pixel anchor and a 10-pixel one learn on the same
#    scale);
# 3. moving the box right by one anchor width adds exactly 1 to the first number
#    (and down by one anchor height, 1 to the second);
# 4. widths combine by multiplication: a box 2 times as wide as its anchor gets
#    a third number of $\ln 2$, one 4 times as wide twice that, and one half as
#    wide $-\ln 2$ (the same for heights and the fourth number), so that
#    growing and shrinking are equally easy to learn and no width can come out
#    negative when decoded;
# 5. `decode_boxes(anchors, encode_boxes(anchors, boxes))` gives `boxes` back.


# %%
def encode_boxes(anchors, boxes):
    raise NotImplementedError("Blank 6 of week3_exercise is not filled in yet")


def decode_boxes(anchors, offsets):
    raise NotImplementedError("Blank 7 of week3_exercise is not filled in yet")


# %%
# CHECK boxes points=2
exercise_checks.week3_box_encoding(
    encode_boxes, decode_boxes, random_boxes, rng
)
passed("box encoding")

# %% [markdown]
# ## 6. Which detections are right?
#
# To evaluate a detector, each detection of a class is either a **true
# positive** (it found an object) or a **false positive**. The rules, as the
# PASCAL VOC and COCO evaluations apply them:
#
# * a detection can find an object only if their IoU is at least `iou_threshold`;
# * each object is found at most once: a second detection of a found object is a
#   false positive (a duplicate), whatever its overlap;
# * a detection with a higher score has the first claim on an object;
# * among the objects still unfound, a detection claims the one it overlaps most.
#
# **Predict, then verify.** One object, `[0, 0, 10, 10]`, and two detections:
# `D1 = [0, 0, 10, 16]` (score 0.9) and `D2 = [0, 0, 10, 11]` (score 0.8),
# threshold 0.5. Which detection is the true positive? Store `1` or `2` in
# `predicted_true_positive`.


# %%
# Your prediction: which detection, 1 or 2, is the true positive?
raise NotImplementedError("Blank 8 of week3_exercise is not filled in yet")

# %%
# CHECK matching_prediction points=1
predictions.week3_matching(predicted_true_positive)
passed("prediction")

# %% [markdown]
# Now write `match_detections(boxes, scores, truth_boxes, iou_threshold=0.5)` for
# one image and one class: `boxes` `(n, 4)` and `scores` `(n,)` of the detections,
# `truth_boxes` `(m, 4)` of the objects. It returns a boolean array of length
# `n`, in the order of the input detections: `True` for a true positive. How you
# apply the four rules is yours to decide; use your `iou` from part 1.


# %%
def match_detections(boxes, scores, truth_boxes, iou_threshold=0.5):
    raise NotImplementedError("Blank 9 of week3_exercise is not filled in yet")


# %%
# CHECK matching points=2
exercise_checks.week3_match_detections(match_detections, random_boxes, rng)
passed("matching detections to objects")

# %% [markdown]
# ## 7. Average precision
#
# Over a whole test set, the detections of one class are ranked by score, and
# part 6 tells which are true positives. Write
# `average_precision(scores, is_true_positive, n_objects)`: the area under the
# precision–recall curve of the ranked detections, after making the precision
# non-increasing (each point takes the best precision at the same or any higher
# recall, as in the chapter's section 8). Recall counts the objects found out of
# all `n_objects`, so objects that no detection finds cap it below 1. How you
# compute the area is yours to decide; the checks try detections in any order.


# %%
def average_precision(scores, is_true_positive, n_objects):
    raise NotImplementedError("Blank 10 of week3_exercise is not filled in yet")


# %%
# CHECK ap points=2
exercise_checks.week3_ap(average_precision)
passed("average precision")

# %% [markdown]
# Done: every check above passed. In the chapter, `course_utils.detection`
# and KerasCV use the same ideas: IoU to label the anchors and to score
# detections, the four offsets as the box targets, the focal loss to train, NMS
# to clean up the predictions, and the matching and AP to evaluate them.
