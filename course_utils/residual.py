"""Plain and residual deep CNNs, and the per-layer gradient norms that tell them apart.

Week 1 trains two networks that differ in one thing only: in the residual one,
every block of two convolutions adds its input to its output (an *identity skip
connection*, He et al., 2016), so that ``x -> x + F(x)``; in the plain one the
block is just ``x -> F(x)``. The layers, their sizes and their initialisation
are the same. :func:`gradient_norms` measures, on one batch, how large the
gradient of the loss is at each convolution: in a deep plain network it can
shrink layer by layer on its way back to the input (vanishing gradients), while
the identity paths of the residual network carry it back undiminished.

Neither network has normalisation layers: BatchNorm also keeps the gradients of
a plain network in range, and would hide the effect the comparison is about.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils.data import check_integer


def deep_cnn(
    input_shape=(32, 32, 3),
    num_classes: int = 4,
    stages: int = 3,
    blocks_per_stage: int = 3,
    width: int = 16,
    residual: bool = False,
    kernel_initializer="glorot_uniform",
    name: str | None = None,
) -> keras.Model:
    """A deep CNN of ``1 + 2 * stages * blocks_per_stage`` 3x3 convolutions, with or without identity skips.

    A first convolution (``conv01``) maps the image to ``width`` channels; then
    ``stages`` stages of ``blocks_per_stage`` blocks follow, with 2x2 max pooling
    between stages. A block is ``ReLU -> conv -> ReLU -> conv`` (the
    "pre-activation" order of He et al.'s identity-mapping ResNets), and with
    ``residual=True`` its input is added to its output. The width never changes,
    so every skip is a plain identity, with no projection. A final ReLU, global
    average pooling and a softmax layer give the class probabilities.

    The default ``kernel_initializer`` is Keras' own default (Glorot uniform),
    so the two networks start from exactly the weights a student would get;
    ``"he_normal"`` is the initialisation designed for ReLU networks. The
    convolutions are named ``conv01``, ``conv02``, ... from input to output.
    """
    for value, label in [
        (stages, "stages"),
        (blocks_per_stage, "blocks_per_stage"),
        (width, "width"),
        (num_classes, "num_classes"),
    ]:
        check_integer(value, label)
    pooled = input_shape[0] // 2 ** (stages - 1)
    if pooled < 1:
        raise ValueError(
            f"{stages} stages halve a {input_shape[0]}-pixel input {stages - 1} times, to nothing: "
            f"use fewer stages or a larger input"
        )

    def conv(index):
        return layers.Conv2D(width, 3, padding="same", kernel_initializer=kernel_initializer, name=f"conv{index:02d}")

    inputs = keras.Input(shape=input_shape)
    x = conv(1)(inputs)
    index = 2
    for stage in range(stages):
        if stage:
            x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for _ in range(blocks_per_stage):
            h = conv(index)(layers.ReLU()(x))
            h = conv(index + 1)(layers.ReLU()(h))
            x = layers.Add(name=f"skip{index:02d}_{index + 1:02d}")([x, h]) if residual else h
            index += 2
    x = layers.GlobalAveragePooling2D(name="pool")(layers.ReLU()(x))
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")(x)
    default = f"{'residual' if residual else 'plain'}_cnn_{index - 1}"
    return keras.Model(inputs, outputs, name=name or default)


def conv_layers(model: keras.Model) -> list:
    """The ``Conv2D`` layers of ``model`` in the order the model calls them (input to output)."""
    found = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    if not found:
        raise ValueError(f"Model {model.name!r} has no Conv2D layer to measure gradients at")
    return found


def gradient_norms(model: keras.Model, x, y, wrt: str = "activations") -> dict:
    """The L2 norm of the loss gradient at each convolution of ``model``, on the batch ``(x, y)``.

    ``wrt="activations"``: the gradient with respect to each convolution's
    output, i.e. how much of the error signal reaches that layer on its way back
    from the loss. ``wrt="kernels"``: the gradient with respect to each
    convolution's kernel, what the optimiser receives to update it. The loss is
    the mean sparse categorical cross-entropy of the batch (``y`` are integer
    labels). Returns ``{layer name: norm}`` from input to output.
    """
    if wrt not in ("activations", "kernels"):
        raise ValueError(f"wrt must be 'activations' or 'kernels', got {wrt!r}")
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels")
    if len(x) == 0:
        raise ValueError("gradient_norms needs a batch of at least one image")
    convs = conv_layers(model)
    probe = keras.Model(model.input, [layer.output for layer in convs] + [model.output])
    with tf.GradientTape() as tape:
        *activations, probabilities = probe(x, training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
    targets = activations if wrt == "activations" else [layer.kernel for layer in convs]
    gradients = tape.gradient(loss, targets)
    return {layer.name: float(tf.norm(g)) for layer, g in zip(convs, gradients)}


def first_to_last(norms: dict) -> float:
    """How much of the last layer's gradient norm reaches the first convolution: ``norm[first] / norm[last]``.

    0 when no gradient reaches the first layer, also when none reaches the last one either (a network whose
    units have all died gives zeros everywhere).
    """
    values = list(norms.values())
    if len(values) < 2:
        raise ValueError("need the norms of at least two layers")
    first, last = float(values[0]), float(values[-1])
    if first == 0.0:
        return 0.0
    return first / last if last != 0.0 else float("inf")
