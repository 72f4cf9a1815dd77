"""Figures: detections on images, anchors per level, precision-recall curves, counts and anchor scores."""

from __future__ import annotations

import math

import numpy as np

from course_utils.detection.anchors import LEVEL_STRIDES, AnchorConfig

_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628", "#f781bf", "#999999")


_LABEL_SIZE = 9  # pt, the labels on the boxes; figures are at most plots.PAGE_WIDTH wide, so they show at this size


def _label_size(label: str, pixels_per_point: float) -> tuple[float, float]:
    """``(width, height)`` in image pixels of a box label on its patch: about 0.65 em a character, and the
    patch's padding."""
    return (0.65 * _LABEL_SIZE * len(label) + 3) * pixels_per_point, (_LABEL_SIZE + 3) * pixels_per_point


def _label_place(box, size, image_shape, taken) -> tuple | None:
    """Where a label of ``size`` ``(width, height)`` (image pixels) goes for ``box``: ``(x, y, va, ha, rectangle)``,
    or None when it has no room.

    Above the box at its left edge is the first choice, then the right edge,
    then the same below the box, then inside its top, then inside its bottom;
    the first place inside the image whose rectangle overlaps no label in
    ``taken`` wins. In a crowded panel none may be free: then the label is left
    out (its box keeps its class colour) rather than drawn over another.
    """
    x0, y0, x1, y1 = box
    width, height = size
    rows, columns = image_shape if image_shape is not None else (float("inf"), float("inf"))
    inside_bottom = y1 - 0.5 - height
    for top, va in ((y0 - 1.0 - height, "bottom"), (y1, "top"), (y0 - 0.5, "top"), (inside_bottom, "top")):
        for left, ha in ((x0 - 0.5, "left"), (x1 - 0.5 - width, "right")):
            rectangle = (left, top, left + width, top + height)
            inside = left >= -0.5 and top >= -0.5 and left + width <= columns - 0.5 and top + height <= rows - 0.5
            free = not any(
                rectangle[0] < r[2] and r[0] < rectangle[2] and rectangle[1] < r[3] and r[1] < rectangle[3]
                for r in taken
            )
            if inside and free:
                x = left if ha == "left" else left + width
                y = top + height if va == "bottom" else top
                return x, y, va, ha, rectangle
    return None


def _box_patch(ax, box, colour, style="-", width=1.5, label=None, pixels_per_point=0.0, image_shape=None, taken=None):
    """Draw ``box`` (xyxy pixels) on ``ax``, with ``label`` on a patch of its colour.

    The label goes where :func:`_label_place` finds room, inside the panel and
    clear of the labels already in ``taken`` (a list it adds this label's
    rectangle to), and is left out where there is none (``pixels_per_point``:
    image pixels per typographic point of the panel; ``image_shape``:
    ``(height, width)``).
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.patches as patches

    x0, y0, x1, y1 = box
    # Pixel edges sit at half-integers in imshow's coordinates.
    ax.add_patch(
        patches.Rectangle(
            (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style, linewidth=width
        )
    )
    if label:
        size = _label_size(label, pixels_per_point)
        taken = [] if taken is None else taken
        place = _label_place(box, size, image_shape, taken)
        if place is None:
            return
        x, y, va, ha, rectangle = place
        taken.append(rectangle)
        ax.text(
            x,
            y,
            label,
            color="white",
            fontsize=_LABEL_SIZE,
            va=va,
            ha=ha,
            clip_on=True,
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1, "alpha": 0.85},
        )


def plot_detections(
    images,
    class_names,
    true_boxes=None,
    true_classes=None,
    predictions=None,
    min_confidence: float = 0.0,
    ncols: int = 4,
    title: str | None = None,
    titles=None,
    label_truth: bool | None = None,
):
    """Images with ground-truth boxes (dashed) and predicted boxes (solid, colour per class).

    Predictions are labelled with their class and score. Ground truth is
    labelled with its class name only: drawn alone (no ``predictions``), its
    boxes take their class colour and carry the name; beside predictions they
    are white and unlabelled, so that the labels on the image are the model's
    (``label_truth`` overrides either default). Labels never cover one another:
    in a crowded panel, one with no free place is left out, its box keeping its
    class colour.

    (``keras.visualization.plot_bounding_box_gallery`` draws with OpenCV, which the
    course does not install; this is the matplotlib equivalent.)
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    from course_utils.plots import TITLE_SIZE

    images = np.asarray(images)
    label_truth = predictions is None if label_truth is None else label_truth
    fig, axes, cell = _image_grid(len(images), ncols, titles is not None, title)
    shape = images.shape[1:3] if images.ndim >= 3 else None
    # Image pixels per point: the panel is about `cell` inches for the image's larger side.
    per_point = max(shape) / (cell * 72) if shape is not None else 0.0
    for i, ax in enumerate(axes.flat[: len(images)]):
        ax.imshow(np.clip(images[i], 0, 1))
        taken = []  # the panel's labels so far, kept apart
        if true_boxes is not None:
            _draw_truth(ax, true_boxes[i], true_classes[i], class_names, label_truth, per_point, shape, taken)
        if predictions is not None:
            _draw_predictions(ax, predictions, i, class_names, min_confidence, per_point, shape, taken)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=TITLE_SIZE)
    if title:
        fig.suptitle(title)
    return fig


