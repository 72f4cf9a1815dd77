"""Week 4, image segmentation: U-Net, its losses and metrics, paired augmentation, mask loaders, figures.

* :func:`unet` builds a U-Net (Ronneberger et al., 2015): an encoder of
  convolution blocks and max pooling, a bottleneck, a decoder of transposed
  convolutions, skip connections (concatenation, addition or none, for the
  ablation) and a 1x1 classification layer: sigmoid with one channel for
  binary masks, softmax over ``num_classes`` channels otherwise.
* Losses and metrics, written with ``keras.ops`` so they work in ``compile``
  and on plain NumPy arrays: :func:`dice_coefficient`, :class:`DiceLoss`,
  :class:`CrossEntropyDiceLoss` (binary or categorical cross-entropy plus Dice),
  :class:`MeanIoU`, :class:`ClassIoU`, :class:`DiceScore`; and the NumPy
  evaluation helpers :func:`per_class_iou` and :func:`mean_iou`.
* :func:`augment_pair` / :func:`make_segmentation_dataset`: random flips,
  quarter turns and colour changes applied identically to an image and its mask
  (colour changes to the image only).
* :func:`load_segmentation`: real data, either a folder of images with a folder
  of masks paired by file name, or a TensorFlow Datasets set
  (``"tfds:oxford_iiit_pet"``).
* :func:`plot_segmentation` and :func:`error_map`: figures (image, true mask,
  prediction, errors).

Mask conventions: an integer mask holds one class id per pixel, ``0`` for the
background. Models predict probabilities: shape ``(..., 1)`` (the foreground
probability) for binary masks, ``(..., num_classes)`` otherwise. Binary masks
count as two classes (background and foreground) for the IoU metrics.

TensorFlow and tensorflow_datasets are imported inside the functions that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from course_utils.config import distribute, replica_share
from course_utils.data import IMAGE_EXTENSIONS, check_image_size, check_integer, read_rgb, tfds_name
from course_utils.models import fit_quietly

SKIP_MODES = ("concat", "add", "none")

# ----------------------------------------------------------------------------------- the model


def conv_block(
    x, filters: int, batch_norm: bool = True, dropout: float = 0.0, residual: bool = False, name: str = "block"
):
    """Two 3x3 convolutions (each followed by batch norm when asked, then ReLU), then dropout.

    Batch norm uses a momentum of 0.9 (Keras: 0.99) so that its running averages,
    used at prediction time, settle within the few hundred steps of a short training.
    With ``residual`` the block's input, projected by a 1x1 convolution to
    ``filters`` channels, is added before the second ReLU (a ResNet-style block).
    """
    shortcut = x
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
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

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = conv_block(
            x, base_filters * 2**level, batch_norm, dropout if level == depth - 1 else 0.0, residual, name=f"enc{level}"
        )
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, base_filters * 2**depth, batch_norm, dropout, residual, name="bottleneck")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        if skip == "concat":
            x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        elif skip == "add":
            x = layers.Add(name=f"skip{level}")([x, skips[level]])
        x = conv_block(x, filters, batch_norm, 0.0, residual, name=f"dec{level}")
    activation = "sigmoid" if num_classes == 1 else "softmax"
    # float32 head: under the gpu profile's mixed_float16 policy the probabilities stay float32.
    outputs = layers.Conv2D(num_classes, 1, activation=activation, dtype="float32", name="head")(x)
    if name is None:
        name = ("res" if residual else "") + "unet" + ("" if skip == "concat" else f"_skip_{skip}")
    return keras.Model(inputs, outputs, name=name)


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


# ------------------------------------------------------------------------- losses and metrics


def _align(y_true, y_pred):
    """Truth as class ids (..., H, W), prediction as (..., H, W, C).

    Accepts truth with a trailing channel axis of 1, and a binary prediction
    whose channel axis was squeezed away (Keras does that to one-channel
    predictions before calling a loss function).
    """
    y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
    if len(y_true.shape) == len(y_pred.shape):
        if y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        else:
            y_pred = ops.expand_dims(y_pred, -1)
    return y_true, y_pred


def _one_hot_pair(y_true, y_pred):
    """(true, predicted) as float tensors of the same shape (..., C): one-hot truth, probabilities.

    ``y_true`` holds class ids, shape (..., H, W) or (..., H, W, 1). For a one-channel
    (binary) prediction, the truth is the 0/1 foreground mask in one channel.
    """
    y_true, y_pred = _align(y_true, y_pred)
    y_pred = ops.cast(y_pred, "float32")
    channels = y_pred.shape[-1]
    if channels == 1:
        return ops.cast(ops.expand_dims(y_true, -1) > 0, "float32"), y_pred
    return ops.one_hot(ops.cast(y_true, "int32"), channels, dtype="float32"), y_pred


def dice_coefficient(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice coefficient, ``(2 |T.P| + s) / (|T| + |P| + s)`` per class, averaged over classes.

    ``y_true``: class ids, (n, H, W) or (n, H, W, 1). ``y_pred``: probabilities,
    (n, H, W, 1) for a binary mask (only the foreground is scored) or
    (n, H, W, C) (all C classes, background included, are scored and averaged).
    Sums run over the whole batch. Hard 0/1 predictions give the usual Dice
    score. With ``smooth=0`` a class absent from both truth and prediction scores
    1 (nothing to get wrong), never a division by zero.
    """
    t, p = _one_hot_pair(y_true, y_pred)
    axes = tuple(range(len(t.shape) - 1))
    intersection = ops.sum(t * p, axis=axes)
    total = ops.sum(t, axis=axes) + ops.sum(p, axis=axes)
    dice = (2.0 * intersection + smooth) / ops.maximum(total + smooth, 1e-7)
    dice = ops.where(total + smooth > 0, dice, ops.ones_like(dice))
    return ops.mean(dice)


