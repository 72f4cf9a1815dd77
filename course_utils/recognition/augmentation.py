"""Augmentation that keeps the class of the synthetic shapes: the symmetries of a square."""

from __future__ import annotations

import keras
from keras import layers, ops


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
