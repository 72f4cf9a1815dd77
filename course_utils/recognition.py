"""Image recognition with MobileNetV2 (week 2): model builder, fine-tuning, schedule, class weights, data.

* :func:`mobilenetv2_classifier` builds a classifier on a MobileNetV2 base, from
  scratch (``weights=None``) or from ImageNet weights, with a frozen or trainable
  base and a small head. When the ImageNet weights cannot be fetched (no
  network), it says so in one line and continues from scratch; the choice it made
  is printed and stored on the model (:func:`weights_used`).
* :func:`fine_tune` unfreezes the top layers of the base, keeps every
  BatchNormalization layer frozen (in inference mode) and recompiles with a
  lower learning rate.
* :class:`WarmupExponentialDecay` is the learning-rate schedule: a linear warm-up
  followed by exponential decay, as a serialisable Keras schedule.
* :func:`class_weights` turns label counts into the weights ``model.fit`` takes.
* :func:`load_classification` is the one entry point for classification data:
  the synthetic scenes (balanced or deliberately imbalanced), a folder of images
  per class, or a named TensorFlow Datasets set (for Colab users).
* :func:`conv_cost` and :func:`separable_conv_cost` count the parameters and
  multiply-adds of a standard and a depthwise-separable convolution;
  :func:`block_layers` and :func:`plot_block` show an inverted-residual block of
  a built MobileNetV2.

TensorFlow Datasets is imported only by the ``"tfds:..."`` source: it takes
seconds to import, and nothing else needs it.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from course_utils.config import distribute
from course_utils.data import check_integer, tfds_name
from course_utils.models import fit_quietly
from course_utils.scenes import EXTRA_SHAPES

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
"""The width multipliers for which Keras publishes MobileNetV2 ImageNet weights."""

IMAGENET_SIZES = (96, 128, 160, 192, 224)
"""The square input sizes for which Keras publishes MobileNetV2 ImageNet weights (alpha up to 1.0; the wider
:data:`WIDE_ALPHAS` at 224 only).

