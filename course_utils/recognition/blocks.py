"""What a MobileNetV2 block is made of and what it costs.

:func:`conv_cost` and :func:`separable_conv_cost` count the parameters and
multiply-adds of a standard and a depthwise-separable convolution, and
:func:`training_multiply_adds` those of a training step of a built model, frozen
or not;
:func:`block_layers`, :func:`describe_block` and :func:`plot_block` show an
inverted-residual block of a built Keras MobileNetV2, and :func:`residual_blocks`
names the blocks that have a skip connection. :func:`batch_norm` and
:func:`batch_statistics` write out the normalisation that follows each of a
block's convolutions, to set beside Keras' layer.
"""

from __future__ import annotations

import math
import re

import keras
import numpy as np

BLOCK_COLOURS = {"expand": "#f4c27a", "depthwise": "#8fc1e3", "project": "#9fd39b", "add": "#d9b3e6"}
"""The colour of each step of a block in :func:`plot_block`; the layers of a step (its BN, its ReLU) share it."""

FAINT_KINDS = ("BatchNormalization", "ReLU", "ZeroPadding2D")
"""Layer types :func:`plot_block` draws faintly: they follow a convolution and change no shape."""

BOX_CENTRE = 4.7
"""The x of the column of boxes in :func:`plot_block` (the axes run from 0 to 10)."""


def batch_statistics(maps) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the (biased, divided by n) variance of each channel of ``maps`` (channels last), over every
    image and position of the batch: what a BatchNormalization layer normalises with in training mode."""
    maps = np.asarray(maps, dtype=np.float64)
    axes = tuple(range(maps.ndim - 1))
    return maps.mean(axis=axes), maps.var(axis=axes)


def batch_norm(maps, gamma, beta, mean, variance, epsilon: float = 1e-3) -> np.ndarray:
    """Batch normalisation written out: each channel of ``maps`` (the last axis) minus ``mean``, divided by
    ``sqrt(variance + epsilon)``, then scaled by ``gamma`` and shifted by ``beta``. In training mode the statistics
    are the batch's own (:func:`batch_statistics`); in inference mode, the layer's moving averages."""
    return gamma * (np.asarray(maps, dtype=np.float64) - mean) / np.sqrt(variance + epsilon) + beta


def conv_cost(height: int, width: int, kernel: int, c_in: int, c_out: int, stride: int = 1) -> tuple[int, int]:
    """``(parameters, multiply-adds)`` of a standard ``kernel`` x ``kernel`` convolution, "same" padding, no bias.

    Each of the ``(height/stride) * (width/stride)`` outputs of each of the ``c_out``
    filters takes ``kernel^2 * c_in`` multiply-adds.
    """
    out = math.ceil(height / stride) * math.ceil(width / stride)
    params = kernel * kernel * c_in * c_out
    return params, params * out


def separable_conv_cost(
    height: int, width: int, kernel: int, c_in: int, c_out: int, stride: int = 1
) -> tuple[int, int]:
    """``(parameters, multiply-adds)`` of a depthwise ``kernel`` x ``kernel`` convolution then a 1x1 pointwise one.

    Depthwise: one ``kernel^2`` filter per input channel; pointwise: ``c_in * c_out``
    weights applied at every output position. No biases.
    """
    out = math.ceil(height / stride) * math.ceil(width / stride)
    depthwise = kernel * kernel * c_in
    pointwise = c_in * c_out
    return depthwise + pointwise, (depthwise + pointwise) * out


def layer_multiply_adds(layer) -> int:
    """Multiply-adds of one image through a built ``Conv2D``, ``DepthwiseConv2D`` or ``Dense`` layer; 0 for any other.

    Those layers do nearly all of a CNN's arithmetic: each output number costs one
    multiply-add per kernel weight that reaches it (a bias, BatchNormalization or an
    activation costs one operation per number, too few to count).
    """
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
        return 0
    if getattr(layer, "groups", 1) != 1:
        raise ValueError(f"{layer.name}: grouped convolutions are not counted")
    kernel = tuple(layer.kernel.shape)  # (k, k, c_in, c_out), (k, k, c_in, multiplier) or (c_in, c_out)
    positions = math.prod(layer.output.shape[1:-1])  # output pixels (1 for a Dense layer on vectors)
    return math.prod(kernel) * positions


def _flat_layers(model: keras.Model) -> list:
    """The layers of ``model`` in the order they run, with a nested model (a MobileNetV2 base) opened up."""
    found = []
    for layer in model.layers:
        found += _flat_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return found


def training_multiply_adds(model: keras.Model) -> dict[str, int]:
    """Multiply-adds per image of one training step of ``model``, frozen as it is now.

    * ``forward``: every counted layer (:func:`layer_multiply_adds`);
    * ``input_gradients``: the backward pass hands the gradient down through each
      layer that lies above the lowest trainable one, at the cost of its forward
      pass; below that layer, no gradient is needed and the backward pass stops;
    * ``weight_gradients``: each trainable layer also computes its own weights'
      gradient, at the cost of its forward pass again.

    So a fully trainable network costs about three forward passes per step, and a
    frozen base with a trainable head little more than one.
    """
    costs = [(layer_multiply_adds(layer), bool(layer.trainable_weights)) for layer in _flat_layers(model)]
    lowest = next((i for i, (_, trainable) in enumerate(costs) if trainable), len(costs))
    return {
        "forward": sum(cost for cost, _ in costs),
        "input_gradients": sum(cost for cost, _ in costs[lowest + 1 :]),
        "weight_gradients": sum(cost for cost, trainable in costs if trainable),
    }


def residual_blocks(base: keras.Model) -> list[str]:
    """Names (``"block_2"``, ...) of the inverted-residual blocks of a Keras MobileNetV2 that have a skip connection."""
    return [layer.name[: -len("_add")] for layer in base.layers if re.fullmatch(r"block_\d+_add", layer.name)]


def block_layers(base: keras.Model, block: int) -> list:
    """The layers of inverted-residual block ``block`` of a Keras MobileNetV2 base, in order.

    Keras names them ``block_<n>_expand``, ``block_<n>_depthwise``,
    ``block_<n>_project``, ... and ``block_<n>_add`` for the residual sum (block 0
    is the first, ``expanded_conv_*``, which has no expansion).
    """
    prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
    found = [layer for layer in base.layers if layer.name.startswith(prefix)]
    if not found:
        existing = sorted({int(m.group(1)) for layer in base.layers if (m := re.match(r"block_(\d+)_", layer.name))})
        raise ValueError(f"No block {block} in {base.name!r}; blocks 0..{max(existing) if existing else 0} exist")
    return found


def describe_block(base: keras.Model, block: int) -> list[tuple[str, str, tuple, int]]:
    """``(layer name, layer type, output shape, parameters)`` of each layer of a block."""
    return [
        (layer.name, type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params())
        for layer in block_layers(base, block)
    ]


def plot_block(base: keras.Model, block: int, title: str | None = None):
    """A flow diagram of one inverted-residual block, drawn from the layers of ``base``.

    Each box is one layer (name, type, output shape); the three convolutions are
    coloured (expand, depthwise, project), box widths follow the number of
    channels (narrow, wide, narrow), and a skip arrow joins the block's
    input to the ``add`` layer when the block has one. Returns the figure.
    """
    import matplotlib.pyplot as plt  # imported where a figure is drawn: the figures are its only users

    rows = describe_block(base, block)
    in_shape = tuple(block_layers(base, block)[0].input.shape[1:])
    boxes = [("block input", "", in_shape, 0)] + rows
    n = len(boxes)
    widest = max(shape[-1] for _, _, shape, _ in boxes)
    fig, ax = plt.subplots(figsize=(6.6, 0.7 * n + 0.8))  # narrower than the page: its 9-pt labels stay 9 pt
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, n)
    ax.axis("off")
    for i, box in enumerate(boxes):
        _draw_layer_box(ax, n - 1 - i, box, widest, arrow_in=i > 0)
    if rows[-1][0].endswith("_add"):
        _draw_skip_arrow(ax, n, in_shape[-1], widest)
    ax.set_title(title or f"MobileNetV2 block {block}, from the model's own layers", fontsize=10)
    fig.tight_layout()
    return fig


def _box_colour(name: str) -> str:
    """The colour of the step (:data:`BLOCK_COLOURS`) a layer belongs to, judged by its name; grey for none."""
    return next(
        (
            colour
            for key, colour in BLOCK_COLOURS.items()
            if name.endswith(key) or f"_{key}_" in name or name.endswith(f"{key}_BN") or name.endswith(f"{key}_relu")
        ),
        "#eeeeee",
    )


def _box_half_width(channels: int, widest: int) -> float:
    """Half the width of a layer's box: it grows with the channels, so a block reads narrow-wide-narrow."""
    return 1.6 + 1.5 * channels / widest


