"""Augmentation: the symmetries of a square, which keep the class of the synthetic shapes, and mixup, which
blends two images and their labels."""

from __future__ import annotations

import keras
from keras import layers, ops

from course_utils.data import check_integer


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


def mixup_batches(batches, num_classes: int, alpha: float = 0.2, seed=None):
    """Mixup (Zhang et al., 2018) on a ``tf.data`` stream of ``(images, integer labels)`` batches.

    Keras' ``MixUp`` layer blends each image with another of its batch:
    ``lam * x_i + (1 - lam) * x_j``, and its one-hot label the same way, with ``lam``
    drawn for each image from Beta(``alpha``, ``alpha``) (the paper's code draws one
    per batch). A small ``alpha`` keeps most blends close to one of the two images.
    The labels come out as class probabilities: train with categorical cross-entropy
    (``fit_with_warmup(..., soft_labels=True)``). Draws follow ``seed``, new ones
    every epoch.
    """
    num_classes = check_integer(num_classes, "num_classes", minimum=2)
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha > 0):
        raise ValueError(f"alpha must be a positive number (the Beta distribution's parameter), not {alpha!r}")
    blend = layers.MixUp(alpha=alpha, seed=seed)

    def mix(images, labels):
        one_hot = ops.one_hot(ops.reshape(labels, (-1,)), num_classes)
        mixed = blend({"images": images, "labels": one_hot}, training=True)
        return mixed["images"], mixed["labels"]

    return batches.map(mix)