Other sizes (from :data:`MIN_SIZE` up) are not refused: Keras then loads the 224x224 weights.
"""
WIDE_ALPHAS = (1.3, 1.4)
"""Widths whose ImageNet weights exist at 224x224 only (TF-slim's checkpoints, which Keras republishes): at
another published size Keras would look for a file that does not exist, so the builder refuses it."""

MIN_SIZE = 32  # Keras' MobileNetV2 refuses smaller inputs

BASE_NAME = "mobilenetv2_base"
"""Name of the MobileNetV2 base inside the models built here (``model.get_layer(BASE_NAME)``)."""

SOURCE_CLASSES = EXTRA_SHAPES
"""The classes of the source task (pentagon, hexagon, cross, rectangle): none of them is a target class."""

SOURCE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "mobilenetv2_0.35_32_source_shapes.weights.h5"
"""The MobileNetV2 base pretrained on the source task, shipped as package data (see :func:`pretrain_source`)."""

SOURCE_SHA256 = "8f59bdf866789e555828b353922e2a661077bea943f0373bbb98f56aa2831a7d"
"""SHA-256 of the shipped :data:`SOURCE_WEIGHTS` file; :func:`check_source_weights` refuses any other file."""

SOURCE_RECIPE = dict(
    alpha=0.35, input_size=32, n_train=12000, n_test=2000, epochs=10, learning_rate=4e-3, final_fraction=0.2, seed=2026
)
"""How the shipped source-task base was trained: ``python -m course_utils.recognition pretrain-source``."""

PRETRAIN_COMMAND = "python -m course_utils.recognition pretrain-source"


# ------------------------------------------------------------------------------------ builder


def check_alpha(alpha, weights=None) -> float:
    """Return the width multiplier ``alpha`` as a float, or raise a clear error.

    From scratch (``weights=None``) any positive number is a width, as in Keras.
    With ``weights="imagenet"`` it must be one of :data:`ALPHAS`, the widths
    Keras publishes weights for (Keras refuses the others); a value within
    rounding of one of them is returned as that value.
    """
    try:
        value = None if isinstance(alpha, bool) else float(alpha)
    except (TypeError, ValueError):
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"alpha, MobileNetV2's width multiplier, must be a positive number; got {alpha!r}")
    if weights == "imagenet":
        published = [a for a in ALPHAS if math.isclose(value, a)]
        if not published:
            raise ValueError(
                f"ImageNet weights for MobileNetV2 are published only for alpha "
                f"{', '.join(map(str, ALPHAS))}; got {alpha!r} (any positive alpha works with weights=None)"
            )
        value = published[0]
    return value


def check_input_size(input_size, weights=None) -> tuple[int, int]:
    """Return ``(height, width)``; MobileNetV2 needs at least 32x32 pixels, with or without ImageNet weights.

    Keras publishes ImageNet weights for square inputs of :data:`IMAGENET_SIZES`
    pixels; for any other size of at least 32x32 (non-square too) it loads the
    weights of the 224x224 model, with a warning. Without the classification
    top every layer is convolutional, so those weights fit any input size.
    The rule is therefore the same with and without ``weights="imagenet"``.
    """
    from course_utils.data import check_image_size

    height, width = check_image_size(input_size, "input_size")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"MobileNetV2 needs inputs of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {height}x{width}")
    return height, width


DOWNLOAD_TIMEOUT = 20
"""Seconds to wait for the weight server before giving up (a firewall that drops packets would otherwise hang)."""


OFFLINE_MESSAGE = "ImageNet weights are not reachable from this machine: training from scratch."
"""What :func:`mobilenetv2_classifier` prints when the ImageNet weights cannot be fetched."""


def _imagenet_base(shape, alpha, pooling):
    """The MobileNetV2 base with ImageNet weights, or ``None`` and the reason if they cannot be fetched.

    Keras' own "Downloading data from ..." line is kept out of the notebook: the
    caller prints one line saying what happened. Keras downloads with
    ``urlretrieve``, which has no timeout of its own, hence the socket default.
    """
    import contextlib
    import io
    import socket

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            base = keras.applications.MobileNetV2(
                input_shape=shape, alpha=alpha, include_top=False, weights="imagenet", pooling=pooling
            )
        return base, None
    except Exception as error:  # no network, a proxy, a timeout, a truncated download: all land here
        reason = str(error).split(" on http")[0].strip() or type(error).__name__
        return None, reason[:80]
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _validate_weights_and_alpha(weights, alpha) -> float:
    """``alpha`` as a float after checking ``weights``: the width must be one the chosen weights exist for."""
    if weights not in (None, "imagenet", "source"):
        raise ValueError(f"weights must be None, 'imagenet' or 'source', got {weights!r}")
    alpha = check_alpha(alpha, weights)
    if weights == "source" and not math.isclose(alpha, SOURCE_RECIPE["alpha"]):
        raise ValueError(
            f"the source-task weights shipped with course_utils are those of alpha "
            f"{SOURCE_RECIPE['alpha']:g}; got alpha {alpha!r}"
        )
    return alpha


def _validate_head_options(num_classes, pooling, dropout, zero_init_residual, weights) -> int:
    """Refuse a bad ``pooling``, ``num_classes`` or ``dropout``, and ``zero_init_residual`` over pretrained weights.

    Returns ``num_classes`` as a plain int: Keras' ``Dense`` refuses a NumPy integer.
    """
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    num_classes = check_integer(num_classes, "num_classes", minimum=2)
    if zero_init_residual and weights is not None:
        raise ValueError("zero_init_residual=True would overwrite pretrained weights: use it with weights=None")
    if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return num_classes


def _hidden_layer_sizes(hidden_units) -> list[int]:
    """``hidden_units`` (one positive int, or a sequence of them) as a list: one entry per hidden dense layer."""
    hidden = (hidden_units,) if isinstance(hidden_units, numbers.Integral) else hidden_units
    try:
        return [check_integer(units, "hidden_units") for units in hidden]
    except (TypeError, ValueError):  # not iterable, or not positive integers
        raise ValueError(
            f"hidden_units must be a positive int (one layer) or a sequence of them, "
            f"e.g. (256, 64); got {hidden_units!r}"
        ) from None


def _base_network(shape, alpha, weights, pooling, verbose):
    """The MobileNetV2 base named :data:`BASE_NAME` and the weights it got: ImageNet's if fetched, else random.

    Returns ``(base, used)`` with ``used`` one of ``"imagenet"``, ``"source"``,
    ``"none"``. Without network the ImageNet request falls back to random
    weights, with one printed line (if ``verbose``); the reason is only logged.
    """
    base, failure = (None, None)
    if weights == "imagenet":
        base, failure = _imagenet_base(shape, alpha, pooling)
        if base is None and verbose:
            # One plain sentence on the page; the raw error (URL, errno) is build-machine noise.
            print(OFFLINE_MESSAGE)
        if base is None:
            import logging

            logging.getLogger(__name__).debug("ImageNet weights not fetched: %s", failure)
    used = "imagenet" if base is not None else "none"
    if base is None:
        base = keras.applications.MobileNetV2(
            input_shape=shape, alpha=alpha, include_top=False, weights=None, pooling=pooling
        )
    if weights == "source":
        base.load_weights(check_source_weights())  # raises a clear error if the file is missing or damaged
        used = "source"
    base.name = BASE_NAME
    return base, used


def _set_up_base(base, used, bn_momentum, zero_init_residual, trainable_base) -> None:
    """Set the base's BatchNormalization momentum, zero-init its residual blocks if asked, and freeze it or not.

    The default momentum is 0.9 from scratch (0.999 would need thousands of steps to
    forget the initial statistics) and Keras' 0.999 for pretrained weights.
    """
    momentum = bn_momentum if bn_momentum is not None else (0.9 if used == "none" else 0.999)
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = float(momentum)
    if zero_init_residual:
        for block in residual_blocks(base):
            gamma = base.get_layer(f"{block}_project_BN").gamma
            gamma.assign(np.zeros(gamma.shape, dtype=gamma.dtype))
    base.trainable = bool(trainable_base)


def _preprocess(x, augment):
    """``augment`` (if any; active in training only), then rescaling from ``[0, 1]`` to ``[-1, 1]`` for MobileNetV2."""
    if augment is not None:
        x = augment(x)
    return layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)


def _head(x, dropout, hidden, num_classes):
    """The classifier on the pooled base output: ``"features"``, dropout, hidden ReLU layers, ``"predictions"``."""
    x = layers.Identity(name="features")(x)  # the pooled features, for feature_extractor(model, "features")
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    for i, units in enumerate(hidden):
        x = layers.Dense(int(units), activation="relu", name=f"hidden_{i}")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def _print_summary(model, alpha, height, width, used, trainable_base) -> None:
    """Print the one line that says which weights the model starts from, so a notebook shows the choice made."""
    published = height == width and height in IMAGENET_SIZES
    note = " (those of the 224x224 model)" if used == "imagenet" and not published else ""
    print(
        f"MobileNetV2 (alpha {alpha:g}, {height}x{width} input): weights={used}{note}, "
        f"base {'trainable' if trainable_base else 'frozen'}, {model.count_params():,} parameters"
    )


def mobilenetv2_classifier(
    num_classes: int,
    input_size=96,
    alpha: float = 0.35,
    weights=None,
    trainable_base: bool = True,
    pooling: str = "avg",
    dropout: float = 0.2,
    hidden_units=(),
    augment=None,
    bn_momentum: float | None = None,
    zero_init_residual: bool = False,
    verbose: bool = True,
    name: str | None = None,
) -> keras.Model:
    """A MobileNetV2 classifier for images with values in ``[0, 1]``.

    The model is: input -> ``augment`` (optional, e.g. a ``keras.Sequential`` of
    random layers, active in training only) -> rescaling to ``[-1, 1]`` (what
    MobileNetV2 expects) -> the MobileNetV2 base without its ImageNet top, named
    :data:`BASE_NAME` -> global ``pooling`` (``"avg"`` or ``"max"``), exposed as the
    layer ``"features"`` -> dropout ->
    optional hidden dense layers (``hidden_units``, ReLU: a positive int for one
    layer, or a sequence such as ``(256, 64)`` for several) -> a softmax layer
    ``"predictions"`` with ``num_classes`` outputs. ``dropout`` is a rate in ``[0, 1)``.

    ``weights`` is ``None`` (random initialisation), ``"imagenet"`` or
    ``"source"``: the base pretrained offline on the source task of other shapes
    (:func:`pretrain_source`), loaded from the file that ships with the package
    after checking its SHA-256 (:func:`check_source_weights`; alpha 0.35 only).
    A frozen base runs its BatchNormalization layers in inference mode, so they
    keep the pretrained statistics; :func:`fine_tune` keeps them frozen when it unfreezes
    the top of the base. (Calling the base with ``training=False``, the Keras 2
    recipe, would not do it: ``fit`` overrides that argument in Keras 3,
    keras-team/keras#20285.) If the weights cannot be fetched, one
    line says so and the base starts from random weights instead; nothing is
    raised. Either way one line reports the choice, and :func:`weights_used`
    returns it (``"imagenet"``, ``"source"`` or ``"none"``).

    ``trainable_base=False`` freezes the base (only the head learns).
    ``bn_momentum`` sets the momentum of the base's BatchNormalization layers;
    the default (``None``) keeps Keras' 0.999 for pretrained weights and uses 0.9
    from scratch, because with 0.999 the moving statistics need thousands of
    steps to forget their initial values and a short training run would then
    predict badly at test time.

    ``zero_init_residual=True`` (from scratch only) sets the scale (gamma) of the
    last BatchNormalization of every block with a skip connection to zero, so
    each such block starts as the identity and the network behaves at first like
    a much shallower one; a deep network from random weights then learns faster
    (the "zero gamma" trick of Goyal et al., 2017). Training makes the scales
    grow as the blocks become useful.

    ``input_size`` and ``alpha`` follow Keras: any input of at least 32x32
    pixels and any positive ``alpha`` from scratch. With ``weights="imagenet"``,
    ``alpha`` must be one of :data:`ALPHAS`; an input that is not a square of
    :data:`IMAGENET_SIZES` pixels gets the weights of the 224x224 model (Keras
    warns, and the summary line says so).

    Raises ``ValueError`` for an input smaller than 32x32, an ``alpha`` that is not
    positive (or, with ImageNet weights, not one of :data:`ALPHAS`, or one of
    :data:`WIDE_ALPHAS` at a published size other than 224x224), an unknown
    ``weights`` or ``pooling``, ``zero_init_residual`` with ImageNet weights, and
    a ``dropout`` or ``hidden_units`` of the wrong kind.
    """
    alpha = _validate_weights_and_alpha(weights, alpha)
    num_classes = _validate_head_options(num_classes, pooling, dropout, zero_init_residual, weights)
    hidden = _hidden_layer_sizes(hidden_units)
    height, width = check_input_size(input_size, weights)
    if weights == "imagenet" and alpha in WIDE_ALPHAS and height == width and height in IMAGENET_SIZES[:-1]:
        raise ValueError(
            f"ImageNet weights for MobileNetV2 at alpha 1.3 and 1.4 are published for 224x224 inputs only; got "
            f"alpha {alpha:g} at {height}x{width} (use input_size=224, or an alpha of 1.0 or less)"
        )
    shape = (height, width, 3)

    base, used = _base_network(shape, alpha, weights, pooling, verbose)
    _set_up_base(base, used, bn_momentum, zero_init_residual, trainable_base)
    inputs = keras.Input(shape, name="image")
    outputs = _head(base(_preprocess(inputs, augment)), dropout, hidden, num_classes)
    model = keras.Model(inputs, outputs, name=name or f"mobilenetv2_{alpha:g}_{used}")
    model._course_weights_used = used  # read with weights_used(model)
    if verbose:
        _print_summary(model, alpha, height, width, used, trainable_base)
    return model


def residual_blocks(base: keras.Model) -> list[str]:
    """Names (``"block_2"``, ...) of the inverted-residual blocks of a Keras MobileNetV2 that have a skip connection."""
    return [layer.name[: -len("_add")] for layer in base.layers if re.fullmatch(r"block_\d+_add", layer.name)]


def weights_used(model: keras.Model) -> str:
    """``"imagenet"``, ``"source"`` or ``"none"``: the weights a model from :func:`mobilenetv2_classifier`
    started from.
    """
    return getattr(model, "_course_weights_used", "none")


def base_of(model: keras.Model) -> keras.Model:
    """The MobileNetV2 base inside a model built by :func:`mobilenetv2_classifier`."""
    try:
        return model.get_layer(BASE_NAME)
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no layer {BASE_NAME!r}: build it with mobilenetv2_classifier"
        ) from None


def trainable_counts(model: keras.Model) -> tuple[int, int]:
    """``(trainable, non-trainable)`` parameter counts of a model."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, frozen


def compile_classifier(model: keras.Model, learning_rate=1e-3, strategy=None) -> keras.Model:
    """Compile for integer labels: Adam, sparse categorical cross-entropy, accuracy.

    ``strategy``: a ``tf.distribute`` strategy, by default the model's own
    (see :func:`course_utils.config.distribute`).
    """
    strategy, _ = distribute(model, None, strategy)
    with strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return model


def fine_tune(model: keras.Model, top_layers: int, learning_rate: float = 1e-4) -> int:
    """Unfreeze the top ``top_layers`` layers of the MobileNetV2 base and recompile with ``learning_rate``.

    Layers below stay frozen, and every BatchNormalization layer stays frozen
    (``trainable=False`` also runs it in inference mode in Keras 3), so the
    statistics learned on ImageNet are not overwritten by a few small batches.
    Returns the number of layers that became trainable (BatchNormalization layers
    not counted); ``top_layers`` may be at most the number of layers of the base.
    Use a learning rate about ten times lower than for the head: large steps
    would wreck the pretrained weights.
    """
    check_integer(top_layers, "top_layers", minimum=0)
    base = base_of(model)
    if top_layers > len(base.layers):
        raise ValueError(
            f"top_layers={top_layers} is more than the {len(base.layers)} layers of the base: "
            f"use at most {len(base.layers)} (that many unfreezes the whole base)"
        )
    base.trainable = True
    cut = len(base.layers) - int(top_layers)
    unfrozen = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        unfrozen += bool(layer.trainable and layer.weights)
    compile_classifier(model, learning_rate)
    return unfrozen


@keras.saving.register_keras_serializable(package="course_utils")
class RandomDihedral(layers.Layer):
    """Random flips and quarter turns of square images: the 8 symmetries of a square, one drawn per image.

    Every symmetry keeps the class of the synthetic shapes (a square stays a square,
    a triangle stays a triangle at another orientation), unlike a rotation by 45
    degrees, which turns a square into a diamond. Active only when
    ``training=True``; at inference it returns its input unchanged.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        from keras import ops

        if not training:
            return images
        batch = ops.shape(images)[0]
        draws = keras.random.uniform((batch, 3), seed=self.seed_generator)
        swap, flip_rows, flip_cols = (ops.reshape(draws[:, i] < 0.5, (-1, 1, 1, 1)) for i in range(3))
        images = ops.where(swap, ops.transpose(images, (0, 2, 1, 3)), images)  # a transpose; square images only
        images = ops.where(flip_rows, ops.flip(images, axis=1), images)
        return ops.where(flip_cols, ops.flip(images, axis=2), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def small_cnn(
    input_shape=(64, 64, 3),
    num_classes: int = 4,
    filters=(16, 32, 64, 128),
    dropout: float = 0.2,
    augment=None,
    name: str = "small_cnn",
) -> keras.Model:
    """A plain CNN baseline: per stage a 3x3 convolution, BatchNorm, ReLU and 2x2 max pooling.

    Then global average pooling, dropout and a softmax. With the default four
    stages it has about 99 thousand parameters on 3-channel inputs, a quarter of
    MobileNetV2 at alpha 0.35.
    """
    inputs = keras.Input(input_shape, name="image")
    x = augment(inputs) if augment is not None else inputs
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def train(
    model: keras.Model,
    x,
    y=None,
    epochs: int = 10,
    learning_rate: float = 3e-3,
    batch_size: int = 64,
    validation=None,
    class_weight=None,
    warmup_epochs: float = 1.0,
    final_fraction: float = 0.02,
    steps_per_epoch: int | None = None,
    strategy=None,
):
    """Compile ``model`` with Adam on a :class:`WarmupExponentialDecay` schedule and fit it quietly.

    The learning rate rises linearly to its peak, ``learning_rate``, during
    ``warmup_epochs``, then decays exponentially to ``final_fraction * learning_rate``
    at the last step. ``validation``: optional ``(x, y)`` or a dataset, scored after each epoch.
    ``x`` is an array (with labels ``y``) or a ``tf.data.Dataset`` of batches (then
    give ``steps_per_epoch`` if it cannot be computed). Returns ``(history, seconds)``;
    ``history.epoch_seconds`` lists the wall time of each epoch (see
    :func:`images_per_second`).

    ``strategy``: a ``tf.distribute`` strategy (by default the model's own, see
    :func:`course_utils.config.distribute`); ``batch_size`` is then per replica.
    A dataset of batches is used as it is: batch it with the global batch size.
    """
    strategy, batch_size = distribute(model, batch_size, strategy)
    if steps_per_epoch is None:
        steps_per_epoch = int(np.ceil(len(x) / batch_size)) if y is not None else int(len(x))
    total = max(1, epochs * steps_per_epoch)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    decay_steps = max(1, total - warmup)
    schedule = WarmupExponentialDecay(learning_rate, warmup, decay_steps=decay_steps, decay_rate=final_fraction)
    compile_classifier(model, schedule, strategy=strategy)
    clock = _EpochClock()
    fit_args = dict(epochs=epochs, validation_data=validation, class_weight=class_weight, callbacks=[clock])
    if y is not None:
        history, seconds = fit_quietly(model, x, y, batch_size=batch_size, **fit_args)
    else:
        history, seconds = fit_quietly(model, x, shuffle=False, **fit_args)  # a dataset shuffles itself
    history.epoch_seconds = clock.seconds
    return history, seconds


class _EpochClock(keras.callbacks.Callback):
    """Wall time of each epoch (the first one includes tracing the training step)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        self.seconds.append(time.perf_counter() - self._start)


def images_per_second(history, images_per_epoch: int) -> float:
    """Training speed from a history returned by :func:`train`: the median epoch after the first
    (which also traces the training step), or the only epoch if there is one."""
    seconds = getattr(history, "epoch_seconds", None)
    if not seconds:
        raise ValueError("this history has no epoch times: train the model with course_utils.recognition.train")
    steady = seconds[1:] or seconds
    return float(images_per_epoch / np.median(steady))


def evaluate(model: keras.Model, x, y, batch_size: int = 256) -> tuple[float, np.ndarray]:
    """``(accuracy, probabilities)`` of ``model`` on ``x`` with integer labels ``y`` (shape ``(n,)`` or ``(n, 1)``)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"y must be integer labels of shape (n,), got shape {y.shape}; for one-hot labels pass y.argmax(1)"
        )
    if len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} images, {len(y)} labels")
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(probabilities.argmax(1) == y)), probabilities


# ----------------------------------------------------------------------------------- schedule


@keras.saving.register_keras_serializable(package="course_utils")
class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from ``initial`` to ``peak`` over ``warmup_steps``, then exponential decay.

    ``lr(step) = initial + (peak - initial) * step / warmup_steps`` while
    ``step < warmup_steps``, then
    ``max(floor, peak * decay_rate ** ((step - warmup_steps) / decay_steps))``.
    Warming up avoids large, badly aimed first steps while the weights (and, for
    Adam, its moment estimates) are still random; the decay lets training settle.
    """

    def __init__(self, peak, warmup_steps, decay_steps, decay_rate=0.5, initial=0.0, floor=0.0):
        if peak <= 0:
            raise ValueError(f"peak must be positive, got {peak!r}")
        if warmup_steps < 0 or decay_steps <= 0:
            raise ValueError(f"need warmup_steps >= 0 and decay_steps > 0, got {warmup_steps!r}, {decay_steps!r}")
        if not 0 < decay_rate <= 1:
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = float(decay_steps)
        self.decay_rate = float(decay_rate)
        self.initial = float(initial)
        self.floor = float(floor)

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        rising = self.initial + (self.peak - self.initial) * step / warm
        decaying = self.peak * ops.power(self.decay_rate, (step - self.warmup_steps) / self.decay_steps)
        decaying = ops.maximum(decaying, self.floor)
        return ops.where(step < self.warmup_steps, rising, decaying)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "initial": self.initial,
            "floor": self.floor,
        }


# ------------------------------------------------------------------------------- class weights


def class_weights(labels, num_classes: int | None = None) -> dict[int, float]:
    """Weights ``n / (K * n_k)`` per class, for ``model.fit(class_weight=...)``.

    Each class then contributes the same total weight to the loss, as if the
    classes were balanced; a class of average size gets weight 1. Raises a clear
    error when a class has no example (its weight would be infinite), and for
    labels that are not class ids >= 0 (whole-number floats such as ``1.0`` are accepted).
    """
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("labels is empty")
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"labels must be integer class ids, got an array of {labels.dtype}")
    fractional = ~np.isfinite(labels) | (labels != np.round(labels))
    if fractional.any():
        raise ValueError(f"labels must be integer class ids 0, 1, 2, ..., found {labels[fractional][0].item()!r}")
    labels = labels.astype(int)
    if labels.min() < 0:
        raise ValueError(f"labels must be class ids >= 0, found {labels.min()}")
    k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    if labels.max() >= k:
        raise ValueError(f"label {labels.max()} is out of range for num_classes={k}")
    missing = np.setdiff1d(np.arange(k), labels)
    if missing.size:
        raise ValueError(f"class(es) {missing.tolist()} have no examples: cannot weight them")
    from sklearn.utils.class_weight import compute_class_weight  # the "balanced" weights: n / (K * n_k)

    weights = compute_class_weight("balanced", classes=np.arange(k), y=labels)
    return {i: float(w) for i, w in enumerate(weights)}