def _draw_layer_box(ax, y: float, box: tuple, widest: int, arrow_in: bool) -> None:
    """One layer's box at height ``y``: name, type, output shape and parameters; an arrow from the box above."""
    from matplotlib.patches import FancyBboxPatch  # only the figures use matplotlib (see plot_block)

    name, kind, shape, params = box
    half = _box_half_width(shape[-1], widest)
    ax.add_patch(
        FancyBboxPatch(
            (BOX_CENTRE - half, y - 0.3),
            2 * half,
            0.6,
            boxstyle="round,pad=0.02",
            fc=_box_colour(name),
            ec="grey",
            alpha=0.45 if kind in FAINT_KINDS else 1.0,
        )
    )
    label = f"{name}  ({kind})" if kind else name
    extra = f"  {params:,} params" if params else ""
    ax.text(BOX_CENTRE, y, f"{label}\n{'x'.join(map(str, shape))}{extra}", ha="center", va="center", fontsize=9)
    if arrow_in:
        arrow = dict(arrowstyle="->", color="grey")
        ax.annotate("", xy=(BOX_CENTRE, y + 0.3), xytext=(BOX_CENTRE, y + 0.7), arrowprops=arrow)


def _draw_skip_arrow(ax, n: int, in_channels: int, widest: int) -> None:
    """The skip connection: an arc from the block's input (top box) to its ``add`` layer (bottom box)."""
    from matplotlib.patches import FancyArrowPatch  # only the figures use matplotlib (see plot_block)

    edge = 4.75 + _box_half_width(in_channels, widest)  # just right of the input's box
    ax.add_patch(
        FancyArrowPatch(
            (edge, n - 1),
            (edge, 0),
            connectionstyle="arc3,rad=-0.45",
            arrowstyle="->",
            mutation_scale=12,
            color="purple",
        )
    )
    ax.text(9.3, (n - 1) / 2, "skip\nconnection", color="purple", ha="center", va="center", fontsize=9)