def _image_grid(n: int, ncols: int, with_titles: bool, title):
    """A page-wide figure of ``n`` image panels, ``ncols`` a row, axes off: the figure, its axes and the panel side."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH, TITLE_SIZE

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    cell = min(2.6, PAGE_WIDTH / ncols)
    title_room = TITLE_SIZE * 1.3 / 72 if with_titles else 0.0
    fig, axes = plt.subplots(
        nrows,
        ncols,
        squeeze=False,
        layout="constrained",
        figsize=(cell * ncols, nrows * (cell + title_room + 0.05) + (0.35 if title else 0.05)),
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes, cell


def _draw_truth(ax, boxes, classes, class_names, labelled: bool, per_point: float, shape, taken) -> None:
    """One image's true boxes, dashed: in their class colour with the name when ``labelled``, else white."""
    for box, c in zip(boxes, classes):
        if c >= 0 and labelled:
            _box_patch(
                ax,
                box,
                _COLOURS[int(c) % len(_COLOURS)],
                style="--",
                label=str(class_names[int(c)]),
                pixels_per_point=per_point,
                image_shape=shape,
                taken=taken,
            )
        elif c >= 0:
            _box_patch(ax, box, "white", style="--", width=1.0)


def _draw_predictions(ax, predictions: dict, i: int, class_names, min_confidence: float, per_point, shape, taken):
    """Image ``i``'s detections with a confidence of at least ``min_confidence``, labelled with class and score."""
    k = int(predictions["num_detections"][i])
    for box, c, s in zip(predictions["boxes"][i][:k], predictions["classes"][i][:k], predictions["confidence"][i][:k]):
        if s >= min_confidence and c >= 0:
            colour = _COLOURS[int(c) % len(_COLOURS)]
            label = f"{class_names[int(c)]} {s:.2f}"
            _box_patch(ax, box, colour, label=label, pixels_per_point=per_point, image_shape=shape, taken=taken)