# ------------------------------------------------------------------------------------- data


def _stratified(images, labels, class_names, test_fraction, seed, where="the data"):
    """A stratified train/test :class:`~course_utils.data.Split`; ``where`` names the data in errors."""
    from sklearn.model_selection import train_test_split

    from course_utils.data import Split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    # scikit-learn holds out ceil(test_fraction * n) images and needs room for every class on both sides.
    counts = np.bincount(labels, minlength=len(class_names))
    present = np.count_nonzero(counts)
    n_test = math.ceil(test_fraction * len(labels))
    if counts[counts > 0].min() < 2 or not present <= n_test <= len(labels) - present:
        per_class = ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts))
        raise ValueError(
            f"Too few images in {where} to hold out test_fraction={test_fraction:g} with every class in both "
            f"the training and the test part (images per class: {per_class}): each class needs at least 2 "
            f"images, and the {n_test} held out of {len(labels)} must leave one of each of the {present} "
            "classes on both sides"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), tuple(class_names))


def imbalanced_counts(n: int, num_classes: int, ratio: float) -> np.ndarray:
    """Images per class falling geometrically from the first class to the last, which gets ``ratio`` times as many."""
    if not 0 < ratio <= 1:
        raise ValueError(f"imbalance ratio must be in (0, 1], got {ratio!r}")
    share = ratio ** (np.arange(num_classes) / max(num_classes - 1, 1))
    counts = np.floor(n * share / share.sum()).astype(int)
    counts[0] += n - counts.sum()
    return counts


