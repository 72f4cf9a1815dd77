"""Figures the chapters share: curves, image grids, confusion matrices, filters, embeddings.

Every function draws one new figure and returns it (assign it in a notebook,
``fig = plots.training_curves(history)``, so that it is shown once).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def _grid(n: int, ncols: int, cell: float = 1.6, **subplot_kw):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), squeeze=False, **subplot_kw)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def _show(ax, image, cmap="gray", vmin=None, vmax=None):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=vmin, vmax=vmax)


def training_curves(history, metrics=("loss", "accuracy"), title: str | None = None):
    """Training and validation curves of a Keras ``History`` (or its ``.history`` dict), one panel per metric."""
    logs = getattr(history, "history", history)
    found = [m for m in metrics if m in logs]
    if not found:
        raise ValueError(f"None of the metrics {', '.join(metrics)} is in the history; it has: {', '.join(logs)}")
    metrics = found
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        epochs = np.arange(1, len(logs[metric]) + 1)
        ax.plot(epochs, logs[metric], label="training")
        if f"val_{metric}" in logs:
            ax.plot(epochs, logs[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images, titles=None, ncols: int = 8, cmap: str = "gray", title: str | None = None, title_colors=None):
    """Images in a grid with an optional title each (and an optional colour per title)."""
    images = list(images)
    fig, axes = _grid(len(images), ncols)
    for i, (ax, image) in enumerate(zip(axes, images)):
        _show(ax, image, cmap=cmap)
        if titles is not None:
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(str(titles[i]), fontsize=9, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
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
    return image_grid(images, titles, ncols=ncols, title=title, title_colors=colors)


def confusion_matrix(y_true, y_pred, class_names, normalize: bool = False, title: str | None = None):
    """Confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=float)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
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
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
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
    fig, axes = _grid(filters.shape[-1], ncols)
    for i, ax in enumerate(axes):
        if i < filters.shape[-1]:
            _show(ax, filters[..., i], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {i}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def activation_maps(maps, ncols: int = 8, title: str | None = None):
    """The feature maps of one image, shape (h, w, channels), one panel per channel."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"Expected activation maps of shape (h, w, channels), got {maps.shape}")
    fig, axes = _grid(maps.shape[-1], ncols)
    for i, ax in enumerate(axes):
        if i < maps.shape[-1]:
            _show(ax, maps[..., i], cmap="viridis")
            ax.set_title(f"map {i}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    ax.legend(fontsize=8, markerscale=1.5, loc="best", ncols=2)
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
    fig, axes = plt.subplots(n, k + 1, figsize=(1.5 * (k + 1), 1.6 * n + 0.3), squeeze=False)
    for row in range(n):
        _show(axes[row, 0], query_images[row])
        axes[row, 0].set_title(query_titles[row] if query_titles is not None else "query", fontsize=8, color="blue")
        for col in range(k):
            _show(axes[row, col + 1], neighbour_images[row, col])
            if neighbour_titles is not None:
                axes[row, col + 1].set_title(neighbour_titles[row][col], fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
