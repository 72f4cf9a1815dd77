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


def all_pairs(embeddings, labels):
    """The cosine similarity and the same-class flag of every pair of unit-length ``embeddings``, each pair once
    (``i < j``): what a verification system, which accepts a pair above a similarity threshold, is judged on."""
    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    if len(embeddings) != len(labels):
        raise ValueError(f"all_pairs: {len(embeddings)} embeddings but {len(labels)} labels")
    rows, columns = np.triu_indices(len(labels), k=1)
    return np.sum(embeddings[rows] * embeddings[columns], axis=1), labels[rows] == labels[columns]
