"""The figures of week 5: similarity matrices as heatmaps, and the ROC curves of verification."""

from __future__ import annotations

import math

import numpy as np


def plot_similarity_heatmaps(matrices: dict, labels=None, class_names=None, title: str | None = None):
    """Side-by-side heatmaps of similarity matrices (e.g. before and after training), values in [-1, 1].

    ``labels`` (of the rows/columns) draws lines between the classes of a sorted batch.
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    # At most three panels to a row, rows as even as they can be (four: two by two), and no wider than the
    # page, which would scale the figure (and its labels) down.
    rows = math.ceil(len(matrices) / 3)
    columns = math.ceil(len(matrices) / rows)
    width = min(4.2 * columns, PAGE_WIDTH)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(width, rows * (3.9 * width / (4.2 * columns)) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(matrices) :]:
        ax.set_axis_off()
    for i, (ax, (name, matrix)) in enumerate(zip(axes.flat, matrices.items())):
        image = ax.imshow(np.asarray(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("positives")
        if i % columns == 0:  # one label per row: the panels' own labels ran into their neighbours
            ax.set_ylabel("anchors")
        if labels is not None:
            labels_arr = np.asarray(labels)
            edges = np.flatnonzero(np.diff(labels_arr)) + 0.5
            for e in edges:
                ax.axhline(e, color="black", lw=0.6)
                ax.axvline(e, color="black", lw=0.6)
            if class_names is not None:
                starts = np.concatenate([[0], np.flatnonzero(np.diff(labels_arr)) + 1])
                ends = np.concatenate([starts[1:], [len(labels_arr)]])
                centres = (starts + ends - 1) / 2
                names = [class_names[labels_arr[s]] for s in starts]
                ax.set_xticks(centres, names, fontsize=9)
                ax.set_yticks(centres, names, fontsize=9, rotation=90, va="center")
    fig.colorbar(image, ax=list(axes.flat[: len(matrices)]), shrink=0.8, label="cosine similarity")
    if title:
        fig.suptitle(title)
    return fig


def plot_verification_roc(curves: dict, chosen: dict | None = None, title: str | None = None):
    """ROC curves of verification: for each name, ``(similarities, same)`` of its pairs, drawn as the share of
    same-class pairs accepted against the share of different-class pairs accepted, with the area under each curve
    in the legend and chance as the diagonal; ``chosen`` marks a point per name, ``(far, frr)``."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from course_utils.metric_learning.knn import verification_auc

    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    for name, (similarities, same) in curves.items():
        false_accepts, true_accepts, _ = roc_curve(same, similarities)
        (line,) = ax.plot(
            false_accepts, true_accepts, label=f"{name} (area {verification_auc(similarities, same):.3f})"
        )
        if chosen and name in chosen:
            far, frr = chosen[name]
            ax.plot(far, 1 - frr, "o", color=line.get_color())
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance (area 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (different classes accepted)")
    ax.set_ylabel("same-class pairs accepted")
    ax.legend(fontsize=9, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