def classification_object_size(size: int, object_fraction=(0.3, 0.75)) -> tuple[int, int]:
    """``(min_px, max_px)`` of the one shape in a classification scene of ``size`` pixels.

    ``object_fraction`` is the shape's extent as a fraction of the image side. The
    default makes the shape the subject of the picture, as in a photo taken to
    be classified, and keeps it at least 10 pixels across in a 32-pixel image: a
    network such as MobileNetV2, which halves the resolution in its very first
    layer, cannot tell shapes a few pixels across apart (small objects are the
    business of detection, week 3).
    """
    try:
        low, high = (float(f) for f in object_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"object_fraction must be a pair (low, high), got {object_fraction!r}") from None
    if not 0 < low <= high <= 1:
        raise ValueError(f"object_fraction needs 0 < low <= high <= 1, got {object_fraction!r}")
    min_px = max(4, round(low * size))
    return min_px, max(min_px, round(high * size))


SCENE_SOURCES = ("scenes", "scenes-imbalanced", "scenes-source")
"""The names :func:`load_classification` draws synthetic scenes for."""


def _scenes(n_train, n_test, size, seed, imbalance, noise, object_fraction, classes=None):
    from course_utils.data import Split
    from course_utils.scenes import SHAPES, make_scenes

    total = n_train + n_test
    object_size = classification_object_size(size, object_fraction)
    if imbalance is None:
        scenes = make_scenes(
            total, size=size, seed=seed, objects=(1, 1), object_size=object_size, noise=noise, classes=classes or SHAPES
        )
        images, labels = scenes.images, scenes.labels
    else:
        # Draw enough balanced scenes, then keep a geometrically shrinking number per class.
        k = 4
        wanted = imbalanced_counts(total, k, imbalance)
        scenes = make_scenes(
            int(wanted[0] * k * 1.3) + 64, size=size, seed=seed, objects=(1, 1), object_size=object_size, noise=noise
        )
        keep = []
        for label, count in enumerate(wanted):
            found = np.flatnonzero(scenes.labels == label)
            if len(found) < count:  # pragma: no cover - 30% spare makes this vanishingly rare
                raise RuntimeError("not enough scenes of one class were drawn; try another seed")
            keep.append(found[:count])
        order = np.random.default_rng(seed).permutation(np.concatenate(keep))
        images, labels = scenes.images[order], scenes.labels[order]
        # Split train/test with the same class proportions.
        return _stratified(
            images, labels, scenes.class_names, n_test / total, seed, "the imbalanced scenes (raise n_train and n_test)"
        )
    return Split(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], scenes.class_names)


