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
# <!-- Generated from solutions/week5_exercise.py by `make sync`: edit that file, not this one. -->
# # Exercise, week 5: metric learning and kNN
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# 1. The cosine similarity matrix
# 2. The temperature softmax loss
# 3. The target that knows the classes: what the loss of part 2 gets wrong
# 4. The kNN majority vote
# 5. Training an embedding network
# 6. Choosing k on a validation split, and reaching 90% test accuracy
# 7. Verification: a similarity threshold when one error costs more
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Parts 2, 3 and 7 start with a
# prediction; in part 3 the target of the loss is yours to decide, in part 7 how
# to find the threshold.

# %% tags=["parameters"]
PROFILE = None

# %%
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from course_utils import config, exercise_checks, predictions
from course_utils import metric_learning as ml
from course_utils.checks import (
    check,
    check_close,
    check_equal,
    check_shape,
    passed,
)
from course_utils.scenes import make_scenes

profile = config.setup(PROFILE, seed=0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The cosine similarity matrix
#
# Write `cosine_similarity_matrix(a, b)` with NumPy: `a` has shape `(n, d)`, `b`
# has shape `(m, d)`, and the result has shape `(n, m)` with entry `[i, j]`
# equal to the cosine of the angle between row `i` of `a` and row `j` of `b`,
# $\frac{a_i \cdot b_j}{\|a_i\|\,\|b_j\|}$. The rows need not have length 1.


# %%
def cosine_similarity_matrix(a, b):
    raise NotImplementedError("Blank 1 of week5_exercise is not filled in yet")


# %%
# CHECK cosine-similarity-matrix points=2
exercise_checks.week5_cosine_similarity_matrix(cosine_similarity_matrix, rng)
passed("cosine similarity matrix")

# %% [markdown]
# ## 2. The temperature softmax loss
#
# Anchor `i` and positive `i` are two images of the same class. Write
# `softmax_loss(anchors, positives, temperature)`: compute the similarity matrix
# $S$ of the anchors against the positives with your function, divide it by the
# temperature, turn each row into probabilities with a softmax, and return the
# average over the rows of $-\log P_{ii}$ (the cross-entropy with the target
# "anchor `i` belongs with positive `i`"). Subtract each row's maximum before
# taking exponentials, so that small temperatures do not overflow.
#
# **Predict, then verify.** Before you write it: if the network had
# *collapsed*, mapping every image to the same vector, what would this loss be
# for a batch of 48 anchor-positive pairs (16 per class, 3 classes) at
# temperature 0.1? Store the number in `predicted_collapsed_loss` (within 1%).

# %%
# Your prediction: the loss of collapsed embeddings for 48 pairs at temperature
# 0.1.
raise NotImplementedError("Blank 2 of week5_exercise is not filled in yet")

# %%
# CHECK prediction points=1
predictions.week5_collapsed_loss(predicted_collapsed_loss)
passed("prediction")


# %%
def softmax_loss(anchors, positives, temperature):
    raise NotImplementedError("Blank 3 of week5_exercise is not filled in yet")


# %%
# CHECK temperature-softmax-loss points=2
exercise_checks.week5_temperature_softmax_loss(softmax_loss, rng)
passed("temperature softmax loss")

# %% [markdown]
# ## 3. The target that knows the classes
#
# The target of part 2 says that anchor `i` belongs with positive `i` and with
# no other. But a training batch of part 5 holds 16 pairs of each class, so row
# `i` holds 15 more positives of the anchor's own class, and the loss pushes
# the anchor away from them exactly as hard as from the other classes: for it,
# they are *false negatives*.
#
# **Predict, then verify.** Suppose the network had learned a perfect
# clustering: every image of a class mapped exactly onto its class's point, the
# three points as far apart as three unit vectors can be (cosine $-1/2$ between
# any two). What is part 2's loss for a batch of 48 pairs (16 per class) at
# temperature 0.1? Store the number in `predicted_clustered_loss` (within 1%).

# %%
# Your prediction: part 2's loss of a perfect clustering, 48 pairs (16 per
# class), temperature 0.1.
raise NotImplementedError("Blank 4 of week5_exercise is not filled in yet")

# %%
# CHECK clustered-prediction points=1
predictions.week5_clustered_loss(predicted_clustered_loss)
passed("prediction")

# %% [markdown]
# Write `class_softmax_loss(anchors, positives, temperature, anchor_labels,
# positive_labels)`: the same softmax over row `i` of $S / \tau$ as in part 2,
# and again the cross-entropy between a target distribution over the positives
# and the softmax, averaged over the rows. The target is what you decide. It
# must be a probability distribution over the positives (non-negative, summing
# to 1), treat every positive whose label is the anchor's as equally right and
# the others as wrong, and give exactly part 2's loss when every label appears
# once. You may call your `cosine_similarity_matrix`.


# %%
def class_softmax_loss(
    anchors, positives, temperature, anchor_labels, positive_labels
):
    raise NotImplementedError("Blank 5 of week5_exercise is not filled in yet")


# %%
# CHECK class-softmax-loss points=2
exercise_checks.week5_class_softmax_loss(class_softmax_loss, softmax_loss, rng)
passed("the class-aware softmax loss")

# %% [markdown]
# Compare the two losses on the perfect clustering of the prediction, and on
# the same three clusters pulled apart along a third axis, so that each pair
# `i` still has its anchor and positive on one point but the 16 pairs of a class
# no longer coincide:

# %%
three_points = np.array(
    [[1.0, 0.0, 0.0], [-0.5, np.sqrt(3) / 2, 0.0], [-0.5, -np.sqrt(3) / 2, 0.0]]
)
pair_labels = np.repeat(np.arange(3), 16)
clustered = three_points[pair_labels]
pulled_apart = clustered + np.outer(
    np.tile(np.linspace(-1, 1, 16), 3), [0.0, 0.0, 1.0]
)
for name, points in [
    ("perfect clustering", clustered),
    ("each class pulled apart", pulled_apart),
]:
    class_aware = class_softmax_loss(
        points, points, 0.1, pair_labels, pair_labels
    )
    print(
        f"{name:<24} part 2's target: {softmax_loss(points, points, 0.1):.2f}"
        "   "
        f"the class-aware target: {class_aware:.2f}"
    )

# %% [markdown]
# Part 2's target *rewards* pulling a class apart: its loss falls when the
# images of one class stop coinciding, because then positive `i` stands out
# from the 15 false negatives. The class-aware target does the opposite, so it
# is the one that asks for what kNN needs, images of one class together. The
# chapter trains with it (`ml.SimilaritySoftmaxLoss` counts every positive of
# the anchor's class unless it is given `use_labels=False`); with 16 pairs of
# each of 3 classes in a batch, part 2's target is wrong about 15 of the 47
# other positives of every row.

# %% [markdown]
# ## 4. The kNN majority vote
#
# Write `knn_vote(reference, labels, queries, k)`: for each query, find the `k`
# reference vectors with the highest cosine similarity, and return the label
# that most of them carry (a NumPy array of labels, one per query). When two
# labels get the same number of votes, return the smaller label
# (`np.bincount(...).argmax()` does exactly that). The check compares your
# votes with scikit-learn's `KNeighborsClassifier(metric="cosine")`.


# %%
def knn_vote(reference, labels, queries, k):
    raise NotImplementedError("Blank 6 of week5_exercise is not filled in yet")


# %%
# CHECK knn-majority-vote points=2
exercise_checks.week5_knn_majority_vote(knn_vote, rng)
passed("kNN majority vote")

# %% [markdown]
# ## 5. Training an embedding network
#
# The data: circles, squares and triangles, a labelled set of 100 images per
# class, a validation set and a test set. Build an embedding network with
# `ml.embedding_model(input_shape=(32, 32, 3))`, a sampler with
# `ml.BalancedBatches(train.images, train.labels, per_class=16, steps=10, seed=0)`,
# and train the network with `ml.fit_embedding` and the loss
# `ml.SimilaritySoftmaxLoss(temperature=0.1)` for `EPOCHS` epochs. Store the network in
# `embedder`.

# %%
classes = ("circle", "square", "triangle")
train = make_scenes(300, size=32, seed=1, classes=classes, object_size=(12, 22))
validation = make_scenes(
    150, size=32, seed=2, classes=classes, object_size=(12, 22)
)
test = make_scenes(300, size=32, seed=3, classes=classes, object_size=(12, 22))
EPOCHS = 20  # the same at every profile: the checks need a trained network

# %%
config.seed_everything(0)
raise NotImplementedError("Blank 7 of week5_exercise is not filled in yet")

# %%
# CHECK training points=2
train_embeddings = ml.embed(embedder, train.images)
check_shape(
    train_embeddings, (300, 32), "embeddings of the 300 training images"
)
check_close(
    np.linalg.norm(train_embeddings, axis=1),
    np.ones(300),
    "lengths of the embeddings",
    atol=1e-3,
)
same = train.labels[:, None] == train.labels[None, :]
gap = (train_embeddings @ train_embeddings.T)[same].mean() - (
    train_embeddings @ train_embeddings.T
)[~same].mean()
print(f"mean similarity, same class minus different classes: {gap:.2f}")
check(
    gap > 0.3,
    "images of the same class should be much more similar than others (gap"
    f" {gap:.2f}); train longer?",
)
passed("training")

# %% [markdown]
# ## 6. Choosing k, and the test accuracy
#
# Use your `knn_vote` with the training images as the reference set. Compute the
# accuracy on the **validation** set for each k in `CANDIDATES` and store the
# best k in `best_k` (the smallest one if several tie). Then compute the accuracy
# on the test set with that k and store it in `test_accuracy`. The test set is
# used once, at the end: choosing k on it would make its accuracy an optimistic
# estimate.

# %%
CANDIDATES = [1, 3, 5, 7, 9, 15]

# %%
validation_embeddings = ml.embed(embedder, validation.images)
test_embeddings = ml.embed(embedder, test.images)
raise NotImplementedError("Blank 8 of week5_exercise is not filled in yet")

# %%
# CHECK choosing-k-and-test-accuracy points=2
check(
    best_k in CANDIDATES, f"best_k must be one of {CANDIDATES}, got {best_k!r}"
)
# The check embeds the three sets with your network itself, so it judges what
# `embedder` computes.
on_train, on_validation, on_test_set = (
    ml.embed(embedder, s.images) for s in (train, validation, test)
)
scores = {
    k: np.mean(
        knn_vote(on_train, train.labels, on_validation, k) == validation.labels
    )
    for k in CANDIDATES
}
on_test = {
    k: np.mean(knn_vote(on_train, train.labels, on_test_set, k) == test.labels)
    for k in CANDIDATES
}
check_equal(
    best_k,
    max(CANDIDATES, key=lambda k: (scores[k], -k)),
    "best_k (highest validation accuracy)",
    mistakes={
        "you chose k on the TEST set: choose it on the validation set, and use"
        " the test set once, at the end.": max(
            CANDIDATES, key=lambda k: (on_test[k], -k)
        ),
        "several k tie on the validation set: take the smallest of them.": max(
            CANDIDATES, key=lambda k: (scores[k], k)
        ),
        "that k has the LOWEST validation accuracy: take the highest.": min(
            CANDIDATES, key=lambda k: (scores[k], k)
        ),
    },
)
check_close(test_accuracy, on_test[best_k], "test_accuracy with best_k")
print(
    f"best k on the validation set: {best_k}; test accuracy:"
    f" {test_accuracy:.3f}"
)
check(
    on_test[best_k] >= 0.9,
    f"kNN on your embedding reaches {on_test[best_k]:.3f} test accuracy; at"
    " least 0.9 is needed.",
)
passed("choosing k and test accuracy")

# %% [markdown]
# ## 7. Verification: a similarity threshold when one error costs more
#
# A verification system answers a yes-or-no question about a *pair* of images:
# do they show the same class? It accepts the pair when the cosine similarity of
# their embeddings is at least a threshold. It can be wrong in two ways: a
# **false accept** (a pair of different classes accepted, an impostor let in)
# and a **false reject** (a pair of the same class refused). Here a false accept
# costs five false rejects: the cost of a threshold on a set of pairs is
# `5 * false_accepts + false_rejects`.
#
# The cell below gives every pair of the validation set and of the test set
# (each pair once): `validation_similarities` and `validation_same` (True for a
# pair of the same class), and the same for the test set.
#
# First write `pair_errors(similarities, same, threshold)`: the number of false
# accepts and the number of false rejects, as a tuple, when every pair whose
# similarity is at least `threshold` is accepted.

# %%
validation_similarities, validation_same = ml.all_pairs(
    validation_embeddings, validation.labels
)
test_similarities, test_same = ml.all_pairs(test_embeddings, test.labels)
print(
    f"{len(validation_same)} validation pairs, {validation_same.sum()} of them"
    " of the same class"
)


# %%
def pair_errors(similarities, same, threshold):
    raise NotImplementedError("Blank 9 of week5_exercise is not filled in yet")


# %%
# CHECK pair-errors points=1
exercise_checks.week5_pair_errors(pair_errors, rng)
passed("pair_errors")

# %% [markdown]
# **Predict before you search.** Compare two thresholds: the one with the
# lowest cost (a false accept counting five) and the one with the fewest errors
# (both kinds counting one). Is the cheapest threshold `"higher"`, `"lower"` or
# `"the same"`?

# %%
raise NotImplementedError("Blank 10 of week5_exercise is not filled in yet")

# %%
# CHECK threshold-prediction points=1
predictions.week5_threshold_direction(predicted_direction, embedder, validation)

# %% [markdown]
# Now choose `threshold`, the one this system will use, so that its cost is as
# low as you can make it; how you search is yours to decide. Then report what the
# system will do on pairs it has never seen: `test_false_accept_rate`, the share
# of the test set's pairs of different classes that it accepts, and
# `test_false_reject_rate`, the share of its pairs of the same class that it
# refuses.

# %%
raise NotImplementedError("Blank 11 of week5_exercise is not filled in yet")

# %%
# CHECK threshold points=3
exercise_checks.week5_threshold(threshold, embedder, validation, test)
check_close(
    [test_false_accept_rate, test_false_reject_rate],
    exercise_checks.week5_test_rates(threshold, embedder, test),
    "test_false_accept_rate and test_false_reject_rate at your threshold",
    mistakes={
        "the two rates are swapped.": exercise_checks.week5_test_rates(
            threshold, embedder, test
        )[::-1]
    },
)
print(
    f"on the test pairs: {test_false_accept_rate:.2%} of the impostors"
    f" accepted, {test_false_reject_rate:.2%} of the genuine pairs refused"
)
passed("threshold")

# %% [markdown]
# Done: every check above passed.