def plot_anchors(image, config: AnchorConfig, gt_boxes=None, centre=None, title: str | None = None):
    """One panel per pyramid level: the centres of the level's grid cells and the anchors of one cell.

    ``centre`` ``(x, y)`` picks the cell whose anchors are drawn (default: the
    image centre). Anchors are drawn before clipping to the image.
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    image = np.asarray(image)
    height, width = image.shape[:2]
    centre = centre or (width / 2, height / 2)
    cell = min(3.2, (PAGE_WIDTH - 0.1) / len(config.levels))  # the row of levels fits the page: titles stay legible
    fig, axes = plt.subplots(
        1,
        len(config.levels),
        figsize=(cell * len(config.levels), cell + (0.6 if title else 0.35)),
        squeeze=False,
        layout="constrained",
    )
    for ax, level, size in zip(axes.flat, config.levels, config.sizes):
        stride = LEVEL_STRIDES[level]
        ax.imshow(np.clip(image, 0, 1))
        gx, gy = np.meshgrid(
            (np.arange(math.ceil(width / stride)) + 0.5) * stride,
            (np.arange(math.ceil(height / stride)) + 0.5) * stride,
        )
        ax.scatter(gx.ravel() - 0.5, gy.ravel() - 0.5, s=4, c="yellow")
        cx = (math.floor(centre[0] / stride) + 0.5) * stride
        cy = (math.floor(centre[1] / stride) + 0.5) * stride
        k = 0
        for scale in config.scales:
            for ratio in config.aspect_ratios:  # KerasCV: ratio = height / width
                h, w = size * scale * math.sqrt(ratio), size * scale / math.sqrt(ratio)
                _box_patch(ax, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), _COLOURS[k % len(_COLOURS)])
                k += 1
        if gt_boxes is not None:
            for box in gt_boxes:
                _box_patch(ax, box, "white", style="--", width=1.0)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(f"{level}: stride {stride}, {gx.size} cells", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)  # at the default 12 pt a one-line title can be wider than the page
    return fig


def plot_precision_recall(curves, class_names, aps, title: str | None = None):
    """Precision-recall curves, one per class, with the AP in the legend."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for c, (recall, precision) in enumerate(curves):
        if len(recall):
            ax.plot(recall, precision, label=f"{class_names[c]} (AP {aps[c]:.2f})", color=_COLOURS[c % 8])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no detections", ha="center")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_counts(true_counts, predicted_counts, title: str | None = None):
    """Predicted against true number of objects per image, as a count matrix, with the mean absolute error.

    Each (true, predicted) pair that occurs is one disc whose area grows with the
    number of images that have it, and that number is written on it, so that
    images with the same counts do not hide one another. Both axes have integer
    ticks and span the counts that occur (the same range, so that the diagonal
    of exact counts runs at 45 degrees).
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    true_counts = np.asarray(true_counts, dtype=int).ravel()
    predicted_counts = np.asarray(predicted_counts, dtype=int).ravel()
    if true_counts.shape != predicted_counts.shape:
        raise ValueError(f"true and predicted counts differ in length: {len(true_counts)} and {len(predicted_counts)}")
    fig, ax = plt.subplots(figsize=(4.4, 4.2), layout="constrained")
    # x spans the true counts; y the predicted ones and the true ones, so that the diagonal of exact counts shows.
    x_range = _count_range(true_counts)
    y_range = _count_range(np.concatenate([true_counts, predicted_counts]))
    x_lo, x_hi = x_range
    ax.plot((x_lo - 0.5, x_hi + 0.5), (x_lo - 0.5, x_hi + 0.5), color="grey", lw=1, ls="--", zorder=1)
    # Points per count on the axis with the least room per count.
    unit = min(3.3 / (x_range[1] - x_range[0] + 1), 3.0 / (y_range[1] - y_range[0] + 1)) * 72
    if len(true_counts):
        exact = _draw_count_discs(ax, true_counts, predicted_counts, unit)
        _count_legend(ax, exact)
    mae = np.mean(np.abs(true_counts - predicted_counts)) if len(true_counts) else float("nan")
    key = "number on a disc: images with those counts" if unit >= 14 else "disc area: number of images"
    _frame_counts(ax, x_range, y_range, title or f"object counts (mean absolute error {mae:.2f})\n{key}")
    return fig


def _count_range(values) -> tuple[int, int]:
    """The smallest and largest count in ``values``; ``(0, 1)`` for none."""
    return (int(values.min()), int(values.max())) if len(values) else (0, 1)


def _draw_count_discs(ax, true_counts, predicted_counts, unit: float) -> np.ndarray:
    """One disc per (true, predicted) pair, its area the number of images (written on it when there is room).

    Returns whether each disc is an exact count.
    """
    pairs, images = np.unique(np.stack([true_counts, predicted_counts], axis=1), axis=0, return_counts=True)
    diameter = min(unit * 0.92, 40) * np.sqrt(images / images.max())
    exact = pairs[:, 0] == pairs[:, 1]
    ax.scatter(
        pairs[:, 0],
        pairs[:, 1],
        s=np.maximum(diameter, 4) ** 2,
        zorder=2,
        alpha=0.85,
        linewidths=0,
        color=np.where(exact, "#0072B2", "#E69F00"),
    )  # Okabe-Ito blue: exact, orange: off
    if unit >= 14:  # room to write the number of images on its disc
        for (t, p), k, d in zip(pairs, images, diameter):
            inside = d >= 16
            ax.annotate(
                str(k),
                (t, p),
                xytext=(0, 0) if inside else (0, d / 2 + 1),
                textcoords="offset points",
                ha="center",
                va="center" if inside else "bottom",
                fontsize=9,
                zorder=3,
                color="white" if inside else "black",
            )
    return exact


def _count_legend(ax, exact: np.ndarray) -> None:
    """The legend of the disc colours that occur: exact counts, and counts too low or too high."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    from matplotlib.lines import Line2D

    kinds = [
        (c, text)
        for c, text, shown in (
            ("#0072B2", "exact count", exact.any()),
            ("#E69F00", "too few or too many", (~exact).any()),
        )
        if shown
    ]
    ax.legend(
        handles=[Line2D([], [], ls="", marker="o", color=c, label=text) for c, text in kinds],
        loc="best",
        fontsize=9,
        framealpha=0.9,
    )


