# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise, week 1: CNN basics
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# 1. Cross-correlation with padding and stride
# 2. Output sizes and parameter counts
# 3. LeNet-5
# 4. Training LeNet-5 to at least 95% test accuracy
# 5. Test-time augmentation

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils import config, data
from course_utils.checks import check, check_close, check_equal, check_shape, passed

profile = config.setup(PROFILE, seed=0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Cross-correlation with padding and stride
#
# Write `correlate2d(x, kernel, padding, stride)`:
#
# * `x` has shape `(height, width, in_channels)`;
# * `kernel` has shape `(kh, kw, in_channels, filters)`;
# * `padding` is the number of rows/columns of zeros added on **each** side;
# * `stride` is the step between two positions of the kernel, in both directions.
#
# It returns an array of shape `(out_height, out_width, filters)` where output
# `[i, j, f]` is the sum, over the kernel window starting at row `i * stride`
# and column `j * stride` of the padded input and over all input channels, of
# the input times `kernel[..., f]`. Use NumPy only (loops are fine).


# %%
def correlate2d(x, kernel, padding=0, stride=1):
    ### BEGIN SOLUTION
    x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    kh, kw, _, filters = kernel.shape
    out_h = (x.shape[0] - kh) // stride + 1
    out_w = (x.shape[1] - kw) // stride + 1
    y = np.zeros((out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            window = x[i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            y[i, j] = np.tensordot(window, kernel, axes=3)
    return y
    ### END SOLUTION


# %%
# CHECK correlate2d points=2
worked = correlate2d(
    np.arange(9.0).reshape(3, 3, 1), np.arange(4.0).reshape(2, 2, 1, 1)
)
check_close(worked[..., 0], [[19, 25], [37, 43]], "the worked example of the chapter")
for padding, stride in [(0, 1), (1, 1), (2, 2), (0, 3)]:
    x = rng.normal(size=(9, 11, 3))
    kernel = rng.normal(size=(3, 2, 3, 4))
    expected = tf.nn.conv2d(
        x[None],
        kernel,
        strides=stride,
        padding=[[0, 0], [padding, padding], [padding, padding], [0, 0]],
    )[0]
    check_close(
        correlate2d(x, kernel, padding, stride),
        expected,
        f"correlate2d with padding={padding}, stride={stride}",
    )
passed("correlate2d")

# %%
### BEGIN HIDDEN TESTS
# CHECK correlate2d points=1
for padding, stride in [(3, 2), (1, 4)]:
    x = np.random.default_rng(padding).normal(size=(12, 7, 2))
    kernel = np.random.default_rng(stride).normal(size=(5, 3, 2, 3))
    expected = tf.nn.conv2d(
        x[None],
        kernel,
        strides=stride,
        padding=[[0, 0], [padding, padding], [padding, padding], [0, 0]],
    )[0]
    check_close(
        correlate2d(x, kernel, padding, stride),
        expected,
        f"correlate2d (hidden) padding={padding}, stride={stride}",
    )
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Output sizes and parameter counts
#
# Write `output_size(n, kernel, stride, padding)`, the length along one axis of
# the output of a convolution (no dilation), and `conv_params(kh, kw,
# in_channels, filters)`, the number of weights and biases of a convolution
# layer. Then fill in the three numbers below **by using your functions** (not
# by building a Keras model).


# %%
def output_size(n, kernel, stride=1, padding=0):
    ### BEGIN SOLUTION
    return (n + 2 * padding - kernel) // stride + 1
    ### END SOLUTION


def conv_params(kh, kw, in_channels, filters):
    ### BEGIN SOLUTION
    return kh * kw * in_channels * filters + filters
    ### END SOLUTION


# A 224x224 input, a 7x7 kernel, stride 2, padding 3: the output side length.
### BEGIN SOLUTION
first_layer_side = output_size(224, 7, stride=2, padding=3)
### END SOLUTION
# LeNet-5's second convolution: 16 filters of 5x5 over 6 maps.
### BEGIN SOLUTION
c3_params = conv_params(5, 5, 6, 16)
### END SOLUTION
# A 3x3 convolution with 128 filters over 64 maps.
### BEGIN SOLUTION
vgg_block_params = conv_params(3, 3, 64, 128)
### END SOLUTION

# %%
# CHECK sizes points=2
for n, kernel, stride, padding in [
    (32, 5, 1, 0),
    (28, 2, 2, 0),
    (9, 3, 2, 1),
    (10, 4, 3, 2),
]:
    x = np.zeros((1, n, n, 1), np.float32)
    expected = tf.nn.conv2d(
        x,
        np.zeros((kernel, kernel, 1, 1), np.float32),
        strides=stride,
        padding=[[0, 0], [padding, padding], [padding, padding], [0, 0]],
    ).shape[1]
    check_equal(
        output_size(n, kernel, stride, padding),
        expected,
        f"output_size({n}, {kernel}, {stride}, {padding})",
    )
check_equal(conv_params(5, 5, 3, 2), 152, "conv_params(5, 5, 3, 2)")
check_equal(first_layer_side, 112, "first_layer_side")
check_equal(
    c3_params,
    keras.Sequential([keras.Input((14, 14, 6)), layers.Conv2D(16, 5)]).count_params(),
    "c3_params",
)
check_equal(vgg_block_params, 73_856, "vgg_block_params")
passed("output sizes and parameter counts")

# %%
### BEGIN HIDDEN TESTS
# CHECK sizes points=1
check_equal(output_size(100, 7, 3, 1), 32, "output_size (hidden)")
check_equal(conv_params(1, 1, 256, 64), 16_448, "conv_params (hidden)")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. LeNet-5
#
# Write `build_lenet5()`: a Keras model for 32×32×1 inputs and 10 classes with,
# in order, a 5×5 convolution with 6 filters (tanh), 2×2 average pooling, a 5×5
# convolution with 16 filters (tanh), 2×2 average pooling, a flatten, dense
# layers of 120 and 84 units (tanh) and a 10-way softmax. It must have exactly
# 61,706 parameters.


# %%
def build_lenet5():
    ### BEGIN SOLUTION
    return keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Conv2D(6, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="tanh"),
            layers.Dense(84, activation="tanh"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    ### END SOLUTION


# %%
# CHECK lenet5 points=2
lenet = build_lenet5()
check(
    isinstance(lenet, keras.Model),
    f"build_lenet5 must return a keras Model, got {type(lenet).__name__}",
)
check_equal(lenet.count_params(), 61_706, "number of parameters of LeNet-5")
shapes = [
    tuple(layer.output.shape[1:])
    for layer in lenet.layers
    if isinstance(layer, layers.Conv2D)
]
check_equal(
    shapes, [(28, 28, 6), (10, 10, 16)], "output shapes of the two convolutions"
)
check_shape(
    lenet.predict(np.zeros((2, 32, 32, 1)), verbose=0),
    (2, 10),
    "LeNet-5's predictions for 2 images",
)
passed("LeNet-5")

# %% [markdown]
# ## 4. Training
#
# Compile `lenet` (optimizer, loss for integer labels, accuracy metric) and train
# it on `digits.x_train`, `digits.y_train` so that it reaches at least 95%
# accuracy on the test set. Use `EPOCHS` epochs (it depends on the profile; a
# handful of epochs of Adam is enough).

# %%
digits = data.load_digits(size=32, seed=0)
EPOCHS = profile.pick(smoke=15, cpu=30, gpu=30)
config.seed_everything(0)
### BEGIN SOLUTION
lenet.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
lenet.fit(digits.x_train, digits.y_train, epochs=EPOCHS, batch_size=32, verbose=0)
### END SOLUTION

# %%
# CHECK training points=2
test_accuracy = float(
    np.mean(lenet.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test)
)
print(f"test accuracy: {test_accuracy:.3f}")
check(
    test_accuracy >= 0.95,
    f"LeNet-5 reaches {test_accuracy:.3f} test accuracy; at least 0.95 is needed.",
)
passed("training")

# %% [markdown]
# ## 5. Test-time augmentation
#
# Write `tta_predict(model, images, augment, copies)`: the class probabilities
# averaged over `copies` versions of each image, where the first version is the
# image itself and the others are `augment(images, training=True)` (a new
# random draw each time). With `copies=1` it is plain `model.predict`.


# %%
def tta_predict(model, images, augment, copies=8):
    ### BEGIN SOLUTION
    total = model.predict(images, verbose=0)
    for _ in range(copies - 1):
        total = total + model.predict(augment(images, training=True), verbose=0)
    return total / copies
    ### END SOLUTION


# %%
# CHECK tta points=2
def mirror(images, training=False):
    """A deterministic 'augmentation', so that the expected result is known."""
    return images[:, :, ::-1]


some = digits.x_test[:20]
plain = lenet.predict(some, verbose=0)
check_close(
    tta_predict(lenet, some, mirror, copies=1), plain, "tta_predict with copies=1"
)
check_close(
    tta_predict(lenet, some, mirror, copies=2),
    (plain + lenet.predict(mirror(some), verbose=0)) / 2,
    "tta_predict with copies=2 and a mirror augmentation",
)
shift = keras.Sequential([layers.RandomTranslation(0.1, 0.1, fill_mode="constant")])
probabilities = tta_predict(lenet, some, shift, copies=4)
check_close(
    probabilities.sum(axis=1),
    np.ones(len(some)),
    "the averaged probabilities of each image sum to 1",
)
passed("test-time augmentation")

# %%
### BEGIN HIDDEN TESTS
# CHECK tta points=1
from course_utils.models import predict_with_tta

check_close(
    tta_predict(lenet, some, mirror, copies=5),
    predict_with_tta(lenet, some, mirror, copies=5),
    "tta_predict (hidden) against the reference",
)
### END HIDDEN TESTS

# %% [markdown]
# Done: every check above passed.