@keras.saving.register_keras_serializable(package="course_utils")
class DiceLoss(keras.losses.Loss):
    """``1 - dice_coefficient``: every class weighs the same, however few pixels it has."""

    def __init__(self, smooth: float = 1.0, name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        # One number for the whole batch: under tf.distribute, each replica's share.
        return replica_share(1.0 - dice_coefficient(y_true, y_pred, self.smooth))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="course_utils")
class CrossEntropyDiceLoss(keras.losses.Loss):
    """Pixel-wise cross-entropy plus ``dice_weight`` times the Dice loss ("BCE + Dice" for binary masks).

    Binary cross-entropy for a one-channel prediction, categorical cross-entropy
    on class ids otherwise. ``dice_weight=0`` leaves the cross-entropy alone (the
    ``"ce"`` of :func:`compile_segmenter`).
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0, name: str = "ce_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.smooth = smooth

    def call(self, y_true, y_pred):
        loss = cross_entropy(y_true, y_pred)
        if self.dice_weight:
            loss = loss + self.dice_weight * (1.0 - dice_coefficient(y_true, y_pred, self.smooth))
        # One number for the whole batch: under tf.distribute, each replica's share.
        return replica_share(loss)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "smooth": self.smooth}


def cross_entropy(y_true, y_pred):
    """Mean pixel-wise cross-entropy: binary for (..., 1) predictions, categorical otherwise."""
    t, p = _one_hot_pair(y_true, y_pred)
    p = ops.clip(p, 1e-7, 1.0 - 1e-7)
    if p.shape[-1] == 1:
        return -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    return -ops.mean(ops.sum(t * ops.log(p), axis=-1))


def dice_loss(y_true, y_pred):
    """Function form of :class:`DiceLoss` (smooth 1)."""
    return 1.0 - dice_coefficient(y_true, y_pred)


def bce_dice_loss(y_true, y_pred):
    """Function form of :class:`CrossEntropyDiceLoss` (weight 1, smooth 1)."""
    return cross_entropy(y_true, y_pred) + 1.0 - dice_coefficient(y_true, y_pred)


def predicted_labels(y_pred, threshold: float = 0.5):
    """Class ids from probabilities: ``p > threshold`` for one channel, the arg-max otherwise."""
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] == 1:
        return ops.cast(y_pred[..., 0] > threshold, "int32")
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


class _ConfusionMetric(keras.metrics.Metric):
    """Accumulates a (num_classes x num_classes) confusion matrix of hard predictions over batches."""

    def __init__(self, num_classes: int, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="float32", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _align(y_true, y_pred)
        truth = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes, dtype="float32")
        guess = ops.one_hot(ops.reshape(predicted_labels(y_pred), (-1,)), self.num_classes, dtype="float32")
        self.matrix.assign_add(ops.matmul(ops.transpose(truth), guess))

    def reset_state(self):
        self.matrix.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def _per_class(self, double_intersection: bool):
        inter = ops.diagonal(self.matrix)
        truth, guess = ops.sum(self.matrix, axis=1), ops.sum(self.matrix, axis=0)
        if double_intersection:  # Dice
            num, den = 2.0 * inter, truth + guess
        else:  # IoU
            num, den = inter, truth + guess - inter
        return num / ops.maximum(den, 1.0), den > 0

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="course_utils")
class MeanIoU(_ConfusionMetric):
    """Mean intersection over union of hard predictions, accumulated over the batches of an epoch.

    IoU of class k = pixels predicted k and truly k / pixels predicted k or truly k.
    Classes that appear neither in the truth nor in the predictions are left out
    of the mean. Use ``num_classes=2`` for a one-channel (binary) model.
    """

    def __init__(self, num_classes: int, name: str = "mean_iou", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        iou, present = self._per_class(False)
        present = ops.cast(present, "float32")
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)


@keras.saving.register_keras_serializable(package="course_utils")
class ClassIoU(_ConfusionMetric):
    """IoU of one class (``class_id``), accumulated over the batches; NaN while the class has not appeared."""

    def __init__(self, num_classes: int, class_id: int, name: str | None = None, dtype=None):
        super().__init__(num_classes, name=name or f"iou_{class_id}", dtype=dtype)
        if not 0 <= class_id < num_classes:
            raise ValueError(f"class_id must be in 0..{num_classes - 1}, got {class_id}")
        self.class_id = int(class_id)

    def result(self):
        iou, present = self._per_class(False)
        return ops.where(present[self.class_id], iou[self.class_id], float("nan"))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


@keras.saving.register_keras_serializable(package="course_utils")
class DiceScore(_ConfusionMetric):
    """Dice score of hard predictions averaged over the foreground classes (1 .. num_classes-1) that appear."""

    def __init__(self, num_classes: int = 2, name: str = "dice", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        dice, present = self._per_class(True)
        present = ops.cast(present[1:], "float32")
        return ops.sum(dice[1:] * present) / ops.maximum(ops.sum(present), 1.0)


def confusion(y_true, y_pred_labels, num_classes: int) -> np.ndarray:
    """Confusion matrix of two integer label arrays: rows true class, columns predicted class (NumPy)."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred_labels = np.asarray(y_pred_labels).ravel().astype(np.int64)
    if y_true.shape != y_pred_labels.shape:
        raise ValueError(f"true and predicted masks differ in size: {y_true.size} and {y_pred_labels.size} pixels")
    for what, values in (("true", y_true), ("predicted", y_pred_labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{what} mask has values outside 0..{num_classes - 1}: {np.unique(values)}")
    return np.bincount(y_true * num_classes + y_pred_labels, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_iou(y_true, y_pred_labels, num_classes: int) -> np.ndarray:
    """IoU of each class between two integer masks (any shape); NaN for a class absent from both."""
    matrix = confusion(y_true, y_pred_labels, num_classes).astype(float)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(y_true, y_pred_labels, num_classes: int) -> float:
    """Mean of :func:`per_class_iou` over the classes present in the truth or the prediction."""
    return float(np.nanmean(per_class_iou(y_true, y_pred_labels, num_classes)))


def compile_segmenter(
    model: keras.Model, loss="ce", learning_rate: float = 3e-3, steps: int | None = None, strategy=None
):
    """Compile ``model`` with Adam (cosine decay over ``steps`` when given) and the segmentation metrics.

    ``loss``: ``"ce"`` (cross-entropy), ``"dice"``, ``"ce+dice"``, or any Keras loss.
    Metrics: mean IoU, plus Dice for a binary (one-channel) model. Compiles under
    ``strategy.scope()`` (default: the model's own strategy, see
    :func:`course_utils.config.distribute`).
    """
    strategy, _ = distribute(model, None, strategy)
    channels = model.output_shape[-1]
    num_classes = 2 if channels == 1 else channels
    losses = {
        "ce": CrossEntropyDiceLoss(dice_weight=0.0, name="cross_entropy"),
        "dice": DiceLoss(),
        "ce+dice": CrossEntropyDiceLoss(),
    }
    loss = losses.get(loss, loss) if isinstance(loss, str) else loss
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps) if steps else learning_rate
    with strategy.scope():
        metrics = [MeanIoU(num_classes)] + ([DiceScore(2)] if channels == 1 else [])
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)
    return model


def fit_segmenter(
    model: keras.Model,
    images,
    masks,
    epochs: int,
    loss="ce",
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    augment: bool = False,
    seed: int = 0,
    validation=None,
    strategy=None,
):
    """Compile ``model`` (:func:`compile_segmenter`, cosine decay over the whole run) and fit it quietly.

    ``masks`` are class ids (binary 0/1 masks for a one-channel model).
    ``augment`` trains on :func:`make_segmentation_dataset` with paired
    augmentation. ``validation``: optional ``(images, masks)``. ``strategy``: a
    ``tf.distribute`` strategy the model was built under (default: the model's
    own); ``batch_size`` is per replica. Returns ``(history, seconds)``.
    """
    strategy, batch_size = distribute(model, batch_size, strategy)
    steps = max(1, epochs * int(np.ceil(len(images) / batch_size)))
    compile_segmenter(model, loss=loss, learning_rate=learning_rate, steps=steps, strategy=strategy)
    if augment:
        data = make_segmentation_dataset(images, masks, batch_size, shuffle=True, augment=True, seed=seed)
        return fit_quietly(model, data, epochs=epochs, validation_data=validation)
    return fit_quietly(model, images, masks, epochs=epochs, batch_size=batch_size, validation_data=validation)


def predict_masks(model: keras.Model, images, batch_size: int = 128) -> np.ndarray:
    """Predicted class ids (n, H, W) uint8 for a batch of images (threshold 0.5 for a binary model).

    Calls the model directly on each batch instead of ``model.predict``: every
    new model gets its own ``predict`` function, so a chapter that trains and
    scores several U-Nets in a row made TensorFlow warn "triggered tf.function
    retracing" into its output.
    """
    images = np.asarray(images)
    labels = [
        np.asarray(predicted_labels(model(images[i : i + batch_size], training=False))).astype(np.uint8)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(labels) if labels else np.zeros(images.shape[:3], np.uint8)


# ------------------------------------------------------------------------------- augmentation


def augment_pair(image, mask, seed, flips: bool = True, turns: bool = True, colour: float = 0.1):
    """Randomly transform one image and its mask identically (TensorFlow, usable in ``tf.data``).

    Geometric changes (left-right and up-down flips, quarter turns: they never
    blur or invent pixels, so the mask stays exact) are applied to the image and
    the mask together; brightness and contrast changes of up to ``colour`` to the
    image only. ``seed`` is a shape-(2,) integer tensor (stateless random ops:
    the same seed, the same transformation). Square images are needed for turns.
    ``mask`` may be (H, W) or (H, W, 1); it keeps its shape and dtype.
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    mask = tf.convert_to_tensor(mask)
    squeeze = mask.shape.rank == 2
    m = mask[..., None] if squeeze else mask
    channels = image.shape[-1]
    both = tf.concat([tf.cast(image, tf.float32), tf.cast(m, tf.float32)], axis=-1)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    if flips:
        both = tf.image.stateless_random_flip_left_right(both, seeds[0])
        both = tf.image.stateless_random_flip_up_down(both, seeds[1])
    if turns:
        k = tf.random.stateless_uniform((), seeds[2], 0, 4, dtype=tf.int32)
        both = tf.image.rot90(both, k)
    image_out, mask_out = both[..., :channels], both[..., channels:]
    if colour:
        image_out = tf.image.stateless_random_brightness(image_out, colour, seeds[3])
        image_out = tf.image.stateless_random_contrast(image_out, 1.0 - colour, 1.0 + colour, seeds[4])
        image_out = tf.clip_by_value(image_out, 0.0, 1.0)
    mask_out = tf.cast(tf.round(mask_out), mask.dtype)
    if squeeze:
        mask_out = mask_out[..., 0]
    return tf.cast(image_out, image.dtype), mask_out


def make_segmentation_dataset(
    images, masks, batch_size: int = 32, shuffle: bool = False, augment: bool = False, seed: int = 0
):
    """A ``tf.data.Dataset`` of (image batch, mask batch) for ``fit``: cached, shuffled, paired-augmented, prefetched.

    ``augment=True`` applies :func:`augment_pair` with a new random draw for every
    example in every epoch (reproducible from ``seed``). Use it for training only.
    """
    import tensorflow as tf

    images, masks = np.asarray(images, dtype=np.float32), np.asarray(masks)
    if images.ndim != 4:
        raise ValueError(f"images must be (n, height, width, channels), got shape {images.shape}")
    if masks.shape[:3] != images.shape[:3]:
        raise ValueError(f"masks must match the images in number and size: images {images.shape}, masks {masks.shape}")
    dataset = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.int32))).cache()
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment:
        counter = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, counter)).map(
            lambda pair, s: augment_pair(pair[0], pair[1], s), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------ loaders


@dataclass(frozen=True, eq=False)
class SegmentationData:
    """Images (n, H, W, 3) float32 in [0, 1], masks (n, H, W) uint8 class ids, the class names, and the file stems."""

    images: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def binary_masks(self) -> np.ndarray:
        """Object-versus-background masks (every class but 0 is "object"), uint8 of 0/1, as ``Scenes`` has."""
        return (self.masks > 0).astype(np.uint8)

    def subset(self, index) -> SegmentationData:
        """The images selected by ``index`` (integer array, boolean mask or slice)."""
        names = tuple(np.asarray(self.names, dtype=object)[index]) if self.names else ()
        return SegmentationData(self.images[index], self.masks[index], self.class_names, names)


def split_data(data, valid_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0):
    """Shuffle ``data`` (``SegmentationData`` or ``Scenes``) and cut it into (train, validation, test).

    Each part gets at least one image; fewer than three images, or fractions that leave no training
    images, are an error naming the counts.
    """
    n = len(data)
    n_valid, n_test = max(1, round(valid_fraction * n)), max(1, round(test_fraction * n))
    if n - n_valid - n_test < 1:
        raise ValueError(
            f"{n} image(s) cannot be split into training, validation ({valid_fraction:.0%}) and test "
            f"({test_fraction:.0%}) parts with at least one image each: add images"
        )
    order = np.random.default_rng(seed).permutation(n)
    return (
        data.subset(np.sort(order[n_valid + n_test :])),
        data.subset(np.sort(order[:n_valid])),
        data.subset(np.sort(order[n_valid : n_valid + n_test])),
    )


TFDS_PRESETS = {
    # The pets' trimaps: 1 pet, 2 outline, 3 background; mapped to 0 background, 1 pet, 2 outline.
    "oxford_iiit_pet": {
        "image_key": "image",
        "mask_key": "segmentation_mask",
        "mask_map": {3: 0, 1: 1, 2: 2},
        "class_names": ("background", "pet", "outline"),
    },
}


def load_segmentation(
    source,
    masks=None,
    image_size=(64, 64),
    class_names=None,
    split: str = "train",
    max_examples: int | None = None,
    mask_map=None,
) -> SegmentationData:
    """Load images with their masks, from folders or from TensorFlow Datasets, resized to ``image_size``.

    * **Folders**: ``source`` is the folder of images and ``masks`` the folder of
      masks; without ``masks``, ``source`` must hold the sub-folders ``images/``
      and ``masks/``. An image and its mask share the file name without the
      suffix (``cat_01.jpg`` and ``cat_01.png``). Masks are single-channel images
      of class ids (0 background); use PNG (lossless). Errors name the file: an
      image without a mask, a mask without an image, an image and mask of
      different sizes, a mask value that is not a class.
    * **TensorFlow Datasets**: ``source="tfds:<name>"``, e.g. ``"tfds:oxford_iiit_pet"``
      (downloads on first use: for Colab), with ``split`` and ``max_examples``.
      Known sets (:data:`TFDS_PRESETS`) come with their mask mapping and class names.

    ``class_names`` fixes the classes (default: the lines of ``classes.txt`` in
    ``source`` if there is one, background first, else ``class0``, ``class1``, ...
    up to the largest value found). ``mask_map`` (dict stored value -> class id) recodes
    mask values first, e.g. ``{255: 1}`` for black-and-white masks. Images are
    resized bilinearly, masks by nearest neighbour (no invented classes at edges).
    """
    height, width = check_image_size(image_size)
    if max_examples is not None:
        max_examples = check_integer(max_examples, "max_examples")
    if (name := tfds_name(source)) is not None:
        return _load_tfds(name, (height, width), class_names, split, max_examples, mask_map)
    root = Path(source)
    image_dir, mask_dir = _pair_folders(root, masks)
    if class_names is None and masks is None:
        class_names = _names_from_file(root / "classes.txt")
    pairs = _match_pairs(image_dir, mask_dir, max_examples)
    images, raw_masks = _read_pairs(pairs, height, width)
    mask_array, names = _class_ids(raw_masks, [mask_path for _, _, mask_path in pairs], class_names, mask_map)
    return SegmentationData(images, mask_array, names, tuple(stem for stem, _, _ in pairs))


def _pair_folders(root: Path, masks) -> tuple[Path, Path]:
    """The image and mask folders, ``root/images`` and ``root/masks`` unless ``masks`` is given; both must exist."""
    if masks is None:
        image_dir, mask_dir = root / "images", root / "masks"
        if not (image_dir.is_dir() and mask_dir.is_dir()):
            raise FileNotFoundError(
                f"{root} should hold the folders 'images' and 'masks' (or pass masks=<mask folder>); "
                "for a TensorFlow Datasets set write source='tfds:<name>'"
            )
    else:
        image_dir, mask_dir = root, Path(masks)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"Folder not found: {folder}")
    return image_dir, mask_dir


def _names_from_file(names_file: Path):
    """The class names in ``names_file`` (one a line, background first, blank lines skipped), or ``None`` if absent."""
    if not names_file.is_file():
        return None
    return [line.strip() for line in names_file.read_text().splitlines() if line.strip()]


def _image_files(folder: Path) -> dict[str, Path]:
    """The image files of ``folder`` by stem, hidden ones skipped; a repeated stem would make the pairing ambiguous."""
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in files:
                raise ValueError(f"Two files named {p.stem!r} in {folder}: {files[p.stem].name} and {p.name}")
            files[p.stem] = p
    return files


def _match_pairs(image_dir: Path, mask_dir: Path, max_examples) -> list[tuple[str, Path, Path]]:
    """``(stem, image path, mask path)`` of the first ``max_examples`` images by stem; every file must have its partner.

    An image without a mask or a mask without an image is an error naming the
    file, rather than a silently smaller data set.
    """
    image_files, mask_files = _image_files(image_dir), _image_files(mask_dir)
    if not image_files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}")
    for stem, path in image_files.items():
        if stem not in mask_files:
            raise FileNotFoundError(f"No mask for image {path}: expected a file named {stem}.png in {mask_dir}")
    orphans = sorted(set(mask_files) - set(image_files))
    if orphans:
        raise ValueError(f"Mask without an image: {mask_files[orphans[0]]} (no {orphans[0]}.* in {image_dir})")
    return [(stem, image_files[stem], mask_files[stem]) for stem in sorted(image_files)[:max_examples]]


def _read_pairs(pairs, height: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The resized images, float32 ``(n, height, width, 3)`` in ``[0, 1]``, and the resized masks of ``pairs``."""
    images = np.empty((len(pairs), height, width, 3), dtype=np.float32)
    raw_masks = []
    for i, (_, image_path, mask_path) in enumerate(pairs):
        images[i], mask_array = _read_pair(image_path, mask_path, height, width)
        raw_masks.append(mask_array)
    return images, raw_masks


def _read_pair(image_path: Path, mask_path: Path, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (bilinear) and its mask (nearest neighbour: no invented classes at edges), resized, of equal sizes.

    Any failure to read either file is a ``ValueError`` naming both files.
    """
    from PIL import Image

    try:
        image = read_rgb(image_path)
        original = image.size
        image_array = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float32) / 255.0
        mask_size, mask_array = _read_mask(mask_path, height, width)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"Cannot read {image_path} or {mask_path}: {type(error).__name__}: {error}") from error
    if mask_size != original:
        raise ValueError(
            f"Size mismatch: image {image_path} is {original[0]}x{original[1]} (width x height) "
            f"but its mask {mask_path} is {mask_size[0]}x{mask_size[1]}"
        )
    return image_array, mask_array


def _read_mask(mask_path: Path, height: int, width: int) -> tuple[tuple[int, int], np.ndarray]:
    """A mask's original ``(width, height)`` and its class ids resized; an RGB mask must be gray, not a colour image."""
    from PIL import Image

    with Image.open(mask_path) as mask:
        if mask.mode in ("RGB", "RGBA"):
            rgb = np.asarray(mask.convert("RGB"))
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise ValueError(
                    f"Mask {mask_path} is a colour image: save class ids as a single-channel (grayscale or palette) PNG"
                )
            mask = Image.fromarray(rgb[..., 0])
        return mask.size, np.asarray(mask.resize((width, height), Image.Resampling.NEAREST))


def _class_ids(masks, sources, class_names, mask_map):
    """Stack masks, recode them with ``mask_map`` and check every value is a class; errors name the source."""
    out = np.stack(masks).astype(np.int64) if masks else np.zeros((0, 1, 1), np.int64)
    if mask_map:
        recoded = np.full_like(out, -1)
        for stored, cls in mask_map.items():
            recoded[out == stored] = cls
        unknown = np.flatnonzero((recoded < 0).reshape(len(out), -1).any(axis=1))
        if unknown.size:
            i = unknown[0]
            values = sorted(int(v) for v in set(np.unique(out[i])) - set(mask_map))
            shown = f"{values[:10]}" + (f" and {len(values) - 10} more" if len(values) > 10 else "")
            raise ValueError(
                f"Mask {sources[i]} has values {shown} that mask_map does not map (it maps {sorted(mask_map)})"
            )
        out = recoded
    if class_names is None:
        top = int(out.max()) if out.size else 0
        class_names = tuple(f"class{k}" for k in range(max(top, 1) + 1))
    class_names = tuple(str(c) for c in class_names)
    bad = np.flatnonzero((out >= len(class_names)).reshape(len(out), -1).any(axis=1))
    if bad.size:
        i = bad[0]
        values = sorted(int(v) for v in np.unique(out[i]) if v >= len(class_names))
        raise ValueError(
            f"Mask {sources[i]} has values {values} outside the classes 0..{len(class_names) - 1} "
            f"({', '.join(class_names)})"
        )
    return out.astype(np.uint8), class_names


def _load_tfds(name, size, class_names, split, max_examples, mask_map):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError("Loading 'tfds:...' needs tensorflow-datasets: pip install tensorflow-datasets") from None
    import tensorflow as tf

    preset = TFDS_PRESETS.get(name, {})
    image_key, mask_key = preset.get("image_key", "image"), preset.get("mask_key", "segmentation_mask")
    mask_map = mask_map if mask_map is not None else preset.get("mask_map")
    class_names = class_names if class_names is not None else preset.get("class_names")
    dataset = tfds.load(name, split=split)
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    images, masks, sources = [], [], []
    for i, example in enumerate(dataset):
        if image_key not in example or mask_key not in example:
            raise KeyError(f"tfds set {name!r} has features {sorted(example)}, not {image_key!r} and {mask_key!r}")
        image = tf.image.resize(tf.cast(example[image_key], tf.float32) / 255.0, size, method="bilinear")
        mask = example[mask_key]
        if mask.shape.rank == 2:
            mask = mask[..., None]
        mask = tf.image.resize(mask, size, method="nearest")[..., 0]
        images.append(np.clip(image.numpy(), 0.0, 1.0))
        masks.append(mask.numpy())
        sources.append(f"tfds:{name}[{split}] example {i}")
    if not images:
        raise ValueError(f"tfds:{name} split {split!r} gave no examples")
    mask_array, names = _class_ids(masks, sources, class_names, mask_map)
    return SegmentationData(np.stack(images).astype(np.float32), mask_array, names, tuple(sources))


# ------------------------------------------------------------------------------------ figures

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


def overlay(image, mask, alpha: float = 0.5) -> np.ndarray:
    """The image with every non-background pixel tinted by its class colour."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    tinted = (1 - alpha) * image + alpha * colour_mask(mask)
    return np.where(np.asarray(mask)[..., None] > 0, tinted, image)


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

    Masks are drawn with one colour per class (:data:`MASK_COLOURS`, background
    black); see :func:`overlay` to tint an image with its mask instead.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    images, true_masks = np.asarray(images)[:n], np.asarray(true_masks)[:n]
    rows = [("image", lambda i: images[i]), ("true mask", lambda i: colour_mask(true_masks[i]))]
    if pred_masks is not None:
        pred_masks = np.asarray(pred_masks)[:n]
        rows += [
            ("prediction", lambda i: colour_mask(pred_masks[i])),
            ("errors", lambda i: error_map(true_masks[i], pred_masks[i])),
        ]
    from course_utils.plots import PAGE_WIDTH, TITLE_SIZE

    count = len(images)
    # At most the page's width (row labels included), so the labels are read at their size, not scaled down.
    cell = min(1.7, (PAGE_WIDTH - 0.3) / max(count, 1))
    split = cell < 1.0  # narrow panels: "93.9%" and "right" on two lines, or neighbouring labels touch
    below = (0.35 if split else 0.2) if pred_masks is not None else 0.0  # the "% right" under the error maps
    legend_rows = (2 if class_names is not None else 0) + (3 if pred_masks is not None else 0)
    fig, axes = plt.subplots(
        len(rows),
        count,
        squeeze=False,
        layout="constrained",
        figsize=(cell * count + 0.3, cell * len(rows) + below + (0.35 if title else 0.05) + 0.2 * min(legend_rows, 3)),
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    for r, (label, draw) in enumerate(rows):
        for i in range(count):
            ax = axes[r, i]
            ax.imshow(draw(i), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, fontsize=TITLE_SIZE + 1)
            if pred_masks is not None and r == 3:
                right = np.mean(pred_masks[i] == true_masks[i])
                ax.set_xlabel(f"{right:.1%}" + ("\n" if split else " ") + "right", fontsize=TITLE_SIZE)
    legends = []
    if class_names is not None:
        legends.append(
            (
                "classes",
                [
                    Patch(color=colour_mask(np.array([[k]]))[0, 0], label=str(name))
                    for k, name in enumerate(class_names)
                    if k > 0
                ],
            )
        )
    if pred_masks is not None:
        legends.append(
            ("errors", [Patch(facecolor=c, edgecolor="grey", label=name) for name, c in ERROR_COLOURS.items()])
        )
    for place, (name, handles) in zip(
        ("outside lower left", "outside lower right") if len(legends) > 1 else ("outside lower center",), legends
    ):
        fig.legend(
            handles=handles,
            loc=place,
            ncols=1 if name == "errors" else min(len(handles), 3),
            fontsize=TITLE_SIZE,
            title=name,
            title_fontsize=TITLE_SIZE,
            frameon=False,
        )
    if title:
        fig.suptitle(title)
    return fig


def iou_table(per_class: dict, class_names) -> str:
    """A text table: one row per model, one column per class, then the mean (NaN shown as '-')."""
    width = max(8, *(len(str(c)) for c in class_names))
    name_width = max(12, *(len(k) for k in per_class))
    lines = [f"{'':<{name_width}} " + " ".join(f"{str(c):>{width}}" for c in class_names) + f" {'mean':>{width}}"]
    for model_name, values in per_class.items():
        cells = " ".join(f"{'-':>{width}}" if np.isnan(v) else f"{v:>{width}.3f}" for v in values)
        lines.append(f"{model_name:<{name_width}} {cells} {np.nanmean(values):>{width}.3f}")
    return "\n".join(lines)