def _frame_counts(ax, x_range, y_range, title: str) -> None:
    """Axis limits with integer ticks around the counts, the labels, the title and the grid."""
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    from matplotlib.ticker import MaxNLocator

    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    ax.set_xlim(x_lo - 0.5, x_hi + 0.5)
    ax.set_ylim(y_lo - 0.5, y_hi + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=min(x_hi - x_lo + 1, 10), integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=min(y_hi - y_lo + 1, 10), integer=True))
    ax.set_xlabel("true number of objects")
    ax.set_ylabel("predicted number of objects")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, zorder=0)
    ax.set_axisbelow(True)


def plot_score_distributions(scores: dict, threshold: float | None = 0.05, title: str | None = None):
    """Histograms of anchor scores, background anchors and object anchors side by side, one line per model.

    ``scores`` maps a model's name to :func:`anchor_scores`. Scores are drawn on a
    log axis (background scores span several decades, down to 1e-8, where lower
    scores are counted in the first bin); each histogram shows the share of its
    anchors per bin. ``threshold`` (the decoder's score threshold)
    is marked: background anchors to its right become candidate false detections.
    """
    # Imported on use: matplotlib (also behind course_utils.plots) is slow to import.
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    if not scores:
        raise ValueError("scores is empty: pass {model name: det.anchor_scores(...)} for at least one model")
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.9), sharey=False, layout="constrained")
    low = min(max(float(np.min(v[k], initial=1.0)), 1e-8) for v in scores.values() for k in ("object", "background"))
    bins = np.logspace(np.floor(np.log10(low)), 0, 41)
    for ax, key, name in zip(
        axes,
        ("background", "object"),
        ("background anchors: highest class score", "object anchors: score of the true class"),
    ):
        for k, (model_name, groups) in enumerate(scores.items()):
            values = np.clip(np.asarray(groups[key]), bins[0], 1.0)
            share = np.histogram(values, bins=bins)[0] / max(len(values), 1)
            ax.stairs(
                share,
                bins,
                color=_COLOURS[[1, 0, 2, 3][k % 4]],
                lw=1.6,
                label=f"{model_name} ({len(values):,} anchors)",
            )
        if threshold is not None:
            ax.axvline(threshold, color="grey", ls="--", lw=1)
            ax.text(threshold, ax.get_ylim()[1] * 0.97, f" {threshold:g}", color="grey", fontsize=9, va="top")
        ax.set_xscale("log")
        ax.set_xlabel("score (sigmoid probability)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, loc="upper left")
    axes[0].set_ylabel("share of anchors")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_error_kinds(counts: dict, title: str | None = None):
    """The detections of each kind and the objects missed (``counts``, from :func:`detection_errors`) as
    horizontal bars, the right detections first and in green, each bar labelled with its count."""
    import matplotlib.pyplot as plt

    names = list(counts)
    fig, ax = plt.subplots(figsize=(5.6, 0.35 * len(names) + 0.9), layout="constrained")
    colours = ["tab:green" if name == "right" else "tab:red" for name in names]
    bars = ax.barh(range(len(names)), [counts[n] for n in names], color=colours)
    ax.bar_label(bars, padding=3, fontsize=9)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("detections (missed: objects)")
    ax.margins(x=0.12)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
