"""Figures the chapters share: curves, image grids, confusion matrices, filters, embeddings, repeated runs.

Every function draws one new figure and returns it (assign it in a notebook,
``fig = plots.training_curves(history)``, so that it is shown once).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

PAGE_WIDTH = 6.7
"""Width in inches of the book's content column for a figure at matplotlib's 100 dpi.

The column is about 690 CSS px in a 1280-px wide browser window (790 px in a
wider one); the notebook saves figures with 0.1 inch of padding on each side.
The page scales a wider figure down to fit, and its text with it: a figure
``w`` inches wide is shown at about ``PAGE_WIDTH / w`` of its size. Figures
here are at most this wide, so that their 9-pt labels are read at 9 pt.
"""

MAX_COLUMNS = 8
"""The most images per row of a grid: more would make each one smaller than about 0.9 inch."""

TITLE_SIZE = 9
"""Font size (pt) of the small titles above the images of a grid."""

_LABELS = {"mean_iou": "mean IoU", "iou": "IoU", "dice": "Dice", "map": "mAP", "auc": "AUC"}


def metric_label(name: str) -> str:
    """A metric's Keras name as an axis label: ``"mean_iou"`` -> ``"mean IoU"``,
    ``"top_5_accuracy"`` -> ``"top 5 accuracy"``.
    """
    name = str(name)
    return _LABELS.get(name, " ".join(_LABELS.get(word, word) for word in name.split("_")))


def _grid(n: int, ncols: int, cell: float = 1.6, title_lines: int = 0, suptitle: bool = False, **subplot_kw):
    """A grid of ``n`` empty panels, at most :data:`MAX_COLUMNS` per row and :data:`PAGE_WIDTH` wide.

    Panels are ``cell`` inches square, smaller when that many would not fit the
    page; ``title_lines`` lines of title above each panel (and a figure title
    when ``suptitle``) get room of their own, so titles of one row never run
    into the images of the row above (constrained layout).
    """
    ncols = max(1, min(ncols, n, MAX_COLUMNS))
    nrows = max(1, math.ceil(n / ncols))
    cell = _cell(n, ncols, cell)
    line = TITLE_SIZE * 1.3 / 72  # inches per line of title
    height = nrows * (cell + title_lines * line + 0.05) + (0.35 if suptitle else 0.05)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell * ncols, height), squeeze=False, layout="constrained", **subplot_kw
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def _cell(n: int, ncols: int, cell: float = 1.6) -> float:
    """The side in inches of the panels :func:`_grid` makes for these arguments."""
    return min(cell, PAGE_WIDTH / max(1, min(ncols, n, MAX_COLUMNS)))


def _text_width(text: str, size: float = TITLE_SIZE) -> float:
    """Width in inches of one line of ``text`` in matplotlib's default font at ``size`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    return TextToPath().get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0] / 72


def wrap_title(title, width_inches: float) -> str:
    """``title`` broken at spaces into lines that fit a panel ``width_inches`` wide at :data:`TITLE_SIZE`.

    Neighbouring titles would otherwise run into one another; a single word
    longer than the panel stays whole.
    """
    room = 0.92 * width_inches  # a little space between neighbouring titles
    lines = []
    for line in str(title).split("\n"):
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and _text_width(candidate) > room:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return "\n".join(lines)


def _show(ax, image, cmap="gray", vmin=None, vmax=None):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=vmin, vmax=vmax)


