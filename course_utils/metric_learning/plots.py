"""The figure of week 5: similarity matrices as heatmaps."""

from __future__ import annotations

import numpy as np


def plot_similarity_heatmaps(matrices: dict, labels=None, class_names=None, title: str | None = None):
    """Side-by-side heatmaps of similarity matrices (e.g. before and after training), values in [-1, 1].

    ``labels`` (of the rows/columns) draws lines between the classes of a sorted batch.
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    # No wider than the page, which would scale the figure (and its labels) down.
    width = min(4.2 * len(matrices), PAGE_WIDTH)
    fig, axes = plt.subplots(
        1,
        len(matrices),
        figsize=(width, 3.9 * width / (4.2 * len(matrices)) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for i, (ax, (name, matrix)) in enumerate(zip(axes.flat, matrices.items())):
        image = ax.imshow(np.asarray(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("positives")
        if i == 0:  # one label for the row: the panels' own labels ran into their neighbours
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
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="cosine similarity")
    if title:
        fig.suptitle(title)
    return fig
