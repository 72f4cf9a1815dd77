"""The figures of week 4: colour-coded masks, error maps, image/mask grids, and a table of IoUs."""

from __future__ import annotations

import numpy as np

MASK_COLOURS = (
    np.array(
        [
            [0, 0, 0],
            [230, 25, 75],
            [60, 180, 75],
            [0, 130, 200],
            [255, 225, 25],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
        ],
        dtype=np.float32,
    )
    / 255.0
)
"""Colour of class k in the figures (0, the background, is black); cycles after 8 classes."""


def colour_mask(mask) -> np.ndarray:
    """An integer mask (H, W) as an RGB image with one colour per class."""
    mask = np.asarray(mask).astype(int)
    return MASK_COLOURS[np.where(mask == 0, 0, (mask - 1) % (len(MASK_COLOURS) - 1) + 1)]


ERROR_COLOURS = {
    "object pixel missed or given the wrong class": (0.0, 0.0, 0.0),
    "background called an object": (0.902, 0.624, 0.0),
}
"""The colours of :func:`error_map` (Okabe-Ito black and orange): unlike red or blue they match no class
colour of :data:`MASK_COLOURS`, and colour-blind readers tell them apart too."""


def error_map(y_true, y_pred_labels) -> np.ndarray:
    """RGB image of the mistakes (:data:`ERROR_COLOURS`): white where right, black where an object pixel was
    missed or mislabelled, orange where background was called an object."""
    y_true, y_pred_labels = np.asarray(y_true), np.asarray(y_pred_labels)
    out = np.ones(y_true.shape + (3,), dtype=np.float32)
    missed = (y_true > 0) & (y_pred_labels != y_true)
    invented = (y_true == 0) & (y_pred_labels > 0)
    missed_colour, invented_colour = ERROR_COLOURS.values()
    out[missed] = missed_colour
    out[invented] = invented_colour
    return out


def plot_segmentation(images, true_masks, pred_masks=None, class_names=None, n: int = 6, title: str | None = None):
    """One column per image; rows: image, true mask, and when given the predicted mask and the error map.

    Masks are drawn with one colour per class (:data:`MASK_COLOURS`, background black).
    """
    images, true_masks = np.asarray(images)[:n], np.asarray(true_masks)[:n]
    if pred_masks is not None:
        pred_masks = np.asarray(pred_masks)[:n]
    rows = _panel_rows(images, true_masks, pred_masks)
    fig, axes, split = _panel_grid(len(rows), len(images), pred_masks is not None, class_names is not None, title)
    _draw_panels(axes, rows, true_masks, pred_masks, split)
    _add_legends(fig, class_names, pred_masks is not None)
    if title:
        fig.suptitle(title)
    return fig


def _panel_rows(images, true_masks, pred_masks) -> list:
    """``(row label, function of the column that gives the picture)`` for each row of :func:`plot_segmentation`."""
    rows = [("image", lambda i: images[i]), ("true mask", lambda i: colour_mask(true_masks[i]))]
    if pred_masks is not None:
        rows += [
            ("prediction", lambda i: colour_mask(pred_masks[i])),
            ("errors", lambda i: error_map(true_masks[i], pred_masks[i])),
        ]
    return rows


def _panel_grid(n_rows: int, count: int, with_predictions: bool, with_names: bool, title):
    """The figure and its ``(n_rows, count)`` axes, sized for the page; and whether "% right" takes two lines."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    # At most the page's width (row labels included), so the labels are read at their size, not scaled down.
    cell = min(1.7, (PAGE_WIDTH - 0.4) / max(count, 1))  # the row labels and margins take the rest
    split = cell < 1.0  # narrow panels: "93.9%" and "right" on two lines, or neighbouring labels touch
    below = (0.35 if split else 0.2) if with_predictions else 0.0  # the "% right" under the error maps
    legend_rows = (2 if with_names else 0) + (3 if with_predictions else 0)
    fig, axes = plt.subplots(
        n_rows,
        count,
        squeeze=False,
        layout="constrained",
        figsize=(cell * count + 0.3, cell * n_rows + below + (0.35 if title else 0.05) + 0.2 * min(legend_rows, 3)),
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    return fig, axes, split


def _draw_panels(axes, rows, true_masks, pred_masks, split: bool) -> None:
    """Fill the grid: row labels on the left, the share of right pixels under each error map."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    from course_utils.plots import TITLE_SIZE

    for r, (label, draw) in enumerate(rows):
        for i in range(axes.shape[1]):
            ax = axes[r, i]
            ax.imshow(draw(i), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, fontsize=TITLE_SIZE + 1)
            if pred_masks is not None and r == 3:
                right = np.mean(pred_masks[i] == true_masks[i])
                ax.set_xlabel(f"{right:.1%}" + ("\n" if split else " ") + "right", fontsize=TITLE_SIZE)


def _add_legends(fig, class_names, with_errors: bool) -> None:
    """The legends under the grid: the class colours (without the background) and the error colours."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    from matplotlib.patches import Patch

    from course_utils.plots import TITLE_SIZE

    legends = []
    if class_names is not None:
        classes = [
            Patch(color=colour_mask(np.array([[k]]))[0, 0], label=str(name))
            for k, name in enumerate(class_names)
            if k > 0
        ]
        legends.append(("classes", classes))
    if with_errors:
        legends.append(
            ("errors", [Patch(facecolor=c, edgecolor="grey", label=name) for name, c in ERROR_COLOURS.items()])
        )
    places = ("outside lower left", "outside lower right") if len(legends) > 1 else ("outside lower center",)
    for place, (name, handles) in zip(places, legends):
        fig.legend(
            handles=handles,
            loc=place,
            ncols=1 if name == "errors" else min(len(handles), 3),
            fontsize=TITLE_SIZE,
            title=name,
            title_fontsize=TITLE_SIZE,
            frameon=False,
        )


def iou_table(per_class: dict, class_names) -> str:
    """A text table: one row per model, one column per class, then the mean (NaN shown as '-')."""
    width = max(8, *(len(str(c)) for c in class_names))
    name_width = max(12, *(len(k) for k in per_class))
    lines = [f"{'':<{name_width}} " + " ".join(f"{str(c):>{width}}" for c in class_names) + f" {'mean':>{width}}"]
    for model_name, values in per_class.items():
        cells = " ".join(f"{'-':>{width}}" if np.isnan(v) else f"{v:>{width}.3f}" for v in values)
        lines.append(f"{model_name:<{name_width}} {cells} {np.nanmean(values):>{width}.3f}")
    return "\n".join(lines)


def plot_weight_map(instances, weights, title: str | None = None):
    """Objects (one colour each) beside their pixel weights (:func:`course_utils.segmentation.border_weight_map`),
    with the weights' colour scale."""
    import matplotlib.pyplot as plt  # on use: the package imports without matplotlib

    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.2), constrained_layout=True)
    left.imshow(colour_mask(instances), interpolation="nearest")
    left.set_title("objects, one colour each")
    shown = right.imshow(weights, cmap="magma", interpolation="nearest")
    right.set_title("weight of each pixel")
    fig.colorbar(shown, ax=right, shrink=0.85)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
