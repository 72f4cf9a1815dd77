"""Training: box-aware augmentation, the ``tf.data`` pipeline and the fit loop."""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf
from keras import ops

from course_utils.config import distribute
from course_utils.detection.boxes import BOX_FORMAT
from course_utils.detection.data import DetectionData
from course_utils.models import fit_quietly


def augmenter(flip: bool = True, scale: float = 0.25, seed: int | None = None):
    """Box-aware augmentation from core Keras: horizontal flip and scale jitter.

    Returns a function ``(images, boxes, classes) -> (images, boxes, classes)``
    on a batch (NumPy or tensors, ``xyxy`` pixels, padded with -1). The scale
    jitter zooms in or out by up to ``scale`` (``keras.layers.RandomZoom``,
    aspect ratio kept, black border when zooming out). Afterwards boxes are clipped
    to the image, padding rows are restored to -1 and boxes that lost more than
    half of their area (pushed out of the frame) are dropped, so every box stays
    valid and tight on the visible part of its object.
    """
    layers = []  # float32 like the model, also under a mixed_float16 policy
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, bounding_box_format=BOX_FORMAT, dtype="float32"))
    if scale:
        layers.append(
            keras.layers.RandomZoom(
                (-scale, scale),
                seed=None if seed is None else seed + 1,
                fill_mode="constant",
                bounding_box_format=BOX_FORMAT,
                dtype="float32",
            )
        )

    def apply(images, boxes, classes):
        return _augment_batch(layers, images, boxes, classes)

    return apply


def _augment_batch(layers, images, boxes, classes):
    """Run ``layers`` on a batch with its boxes, then keep the boxes that stayed in the frame (see :func:`augmenter`).

    A small reference box at the centre (zoom keeps the centre in the frame) measures the
    zoom factor, so that we know each box's area before any clipping.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    images = ops.cast(images, "float32")
    boxes = ops.cast(boxes, "float32")
    classes = ops.cast(classes, "int32")
    n = ops.shape(boxes)[0]
    ref = ops.convert_to_tensor([[width / 2 - 4, height / 2 - 4, width / 2 + 4, height / 2 + 4]], "float32")
    ref = ops.broadcast_to(ref[None], (n, 1, 4))
    data = {
        "images": images,
        "bounding_boxes": {
            "boxes": ops.concatenate([boxes, ref], axis=1),
            "labels": ops.concatenate([classes, ops.zeros((n, 1), "int32")], axis=1),
        },
    }
    for layer in layers:
        data = layer(data, training=True)
    out = data["bounding_boxes"]["boxes"]
    zoom = (out[:, -1, 2] - out[:, -1, 0]) / 8.0  # lengths are multiplied by this
    out, keep = _clip_boxes(out[:, :-1], boxes, classes >= 0, zoom, height, width)
    return data["images"], out, ops.where(keep, classes, -1)


def _clip_boxes(out, boxes, valid, zoom, height: int, width: int):
    """The moved boxes ``out`` clipped to the image, -1 where a box lost more than half its area; and which are kept.

    ``boxes`` are the boxes before augmentation, ``zoom`` the factor each image's lengths were multiplied by.
    """
    area_zoomed = ops.prod(ops.maximum(boxes[..., 2:] - boxes[..., :2], 0.0), axis=-1) * (zoom**2)[:, None]
    limit = ops.convert_to_tensor([width, height, width, height], dtype=out.dtype)
    out = ops.clip(out, 0.0, limit)
    size = ops.maximum(out[..., 2:] - out[..., :2], 0.0)
    keep = valid & (size[..., 0] >= 1.0) & (size[..., 1] >= 1.0)
    keep = keep & (ops.prod(size, axis=-1) >= 0.5 * area_zoomed)
    return ops.where(keep[..., None], out, -1.0), keep


def make_train_dataset(
    data: DetectionData, batch_size: int = 16, augment: bool = True, seed: int = 0, scale: float = 0.25
):
    """A shuffled, batched ``tf.data.Dataset`` of ``(images, {"boxes", "classes"})`` with box-aware augmentation."""
    targets = data.targets()
    ds = tf.data.Dataset.from_tensor_slices((data.images, targets["boxes"], targets["classes"]))
    ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True).batch(batch_size, drop_remainder=True)
    if augment:
        apply = augmenter(flip=True, scale=scale, seed=seed)

        def augment_batch(images, boxes, classes):
            images, boxes, classes = apply(images, boxes, classes)
            return images, boxes, tf.cast(classes, tf.float32)

        ds = ds.map(augment_batch)
    ds = ds.map(lambda x, b, c: (x, {"boxes": b, "classes": c}))
    return ds.prefetch(2)


def fit_detector(
    model,
    data: DetectionData,
    epochs: int,
    batch_size: int = 16,
    augment: bool = True,
    seed: int = 0,
    validation: DetectionData | None = None,
    callbacks=None,
    strategy=None,
):
    """Fit ``model`` on ``data``; returns ``(history, seconds)``. Validation loss uses the unaugmented
    ``validation`` set.

    ``strategy``: a ``tf.distribute`` strategy the model was built (and compiled)
    under (default: the model's own, see :func:`course_utils.config.distribute`);
    ``batch_size`` is per replica.
    """
    _, batch_size = distribute(model, batch_size, strategy)
    val = None
    if validation is not None:
        val = tf.data.Dataset.from_tensor_slices((validation.images, validation.targets())).batch(batch_size)
    batches = make_train_dataset(data, batch_size, augment, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras' notes on input structure and shuffling
        return fit_quietly(model, batches, epochs=epochs, validation_data=val, callbacks=callbacks)