def _tfds(name, size, seed, test_fraction, max_images, data_dir, split):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset, info = tfds.load(name, split=split, as_supervised=True, with_info=True, data_dir=data_dir)
    label_feature = info.features[info.supervised_keys[1]]
    class_names = tuple(label_feature.names)

    def prepare(image, label):
        image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return tf.image.resize(image, (size, size)), label

    if max_images is not None:
        dataset = dataset.take(int(max_images))
    images, labels = [], []
    for image, label in dataset.map(prepare).batch(256).as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"TensorFlow Datasets set {name!r} (split {split!r}) is empty")
    images = np.clip(np.concatenate(images), 0.0, 1.0).astype(np.float32)
    return _stratified(
        images,
        np.concatenate(labels).astype(np.int32),
        class_names,
        test_fraction,
        seed,
        f"TensorFlow Datasets set {name!r}",
    )


def _square_side(image_size) -> int:
    """The side of the square images :func:`load_classification` makes, refusing a non-square ``image_size``."""
    from course_utils.data import check_image_size

    size, width = check_image_size(image_size)
    if size != width:
        raise ValueError(
            f"load_classification makes square images: image_size must be an int or (size, size), got {image_size!r}"
        )
    return size


def _names_a_folder(source) -> bool:
    """Whether ``source`` is a folder to read: a ``Path``, or a string that is no named source and looks like a path.

    A string looks like a path when it contains a path separator, starts with
    ``.`` or ``~``, or names an existing folder; a mistyped path then fails with
    ``FileNotFoundError`` instead of "unknown data source".
    """
    named = isinstance(source, str) and (source in SCENE_SOURCES or tfds_name(source) is not None)
    looks_like_path = (
        isinstance(source, str)
        and not named
        and ("/" in source or os.sep in source or source.startswith((".", "~")) or Path(source).is_dir())
    )
    return isinstance(source, Path) or looks_like_path


def _from_folder(source, size, seed, test_fraction, max_images):
    """A stratified split of a folder of one sub-folder per class, after keeping ``max_images`` at random."""
    from course_utils.data import load_image_folder

    images, labels, class_names = load_image_folder(source, (size, size))  # raises if there is no such folder
    if max_images is not None:
        keep = np.random.default_rng(seed).permutation(len(images))[:max_images]
        images, labels = images[keep], labels[keep]
    return _stratified(images, labels, class_names, test_fraction, seed, f"folder {source}")


