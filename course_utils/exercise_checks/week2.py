"""The visible checks of week 2's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from course_utils.checks import check, check_close, check_equal, check_shape


def week2_frozen_classifier(build_frozen_classifier) -> keras.Model:
    """The frozen MobileNetV2 with a new head: a frozen base, a pooled head of the right size, softmax outputs and
    the right input rescaling. Returns the model, which the next check fine-tunes."""
    frozen = build_frozen_classifier(5, input_size=64, alpha=0.35, weights=None)
    check(
        isinstance(frozen, keras.Model),
        f"build_frozen_classifier must return a keras Model, got {type(frozen).__name__}",
    )
    check_shape(frozen.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0), (2, 5), "predictions for 2 images")
    base = frozen.get_layer("base")
    check(len(base.layers) > 100, "the layer named 'base' should be the MobileNetV2 model")
    check_equal(base.output.shape[-1], 1280, "channels of the base's output")
    check(
        not base.trainable_weights,
        f"the base still trains ({len(base.trainable_weights)} trainable weight tensors): "
        "set base.trainable = False after building it.",
    )
    trainable = sum(int(np.prod(w.shape)) for w in frozen.trainable_weights)
    check_equal(
        trainable,
        1280 * 5 + 5,
        "trainable parameters of the head at input_size=64",
        mistakes={
            "you flattened the 2 x 2 x 1280 feature map: the head then has a weight per position, so its "
            "size grows with the image (3 x 3 x 1280 inputs at 96 pixels) and it has 4 times the weights "
            "to learn from the same labels. Pool over the positions instead (one value per channel).": 2 * 2 * 1280 * 5
            + 5,
            "your head has a hidden layer: a single dense layer on the pooled channels already lets every "
            "class use every channel, with far fewer weights to fit from a few hundred images.": lambda n: n
            > 1280 * 5 + 5
            and n != 2 * 2 * 1280 * 5 + 5,
            "the dense layer is missing or has no bias (use layers.Dense(num_classes, ...)).": lambda n: n
            in (0, 1280 * 5),
        },
    )
    probabilities = frozen.predict(np.random.default_rng(0).random((3, 64, 64, 3), np.float32), verbose=0)
    check_close(probabilities.sum(axis=1), np.ones(3), "the outputs are probabilities (softmax)")
    scaled = [layer for layer in frozen.layers if isinstance(layer, layers.Rescaling)]
    check_equal(len(scaled), 1, "Rescaling layers of the model (rescale [0, 1] to [-1, 1] with one)")
    check_close(
        [float(scaled[0].scale), float(scaled[0].offset)],
        [2.0, -1.0],
        "scale and offset of the Rescaling layer ([0, 1] to [-1, 1])",
        mistakes={
            "scale 1/127.5 is for images in [0, 255]; these are in [0, 1]: scale 2, offset -1.": [1 / 127.5, -1.0],
            "x * 2 alone gives [0, 2]: add the offset -1.": [2.0, 0.0],
            "x - 1 alone gives [-1, 0]: scale by 2 as well.": [1.0, -1.0],
        },
    )
    return frozen
