"""The U-Net of week 4 (encoder, bottleneck, decoder, skip connections), and transposed convolutions by hand."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from course_utils.data import check_integer

SKIP_MODES = ("concat", "add", "none")


def conv_block(
    x,
    filters: int,
    batch_norm: bool = True,
    dropout: float = 0.0,
    residual: bool = False,
    name: str = "block",
    padding: str = "same",
):
    """Two 3x3 convolutions (each followed by batch norm when asked, then ReLU), then dropout.

    ``padding="valid"``, as in the original U-Net, takes 2 pixels off each side per convolution.

    Batch norm uses a momentum of 0.9 (Keras: 0.99) so that its running averages,
    used at prediction time, settle within the few hundred steps of a short training.
    With ``residual`` the block's input, projected by a 1x1 convolution to
    ``filters`` channels, is added before the second ReLU (a ResNet-style block).
    """
    shortcut = x
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding=padding, use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        if i == 2 and residual:
            shortcut = layers.Conv2D(filters, 1, padding="same", name=f"{name}_shortcut")(shortcut)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def unet(
    input_shape=(64, 64, 3),
    num_classes: int = 1,
    depth: int = 3,
    base_filters: int = 16,
    batch_norm: bool = True,
    dropout: float = 0.0,
    residual: bool = False,
    skip: str = "concat",
    name: str | None = None,
) -> keras.Model:
    """A U-Net for images of ``input_shape`` = (height, width, channels).

    ``depth`` levels of encoder (a :func:`conv_block` then 2x2 max pooling; level
    ``i`` has ``base_filters * 2**i`` filters), a bottleneck block with
    ``base_filters * 2**depth`` filters, then ``depth`` decoder levels, each a
    stride-2 transposed convolution (doubling the side, halving the filters), the
    skip connection from the encoder level of the same size, and a block.
    ``skip``: ``"concat"`` (the U-Net of the paper) stacks the encoder's maps
    next to the upsampled ones, ``"add"`` adds them (same number of channels),
    ``"none"`` drops them. ``dropout`` applies after the deepest encoder block and
    the bottleneck. ``num_classes=1`` gives a sigmoid output with one channel
    (binary masks), ``num_classes >= 2`` a softmax over that many channels.

    Height and width may be ``None`` (any size at call time) but, when given,
    must be divisible by ``2**depth``: each pooling halves them, and each
    transposed convolution must restore exactly the size of its skip connection.

    Layers are named ``enc{i}_*``, ``pool{i}``, ``bottleneck_*``, ``up{i}``,
    ``skip{i}``, ``dec{i}_*`` and ``head``.
    """
    _check_unet_arguments(input_shape, num_classes, depth, skip)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, skips = _encoder(inputs, depth, base_filters, batch_norm, dropout, residual)
    x = conv_block(x, base_filters * 2**depth, batch_norm, dropout, residual, name="bottleneck")
    x = _decoder(x, skips, skip, base_filters, batch_norm, residual)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    # float32 head: under the gpu profile's mixed_float16 policy the probabilities stay float32.
    outputs = layers.Conv2D(num_classes, 1, activation=activation, dtype="float32", name="head")(x)
    if name is None:
        name = ("res" if residual else "") + "unet" + ("" if skip == "concat" else f"_skip_{skip}")
    return keras.Model(inputs, outputs, name=name)


def _check_unet_arguments(input_shape, num_classes, depth, skip) -> None:
    """Refuse a U-Net that cannot be built, naming the argument: sizes must survive ``depth`` halvings."""
    check_integer(depth, "depth")
    check_integer(num_classes, "num_classes (1 for binary masks, else the number of classes)")
    if skip not in SKIP_MODES:
        raise ValueError(f"skip must be one of {SKIP_MODES}, got {skip!r}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    factor = 2**depth
    for axis, size in zip(("height", "width"), input_shape[:2]):
        if size is not None and size % factor:
            lower, upper = size // factor * factor, (size // factor + 1) * factor
            raise ValueError(
                f"input {axis} {size} is not divisible by 2**depth = {factor} (depth={depth}): each of the "
                f"{depth} poolings halves it. Resize or crop the images to a multiple of {factor} "
                f"(e.g. {lower or factor} or {upper}), or use a smaller depth."
            )


def _encoder(x, depth: int, base_filters: int, batch_norm: bool, dropout: float, residual: bool):
    """``depth`` levels of a block then 2x2 max pooling; returns the pooled maps and each level's block output."""
    skips = []
    for level in range(depth):
        x = conv_block(
            x, base_filters * 2**level, batch_norm, dropout if level == depth - 1 else 0.0, residual, name=f"enc{level}"
        )
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    return x, skips


def _decoder(x, skips: list, skip: str, base_filters: int, batch_norm: bool, residual: bool):
    """From the deepest level up: a stride-2 transposed convolution, the skip connection, a block."""
    for level in reversed(range(len(skips))):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        if skip == "concat":
            x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        elif skip == "add":
            x = layers.Add(name=f"skip{level}")([x, skips[level]])
        x = conv_block(x, filters, batch_norm, 0.0, residual, name=f"dec{level}")
    return x