def _from_scene_source(source, size, n_train, n_test, seed, imbalance, noise, object_fraction):
    """The split of one of :data:`SCENE_SOURCES`: imbalanced ones need a test image, source ones other shapes."""
    imbalanced = source.endswith("imbalanced")
    n_train = check_integer(n_train, "n_train")
    n_test = check_integer(n_test, "n_test", minimum=1 if imbalanced else 0)
    return _scenes(
        n_train,
        n_test,
        size,
        seed,
        imbalance if imbalanced else None,
        noise,
        object_fraction,
        SOURCE_CLASSES if source == "scenes-source" else None,
    )


def load_classification(
    source="scenes",
    image_size: int = 96,
    n_train: int = 2000,
    n_test: int = 800,
    seed: int = 0,
    imbalance: float = 0.1,
    noise: float = 0.04,
    object_fraction=(0.3, 0.75),
    test_fraction: float = 0.2,
    max_images: int | None = None,
    data_dir=None,
    split: str = "train",
):
    """One entry point for image-classification data; returns a :class:`course_utils.data.Split`.

    ``source`` chooses the data:

    * ``"scenes"``: synthetic scenes with one shape each (4 classes: circle,
      square, triangle, diamond), ``n_train`` + ``n_test`` images of
      ``image_size`` pixels from ``seed``; nothing is downloaded. The shape spans
      ``object_fraction`` of the image side (see :func:`classification_object_size`).
      ``n_train`` and ``n_test`` must be integers.
      ``n_test`` may be 0 (more training scenes from another seed, say).
    * ``"scenes-imbalanced"``: the same, with class sizes falling geometrically so
      that the last class has ``imbalance`` times as many images as the first;
      train and test keep the same proportions.
    * ``"scenes-source"``: scenes like ``"scenes"`` but of four *other* shapes
      (:data:`SOURCE_CLASSES`: pentagon, hexagon, cross, rectangle), the source
      task on which :func:`pretrain_source` pretrains a base for transfer learning.
    * a folder (a ``Path``, or a string naming an existing folder) with one
      sub-folder of images per class, read by
      :func:`course_utils.data.load_image_folder`; a stratified ``test_fraction``
      is held out (each class needs at least 2 images). A string that looks like
      a path (it contains a path separator or starts with ``.`` or ``~``) but names
      no folder raises ``FileNotFoundError``.
    * ``"tfds:<name>"``, e.g. ``"tfds:tf_flowers"``: a TensorFlow Datasets set
      (downloaded to ``data_dir`` on first use: for Colab), its ``split``, at most
      ``max_images`` images, resized to ``image_size`` and split like a folder.

    Images are float32 ``(n, image_size, image_size, 3)`` in ``[0, 1]``;
    ``image_size`` is an int or a square ``(size, size)`` pair.
    """
    size = _square_side(image_size)
    if max_images is not None:
        max_images = check_integer(max_images, "max_images")
    if _names_a_folder(source):
        return _from_folder(source, size, seed, test_fraction, max_images)
    if not isinstance(source, str):
        raise TypeError(f"source must be a string or a path, got {type(source).__name__}")
    if source in SCENE_SOURCES:
        return _from_scene_source(source, size, n_train, n_test, seed, imbalance, noise, object_fraction)
    if (name := tfds_name(source)) is not None:
        return _tfds(name, size, seed, test_fraction, max_images, data_dir, split)
    raise ValueError(
        f"Unknown data source {source!r}: use 'scenes', 'scenes-imbalanced', 'scenes-source', 'tfds:<name>' "
        "(e.g. 'tfds:tf_flowers') or the path of an existing folder with one sub-folder per class"
    )


# ------------------------------------------------------------------------ costs and blocks


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


