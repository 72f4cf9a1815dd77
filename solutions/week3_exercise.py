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
    ### BEGIN SOLUTION
    a = np.asarray(boxes_a, np.float64)
    b = np.asarray(boxes_b, np.float64)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(
        a[:, None, 0], b[None, :, 0]
    )
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(
        a[:, None, 1], b[None, :, 1]
    )
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
check_close(
    iou(a, b),
    np.asarray(keras.utils.bounding_boxes.compute_iou(a, b, "xyxy")),
    "iou (hidden) on more boxes",
)
check_close(
    iou(a, a).diagonal(), np.ones(20), "iou (hidden) of each box with itself"
)
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
expected = keras.losses.BinaryFocalCrossentropy(
    apply_class_balancing=True,
    alpha=0.25,
    gamma=2.0,
    from_logits=True,
    reduction="sum",
)(y[..., None], logits[..., None])
check_close(
    focal_loss(y, logits),
    float(expected),
    "focal_loss (hidden) with large logits",
    atol=1e-3,
)
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
# Your prediction: how many of A, B and C does non-maximum suppression keep
# (threshold 0.5)?
### BEGIN SOLUTION
# IoU(A, B) = 80/120 > 0.5: B goes; IoU(A, C) = 60/140 keeps C (B, removed,
# suppresses nothing)
predicted_kept = 2
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
expected = tf.image.non_max_suppression(
    boxes[:, [1, 0, 3, 2]], scores, 80, iou_threshold=0.4
).numpy()
check_equal(
    list(nms(boxes, scores, 0.4)), list(expected), "nms (hidden) on 80 boxes"
)
### END HIDDEN TESTS

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
    ### BEGIN SOLUTION
    anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
    truth_boxes = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
    if len(truth_boxes) == 0:
        return np.zeros(len(anchors), np.int64), np.full(
            len(anchors), -1, np.int64
        )
    overlaps = iou(anchors, truth_boxes)
    best = overlaps.max(axis=1)
    labels = np.full(len(anchors), -1, np.int64)
    labels[best >= positive] = 1
    labels[best < negative] = 0
    return labels, overlaps.argmax(axis=1).astype(np.int64)
    ### END SOLUTION


# %%
# CHECK anchors points=2
exercise_checks.week3_label_anchors(label_anchors, random_boxes, rng)
passed("anchor labels")

# %%
### BEGIN HIDDEN TESTS
# CHECK anchors points=1
from course_utils.detection.anchors import (
    match_anchors as reference_match_anchors,
)

hidden_rng = np.random.default_rng(31)
anchors, objects = random_boxes(200, hidden_rng), random_boxes(6, hidden_rng)
expected_labels, expected_matched, _ = reference_match_anchors(
    anchors, objects, 0.6, 0.3
)
labels, matched = label_anchors(anchors, objects, 0.6, 0.3)
check_equal(
    list(labels),
    list(expected_labels),
    "label_anchors (hidden) with thresholds 0.6 and 0.3",
)
check_equal(
    list(matched),
    list(expected_matched),
    "label_anchors (hidden): the object each anchor overlaps most",
)
### END HIDDEN TESTS

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
    ### BEGIN SOLUTION
    a = np.asarray(anchors, np.float64)
    b = np.asarray(boxes, np.float64)
    anchor_size = a[:, 2:] - a[:, :2]
    anchor_centre = (a[:, :2] + a[:, 2:]) / 2
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = b[:, 2:] - b[:, :2]
    return np.concatenate(
        [(centre - anchor_centre) / anchor_size, np.log(size / anchor_size)],
        axis=1,
    )
    ### END SOLUTION


def decode_boxes(anchors, offsets):
    ### BEGIN SOLUTION
    a = np.asarray(anchors, np.float64)
    o = np.asarray(offsets, np.float64)
    anchor_size = a[:, 2:] - a[:, :2]
    centre = (a[:, :2] + a[:, 2:]) / 2 + o[:, :2] * anchor_size
    size = anchor_size * np.exp(o[:, 2:])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    ### END SOLUTION


# %%
# CHECK boxes points=2
exercise_checks.week3_box_encoding(
    encode_boxes, decode_boxes, random_boxes, rng
)
passed("box encoding")

# %%
### BEGIN HIDDEN TESTS
# CHECK boxes points=2
hidden_rng = np.random.default_rng(41)
anchors, boxes = random_boxes(50, hidden_rng), random_boxes(50, hidden_rng)
offsets = encode_boxes(anchors, boxes)
check_close(
    decode_boxes(anchors, offsets),
    boxes,
    "decode_boxes(encode_boxes(...)) (hidden) on 50 random pairs",
)
anchor_size = anchors[:, 2:] - anchors[:, :2]
centre_shift = (
    (boxes[:, :2] + boxes[:, 2:]) - (anchors[:, :2] + anchors[:, 2:])
) / 2
expected = np.concatenate(
    [
        centre_shift / anchor_size,
        np.log((boxes[:, 2:] - boxes[:, :2]) / anchor_size),
    ],
    axis=1,
)
check_close(
    offsets,
    expected,
    "encode_boxes (hidden) against the centre/size offsets with log sizes",
    atol=1e-4,
)
### END HIDDEN TESTS

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
### BEGIN SOLUTION
# D1 (IoU 100/160 = 0.625 >= 0.5) claims first; D2 fits better but is a
# duplicate
predicted_true_positive = 1
### END SOLUTION

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
    ### BEGIN SOLUTION
    order = np.argsort(-np.asarray(scores), kind="stable")
    found = np.zeros(len(order), bool)
    truth_boxes = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
    if len(order) == 0 or len(truth_boxes) == 0:
        return found
    overlaps = iou(np.asarray(boxes, np.float64)[order], truth_boxes)
    claimed = np.zeros(len(truth_boxes), bool)
    for rank, detection in enumerate(order):
        free = np.where(claimed, -1.0, overlaps[rank])
        best = int(np.argmax(free))
        if free[best] >= iou_threshold:
            claimed[best] = True
            found[detection] = True
    return found
    ### END SOLUTION


# %%
# CHECK matching points=2
exercise_checks.week3_match_detections(match_detections, random_boxes, rng)
passed("matching detections to objects")

# %%
### BEGIN HIDDEN TESTS
# CHECK matching points=1
from course_utils.detection.evaluation import (
    match_detections as reference_match,
)

hidden_rng = np.random.default_rng(51)
for threshold in (0.3, 0.5, 0.75):
    truth = random_boxes(8, hidden_rng)
    boxes = np.concatenate(
        [
            truth + hidden_rng.normal(0, 3, truth.shape),
            random_boxes(12, hidden_rng),
        ]
    )
    boxes = boxes.astype(np.float32)
    scores = hidden_rng.random(len(boxes))
    check_equal(
        list(match_detections(boxes, scores, truth, threshold)),
        list(reference_match(boxes, scores, truth, threshold)),
        "match_detections (hidden) on 20 detections of 8 objects, threshold"
        f" {threshold}",
    )
### END HIDDEN TESTS

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
check_close(
    average_precision(scores, tp, 50),
    reference_ap(scores, tp, 50)[0],
    "AP (hidden) against the reference",
)
### END HIDDEN TESTS

# %% [markdown]
# Done: every check above passed. In the chapter, `course_utils.detection`
# and KerasCV use the same ideas: IoU to label the anchors and to score
# detections, the four offsets as the box targets, the focal loss to train, NMS
# to clean up the predictions, and the matching and AP to evaluate them.
