"""Training a segmenter: compiling, fitting, predicting masks, and the paired augmentations (``tf.data``, elastic)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from course_utils.config import distribute
from course_utils.models import fit_quietly
from course_utils.segmentation.losses import CrossEntropyDiceLoss, DiceLoss
from course_utils.segmentation.metrics import DiceScore, MeanIoU, predicted_labels


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


def augment_pair(image, mask, seed, flips: bool = True, turns: bool = True, colour: float = 0.1):
    """Randomly transform one image and its mask identically (TensorFlow, usable in ``tf.data``).

    Geometric changes (left-right and up-down flips, quarter turns: they never
    blur or invent pixels, so the mask stays exact) are applied to the image and
    the mask together; brightness and contrast changes of up to ``colour`` to the
    image only. ``seed`` is a shape-(2,) integer tensor (stateless random ops:
    the same seed, the same transformation). Square images are needed for turns.
    ``mask`` may be (H, W) or (H, W, 1); it keeps its shape and dtype.
    """
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


def elastic_pair(image, mask, rng: np.random.Generator, grid: int = 3, std: float = 10.0):
    """Bend one image and its mask the same way: the original U-Net's elastic deformation (Ronneberger et al., 2015).

    A random displacement (Gaussian, ``std`` pixels, in x and in y) is drawn for each point of a coarse ``grid`` x
    ``grid`` lattice spread over the image, interpolated to every pixel with cubic splines, and the image is read at
    the displaced positions (linear interpolation, reflected at the border). The mask is read at the nearest pixel,
    so it keeps exact class ids. NumPy, for showing it; returns ``(image, mask)`` in their shapes and dtypes.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or mask.shape not in (image.shape[:2], (*image.shape[:2], 1)):
        raise ValueError(f"need an (H, W, C) image and an (H, W) mask of its size, not {image.shape} and {mask.shape}")
    if grid < 2 or not std >= 0:
        raise ValueError(f"need a grid of at least 2 points a side and a std of 0 or more, not {grid} and {std}")
    height, width = mask.shape[:2]
    coarse = rng.normal(0.0, std, size=(2, grid, grid))
    shift = [ndimage.zoom(c, (height / grid, width / grid), order=3) for c in coarse]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    where = np.stack([rows + shift[0], cols + shift[1]])
    bent = np.stack(
        [ndimage.map_coordinates(image[..., c], where, order=1, mode="reflect") for c in range(image.shape[-1])],
        axis=-1,
    )
    mask_2d = mask.reshape(height, width)
    bent_mask = ndimage.map_coordinates(mask_2d, where, order=0, mode="reflect").reshape(mask.shape)
    return bent.astype(image.dtype), bent_mask.astype(mask.dtype)
