"""k-nearest neighbours on embeddings (cosine metric, scikit-learn): predictions, retrieval, coverage; and the
pairs of a set, for verification (same class or not?)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors


def knn_fit(reference, labels, k: int = 5):
    """A scikit-learn ``KNeighborsClassifier`` with the cosine metric, fitted on the reference embeddings."""
    k = min(int(k), len(reference))
    return KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(
        np.asarray(reference).reshape(len(reference), -1), np.asarray(labels)
    )


def knn_predict(reference, labels, queries, k: int = 5):
    """kNN predictions for ``queries`` and their confidence, the share of the k votes won by the prediction.

    Ties are won by the smaller label (scikit-learn's rule). Returns
    ``(predicted labels, confidence)``.
    """
    knn = knn_fit(reference, labels, k)
    probabilities = knn.predict_proba(np.asarray(queries).reshape(len(queries), -1))
    return knn.classes_[probabilities.argmax(axis=1)], probabilities.max(axis=1)


def accuracy_vs_k(reference, labels, queries, query_labels, ks=(1, 3, 5, 7, 9, 15)) -> dict[int, float]:
    """Test accuracy of kNN for each k in ``ks`` (those not larger than the reference set)."""
    result = {}
    for k in ks:
        if k <= len(reference):
            predicted, _ = knn_predict(reference, labels, queries, k)
            result[int(k)] = float(np.mean(predicted == np.asarray(query_labels)))
    return result


def retrieve(gallery, queries, k: int = 5):
    """The ``k`` gallery items most similar (cosine) to each query: ``(indices, similarities)``, best first."""
    gallery = np.asarray(gallery).reshape(len(gallery), -1)
    nn = NearestNeighbors(n_neighbors=min(k, len(gallery)), metric="cosine").fit(gallery)
    distance, index = nn.kneighbors(np.asarray(queries).reshape(len(queries), -1))
    return index, 1.0 - distance


def coverage_curve(correct, confidence):
    """Accuracy of the predictions whose confidence reaches each threshold, against the share kept.

    Returns a list of ``(threshold, coverage, accuracy)``, one per distinct
    confidence value, from the lowest threshold (everything kept) to the highest.
    """
    correct = np.asarray(correct, dtype=float)
    confidence = np.asarray(confidence, dtype=float)
    rows = []
    for threshold in np.unique(confidence):
        kept = confidence >= threshold
        rows.append((float(threshold), float(kept.mean()), float(correct[kept].mean())))
    return rows


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two items of every pair of ``n`` items, each pair once (``i < j``), in the order :func:`all_pairs` uses."""
    return np.triu_indices(n, k=1)


def all_pairs(embeddings, labels):
    """The cosine similarity and the same-class flag of every pair of ``embeddings`` (rows), each pair once
    (``i < j``): what a verification system, which accepts a pair above a similarity threshold, is judged on."""
    embeddings, labels = np.asarray(embeddings, dtype=float), np.asarray(labels)
    if len(embeddings) != len(labels):
        raise ValueError(f"all_pairs: {len(embeddings)} embeddings but {len(labels)} labels")
    flat = embeddings.reshape(len(embeddings), -1)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    rows, columns = pair_indices(len(labels))
    return np.sum(unit[rows] * unit[columns], axis=1), labels[rows] == labels[columns]


def verification_rates(similarities, same, threshold) -> tuple[float, float]:
    """(false accept rate, false reject rate) of accepting the pairs whose similarity is at least ``threshold``:
    the share of pairs of different classes accepted, and of pairs of the same class refused."""
    similarities, same = np.asarray(similarities), np.asarray(same, bool)
    if not same.any() or same.all():
        raise ValueError("verification_rates needs pairs of the same class and pairs of different classes")
    accepted = similarities >= threshold
    return float(np.mean(accepted[~same])), float(np.mean(~accepted[same]))


def verification_auc(similarities, same) -> float:
    """Area under the ROC curve of verification by a similarity threshold: the chance that a random same-class
    pair is more similar than a random pair of different classes (0.5 is a coin, 1 a perfect ranking)."""
    from sklearn.metrics import roc_auc_score  # on use: scikit-learn's metrics are slow to import

    return float(roc_auc_score(np.asarray(same, bool), np.asarray(similarities)))


def equal_error_threshold(similarities, same) -> float:
    """The threshold at which the false accept and false reject rates come closest (where a verification system's
    equal error rate is read), found among the pairs' own similarities."""
    from sklearn.metrics import roc_curve  # on use: scikit-learn's metrics are slow to import

    false_accepts, true_accepts, thresholds = roc_curve(
        np.asarray(same, bool), np.asarray(similarities), drop_intermediate=False
    )
    best = int(np.argmin(np.abs(false_accepts - (1 - true_accepts))[1:])) + 1  # [0] is "accept nothing" (inf)
    return float(thresholds[best])
