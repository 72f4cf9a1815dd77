"""The visible checks of week 5's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from course_utils import metric_learning as ml
from course_utils.checks import check, check_close, check_equal, check_own_work, check_shape


def week5_cosine_similarity_matrix(cosine_similarity_matrix, rng) -> None:
    """The visible check of week 5's cosine similarity matrix."""
    check_own_work(cosine_similarity_matrix, ml.cosine_similarity_matrix, "cosine_similarity_matrix")
    a, b = rng.normal(size=(6, 8)), rng.normal(size=(4, 8))
    similarities = cosine_similarity_matrix(a, b)
    check_shape(similarities, (6, 4), "cosine_similarity_matrix of 6 and 4 vectors")

    def unit_rows(v, axis=1):
        return v / np.linalg.norm(v, axis=axis, keepdims=True)

    check_close(
        similarities,
        ml.cosine_similarity_matrix(a, b),
        "cosine_similarity_matrix against the course's",
        mistakes={
            "these are plain dot products: divide each row by its length first.": a @ b.T,
            "only the rows of a were normalised: normalise the rows of b too.": unit_rows(a) @ b.T,
            "only the rows of b were normalised: normalise the rows of a too.": a @ unit_rows(b).T,
            "you normalised the columns (axis=0): each ROW is a vector, normalise with axis=1.": unit_rows(a, 0)
            @ unit_rows(b, 0).T,
        },
    )
    check_close(
        np.diag(cosine_similarity_matrix(a, 3 * a)), np.ones(6), "the similarity of a vector with itself, scaled by 3"
    )
    check_close(
        cosine_similarity_matrix(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [-1.0, 0.0]])),
        [[0.0, -1.0]],
        "similarities of perpendicular and opposite vectors",
    )


def week5_temperature_softmax_loss(softmax_loss, rng) -> None:
    """The visible check of week 5's temperature softmax loss."""
    check_own_work(softmax_loss, ml.similarity_softmax_loss, "softmax_loss")
    anchors, positives = rng.normal(size=(8, 16)), rng.normal(size=(8, 16))
    for temperature in (0.05, 0.1, 1.0):

        def reference_loss(a=anchors, p=positives, t=temperature):
            return float(np.mean(ml.similarity_softmax_loss(a, p, t)))

        expected = reference_loss()
        check_close(
            softmax_loss(anchors, positives, temperature),
            expected,
            f"softmax_loss at temperature {temperature}",
            mistakes={
                "you did not divide the similarities by the temperature.": reference_loss(t=1.0)
                if temperature != 1
                else None,
                "you multiplied by the temperature; divide by it.": reference_loss(t=1 / temperature)
                if temperature != 1
                else None,
                "you summed over the rows; the loss is their mean.": len(anchors) * expected,
                "the softmax runs over each ROW (one anchor against all positives), not each column.": reference_loss(
                    a=positives, p=anchors
                ),
            },
        )
    check_close(softmax_loss(np.ones((5, 3)), np.ones((5, 3)), 0.1), np.log(5), "collapsed embeddings cost log(n)")
    check(
        softmax_loss(np.eye(4), np.eye(4), 0.01) < 1e-3,
        "perfectly matched embeddings at a low temperature cost almost 0",
    )
    check(np.isfinite(softmax_loss(anchors, positives, 1e-4)), "softmax_loss must not overflow at tiny temperatures")


def week5_knn_majority_vote(knn_vote, rng) -> None:
    """The visible check of week 5's knn majority vote."""
    check_own_work(knn_vote, ml.knn_predict, "knn_vote")
    reference = rng.normal(size=(60, 5))
    reference_labels = rng.integers(0, 4, 60)
    queries = rng.normal(size=(40, 5))
    for k in (1, 3, 5, 8):
        sklearn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(reference, reference_labels).predict(queries)
        farthest = (
            KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(-reference, reference_labels).predict(queries)
        )
        euclidean = KNeighborsClassifier(n_neighbors=k).fit(reference, reference_labels).predict(queries)
        check_equal(
            list(knn_vote(reference, reference_labels, queries, k)),
            list(sklearn),
            f"knn_vote with k={k}",
            mistakes={
                "you took the k LEAST similar references: sort by decreasing similarity "
                "(np.argsort(-similarities)).": list(farthest),
                "you used Euclidean distances between unnormalised vectors; the vote uses cosine similarity.": list(
                    euclidean
                ),
            },
        )


def week5_class_softmax_loss(class_softmax_loss, softmax_loss, rng) -> None:
    """The visible check of week 5's class-aware softmax loss (the chapter's multi-positive target)."""
    check_own_work(class_softmax_loss, ml.similarity_softmax_loss, "class_softmax_loss")
    anchors, positives = rng.normal(size=(9, 5)), rng.normal(size=(9, 5))
    distinct = np.arange(9)
    check_close(
        class_softmax_loss(anchors, positives, 0.3, distinct, distinct),
        softmax_loss(anchors, positives, 0.3),
        "with every label once, the class-aware loss is part 2's",
    )
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    expected = float(np.mean(ml.similarity_softmax_loss(anchors, positives, 0.3, labels, labels)))
    logits = np.asarray(ml.cosine_similarity_matrix(anchors, positives)) / 0.3
    log_p = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    same = labels[:, None] == labels[None, :]
    check_close(
        class_softmax_loss(anchors, positives, 0.3, labels, labels),
        expected,
        "class_softmax_loss on 9 pairs of 3 classes (3, 2 and 4 pairs)",
        mistakes={
            "the target of a row must sum to 1: divide by the number of positives of the anchor's class.": float(
                -np.mean(np.sum(np.where(same, log_p, 0), axis=1))
            ),
            "that is minus the log of the class's TOTAL probability, another loss; the cross-entropy asked for "
            "averages minus the log-probabilities of the class's positives, weighted by the target.": float(
                -np.mean(np.log(np.sum(np.where(same, np.exp(log_p), 0), axis=1)))
            ),
            "that is part 2's target, positive i alone: spread it over every positive of the anchor's class.": float(
                -np.mean(np.diag(log_p))
            ),
        },
    )
    check_close(
        class_softmax_loss(anchors, positives, 0.3, labels, labels[::-1]),
        float(np.mean(ml.similarity_softmax_loss(anchors, positives, 0.3, labels, labels[::-1]))),
        "class_softmax_loss when the positives come in another order (compare labels, not positions)",
    )
