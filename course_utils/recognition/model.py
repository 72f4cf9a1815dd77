"""The week's models: a MobileNetV2 classifier (from scratch, ImageNet or the source task) and a small CNN.

:func:`mobilenetv2_classifier` builds a classifier on a MobileNetV2 base, from
scratch (``weights=None``), from ImageNet weights or from the shipped source-task
weights, with a frozen or trainable base and a small head. When the ImageNet
weights cannot be fetched (no network), it says so in one line and continues
from scratch; the choice it made is printed and kept (:func:`weights_used`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import numbers
import socket
import weakref

import keras
import numpy as np
from keras import layers

from course_utils.data import check_image_size, check_integer
from course_utils.recognition.blocks import residual_blocks
from course_utils.recognition.source_weights import SOURCE_RECIPE, check_source_weights

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

DOWNLOAD_TIMEOUT = 20
"""Seconds to wait for the weight server before giving up (a firewall that drops packets would otherwise hang)."""

OFFLINE_MESSAGE = "ImageNet weights are not reachable from this machine: training from scratch."
"""What :func:`mobilenetv2_classifier` prints when the ImageNet weights cannot be fetched."""

_WEIGHTS_USED: weakref.WeakKeyDictionary[keras.Model, str] = weakref.WeakKeyDictionary()
"""The weights each model built by :func:`mobilenetv2_classifier` started from, read by :func:`weights_used`.

Kept beside the models rather than on them, so that nothing private is set on a Keras object; an entry
goes when its model does."""

_log = logging.getLogger(__name__)


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
    layer ``"features"`` -> dropout (a rate in ``[0, 1)``) -> optional hidden dense
    ReLU layers (``hidden_units``: a positive int for one layer, or a sequence such
    as ``(256, 64)``) -> a softmax layer ``"predictions"`` with ``num_classes`` outputs.

    ``weights`` is ``None`` (random initialisation), ``"imagenet"`` or
    ``"source"``: the base pretrained offline on the source task of other shapes
    (:func:`pretrain_source`), loaded from the file that ships with the package
    after checking its SHA-256 (:func:`check_source_weights`; alpha 0.35 only).
    If the ImageNet weights cannot be fetched, one line says so and the base
    starts from random weights instead; nothing is raised. Either way one line
    reports the choice, and :func:`weights_used` returns it (``"imagenet"``,
    ``"source"`` or ``"none"``).

    ``trainable_base=False`` freezes the base (only the head learns). A frozen base
    runs its BatchNormalization layers in inference mode, so they keep the
    pretrained statistics; :func:`fine_tune` keeps them frozen when it unfreezes
    the top of the base. (Calling the base with ``training=False``, the Keras 2
    recipe, would not do it: ``fit`` overrides that argument in Keras 3,
    keras-team/keras#20285.) ``bn_momentum`` sets the momentum of the base's
    BatchNormalization layers: by default Keras' 0.999 for pretrained weights and
    0.9 from scratch, where with 0.999 the moving statistics would need thousands of
    steps to forget their initial values. ``zero_init_residual=True`` (from scratch
    only) sets the scale (gamma) of the last BatchNormalization of every block with
    a skip connection to zero: each such block starts as the identity, and a deep
    network from random weights learns faster (the "zero gamma" trick of Goyal et
    al., 2017).

    ``input_size`` and ``alpha`` follow Keras: any input of at least 32x32 pixels
    and any positive ``alpha`` from scratch. With ``weights="imagenet"``, ``alpha``
    must be one of :data:`ALPHAS` (:data:`WIDE_ALPHAS` at 224x224 only, among the
    published sizes); an input that is not a square of :data:`IMAGENET_SIZES` pixels
    gets the weights of the 224x224 model (Keras warns, and the summary line says
    so). Other sizes and widths, an unknown ``weights`` or ``pooling``,
    ``zero_init_residual`` with pretrained weights, and a ``dropout`` or
    ``hidden_units`` of the wrong kind raise ``ValueError``.
    """
    alpha = _validate_weights_and_alpha(weights, alpha)
    num_classes = _validate_head_options(num_classes, pooling, dropout, zero_init_residual, weights)
    hidden = _hidden_layer_sizes(hidden_units)
    height, width = check_input_size(input_size, weights)
    _refuse_wide_alpha_below_224(weights, alpha, height, width)
    shape = (height, width, 3)
    base, used = _base_network(shape, alpha, weights, pooling, verbose)
    _set_up_base(base, used, bn_momentum, zero_init_residual, trainable_base)
    inputs = keras.Input(shape, name="image")
    outputs = _head(base(_preprocess(inputs, augment)), dropout, hidden, num_classes)
    model = keras.Model(inputs, outputs, name=name or f"mobilenetv2_{alpha:g}_{used}")
    _WEIGHTS_USED[model] = used
    if verbose:
        _print_summary(model, alpha, height, width, used, trainable_base)
    return model


def weights_used(model: keras.Model) -> str:
    """``"imagenet"``, ``"source"`` or ``"none"``: the weights a model from :func:`mobilenetv2_classifier`
    started from (``"none"`` for any other model).
    """
    try:
        return _WEIGHTS_USED.get(model, "none")
    except TypeError:  # an object that cannot be weakly referenced is no model built here
        return "none"


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


# --- checking the arguments ------------------------------------------------------------------------


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
    height, width = check_image_size(input_size, "input_size")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"MobileNetV2 needs inputs of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {height}x{width}")
    return height, width


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


def _refuse_wide_alpha_below_224(weights, alpha, height, width) -> None:
    """Refuse ImageNet weights of a :data:`WIDE_ALPHAS` width at a published size other than 224x224 (no such file)."""
    if weights == "imagenet" and alpha in WIDE_ALPHAS and height == width and height in IMAGENET_SIZES[:-1]:
        raise ValueError(
            f"ImageNet weights for MobileNetV2 at alpha 1.3 and 1.4 are published for 224x224 inputs only; got "
            f"alpha {alpha:g} at {height}x{width} (use input_size=224, or an alpha of 1.0 or less)"
        )


# --- the base and the head -------------------------------------------------------------------------


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
            _log.debug("ImageNet weights not fetched: %s", failure)
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


def _imagenet_base(shape, alpha, pooling):
    """The MobileNetV2 base with ImageNet weights, or ``None`` and the reason if they cannot be fetched.

    Keras' own "Downloading data from ..." line is kept out of the notebook: the
    caller prints one line saying what happened. Keras downloads with
    ``urlretrieve``, which has no timeout of its own, hence the socket default.
    """
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


def _set_up_base(base, used, bn_momentum, zero_init_residual, trainable_base) -> None:
    """Set the base's BatchNormalization momentum, zero-init its residual blocks if asked, and freeze it or not.

    The default momentum is 0.9 from scratch (0.999 would need thousands of steps to
    forget the initial statistics, and a short run would then predict badly at test
    time) and Keras' 0.999 for pretrained weights. Zero-initialised skip blocks start
    as the identity, so the network behaves at first like a much shallower one;
    training makes their scales grow as the blocks become useful.
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
