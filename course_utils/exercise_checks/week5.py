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


# --- part 7: verification, a threshold under a cost ---------------------------------------------------------------

FALSE_ACCEPT_COST = 5  # a false accept costs five false rejects


def pair_errors(similarities, same, threshold) -> tuple[int, int]:
    """The reference of the blank ``pair_errors``: (false accepts, false rejects) of accepting every pair whose
    similarity is at least ``threshold``. Withheld from the grader's sandbox."""
    similarities, same = np.asarray(similarities), np.asarray(same, bool)
    accepted = similarities >= threshold
    return int(np.sum(accepted & ~same)), int(np.sum(~accepted & same))


def _costs(similarities, same, false_accept_cost):
    """Every distinct threshold worth trying (each similarity, and one above them all) with the cost of
    ``false_accept_cost`` x false accepts + false rejects there, from one sort rather than a count per threshold."""
    order = np.argsort(similarities)
    ordered, ordered_same = np.asarray(similarities)[order], np.asarray(same, bool)[order]
    # A threshold at ordered[i] rejects pairs 0..i-1 and accepts the rest.
    false_rejects = np.concatenate([[0], np.cumsum(ordered_same)])
    false_accepts = np.concatenate([np.cumsum((~ordered_same)[::-1])[::-1], [0]])
    thresholds = np.concatenate([ordered, [np.nextafter(ordered[-1], np.inf)]])
    first = np.concatenate([[True], ordered[1:] != ordered[:-1], [True]])  # ties: the first of equal values
    return thresholds[first], (false_accept_cost * false_accepts + false_rejects)[first]


def cheapest_threshold(similarities, same, false_accept_cost) -> float:
    """The threshold of lowest cost (the middle of the range of thresholds that reach it, when several do)."""
    thresholds, costs = _costs(similarities, same, false_accept_cost)
    best = np.flatnonzero(costs == costs.min())
    return float((thresholds[best[0]] + thresholds[best[-1]]) / 2)


def _cost(similarities, same, threshold, false_accept_cost=FALSE_ACCEPT_COST) -> int:
    false_accepts, false_rejects = pair_errors(similarities, same, threshold)
    return false_accept_cost * false_accepts + false_rejects


def week5_pair_errors(pair_errors_, rng) -> None:
    """The visible check of week 5's ``pair_errors``: counts, the threshold itself accepted."""
    check_own_work(pair_errors_, pair_errors, "pair_errors")
    similarities = np.round(rng.uniform(-1, 1, 200), 2)
    same = rng.random(200) < 0.4
    for threshold in (-1.0, 0.3, similarities[17], 1.01):
        expected = pair_errors(similarities, same, threshold)
        check_equal(
            tuple(int(n) for n in pair_errors_(similarities, same, threshold)),
            expected,
            f"pair_errors at threshold {threshold:g} (200 pairs, {same.sum()} of the same class)",
            mistakes={
                "a pair whose similarity equals the threshold is accepted (>=, not >).": pair_errors(
                    similarities, same, np.nextafter(threshold, np.inf)
                )
                if threshold in similarities
                else None,
                "false accepts and false rejects are swapped: a false ACCEPT is a pair of different classes that "
                "was accepted.": expected[::-1],
                "those count the right decisions; count the wrong ones.": (
                    int(np.sum((similarities >= threshold) & same)),
                    int(np.sum((similarities < threshold) & ~same)),
                ),
            },
        )


def week5_threshold(threshold, embedder, validation, test) -> None:
    """The visible check of week 5's threshold: its cost on the validation pairs is within a few pairs of the
    lowest any threshold reaches there, with the mistakes that give another threshold named."""
    check(
        isinstance(threshold, (int, float, np.integer, np.floating))
        and not isinstance(threshold, bool)
        and np.isfinite(threshold),
        f"threshold must be a finite number, got {threshold!r}",
    )
    (on_validation, validation_same), (on_test, test_same) = (
        ml.all_pairs(ml.embed(embedder, s.images), s.labels) for s in (validation, test)
    )
    best = int(_costs(on_validation, validation_same, FALSE_ACCEPT_COST)[1].min())
    cost = _cost(on_validation, validation_same, threshold)
    allowed = int(1.05 * best) + 3  # a threshold found on a grid of 0.01 passes too
    print(f"cost of your threshold {threshold:.3f} on the validation pairs: {cost} (the lowest possible: {best})")
    if cost <= allowed:
        return
    named = {
        "you chose it on the TEST pairs; choose it on the validation pairs and use the test pairs once.": (
            cheapest_threshold(on_test, test_same, FALSE_ACCEPT_COST)
        ),
        "that threshold minimises the NUMBER of errors; here a false accept costs five false rejects.": (
            cheapest_threshold(on_validation, validation_same, 1)
        ),
        "the weights are swapped: a false ACCEPT (different classes, accepted) costs five times more.": (
            cheapest_threshold(on_validation, validation_same, 1 / FALSE_ACCEPT_COST)
        ),
    }
    causes = [why for why, other in named.items() if abs(threshold - other) < 0.005]
    raise AssertionError(
        f"threshold: {threshold:.3f} costs {cost} on the validation pairs ({FALSE_ACCEPT_COST} x false accepts + "
        f"false rejects); a better threshold costs {best}. "
        + (
            f"Likely cause: {'; or '.join(causes)}"
            if causes
            else "Try every threshold worth trying and keep the cheapest."
        )
    )


def week5_test_rates(threshold, embedder, test) -> tuple[float, float]:
    """The false accept rate and the false reject rate at ``threshold`` on the test pairs, embedded by ``embedder``."""
    return ml.verification_rates(*ml.all_pairs(ml.embed(embedder, test.images), test.labels), threshold)
