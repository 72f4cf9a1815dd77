"""Is a probability of 0.9 right 90% of the time? Reliability bins, the expected calibration error (ECE) and
temperature scaling (Guo et al., 2017), for the class probabilities of a trained classifier."""

from __future__ import annotations

import numpy as np

TEMPERATURES = np.geomspace(0.05, 20.0, 400)
"""The temperatures :func:`fit_temperature` tries: a grid wide enough for a network that is far too sure or far too
unsure, fine enough (about 1.5% apart) that the best of them is as good as the exact minimum."""


def _checked(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"calibration needs probabilities of shape (n, classes) and n labels, got {probabilities.shape} and "
            f"{labels.shape}"
        )
    return probabilities, labels


def reliability_bins(probabilities, labels, n_bins: int = 10):
    """The predictions grouped by their confidence (the largest probability) into ``n_bins`` equal bins of [0, 1]:
    per bin, ``(mean confidence, accuracy, count)``; empty bins have NaN for the first two."""
    probabilities, labels = _checked(probabilities, labels)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        rows.append(
            (float(confidence[inside].mean()), float(right[inside].mean()), count) if count else (np.nan, np.nan, 0)
        )
    return rows


def expected_calibration_error(probabilities, labels, n_bins: int = 10) -> float:
    """The gap between confidence and accuracy, bin by bin, weighted by the share of predictions in the bin."""
    rows = reliability_bins(probabilities, labels, n_bins)
    total = sum(count for *_, count in rows)
    return float(sum(count * abs(confidence - accuracy) for confidence, accuracy, count in rows if count) / total)


def with_temperature(probabilities, temperature: float) -> np.ndarray:
    """The probabilities a softmax gives when its logits are divided by ``temperature``: the logits are recovered as
    log-probabilities, which differ from them by a constant per image that the softmax ignores."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature!r}")
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities, labels) -> float:
    """The temperature of :data:`TEMPERATURES` that gives ``labels`` the highest likelihood (the lowest mean
    cross-entropy). It changes no prediction, only how sure each one is; fit it on data the network was not
    trained on, and measure on other data."""
    probabilities, labels = _checked(probabilities, labels)
    rows = np.arange(len(labels))
    losses = [-np.mean(np.log(with_temperature(probabilities, t)[rows, labels] + 1e-12)) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def plot_reliability(curves: dict, n_bins: int = 10, title: str | None = None):
    """Reliability diagrams side by side: for each name, ``(probabilities, labels)``; the accuracy of each bin of
    confidence as a bar, the diagonal where a calibrated model's bars end, and the ECE in the panel's title."""
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH, wrap_title

    width = min(2.6 * len(curves), PAGE_WIDTH)
    fig, axes = plt.subplots(1, len(curves), figsize=(width, 2.9), squeeze=False, layout="constrained")
    centres = (np.arange(n_bins) + 0.5) / n_bins
    for ax, (name, (probabilities, labels)) in zip(axes.flat, curves.items()):
        rows = reliability_bins(probabilities, labels, n_bins)
        accuracy = [row[1] if row[2] else 0.0 for row in rows]
        ax.bar(centres, accuracy, width=1 / n_bins, edgecolor="black", linewidth=0.5, color="tab:blue")
        ax.plot([0, 1], [0, 1], ":", color="black")
        ece = expected_calibration_error(probabilities, labels, n_bins)
        ax.set_title(wrap_title(f"{name}\nECE {ece:.3f}", width / len(curves)), fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=9)
    axes.flat[0].set_ylabel("accuracy", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