def valid_unet_sizes(input_size: int, depth: int = 4) -> list[tuple[str, int]]:
    """(stage, side length) through the original U-Net (Ronneberger et al., 2015) for a square input.

    Its 3x3 convolutions have no padding, so each block of two takes 4 pixels off the side; each 2x2 pooling
    halves it and each 2x2 up-convolution doubles it; before the concatenation the encoder's map is cropped to
    the decoder's size ("copy and crop"). Stages: ``enc{i}`` (after the block), ``bottleneck``, ``up{i}`` (after
    the up-convolution, also the size the encoder map is cropped to) and ``dec{i}`` (after the block); the last
    is the output. Raises ``ValueError`` when a pooling meets an odd side (a row would be lost, and the output
    tiles would no longer fit together) or a map vanishes.
    """
    check_integer(input_size, "input_size")
    check_integer(depth, "depth")
    sizes, side, encoder = [], input_size, []
    for level in range(depth):
        side -= 4
        if side <= 0 or side % 2:
            problem = "vanishes" if side <= 0 else f"is {side} pixels, odd, at a 2x2 pooling"
            raise ValueError(f"input size {input_size}: the map of encoder level {level} {problem}")
        sizes.append((f"enc{level}", side))
        encoder.append(side)
        side //= 2
    side -= 4
    if side <= 0:
        raise ValueError(f"input size {input_size}: the bottleneck's map vanishes")
    sizes.append(("bottleneck", side))
    for level in reversed(range(depth)):
        side *= 2
        sizes.append((f"up{level}", side))
        side -= 4
        if side <= 0:
            raise ValueError(f"input size {input_size}: the map of decoder level {level} vanishes")
        sizes.append((f"dec{level}", side))
    return sizes


def valid_unet_input_sizes(upto: int, depth: int = 4) -> list[int]:
    """The square input sizes up to ``upto`` for which :func:`valid_unet_sizes` works (every pooling meets an even
    side): the tiles the original U-Net can take."""
    fitting = []
    for size in range(1, upto + 1):
        try:
            valid_unet_sizes(size, depth)
        except ValueError:
            continue
        fitting.append(size)
    return fitting


def valid_unet(input_size: int = 572, depth: int = 4, base_filters: int = 2, num_classes: int = 2) -> keras.Model:
    """The layout of the original U-Net in Keras, to read its sizes (:func:`level_shapes`): blocks of two unpadded
    3x3 convolutions, 2x2 max pooling, 2x2 up-convolutions, each skip connection cropped (``Cropping2D``) to
    the decoder's size and concatenated, a 1x1 head. No batch normalisation, as in the paper; ``base_filters``
    (64 in the paper) does not change a size."""
    valid_unet_sizes(input_size, depth)  # refuses an input whose maps would not fit
    inputs = keras.Input((input_size, input_size, 1), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, batch_norm=False, name=f"enc{level}", padding="valid")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, base_filters * 2**depth, batch_norm=False, name="bottleneck", padding="valid")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, name=f"up{level}")(x)
        crop = (skips[level].shape[1] - x.shape[1]) // 2
        cropped = layers.Cropping2D(crop, name=f"crop{level}")(skips[level])
        x = layers.Concatenate(name=f"skip{level}")([x, cropped])
        x = conv_block(x, base_filters * 2**level, batch_norm=False, name=f"dec{level}", padding="valid")
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="valid_unet")


def level_shapes(model: keras.Model) -> list[tuple[str, tuple]]:
    """(layer name, output shape without the batch axis) of each encoder, bottleneck and decoder stage."""
    shapes = []
    for layer in model.layers:
        stage = layer.name.split("_")[0]
        last_of_block = layer.name.endswith(("_relu2", "_dropout"))
        if layer.name.startswith(("pool", "up")) or (last_of_block and stage[:3] in ("enc", "bot", "dec")):
            if shapes and shapes[-1][0].split("_")[0] == stage and layer.name.endswith("_dropout"):
                shapes.pop()  # report the block once, after its dropout
            shapes.append((layer.name, tuple(layer.output.shape[1:])))
    return shapes


def transposed_conv_output_size(size: int, kernel: int, stride: int, padding: str = "valid") -> int:
    """Output length of a transposed convolution along one axis (Keras conventions, no output padding).

    ``"valid"``: ``(n - 1) * s + k``, every input spreads a full kernel;
    ``"same"``: ``n * s``, the inverse of a strided "same" convolution.
    """
    if padding == "valid":
        return (size - 1) * stride + max(kernel, stride)
    if padding == "same":
        return size * stride
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


def transposed_conv_by_hand(x, kernel, stride: int):
    """A 'valid' transposed convolution of one single-channel 2-D array, computed as the chapter explains.

    Insert ``stride - 1`` zeros between neighbouring inputs, pad ``k - 1`` zeros on
    every side, then slide the kernel flipped in both directions over the result
    (a plain cross-correlation). Output side: ``(n - 1) * stride + k``.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw = kernel.shape
    spread = np.zeros(((x.shape[0] - 1) * stride + 1, (x.shape[1] - 1) * stride + 1))
    spread[::stride, ::stride] = x
    padded = np.pad(spread, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    flipped = kernel[::-1, ::-1]
    out = np.zeros((padded.shape[0] - kh + 1, padded.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(padded[i : i + kh, j : j + kw] * flipped)
    return out
