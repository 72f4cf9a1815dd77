"""Plain and residual deep CNNs and per-layer gradient norms (course_utils.residual)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from course_utils import residual


def _batch(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, 3)).astype("float32"), rng.integers(0, 4, n)


def test_plain_and_residual_networks_have_the_same_layers_and_parameters():
    plain = residual.deep_cnn(residual=False)
    skip = residual.deep_cnn(residual=True)
    names = [layer.name for layer in residual.conv_layers(plain)]
    assert names == [f"conv{i:02d}" for i in range(1, 20)]
    assert [layer.name for layer in residual.conv_layers(skip)] == names
    assert plain.count_params() == skip.count_params() == (9 * 3 * 16 + 16) + 18 * (9 * 16 * 16 + 16) + (16 * 4 + 4)
    assert not any(isinstance(layer, layers.Add) for layer in plain.layers)
    assert sum(isinstance(layer, layers.Add) for layer in skip.layers) == 9
    assert skip.output.shape[1:] == (4,) and plain.name == "plain_cnn_19" and skip.name == "residual_cnn_19"


def test_a_residual_block_whose_convolutions_are_zero_passes_its_input_through():
    model = residual.deep_cnn(input_shape=(16, 16, 3), stages=1, blocks_per_stage=2, width=4, residual=True)
    for layer in residual.conv_layers(model)[1:]:
        layer.kernel.assign(tf.zeros_like(layer.kernel))
        layer.bias.assign(tf.zeros_like(layer.bias))
    x, _ = _batch(3, 16)
    stem = keras.Model(model.input, model.get_layer("conv01").output)(x)
    last_skip = keras.Model(model.input, model.get_layer("skip04_05").output)(x)
    np.testing.assert_allclose(last_skip, stem, atol=1e-6)


def test_kernel_gradient_norms_match_a_gradient_tape():
    keras.utils.set_random_seed(0)
    model = residual.deep_cnn(input_shape=(16, 16, 3), stages=2, blocks_per_stage=1, width=4, residual=True)
    x, y = _batch(8, 16)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    kernels = [layer.kernel for layer in residual.conv_layers(model)]
    expected = [float(tf.norm(g)) for g in tape.gradient(loss, kernels)]
    norms = residual.gradient_norms(model, x, y, wrt="kernels")
    assert list(norms) == ["conv01", "conv02", "conv03", "conv04", "conv05"]
    np.testing.assert_allclose(list(norms.values()), expected, rtol=1e-5)


def test_activation_gradient_of_the_last_convolution_matches_the_chain_rule():
    # With one convolution, its output feeds ReLU -> average pooling -> softmax: compute that gradient by hand.
    keras.utils.set_random_seed(1)
    model = residual.deep_cnn(input_shape=(16, 16, 3), stages=1, blocks_per_stage=1, width=3)
    x, y = _batch(4, 16)
    conv_out = keras.Model(model.input, model.get_layer("conv03").output)(x)
    head = keras.Sequential([layers.ReLU(), model.get_layer("pool"), model.get_layer("output")])
    with tf.GradientTape() as tape:
        tape.watch(conv_out)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, head(conv_out)))
    expected = float(tf.norm(tape.gradient(loss, conv_out)))
    assert residual.gradient_norms(model, x, y)["conv03"] == pytest.approx(expected, rel=1e-5)


def test_gradients_vanish_towards_the_input_of_a_deep_plain_network_but_not_of_a_residual_one():
    x, y = _batch(32)
    ratios = {}
    for skip in (False, True):
        keras.utils.set_random_seed(2)
        norms = residual.gradient_norms(residual.deep_cnn(residual=skip), x, y)
        assert all(np.isfinite(v) and v > 0 for v in norms.values())
        ratios[skip] = residual.first_to_last(norms)
    assert ratios[False] < 0.01  # Glorot initialisation and ReLU: each layer passes back less
    assert ratios[True] > 0.3


def test_bad_arguments_are_named():
    model = residual.deep_cnn(input_shape=(16, 16, 3), stages=1, blocks_per_stage=1, width=2)
    x, y = _batch(4, 16)
    with pytest.raises(ValueError, match="wrt"):
        residual.gradient_norms(model, x, y, wrt="weights")
    with pytest.raises(ValueError, match="4 images but y has 3"):
        residual.gradient_norms(model, x, y[:3])
    with pytest.raises(ValueError, match="no Conv2D"):
        residual.gradient_norms(keras.Sequential([keras.Input((4,)), layers.Dense(2)]), x[:, 0, 0], y)
    with pytest.raises(ValueError, match="width"):
        residual.deep_cnn(width=0)
    with pytest.raises(ValueError, match="stages"):
        residual.deep_cnn(input_shape=(16, 16, 3), stages=6)
    with pytest.raises(ValueError, match="at least two"):
        residual.first_to_last({"conv01": 1.0})


def test_a_dead_network_has_a_ratio_of_zero_not_a_division_error():
    assert residual.first_to_last({"conv01": 0.0, "conv19": 0.0}) == 0.0
    assert residual.first_to_last({"conv01": 0.0, "conv19": 2.0}) == 0.0