def block_layers(base: keras.Model, block: int) -> list:
    """The layers of inverted-residual block ``block`` of a Keras MobileNetV2 base, in order.

    Keras names them ``block_<n>_expand``, ``block_<n>_depthwise``,
    ``block_<n>_project``, ... and ``block_<n>_add`` for the residual sum (block 0
    is the first, ``expanded_conv_*``, which has no expansion).
    """
    prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
    found = [layer for layer in base.layers if layer.name.startswith(prefix)]
    if not found:
        numbers = sorted({int(m.group(1)) for layer in base.layers if (m := re.match(r"block_(\d+)_", layer.name))})
        raise ValueError(f"No block {block} in {base.name!r}; blocks 0..{max(numbers) if numbers else 0} exist")
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
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = describe_block(base, block)
    first = block_layers(base, block)[0]
    in_shape = tuple(first.input.shape[1:])
    boxes = [("block input", "", in_shape, 0)] + rows
    colours = {"expand": "#f4c27a", "depthwise": "#8fc1e3", "project": "#9fd39b", "add": "#d9b3e6"}
    n = len(boxes)
    widest = max(shape[-1] for _, _, shape, _ in boxes)
    fig, ax = plt.subplots(figsize=(6.6, 0.7 * n + 0.8))  # narrower than the page: its 9-pt labels stay 9 pt
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, n)
    ax.axis("off")
    for i, (name, kind, shape, params) in enumerate(boxes):
        y = n - 1 - i
        colour = next(
            (
                c
                for key, c in colours.items()
                if name.endswith(key)
                or f"_{key}_" in name
                or name.endswith(f"{key}_BN")
                or name.endswith(f"{key}_relu")
            ),
            "#eeeeee",
        )
        alpha = 0.45 if kind in ("BatchNormalization", "ReLU", "ZeroPadding2D") else 1.0
        half = 1.6 + 1.5 * shape[-1] / widest  # box width grows with the channels: narrow-wide-narrow
        ax.add_patch(
            FancyBboxPatch(
                (4.7 - half, y - 0.3), 2 * half, 0.6, boxstyle="round,pad=0.02", fc=colour, ec="grey", alpha=alpha
            )
        )
        label = f"{name}  ({kind})" if kind else name
        extra = f"  {params:,} params" if params else ""
        ax.text(4.7, y, f"{label}\n{'x'.join(map(str, shape))}{extra}", ha="center", va="center", fontsize=9)
        if i:
            ax.annotate("", xy=(4.7, y + 0.3), xytext=(4.7, y + 0.7), arrowprops=dict(arrowstyle="->", color="grey"))
    if rows[-1][0].endswith("_add"):
        edge = 4.75 + 1.6 + 1.5 * in_shape[-1] / widest
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
    ax.set_title(title or f"MobileNetV2 block {block}, from the model's own layers", fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ transfer learning offline


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_source_weights(path=None, sha256: str | None = None) -> Path:
    """Return the path of the source-task weights after checking that the file is the one that was shipped.

    ``path`` and ``sha256`` default to :data:`SOURCE_WEIGHTS` and :data:`SOURCE_SHA256`.
    A missing file raises ``FileNotFoundError``, a file with another hash
    ``ValueError``; both say how to regenerate it. (A damaged or half-written
    file would otherwise load as nonsense weights, or fail deep inside h5py.)
    """
    path = Path(SOURCE_WEIGHTS if path is None else path)
    expected = SOURCE_SHA256 if sha256 is None else sha256
    if not path.is_file():
        raise FileNotFoundError(
            f"The source-task weights {path} are missing: reinstall course_utils, or "
            f"regenerate them with `{PRETRAIN_COMMAND}` and update SOURCE_SHA256"
        )
    found = file_sha256(path)
    if found != expected:
        raise ValueError(
            f"The source-task weights {path} have SHA-256 {found}, but course_utils expects "
            f"{expected}: the file is damaged or comes from another run. Reinstall course_utils, "
            f"or regenerate it with `{PRETRAIN_COMMAND}` and update SOURCE_SHA256"
        )
    return path


def pretrain_source(path=None, n_train=None, n_test=None, epochs=None, seed=None, verbose=True) -> dict:
    """Pretrain a MobileNetV2 base on the source task (:data:`SOURCE_CLASSES`) and save its weights.

    The recipe is :data:`SOURCE_RECIPE` (the arguments override it; keep them
    for the shipped file): ``n_train`` scenes of the four other shapes at
    32x32 pixels, alpha 0.35, random flips and quarter turns, zero-initialised
    skip blocks, :func:`train` with a peak learning rate of 4e-3 decaying to a
    fifth. It is the chapter's from-scratch recipe on another task. Only the
    base is saved (a Keras ``.weights.h5`` file, about 2 MB); the head
    belongs to the source classes and is discarded.

    Every random step is seeded, so a rerun on the same machine and software
    gives the same weight values (not the same bytes: the HDF5 file records
    when its parts were written, so every file has its own SHA-256); another
    processor, TensorFlow build or thread count rounds differently and gives
    other weights. That is why the hash of the shipped file is stored and
    checked, not recomputed from a rerun.
    Returns ``{"path", "sha256", "source_test_accuracy", "seconds"}``. Run it
    with ``python -m course_utils.recognition pretrain-source`` (about five
    minutes on two CPU cores), then put the printed hash in :data:`SOURCE_SHA256`.
    """
    from course_utils import config

    recipe = dict(SOURCE_RECIPE)
    recipe.update(
        {k: v for k, v in dict(n_train=n_train, n_test=n_test, epochs=epochs, seed=seed).items() if v is not None}
    )
    path = Path(SOURCE_WEIGHTS if path is None else path)
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"the weights file must end in .weights.h5 (Keras' format), got {path}")
    source = load_classification(
        "scenes-source",
        image_size=recipe["input_size"],
        n_train=recipe["n_train"],
        n_test=recipe["n_test"],
        seed=recipe["seed"],
    )
    config.seed_everything(recipe["seed"] + 1)
    model = mobilenetv2_classifier(
        len(SOURCE_CLASSES),
        input_size=recipe["input_size"],
        alpha=recipe["alpha"],
        weights=None,
        augment=RandomDihedral(seed=recipe["seed"] + 2),
        zero_init_residual=True,
        verbose=False,
    )
    _, seconds = train(
        model,
        source.x_train,
        source.y_train,
        epochs=recipe["epochs"],
        learning_rate=recipe["learning_rate"],
        final_fraction=recipe["final_fraction"],
    )
    accuracy = evaluate(model, source.x_test, source.y_test)[0] if recipe["n_test"] else float("nan")
    path.parent.mkdir(parents=True, exist_ok=True)
    base_of(model).save_weights(path)
    result = {"path": path, "sha256": file_sha256(path), "source_test_accuracy": accuracy, "seconds": seconds}
    if verbose:
        print(
            f"pretrained on {recipe['n_train']} source scenes ({', '.join(SOURCE_CLASSES)}) in {seconds:.0f} s; "
            f"held-out source accuracy {accuracy:.3f}\nwrote {path} ({path.stat().st_size:,} bytes)\n"
            f"SHA-256 {result['sha256']}"
        )
    return result