def training_curves(history, metrics=("loss", "accuracy"), title: str | None = None, validation_label="validation"):
    """Training and validation curves of a Keras ``History`` (or its ``.history`` dict), one panel per metric.

    ``validation_label`` names the second curve (``"test"`` where a chapter validates on its test set).
    """
    logs = getattr(history, "history", history)
    found = [m for m in metrics if m in logs]
    if not found:
        raise ValueError(f"None of the metrics {', '.join(metrics)} is in the history; it has: {', '.join(logs)}")
    metrics = found
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(4.5 * len(metrics), PAGE_WIDTH), 3.2), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        epochs = np.arange(1, len(logs[metric]) + 1)
        marker = "o" if len(epochs) <= 3 else None  # a line of one point is invisible
        ax.plot(epochs, logs[metric], label="training", marker=marker)
        if f"val_{metric}" in logs:
            ax.plot(epochs, logs[f"val_{metric}"], label=validation_label, marker=marker)
        ax.set_xlabel("epoch")
        if len(epochs) <= (10 if len(metrics) <= 2 else 5):  # every epoch labelled where the labels fit the panel
            ax.set_xticks(epochs)  # whole epochs only, also for one or two
        else:
            ax.xaxis.set_major_locator(plt.MaxNLocator(nbins=5 if len(metrics) > 2 else "auto", integer=True))
        ax.set_ylabel(metric_label(metric))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images, titles=None, ncols: int = 8, cmap: str = "gray", title: str | None = None, title_colors=None):
    """Images in a grid with an optional title each (and an optional colour per title)."""
    images = list(images)
    if titles is not None:
        titles = [wrap_title(t, _cell(len(images), ncols)) for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    fig, axes = _grid(len(images), ncols, title_lines=lines, suptitle=bool(title))
    for i, (ax, image) in enumerate(zip(axes, images)):
        _show(ax, image, cmap=cmap)
        if titles is not None:
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(str(titles[i]), fontsize=TITLE_SIZE, color=color)
    if title:
        fig.suptitle(title)
    return fig


def prediction_grid(images, y_true, y_pred, class_names, confidences=None, ncols: int = 8, title: str | None = None):
    """Images titled "predicted (confidence)"; green when right, red when wrong (true class in brackets)."""
    titles, colors = [], []
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        text = str(class_names[p])
        if confidences is not None:
            text += f" {confidences[i]:.2f}"
        if t != p:
            text += f"\n[{class_names[t]}]"
        titles.append(text)
        colors.append("green" if t == p else "red")
    # As many columns as "class 0.97" titles fit side by side, in rows of even length.
    widest = max((_text_width(line) for text in titles for line in text.split("\n")), default=0.0)
    fit = max(1, int(0.92 * PAGE_WIDTH / widest)) if widest else ncols
    ncols = max(1, min(ncols, fit, MAX_COLUMNS, len(titles) or 1))
    ncols = math.ceil(len(titles) / math.ceil(len(titles) / ncols)) if titles else ncols
    return image_grid(images, titles, ncols=ncols, title=title, title_colors=colors)


def confusion_matrix(y_true, y_pred, class_names, normalize: bool = False, title: str | None = None):
    """Confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=float)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(min(0.45 * k + 2.5, PAGE_WIDTH), min(0.45 * k + 2, PAGE_WIDTH - 0.5)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=45 if k > 6 and max(map(len, map(str, class_names))) > 2 else 0)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                text = f"{matrix[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9 if k <= 12 else 7,
                    color="white" if matrix[i, j] > threshold else "black",
                )
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


def conv_filters(kernel, ncols: int = 8, title: str | None = None):
    """The filters of a convolution layer, kernel shape (h, w, in, out); input channels are averaged."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"Expected a convolution kernel of shape (h, w, in, out), got {kernel.shape}")
    filters = kernel.mean(axis=2)
    limit = np.abs(filters).max()
    fig, axes = _grid(filters.shape[-1], ncols, title_lines=1, suptitle=bool(title))
    for i, ax in enumerate(axes):
        if i < filters.shape[-1]:
            _show(ax, filters[..., i], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {i}", fontsize=TITLE_SIZE)
    if title:
        fig.suptitle(title)
    return fig


def activation_maps(maps, ncols: int = 8, title: str | None = None):
    """The feature maps of one image, shape (h, w, channels), one panel per channel."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"Expected activation maps of shape (h, w, channels), got {maps.shape}")
    fig, axes = _grid(maps.shape[-1], ncols, title_lines=1, suptitle=bool(title))
    for i, ax in enumerate(axes):
        if i < maps.shape[-1]:
            _show(ax, maps[..., i], cmap="viridis")
            ax.set_title(f"map {i}", fontsize=TITLE_SIZE)
    if title:
        fig.suptitle(title)
    return fig


def tsne_2d(features, perplexity: float = 30.0, seed: int = 0):
    """Points in the plane for ``features`` (n, d) by t-SNE, for :func:`embedding_scatter`.

    The perplexity (about the number of neighbours each point keeps close) is capped below the number of
    points, which t-SNE requires, so that a small data set (a reader's own images) still gets a plot.
    """
    from sklearn.manifold import TSNE

    features = np.asarray(features)
    if len(features) < 3:
        raise ValueError(f"t-SNE needs at least 3 points to place, got {len(features)}")
    perplexity = min(float(perplexity), (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(features)


def embedding_scatter(points, labels, class_names, title: str | None = None, highlight=None):
    """A 2-D embedding (e.g. t-SNE) coloured by class; ``highlight`` (a boolean mask) draws those points as crosses."""
    points = np.asarray(points)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"Expected points of shape (n, 2), got {points.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    highlight = np.zeros(len(points), bool) if highlight is None else np.asarray(highlight, bool)
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(*points[chosen & ~highlight].T, s=10, color=cmap(k), label=str(name))
        if (chosen & highlight).any():
            ax.scatter(*points[chosen & highlight].T, s=40, color=cmap(k), marker="x")
    ax.legend(fontsize=9, markerscale=1.5, loc="best", ncols=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "2-D embedding")
    fig.tight_layout()
    return fig


def retrieval_grid(query_images, neighbour_images, query_titles=None, neighbour_titles=None, title: str | None = None):
    """One row per query: the query image, then its nearest neighbours."""
    query_images = np.asarray(query_images)
    neighbour_images = np.asarray(neighbour_images)
    n, k = neighbour_images.shape[:2]
    cell = min(1.5, PAGE_WIDTH / (k + 1))  # one row per query, however many neighbours: never wider than the page
    query_titles = [wrap_title(query_titles[row] if query_titles is not None else "query", cell) for row in range(n)]
    if neighbour_titles is not None:
        neighbour_titles = [[wrap_title(t, cell) for t in neighbour_titles[row]] for row in range(n)]
    lines = max(t.count("\n") + 1 for t in query_titles + sum(neighbour_titles or [], []))
    line = TITLE_SIZE * 1.3 / 72
    fig, axes = plt.subplots(
        n,
        k + 1,
        figsize=(cell * (k + 1), n * (cell + lines * line + 0.05) + (0.35 if title else 0.05)),
        squeeze=False,
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    for row in range(n):
        _show(axes[row, 0], query_images[row])
        axes[row, 0].set_title(query_titles[row], fontsize=TITLE_SIZE, color="blue")
        for col in range(k):
            _show(axes[row, col + 1], neighbour_images[row, col])
            if neighbour_titles is not None:
                axes[row, col + 1].set_title(neighbour_titles[row][col], fontsize=TITLE_SIZE)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def runs_strip(panels: dict, title: str | None = None):
    """Repeated runs side by side, one panel per measure: ``panels`` maps a measure's name to
    ``{variant: [value per run]}``. Each run is a dot and each variant's mean a short bar, so that a difference
    can be read against the spread of the runs rather than from one run."""
    fig, axes = plt.subplots(1, len(panels), figsize=(min(3.3 * len(panels), PAGE_WIDTH), 2.8), squeeze=False)
    for ax, (measure, runs) in zip(axes.flat, panels.items()):
        for x, values in enumerate(runs.values()):
            values = np.asarray(values, dtype=float)
            ax.plot(np.full(len(values), x), values, "o", alpha=0.7, color=f"C{x}")
            ax.plot([x - 0.25, x + 0.25], [values.mean()] * 2, color=f"C{x}", linewidth=2)
        ax.set_xticks(range(len(runs)), list(runs))
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_checks(one_batch_losses, range_tests: dict, chance: float, used: dict | None = None):
    """The checks before a training, side by side: the loss on one batch step by step (log scale, chance's log C
    dashed) and, per optimiser, the smoothed loss of a learning-rate range test against the rate, its suggested
    rate marked with a dot. ``range_tests`` maps a name to ``(rates, losses, suggested)``; ``used`` marks a rate
    per name with a cross (the one a training used)."""
    from course_utils.diagnostics import smoothed

    fig, (batch_ax, range_ax) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.6), layout="constrained")
    steps = np.arange(1, len(one_batch_losses) + 1)
    batch_ax.plot(steps, one_batch_losses, color="black", label="one batch")
    batch_ax.axhline(chance, linestyle="--", color="grey", label=f"chance, log C = {chance:.2f}")
    batch_ax.set_yscale("log")
    batch_ax.set_xlabel("training step")
    batch_ax.set_ylabel("loss")
    batch_ax.set_title("overfitting one batch", fontsize=10)
    for k, (name, (rates, losses, suggested)) in enumerate(range_tests.items()):
        curve = smoothed(losses)
        range_ax.plot(rates, curve, color=f"C{k}", label=name)
        range_ax.plot(suggested, np.interp(np.log(suggested), np.log(rates), curve), "o", color=f"C{k}")
        if used and name in used:
            rate = used[name]
            range_ax.plot(rate, np.interp(np.log(rate), np.log(rates), curve), "x", color=f"C{k}", markersize=9)
    range_ax.axhline(chance, linestyle="--", color="grey")
    range_ax.set_xscale("log")
    range_ax.set_xlabel("learning rate")
    range_ax.set_ylabel("loss (smoothed)")
    range_ax.set_title("learning-rate range test", fontsize=10)
    for ax in (batch_ax, range_ax):
        ax.grid(alpha=0.3)
    # One legend under both panels: inside either, it covered a curve on some run seeds.
    handles, labels = (sum(pair, []) for pair in zip(*(ax.get_legend_handles_labels() for ax in (batch_ax, range_ax))))
    markers = [("o", "suggested rate")] + ([("x", "rate the training used")] if used else [])
    handles += [Line2D([], [], marker=marker, linestyle="", color="grey", markersize=7) for marker, _ in markers]
    labels += [label for _, label in markers]
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    return fig


def compare_training(histories: dict, colours=None, metrics=("loss", "accuracy"), title: str | None = None):
    """Several trainings' curves in one panel per metric: for each name of ``histories`` (Keras ``History``
    objects or their dicts) the training curve solid and the validation curve dotted, in one colour per run
    (``colours``, a list, or matplotlib's cycle)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(PAGE_WIDTH, 2.8), layout="constrained", squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for k, (name, history) in enumerate(histories.items()):
            logs = getattr(history, "history", history)
            epochs = np.arange(1, len(logs[metric]) + 1)
            marker = "o" if len(epochs) <= 3 else None  # a line of one point is invisible
            colour = colours[k] if colours else f"C{k}"
            ax.plot(epochs, logs[metric], color=colour, marker=marker, label=f"{name}, training")
            if f"val_{metric}" in logs:
                validation = logs[f"val_{metric}"]
                ax.plot(epochs, validation, color=colour, linestyle=":", marker=marker, label=f"{name}, validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric_label(metric))
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[-1].legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


SMALLEST_TEXT = 9.0
"""The smallest font size (pt) a figure's text may have as the page shows it: a figure wider than the page is
scaled down, and its text with it (:data:`PAGE_WIDTH`)."""


def shown_text_sizes(fig) -> list[tuple[str, float]]:
    """``(text, size in pt as the page shows it)`` of each visible text of ``fig``, smallest first: its font size
    times the page's scale, ``PAGE_WIDTH`` over the width of the figure as saved (tight bounding box), when that
    is wider."""
    from matplotlib.text import Text

    width = fig.get_tightbbox(fig.canvas.get_renderer()).width  # inches, as bbox_inches="tight" saves it
    scale = min(1.0, PAGE_WIDTH / width) if width > 0 else 1.0
    sizes = [
        (text.get_text(), round(text.get_fontsize() * scale, 2))
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and text.get_figure() is fig
    ]
    return sorted(sizes, key=lambda pair: pair[1])


def audit_text_on_draw(fig) -> None:
    """A ``figure.hooks`` entry (:func:`course_utils.config.sharp_figures` adds it for the tests): after each draw
    of ``fig``, append its smallest text as shown to the file named by ``config.FIGURE_AUDIT``."""
    import json
    import os

    from course_utils.config import FIGURE_AUDIT

    def audit(event):
        path = os.environ.get(FIGURE_AUDIT)
        sizes = shown_text_sizes(fig)
        if path and sizes:
            titles = [t for t in (fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)) if t]
            record = {"figure": titles[0] if titles else f"figure {fig.number}", "smallest": sizes[0]}
            with open(path, "a") as out:
                out.write(json.dumps(record) + "\n")

    fig.canvas.mpl_connect("draw_event", audit)
