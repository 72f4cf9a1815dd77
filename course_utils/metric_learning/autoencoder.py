"""A denoising autoencoder: noisy copies of the images, the network, its training, and PSNR to score it."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils.data import check_integer
from course_utils.models import fit_quietly


def add_noise(images, sigma: float, seed=0) -> np.ndarray:
    """``images`` (values in [0, 1]) plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1].

    ``seed`` is anything :func:`numpy.random.default_rng` takes (an int, a list
    of ints): the same seed gives the same noise.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    images = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0.0, sigma, images.shape).astype(np.float32), 0.0, 1.0)


def psnr(reference, images, max_val: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each image against its reference, in decibels: ``tf.image.psnr``.

    ``10 * log10(max_val**2 / MSE)``, the mean squared error taken over all the
    pixels and channels of one image; higher is closer. Inputs are batches of
    shape (n, height, width, channels) or single images (height, width,
    channels); returns one value per image (infinite where they are equal).
    """
    reference = np.asarray(reference, dtype=np.float32)
    images = np.asarray(images, dtype=np.float32)
    if reference.shape != images.shape:
        raise ValueError(f"psnr needs images of the same shape, got {reference.shape} and {images.shape}")
    if reference.ndim not in (3, 4):
        raise ValueError(f"psnr needs (height, width, channels) images or a batch of them, got shape {reference.shape}")
    return np.asarray(tf.image.psnr(reference, images, max_val=max_val))


def denoising_autoencoder(
    input_shape=(32, 32, 3),
    filters=(32, 64),
    latent_channels: int = 16,
    latent_l1: float = 0.0,
    name: str = "autoencoder",
) -> keras.Model:
    """A convolutional autoencoder: images in [0, 1] in, images of the same shape in [0, 1] out.

    Encoder: for each entry of ``filters``, a 3x3 convolution (ReLU) and a 2x2
    max pooling; then a 3x3 convolution to ``latent_channels`` maps (ReLU), the
    *bottleneck*, a layer named ``latent`` of shape
    (height / 2**len(filters), width / 2**len(filters), latent_channels).
    Decoder: the mirror image, a 3x3 transposed convolution with stride 2
    (ReLU) per entry of ``filters`` in reverse order, then a 3x3 convolution to
    the input's channels with a sigmoid. Trained on (noisy, clean) pairs
    (:class:`NoisyBatches`) it is a *denoising* autoencoder. The height and
    width of the input must be divisible by ``2**len(filters)``.

    ``latent_l1`` > 0 makes it a *sparse* autoencoder: the training loss gains
    ``latent_l1`` times the sum of the absolute values of an image's latent
    numbers (averaged over the batch, as Keras does for an activity
    regularizer), which pushes most of them to exactly zero.
    """
    if not latent_l1 >= 0:
        raise ValueError(f"latent_l1 must be >= 0, got {latent_l1!r}")
    height, width, channels = input_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(f"input height and width must be divisible by {scale} (2 ** len(filters)), got {input_shape}")
    inputs = keras.Input(input_shape)
    x = inputs
    for level, width_ in enumerate(filters):
        x = layers.Conv2D(width_, 3, padding="same", activation="relu", name=f"enc_conv{level}")(x)
        x = layers.MaxPooling2D(2, name=f"enc_pool{level}")(x)
    sparsity = keras.regularizers.L1(latent_l1) if latent_l1 else None
    x = layers.Conv2D(
        latent_channels, 3, padding="same", activation="relu", activity_regularizer=sparsity, name="latent"
    )(x)
    for level, width_ in reversed(list(enumerate(filters))):
        x = layers.Conv2DTranspose(width_, 3, strides=2, padding="same", activation="relu", name=f"dec_up{level}")(x)
    outputs = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", dtype="float32", name="reconstruction")(
        x
    )
    return keras.Model(inputs, outputs, name=name)


class NoisyBatches(keras.utils.PyDataset):
    """``(noisy, clean)`` batches of ``images`` for training a denoising autoencoder with ``model.fit``.

    Every epoch shuffles the images and draws fresh noise (:func:`add_noise`
    with ``sigma``), so the network never sees the same corrupted copy twice
    and cannot learn the noise by heart. Batch ``i`` of epoch ``e`` only
    depends on ``seed``, ``e`` and ``i``.
    """

    def __init__(self, images, sigma: float, batch_size: int = 64, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images, dtype=np.float32)
        if self.images.ndim != 4 or not len(self.images):
            raise ValueError(
                f"NoisyBatches needs a non-empty batch of images (n, height, width, channels), "
                f"got shape {self.images.shape}"
            )
        self.batch_size = check_integer(batch_size, "batch_size")
        self.sigma, self.seed = float(sigma), seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
        clean = self.images[order[i * self.batch_size : (i + 1) * self.batch_size]]
        return add_noise(clean, self.sigma, [self.seed, self.epoch, i, 1]), clean


def fit_autoencoder(
    model: keras.Model, batches: NoisyBatches, epochs: int, learning_rate: float = 2e-3, run_eagerly: bool = False
):
    """Compile ``model`` with the mean squared error and fit it quietly on ``batches``: ``(history, seconds)``.

    Adam with a cosine-decaying learning rate, as :func:`fit_embedding`.
    """
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * len(batches)))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", run_eagerly=run_eagerly)
    return fit_quietly(model, batches, epochs=epochs)