def labelled_subset(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` images of every class, drawn at random (seeded) from ``labels``.

    The result is shuffled. A class with fewer images raises a ``ValueError`` naming it.
    """
    labels = np.asarray(labels).ravel()
    check_integer(per_class, "per_class")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels):
        found = np.flatnonzero(labels == k)
        if len(found) < per_class:
            raise ValueError(f"class {int(k)} has only {len(found)} images, fewer than per_class={per_class}")
        chosen.append(rng.choice(found, per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


TRANSFER_METHODS = ("from scratch", "frozen base", "fine-tuned")
"""The three ways :func:`transfer_learning_curve` trains a classifier on few labels."""


def _fit_steps(model, x, y, steps, batch_size, seed):
    """Train a compiled ``model`` for exactly ``steps`` full batches drawn from ``(x, y)``, reshuffled every pass.

    Every batch has ``batch_size`` images, even from a set smaller than that (its
    images then repeat within a batch), so a model trained again on other data of
    the same kind reuses its traced training step (no new tracing, which costs
    seconds for MobileNetV2). Returns the training seconds.
    """
    import time

    import tensorflow as tf

    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(2)
    )
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=int(steps), shuffle=False, verbose=0)  # it shuffles itself
    return time.perf_counter() - start


def _reset(model, weights):
    """Put ``weights`` back into ``model`` and zero its optimizer's state (step counter, moments)."""
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))


def transfer_learning_curve(
    x_pool,
    y_pool,
    x_test,
    y_test,
    num_classes: int,
    per_class=(10, 30, 100),
    steps: int = 80,
    batch_size: int = 32,
    head_steps: int = 300,
    fine_tune_layers: int = 60,
    fine_tune_lr: float = 5e-4,
    include_all: bool = False,
    seed: int = 0,
) -> dict:
    """Held-out accuracy of three MobileNetV2 classifiers (alpha 0.35) trained on ``per_class`` labels per class.

    For each number ``k`` in ``per_class``, ``k`` images of every class are drawn
    from the pool (:func:`labelled_subset`, the same images for all three), and:

    * ``"from scratch"``: random weights, trained for ``steps`` batches with the
      chapter's from-scratch recipe (zero-initialised skip blocks, peak learning
      rate 4e-3 after a warm-up, decaying to a fifth);
    * ``"frozen base"``: the source-task base (``weights="source"``) as a fixed
      feature extractor; a new head (dropout 0.2, dense softmax) learns on the
      pooled features, which are computed once for the whole pool, for
      ``head_steps`` batches;
    * ``"fine-tuned"``: that head on that base, then the top ``fine_tune_layers``
      layers of the base unfrozen (BatchNormalization kept frozen, see
      :func:`fine_tune`) and trained for ``steps`` batches at a peak learning rate
      of ``fine_tune_lr``.

    Every run of a method takes the same number of batches of ``batch_size``
    images, whatever ``k`` (a small set is seen many times), and starts from the
    same weights: each model is built and traced once, and reset between runs.
    No augmentation: the methods differ only in where their weights start and
    what they train. ``include_all=True`` also trains the frozen and fine-tuned
    models on the whole pool (the from-scratch recipe for a large set is another
    one). Returns ``{"per_class": [...], method: [accuracy per k], "all": {method:
    accuracy}, "all_seconds": {method: training seconds of that run}, "seconds":
    {method: training seconds over all runs}, "features": seconds to compute the
    features}``. A run's seconds include tracing the first time a model is trained.
    """
    import time

    from course_utils import config

    per_class = list(per_class)
    for i, k in enumerate(per_class):
        check_integer(k, f"per_class[{i}]")
    size = x_pool.shape[1]
    alpha = SOURCE_RECIPE["alpha"]
    subsets = [labelled_subset(y_pool, k, seed=seed + i) for i, k in enumerate(per_class)]
    runs = list(zip(per_class, subsets)) + ([("all", np.arange(len(y_pool)))] if include_all else [])
    result = {
        "per_class": per_class,
        **{m: [] for m in TRANSFER_METHODS},
        "all": {},
        "seconds": dict.fromkeys(TRANSFER_METHODS, 0.0),
    }

    def schedule(total, peak, final):
        warmup = max(1, total // 10)
        return WarmupExponentialDecay(peak, warmup, decay_steps=max(1, total - warmup), decay_rate=final)

    # From scratch: one model, reset to the same random weights for every k.
    config.seed_everything(seed)
    scratch = mobilenetv2_classifier(
        num_classes, input_size=size, alpha=alpha, weights=None, zero_init_residual=True, verbose=False
    )
    compile_classifier(scratch, schedule(steps, 4e-3, 0.2))
    scratch.optimizer.build(scratch.trainable_variables)
    start_weights = scratch.get_weights()
    for i, (k, index) in enumerate(runs):
        if k == "all":
            continue
        _reset(scratch, start_weights)
        result["seconds"]["from scratch"] += _fit_steps(
            scratch, x_pool[index], y_pool[index], steps, batch_size, seed + 10 + i
        )
        result["from scratch"].append(evaluate(scratch, x_test, y_test)[0])
    del scratch

    # The source-task base, frozen: features of the whole pool and the test set, computed once.
    config.seed_everything(seed + 1)
    model = mobilenetv2_classifier(
        num_classes, input_size=size, alpha=alpha, weights="source", trainable_base=False, verbose=False
    )
    extractor = keras.Model(model.input, model.get_layer("features").output)
    start = time.perf_counter()
    pool_features = extractor.predict(x_pool, batch_size=256, verbose=0)
    test_features = extractor.predict(x_test, batch_size=256, verbose=0)
    result["features"] = time.perf_counter() - start
    head = keras.Sequential(
        [
            keras.Input(pool_features.shape[1:]),
            layers.Dropout(0.2),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="head",
    )
    compile_classifier(head, schedule(head_steps, 3e-3, 0.02))
    head.optimizer.build(head.trainable_variables)
    head_start = head.get_weights()
    fine_tune(model, top_layers=fine_tune_layers)
    compile_classifier(model, schedule(steps, fine_tune_lr, 0.2))
    model.optimizer.build(model.trainable_variables)
    model_start = model.get_weights()
    predictions = model.get_layer("predictions")
    for i, (k, index) in enumerate(runs):
        _reset(head, head_start)
        head_seconds = _fit_steps(head, pool_features[index], y_pool[index], head_steps, batch_size, seed + 20 + i)
        frozen = evaluate(head, test_features, y_test)[0]
        _reset(model, model_start)
        predictions.set_weights(head.get_layer("predictions").get_weights())
        tuning_seconds = _fit_steps(model, x_pool[index], y_pool[index], steps, batch_size, seed + 30 + i)
        tuned = evaluate(model, x_test, y_test)[0]
        result["seconds"]["frozen base"] += head_seconds
        result["seconds"]["fine-tuned"] += tuning_seconds
        if k == "all":
            result["all"] = {"frozen base": frozen, "fine-tuned": tuned}
            result["all_seconds"] = {"frozen base": head_seconds, "fine-tuned": head_seconds + tuning_seconds}
        else:
            result["frozen base"].append(frozen)
            result["fine-tuned"].append(tuned)
    # Fine-tuning starts from the trained head, so its time includes the head's.
    result["seconds"]["fine-tuned"] += result["seconds"]["frozen base"]
    return result


def plot_learning_curve(per_class, accuracy: dict, chance: float | None = None, title=None):
    """Held-out accuracy against labelled images per class, one line per method (``accuracy[method]`` a list).

    Log-scaled x axis with a tick at each measured size; a dotted line marks ``chance``.
    """
    import matplotlib.pyplot as plt

    from course_utils import plots

    fig, ax = plt.subplots(figsize=(min(6.4, plots.PAGE_WIDTH), 3.4))
    markers = dict(zip(TRANSFER_METHODS, "osD"))
    colours = dict(zip(TRANSFER_METHODS, ["#D55E00", "#0072B2", "#009E73"]))  # Okabe-Ito
    for method, values in accuracy.items():
        ax.plot(per_class, values, marker=markers.get(method, "o"), color=colours.get(method), label=method)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(list(per_class), [str(k) for k in per_class])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    ax.set_title(title or "learning curve: few labels, three starts", fontsize=10)
    fig.tight_layout()
    return fig


def _main(argv=None) -> int:
    """``python -m course_utils.recognition pretrain-source [--out PATH]``: regenerate the source-task weights."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m course_utils.recognition",
        description="Week 2 tools: regenerate the shipped source-task weights.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pretrain = commands.add_parser("pretrain-source", help="pretrain MobileNetV2 on the source shapes, save the base")
    pretrain.add_argument("--out", default=None, help=f"weights file (default: {SOURCE_WEIGHTS})")
    args = parser.parse_args(argv)
    from course_utils import config

    config.setup("cpu", seed=0)
    result = pretrain_source(args.out)
    if result["sha256"] != SOURCE_SHA256:
        print("The hash differs from SOURCE_SHA256 in course_utils/recognition.py: update it if you ship this file.")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
