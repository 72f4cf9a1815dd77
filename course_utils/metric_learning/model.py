"""The embedding model: a small CNN encoder, a dense projection and unit normalisation; its classifier twin."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="course_utils")
class PerImageStandardization(layers.Layer):
    """Subtract each image's mean and divide by its standard deviation, channel by channel.

    The background of a scene sets the average colour of the image; removing it
    leaves the contrasts (edges, the outline of the shape) that tell the class.
    """

    def call(self, images):
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        std = ops.std(images, axis=(1, 2), keepdims=True)
        return (images - mean) / ops.maximum(std, 1e-3)


def embedding_model(
    input_shape=(32, 32, 3),
    embedding_dim: int = 32,
    filters=(16, 32, 64),
    batch_norm: bool = True,
    standardize: bool = True,
    name: str = "embedding",
) -> keras.Model:
    """A small CNN that maps an image to a unit-length vector of ``embedding_dim`` numbers.

    Encoder: a :class:`PerImageStandardization` (when ``standardize``); for each
    entry of ``filters``, two 3x3 convolutions (each with
    batch normalisation when ``batch_norm``, and ReLU) and a 2x2 max pooling;
    then global average pooling.
    Projection: one dense layer (no activation) to ``embedding_dim`` numbers,
    then division by their Euclidean norm, so that every embedding lies on the
    unit sphere and the dot product of two embeddings is their cosine similarity.
    The layers are named ``encoder`` (the pooled features) and ``projection``.
    The standardisation, the projection and the normalisation are float32 even
    under the ``mixed_float16`` policy of the gpu profile (a mean over thousands
    of pixels and a norm are where float16 loses precision); the convolutions
    follow the policy.
    """
    inputs = keras.Input(input_shape)
    x = PerImageStandardization(dtype="float32", name="standardize")(inputs) if standardize else inputs
    for level, width in enumerate(filters):
        for j in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"conv{level}_{j}")(x)
            if batch_norm:
                # A short memory (momentum 0.9): with a few hundred training steps the
                # default 0.99 leaves the running statistics far from the real ones.
                x = layers.BatchNormalization(momentum=0.9, name=f"bn{level}_{j}")(x)
            x = layers.ReLU(name=f"relu{level}_{j}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = layers.GlobalAveragePooling2D(name="encoder")(x)
    x = layers.Dense(embedding_dim, dtype="float32", name="projection")(x)
    outputs = layers.UnitNormalization(dtype="float32", name="unit_norm")(x)
    return keras.Model(inputs, outputs, name=name)


def classifier_from(
    model: keras.Model, num_classes: int, layer: str = "encoder", name: str = "classifier"
) -> keras.Model:
    """A supervised classifier: the layers of ``model`` up to ``layer``, then a (float32) softmax over ``num_classes``.

    With a fresh :func:`embedding_model` this gives the discriminative twin of the
    embedding network: the same encoder, trained with cross-entropy instead.
    """
    features = model.get_layer(layer).output
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="class_scores")(features)
    return keras.Model(model.inputs, outputs, name=name)


def embed(model: keras.Model, images, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``images`` (in inference mode) as a NumPy array.

    The model is called directly, batch by batch, rather than through
    ``predict``: for the few hundred images of the course that is as fast, and
    it does not build (and rebuild, for every new feature extractor) a graph.
    """
    images = np.asarray(images, dtype=np.float32)
    # A functional model built from a list of inputs (as models.feature_extractor does) wants a list.
    wrap = isinstance(model.input, (list, tuple))
    outputs = [
        np.asarray(model([images[i : i + batch_size]] if wrap else images[i : i + batch_size], training=False))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(model.output.shape[1:]), np.float32)
