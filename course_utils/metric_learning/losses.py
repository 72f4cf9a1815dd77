"""Metric-learning losses, written with ``keras.ops`` only: the similarity softmax, the triplet loss and the
contrastive loss with a margin."""

from __future__ import annotations

import keras
from keras import ops


def cosine_similarity_matrix(a, b=None):
    """Cosine similarities of every row of ``a`` with every row of ``b`` (default ``a``), shape (len(a), len(b)).

    Rows are normalised first, so the inputs need not have unit length.
    """
    return _cosine_similarity_matrix(a, b)


def _cosine_similarity_matrix(a, b=None):
    # What the losses call: the grader withholds cosine_similarity_matrix and similarity_softmax_loss from week 5's
    # exercise, where they are blanks' answers, and SimilaritySoftmaxLoss must keep training there
    # (course_utils.grading.withheld).
    a = ops.convert_to_tensor(a)
    b = a if b is None else ops.convert_to_tensor(b)
    a = a / ops.maximum(ops.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / ops.maximum(ops.norm(b, axis=1, keepdims=True), 1e-12)
    return ops.matmul(a, ops.transpose(b))


def similarity_softmax_loss(anchors, positives, temperature: float = 0.1, anchor_labels=None, positive_labels=None):
    """Softmax cross-entropy over the anchor-positive similarity matrix, one value per anchor.

    Row ``i`` of ``S = cos(anchors, positives) / temperature`` is turned into
    probabilities with a softmax; the target puts all of its mass on positive
    ``i`` (no labels given) or spreads it evenly over the positives that share
    the anchor's label (labels given). The loss is small when every anchor is
    more similar to its own positives than to the others, and the temperature
    sets how much more: cosine similarities lie in [-1, 1], so with a
    temperature of 1 two logits differ by at most 2 and the softmax can never
    become sharp, while a small temperature turns a modest margin in cosine
    into a confident match.
    """
    return _similarity_softmax_loss(anchors, positives, temperature, anchor_labels, positive_labels)


def _similarity_softmax_loss(anchors, positives, temperature: float = 0.1, anchor_labels=None, positive_labels=None):
    # What SimilaritySoftmaxLoss calls (see _cosine_similarity_matrix).
    logits = _cosine_similarity_matrix(anchors, positives) / temperature
    if anchor_labels is None:
        n = ops.shape(logits)[0]
        targets = ops.eye(n, dtype=logits.dtype)
    else:
        same = ops.equal(ops.reshape(anchor_labels, (-1, 1)), ops.reshape(positive_labels, (1, -1)))
        targets = ops.cast(same, logits.dtype)
        targets = targets / ops.maximum(ops.sum(targets, axis=1, keepdims=True), 1.0)
    log_probabilities = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return -ops.sum(targets * log_probabilities, axis=1)


def _pairwise_distances(embeddings):
    """Euclidean distances between all rows (for unit vectors: sqrt(2 - 2 cos))."""
    squared = ops.sum(ops.square(embeddings), axis=1)
    d2 = (
        ops.expand_dims(squared, 1)
        - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
        + ops.expand_dims(squared, 0)
    )
    d2 = ops.maximum(d2, 0.0)
    # sqrt has an infinite slope at 0: keep the zeros (the diagonal) out of it.
    zero = ops.cast(ops.less_equal(d2, 1e-12), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-12) * (1.0 - zero)


def triplet_loss(labels, embeddings, margin: float = 0.2, mining: str = "hard"):
    """Triplet loss with in-batch mining, one value per anchor (``mining="hard"``) or per positive pair.

    For an anchor ``a``, a positive ``p`` (same label) and a negative ``n``
    (different label) the triplet loss is ``max(0, d(a, p) - d(a, n) + margin)``
    with Euclidean distances ``d``. Which triplets count:

    * ``"hard"`` (batch-hard): for each anchor, its farthest positive and its
      nearest negative in the batch; returns one value per anchor.
    * ``"semi-hard"``: for each anchor-positive pair, the nearest negative that
      is still farther than the positive (``d(a, p) < d(a, n)``), or the farthest
      negative when there is none; the result is averaged over the anchor's
      positive pairs, one value per anchor.

    Anchors without a positive or a negative in the batch contribute 0.
    """
    if mining not in ("hard", "semi-hard"):
        raise ValueError(f"mining must be 'hard' or 'semi-hard', got {mining!r}")
    labels = ops.reshape(labels, (-1,))
    d = _pairwise_distances(embeddings)
    n = ops.shape(d)[0]
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
    positive = ops.cast(ops.logical_and(same, not_self), d.dtype)
    negative = ops.cast(ops.logical_not(same), d.dtype)
    has_both = ops.cast(ops.logical_and(ops.sum(positive, axis=1) > 0, ops.sum(negative, axis=1) > 0), d.dtype)
    big = ops.max(d) + 1.0
    if mining == "hard":
        hardest_positive = ops.max(d * positive, axis=1)
        hardest_negative = ops.min(d + big * (1.0 - negative), axis=1)
        return ops.relu(hardest_positive - hardest_negative + margin) * has_both
    # Semi-hard: d_ap[i, j] against d_an[i, k] for every anchor i, positive j, negative k.
    d_ap = ops.expand_dims(d, 2)  # (n, n, 1)
    d_an = ops.expand_dims(d, 1)  # (n, 1, n)
    neg = ops.expand_dims(negative, 1)  # (n, 1, n)
    farther = ops.cast(ops.greater(d_an, d_ap), d.dtype) * neg
    semi_hard = ops.min(d_an + big * (1.0 - farther), axis=2)  # nearest negative beyond the positive
    any_farther = ops.cast(ops.sum(farther, axis=2) > 0, d.dtype)
    farthest = ops.max(d_an * neg - big * (1.0 - neg), axis=2)  # fallback: the farthest negative
    chosen = any_farther * semi_hard + (1.0 - any_farther) * farthest
    per_pair = ops.relu(d - chosen + margin) * positive
    per_anchor = ops.sum(per_pair, axis=1) / ops.maximum(ops.sum(positive, axis=1), 1.0)
    return per_anchor * has_both


def contrastive_loss(labels, embeddings, margin: float = 1.0):
    """The contrastive loss with a margin of Hadsell, Chopra and LeCun (2006) over every pair of the batch, one
    value per image.

    A pair of the same label costs ``d**2 / 2``, its Euclidean distance ``d``
    squared; a pair of different labels costs ``max(0, margin - d)**2 / 2``, so
    it is pushed apart only while it is closer than ``margin`` and costs nothing
    beyond. Each image's value is the mean over its pairs with the other images
    of the batch. Unlike the softmax and triplet losses, which compare
    distances with each other, this one asks for absolute distances: 0 within
    a class, at least ``margin`` between classes.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    labels = ops.reshape(labels, (-1,))
    d = _pairwise_distances(embeddings)
    n = ops.shape(d)[0]
    same = ops.cast(ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)), d.dtype)
    not_self = 1.0 - ops.eye(n, dtype=d.dtype)
    per_pair = (same * ops.square(d) + (1.0 - same) * ops.square(ops.relu(margin - d))) / 2.0
    return ops.sum(per_pair * not_self, axis=1) / ops.maximum(ops.cast(n, d.dtype) - 1.0, 1.0)


@keras.saving.register_keras_serializable(package="course_utils")
class SimilaritySoftmaxLoss(keras.losses.Loss):
    """:func:`similarity_softmax_loss` for ``model.compile``, on batches laid out by :class:`BalancedBatches`.

    ``y_pred`` is the batch of embeddings, ``y_true`` their labels; the first
    half of the batch are the anchors, the second half their positives.
    ``use_labels`` (default True) counts every positive of the anchor's class as
    a match; False counts only the positive in the same row.
    """

    def __init__(self, temperature: float = 0.1, use_labels: bool = True, name: str = "similarity_softmax", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature
        self.use_labels = use_labels

    def call(self, y_true, y_pred):
        half = ops.shape(y_pred)[0] // 2
        labels = ops.reshape(y_true, (-1,))
        if self.use_labels:
            return _similarity_softmax_loss(
                y_pred[:half], y_pred[half:], self.temperature, labels[:half], labels[half:]
            )
        return _similarity_softmax_loss(y_pred[:half], y_pred[half:], self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "use_labels": self.use_labels}


@keras.saving.register_keras_serializable(package="course_utils")
class TripletLoss(keras.losses.Loss):
    """:func:`triplet_loss` for ``model.compile``: ``y_true`` labels, ``y_pred`` embeddings."""

    def __init__(self, margin: float = 0.2, mining: str = "hard", name: str = "triplet", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.mining = mining

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, self.margin, self.mining)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


@keras.saving.register_keras_serializable(package="course_utils")
class ContrastiveLoss(keras.losses.Loss):
    """:func:`contrastive_loss` for ``model.compile``: ``y_true`` labels, ``y_pred`` embeddings."""

    def __init__(self, margin: float = 1.0, name: str = "contrastive", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
