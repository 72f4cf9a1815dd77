"""Model builders used by the chapters and exercises.

Each builder returns an uncompiled ``keras.Model`` so that a chapter can show the
architecture first and choose the optimiser and loss where it teaches them.
Output layers have ``dtype="float32"``: under the ``mixed_float16`` policy of the
gpu profile the softmax is then computed in float32, and under float32 nothing
changes.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from course_utils.config import distribute


def lenet5(input_shape=(32, 32, 1), num_classes: int = 10) -> keras.Model:
    """LeNet-5 (LeCun et al., 1998) in its usual Keras form.

    Two 5x5 tanh convolutions (6 then 16 maps), each followed by 2x2 average
    pooling, then dense layers of 120 and 84 tanh units and a softmax output.
    On a 32x32x1 input it has 61,706 parameters. The paper's network differs
    (a sparse connection table between S2 and C3, a trainable coefficient and
    bias per map in S2 and S4, radial-basis-function output units) and has
    about 60,000 trainable parameters.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(6, 5, activation="tanh", name="c1"),
            layers.AveragePooling2D(2, name="s2"),
            layers.Conv2D(16, 5, activation="tanh", name="c3"),
            layers.AveragePooling2D(2, name="s4"),
            layers.Flatten(name="flatten"),
            layers.Dense(120, activation="tanh", name="c5"),
            layers.Dense(84, activation="tanh", name="f6"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="output"),
        ],
        name="lenet5",
    )


def dense_classifier(input_shape=(32, 32, 1), num_classes: int = 10, hidden: int = 84) -> keras.Model:
    """A dense network on raw pixels: the baseline a CNN is compared with.

    With one hidden layer of 84 units on 32x32 inputs it has 86,950 parameters,
    more than LeNet-5, yet it knows nothing of which pixels are neighbours.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(hidden, activation="tanh"),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="dense_classifier",
    )


def fit_classifier(model: keras.Model, x, y, epochs: int, learning_rate: float = 3e-3, batch_size: int = 64,
                   validation_split: float = 0.15, callbacks=(), decay: bool = True, strategy=None):
    """Compile ``model`` for integer labels and fit it quietly; return ``(history, seconds)``.

    Adam with a cosine-decaying learning rate (when ``decay``): large steps first,
    small ones at the end, so the last epoch does not land on a noisy point.
    The last ``validation_split`` of the training data is held out for validation.
    ``strategy``: a ``tf.distribute`` strategy the model was built under (default:
    the model's own, see :func:`course_utils.config.distribute`); ``batch_size``
    is per replica.
    """
    import time

    strategy, batch_size = distribute(model, batch_size, strategy)
    steps = epochs * int(np.ceil(len(x) * (1 - validation_split) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps) if decay else learning_rate
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, validation_split=validation_split, epochs=epochs, batch_size=batch_size, verbose=0,
                        callbacks=list(callbacks))
    return history, time.perf_counter() - start


def feature_extractor(model: keras.Model, layer_name: str) -> keras.Model:
    """A model mapping the inputs of ``model`` to the output of one of its layers.

    Used to look at activation maps and at the latent space a classifier learned.
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        names = ", ".join(layer.name for layer in model.layers)
        raise ValueError(f"Model {model.name!r} has no layer {layer_name!r}; its layers are: {names}") from None
    return keras.Model(model.inputs, layer.output, name=f"{model.name}_to_{layer_name}")


def count_conv_params(kernel_h: int, kernel_w: int, in_channels: int, filters: int, bias: bool = True) -> int:
    """Parameters of a convolution layer: ``(h * w * d) * n_f + n_f`` (weights plus one bias per filter)."""
    return kernel_h * kernel_w * in_channels * filters + (filters if bias else 0)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``."""
    effective = dilation * (kernel - 1) + 1
    if size + 2 * padding < effective:
        raise ValueError(f"Kernel of effective size {effective} does not fit an input of {size} with padding {padding}.")
    return (size + 2 * padding - effective) // stride + 1


def predict_with_tta(model: keras.Model, images, augment, copies: int = 8, batch_size: int = 256):
    """Test-time augmentation: average the predicted probabilities over ``copies`` random variants of each image.

    ``augment`` is a callable returning a randomly transformed batch (for example a
    ``keras.Sequential`` of random layers, called with ``training=True``). The
    untouched image is always one of the variants, so ``copies=1`` is plain prediction.
    """
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    total = model.predict(images, batch_size=batch_size, verbose=0)
    for _ in range(copies - 1):
        total = total + model.predict(augment(images, training=True), batch_size=batch_size, verbose=0)
    return total / copies
