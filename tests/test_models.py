"""Model builders and helpers of course_utils.models."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from course_utils import config, models


def test_lenet5_reproduces_the_papers_layer_sizes_and_parameter_count():
    model = models.lenet5()
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
    assert counts == {"c1": 156, "c3": 2416, "c5": 48120, "f6": 10164, "output": 850}
    assert model.count_params() == 61706
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert shapes[:5] == [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,)]
    assert model.get_layer("c1").activation is keras.activations.tanh


def test_dense_baseline_has_86950_parameters():
    assert models.dense_classifier().count_params() == 86950


@pytest.mark.parametrize("h, w, d, n", [(5, 5, 3, 2), (3, 3, 64, 128), (1, 1, 7, 5)])
def test_conv_parameter_formula_matches_keras(h, w, d, n):
    keras_count = keras.Sequential([keras.Input((16, 16, d)), layers.Conv2D(n, (h, w))]).count_params()
    assert models.count_conv_params(h, w, d, n) == keras_count
    assert models.count_conv_params(5, 5, 3, 2) == 152


@pytest.mark.parametrize("n, k, s, p, d", [(32, 5, 1, 0, 1), (224, 7, 2, 3, 1), (17, 3, 2, 1, 2), (10, 4, 3, 0, 1)])
def test_output_size_formula_matches_tensorflow(n, k, s, p, d):
    x = tf.zeros((1, n, n, 1))
    kernel = tf.zeros((k, k, 1, 1))
    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), kernel, strides=s, padding="VALID", dilations=d)
    assert models.conv_output_size(n, k, s, p, d) == y.shape[1]


def test_output_size_refuses_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="does not fit"):
        models.conv_output_size(4, 7)


def test_feature_extractor_returns_the_named_layer_and_names_the_choices_when_wrong():
    model = models.lenet5()
    features = models.feature_extractor(model, "f6").predict(np.zeros((3, 32, 32, 1)), verbose=0)
    assert features.shape == (3, 84)
    with pytest.raises(ValueError, match="no layer 'nope'.*c1"):
        models.feature_extractor(model, "nope")


def test_predict_with_tta_averages_the_image_and_its_variants():
    model = models.lenet5()
    x = np.random.default_rng(0).random((5, 32, 32, 1)).astype("float32")

    def mirror(images, training=False):
        return images[:, :, ::-1]

    plain = model.predict(x, verbose=0)
    np.testing.assert_allclose(models.predict_with_tta(model, x, mirror, copies=1), plain, atol=1e-6)
    expected = (plain + 2 * model.predict(mirror(x), verbose=0)) / 3
    np.testing.assert_allclose(models.predict_with_tta(model, x, mirror, copies=3), expected, atol=1e-6)
    with pytest.raises(ValueError, match="copies"):
        models.predict_with_tta(model, x, mirror, copies=0)


def test_fit_classifier_learns_a_separable_problem():
    config.seed_everything(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = rng.normal(size=(300, 32, 32, 1)).astype("float32") * 0.1
    x[y == 1, 8:24, 8:24] += 1.0  # class 1 has a bright square in the middle
    model = models.lenet5(num_classes=2)
    history, seconds = models.fit_classifier(model, x, y, epochs=5, learning_rate=3e-3)
    assert seconds > 0 and len(history.history["val_loss"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.mean(model.predict(x, verbose=0).argmax(1) == y) > 0.95
