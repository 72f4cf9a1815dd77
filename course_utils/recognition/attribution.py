"""Which pixels a classifier's decision rests on: saliency, Grad-CAM and occlusion maps, and whether a map's
strongest pixel lies on the object.

Each map function takes a trained Keras classifier that ends in a softmax ``Dense`` layer, a batch of images and,
per image, the class to explain; it returns one map per image, of the images' height and width, larger where the
class's score depends more on the pixel. Saliency and Grad-CAM differentiate the class's *logit* (the softmax's
input, read from the last dense layer), whose gradient does not vanish when the probability saturates near 1.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def _last_dense(model: keras.Model):
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    if not dense:
        raise ValueError(f"{model.name} has no Dense layer: these maps explain a classifier that ends in one")
    return dense[-1]


def _class_logits(dense, features, classes):
    """The logit of each image's class, computed from the last dense layer's input ``features``."""
    logits = tf.matmul(features, dense.kernel) + dense.bias
    return tf.gather(logits, np.asarray(classes), batch_dims=1)


def saliency_maps(model: keras.Model, images, classes) -> np.ndarray:
    """The gradient of each image's class logit with respect to its pixels, its largest absolute value over the
    colour channels (Simonyan et al., 2014): which single pixels would move the score most."""
    dense = _last_dense(model)
    features = keras.Model(model.inputs, dense.input)
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = _class_logits(dense, features(x, training=False), classes)
    return np.abs(tape.gradient(score, x).numpy()).max(axis=-1)


def grad_cam(model: keras.Model, images, classes, layer_name: str) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) at the layer ``layer_name``: its channels weighted by the mean gradient of
    the class logit over their positions, summed, negative parts set to 0, and resized to the images' size."""
    dense = _last_dense(model)
    both = keras.Model(model.inputs, [model.get_layer(layer_name).output, dense.input])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        maps, features = both(x, training=False)
        score = _class_logits(dense, features, classes)
    weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    return tf.image.resize(cam, x.shape[1:3], method="bilinear").numpy()[..., 0]


def occlusion_maps(model: keras.Model, images, classes, patch: int = 8, stride: int = 4, fill: float = 0.5):
    """How much the class's probability falls when a grey square of ``patch`` pixels hides each region (Zeiler and
    Fergus, 2014): the drop, averaged over the squares that covered each pixel. It needs no gradient, only
    predictions: one batch per position of the square."""
    images = np.asarray(images, np.float32)
    rows = np.arange(len(images))
    height, width = images.shape[1:3]
    if patch > min(height, width) or stride < 1:
        raise ValueError(
            f"occlusion needs 1 <= stride and a patch of at most {min(height, width)} px, got "
            f"patch {patch}, stride {stride}"
        )
    original = model.predict(images, verbose=0)[rows, classes]
    drop, covered = np.zeros(images.shape[:3]), np.zeros(images.shape[:3])
    for top in range(0, height - patch + 1, stride):
        for left in range(0, width - patch + 1, stride):
            hidden = images.copy()
            hidden[:, top : top + patch, left : left + patch] = fill
            fall = original - model.predict(hidden, verbose=0)[rows, classes]
            drop[:, top : top + patch, left : left + patch] += fall[:, None, None]
            covered[:, top : top + patch, left : left + patch] += 1
    return drop / np.maximum(covered, 1)


def peak_on_object(maps, masks) -> np.ndarray:
    """For each map, whether its strongest pixel lies on the object (``masks``: True on the object's pixels)."""
    maps, masks = np.asarray(maps), np.asarray(masks, bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps of shape {maps.shape} and masks of shape {masks.shape} must have the same shape")
    flat = maps.reshape(len(maps), -1).argmax(axis=1)
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]


def plot_attribution(images, maps: dict, masks=None, titles=None):
    """One row per image: the image, then each of ``maps`` (name -> one map per image) as a heatmap scaled to its
    own largest value, with the object's outline (``masks``) drawn on every panel and the strongest pixel marked."""
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    n, columns = len(images), 1 + len(maps)
    cell = min(1.35, PAGE_WIDTH / columns)
    fig, axes = plt.subplots(n, columns, figsize=(cell * columns, cell * n + 0.4), squeeze=False, layout="constrained")
    for row in range(n):
        panels = [("image", None)] + [(name, found[row]) for name, found in maps.items()]
        for ax, (name, heat) in zip(axes[row], panels):
            if heat is None:
                ax.imshow(np.clip(images[row], 0, 1))
            else:
                ax.imshow(heat / max(float(heat.max()), 1e-12), cmap="magma", vmin=0, vmax=1)
                y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
                ax.plot(x, y, "+", color="cyan", markersize=8, markeredgewidth=1.5)
            if masks is not None:
                ax.contour(np.asarray(masks[row], float), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
        if titles is not None:
            axes[row][0].set_ylabel(titles[row], fontsize=9)
    return fig
