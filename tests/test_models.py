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


def test_lenet5_variants_change_one_ingredient_each():
    relu = models.lenet5(activation="relu")
    assert relu.get_layer("c1").activation is keras.activations.relu
    assert relu.get_layer("f6").activation is keras.activations.relu
    assert isinstance(models.lenet5(pooling="max").get_layer("s4"), layers.MaxPooling2D)
    dropped = models.lenet5(dropout=0.5)
    assert dropped.get_layer("dropout").rate == 0.5
    assert [layer.name for layer in models.lenet5().layers] == ["c1", "s2", "c3", "s4", "flatten", "c5", "f6", "output"]
    for model in (relu, dropped, models.lenet5(pooling="max")):
        assert model.count_params() == 61706  # activation, pooling and dropout have no weights
    with pytest.raises(ValueError, match="pooling must be"):
        models.lenet5(pooling="min")
    with pytest.raises(ValueError, match="dropout"):
        models.lenet5(dropout=1.5)


def test_small_convnet_is_the_two_convolution_relu_maxpool_dropout_recipe():
    model = models.small_convnet()
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
    assert counts == {"conv1": 320, "conv2": 18496, "output": 23050}
    assert model.count_params() == 41866
    assert model.get_layer("conv1").activation is keras.activations.relu
    assert isinstance(model.get_layer("pool2"), layers.MaxPooling2D)
    assert model(np.zeros((2, 32, 32, 1))).shape == (2, 10)


def test_alexnet_one_and_two_towers_count_what_the_paper_and_the_lectures_say():
    split = {}
    for towers in (1, 2):
        model = models.alexnet(towers=towers)
        split[towers] = (
            sum(layer.count_params() for layer in model.layers if isinstance(layer, layers.Conv2D)),
            sum(layer.count_params() for layer in model.layers if isinstance(layer, layers.Dense)),
        )
        assert model.count_params() == sum(split[towers])
    assert split[1] == (3_747_200, 58_631_144)  # the lectures' 3.7 M and 58.6 M (6% and 94%)
    # Two towers: conv2, conv4, conv5 see half the maps; the paper's "60 million parameters".
    assert split[2] == (2_334_080, 58_631_144)
    # by hand: conv2 5*5*48*256 + 256, conv4 3*3*192*384 + 384, conv5 3*3*192*256 + 256
    assert split[2][0] == 34_944 + (5 * 5 * 48 * 256 + 256) + 885_120 + (3 * 3 * 192 * 384 + 384) + (
        3 * 3 * 192 * 256 + 256
    )
    assert models.alexnet(towers=1).layers[-1].output.shape[-1] == 1000
    with pytest.raises(ValueError, match="towers"):
        models.alexnet(towers=3)


def test_inception_3a_with_and_without_reductions():
    x = keras.Input((28, 28, 192))
    reduced = keras.Model(x, models.inception_module(x, *models.GOOGLENET_INCEPTIONS["3a"], name="a"))
    naive = keras.Model(x, models.inception_module(x, *models.GOOGLENET_INCEPTIONS["3a"], name="n", reduce=False))
    assert reduced.output.shape[-1] == 256  # 64 + 128 + 32 + 32, Table 1's output size
    assert naive.output.shape[-1] == 64 + 128 + 32 + 192
    weights = 192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32
    assert reduced.count_params() == weights + (64 + 96 + 128 + 16 + 32 + 32)
    assert naive.count_params() == 192 * 64 + 9 * 192 * 128 + 25 * 192 * 32 + (64 + 128 + 32)


def test_googlenet_follows_table_1_and_its_side_classifiers_add_two_dense_heads():
    model = models.googlenet()
    assert model.get_layer("inception_3a_concat").output.shape[1:] == (28, 28, 256)
    assert model.get_layer("inception_4e_concat").output.shape[1:] == (14, 14, 832)
    assert model.get_layer("inception_5b_concat").output.shape[1:] == (7, 7, 1024)
    assert model.count_params() == 6_998_552
    with_aux = models.googlenet(aux_classifiers=True)
    assert len(with_aux.outputs) == 3
    side = 2 * (128 * 4 * 4 * 1024 + 1024 + 1024 * 1000 + 1000) + (512 * 128 + 128) + (528 * 128 + 128)
    assert with_aux.count_params() == model.count_params() + side


def test_receptive_field_grows_by_kernel_minus_one_jumps():
    assert models.receptive_field([(3, 1)] * 3) == [(3, 1), (5, 1), (7, 1)]  # three 3x3 see what one 7x7 sees
    assert models.receptive_field([(7, 1)]) == [(7, 1)]
    assert models.receptive_field([(2, 2), (3, 1)]) == [(2, 2), (6, 2)]
    assert models.receptive_field([(3, 1, 2)]) == [(5, 1)]  # dilation 2: a 3x3 kernel spans 5 pixels
    with pytest.raises(ValueError, match="layer 1"):
        models.receptive_field([(3, 1), (0, 1)])


def test_receptive_field_matches_the_pixels_a_gradient_reaches():
    """The field computed layer by layer is the patch of input pixels that can change the central output."""
    stack = keras.Sequential(
        [
            keras.Input((33, 33, 1)),
            layers.Conv2D(1, 3),
            layers.AveragePooling2D(2),
            layers.Conv2D(1, 3, strides=2),
            layers.Conv2D(1, 3, dilation_rate=2),
        ]
    )
    for layer in stack.layers:
        if layer.weights:
            layer.kernel.assign(tf.ones_like(layer.kernel))
    x = tf.Variable(tf.random.uniform((1, 33, 33, 1), 0.5, 1.0))
    with tf.GradientTape() as tape:
        y = stack(x)
        centre = y[0, y.shape[1] // 2, y.shape[2] // 2, 0]
    rows = np.flatnonzero(np.abs(tape.gradient(centre, x).numpy()[0, :, :, 0]).sum(axis=1))
    specs = [spec[1:] for spec in models.spatial_layers(stack)]
    assert specs == [(3, 1, 1), (2, 2, 1), (3, 2, 1), (3, 1, 2)]
    assert rows.max() - rows.min() + 1 == models.receptive_field(specs)[-1][0]


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


def test_fit_quietly_traces_the_training_step_once(trace_counter):
    """Adam's moments made during the first step would make TensorFlow trace that step twice."""
    counter, traces = trace_counter
    x = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), counter, layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    history, seconds = models.fit_quietly(model, x, np.arange(32) % 2, epochs=2, batch_size=16)
    assert [t for t in traces if t is not None] == [16]
    assert len(history.history["loss"]) == 2 and seconds > 0


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


def test_fit_classifier_compiles_the_optimizer_asked_for_and_names_the_choices_otherwise():
    x, y = np.zeros((8, 32, 32, 1), "float32"), np.arange(8) % 2
    model = models.lenet5(num_classes=2)
    models.fit_classifier(model, x, y, epochs=1, optimizer="sgd")
    assert isinstance(model.optimizer, keras.optimizers.SGD) and float(model.optimizer.momentum) == 0.9
    with pytest.raises(ValueError, match="one of adam, sgd, not 'rmsprop'"):
        models.fit_classifier(model, x, y, epochs=1, optimizer="rmsprop")
