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
# 5. Test-time augmentation, and which augmentation to average over
# 6. The backward pass of the cross-correlation, with a gradient check
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Some parts ask you to *predict* a
# value before the check computes it: write down what you think, then read the
# explanation the check prints, right or wrong.

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils import config, data, exercise_checks, predictions
from course_utils.checks import (
    check_close,
    check_equal,
    check_gradient,
    check_reached,
    diagnose_classifier,
    passed,
)

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
            window = x[
                i * stride : i * stride + kh, j * stride : j * stride + kw, :
            ]
            y[i, j] = np.tensordot(window, kernel, axes=3)
    return y
    ### END SOLUTION


# %%
# CHECK correlate2d points=2
exercise_checks.week1_correlate2d(correlate2d, rng)
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
# layer. Then define these variables **by using your functions** (not by
# building a Keras model):
#
# * `first_layer_side`: the output side length for a 224×224 input, a 7×7
#   kernel, stride 2 and padding 3;
# * `c3_params`: the parameters of LeNet-5's second convolution, 16 filters of
#   5×5 over 6 maps;
# * `vgg_block_params`: the parameters of a 3×3 convolution with 128 filters
#   over 64 maps.
#
# Two design decisions, checked by what they achieve (TensorFlow computes the
# sizes), not by the exact numbers:
#
# * `same_padding`: the padding that keeps a 28×28 input 28×28 under a 5×5
#   kernel with stride 1;
# * `halving`: a pair `(stride, padding)` with which a 3×3 convolution turns a
#   64×64 map into a 32×32 one.
#
# And one prediction (its check comes after the next one): the LeNet-5 of part 3
# takes a 32×32×1 image through a 5×5 convolution with 6 filters, 2×2 pooling,
# a 5×5 convolution with 16 filters and 2×2 pooling (no padding), then flattens
# the maps and feeds them to a dense layer of 120 units. Predict by hand (or
# with your functions) `predicted_flatten_input`, the shape of the maps that
# enter the flatten, as a tuple `(height, width, channels)`, and
# `predicted_dense_params`, the parameters of that first dense layer.


# %%
def output_size(n, kernel, stride=1, padding=0):
    ### BEGIN SOLUTION
    return (n + 2 * padding - kernel) // stride + 1
    ### END SOLUTION


def conv_params(kh, kw, in_channels, filters):
    ### BEGIN SOLUTION
    return kh * kw * in_channels * filters + filters
    ### END SOLUTION


# first_layer_side: the output side length for a 224x224 input, a 7x7 kernel,
# stride 2, padding 3.
### BEGIN SOLUTION
first_layer_side = output_size(224, 7, stride=2, padding=3)
### END SOLUTION
# c3_params: the parameters of LeNet-5's second convolution, 16 filters of 5x5
# over 6 maps.
### BEGIN SOLUTION
c3_params = conv_params(5, 5, 6, 16)
### END SOLUTION
# vgg_block_params: the parameters of a 3x3 convolution with 128 filters over 64
# maps.
### BEGIN SOLUTION
vgg_block_params = conv_params(3, 3, 64, 128)
### END SOLUTION
# Design decisions: same_padding, the padding that keeps 28x28 at 28x28 (5x5
# kernel, stride 1), and halving, a (stride, padding) that takes 64x64 to 32x32
# with a 3x3 kernel.
### BEGIN SOLUTION
same_padding = 2  # (28 + 2p - 5) + 1 = 28 needs p = 2: (k - 1) / 2 on each side
halving = (2, 1)  # (64 + 2 - 3) // 2 + 1 = 32
### END SOLUTION
# Predictions for LeNet-5: predicted_flatten_input, the shape entering the
# flatten (a tuple), and predicted_dense_params, the parameters of the first
# dense layer.
### BEGIN SOLUTION
# 32 -5+1-> 28 /2-> 14 -5+1-> 10 /2-> 5, with 16 maps
predicted_flatten_input = (5, 5, 16)
predicted_dense_params = 5 * 5 * 16 * 120 + 120
### END SOLUTION

# %%
# CHECK sizes points=2
exercise_checks.week1_sizes(
    c3_params,
    conv_params,
    first_layer_side,
    halving,
    output_size,
    same_padding,
    vgg_block_params,
)
passed("output sizes and parameter counts")

# %%
# CHECK predictions points=1
predictions.week1_lenet(predicted_flatten_input, predicted_dense_params)
passed("predictions")

# %%
### BEGIN HIDDEN TESTS
# CHECK sizes points=1
check_equal(output_size(100, 7, 3, 1), 32, "output_size (hidden)")
check_equal(conv_params(1, 1, 256, 64), 16_448, "conv_params (hidden)")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. LeNet-5 for 28×28 digits
#
# LeNet-5 was designed for 32×32 inputs, larger than the 28×28 field that the
# handwritten digits of its paper are centred in. Our digits here are 28×28.
# Write `build_lenet5()`: a Keras model for 28×28×1 inputs and 10 classes with
# LeNet-5's layers, in order: a 5×5 convolution with 6 filters (tanh), 2×2
# average pooling, a 5×5 convolution with 16 filters (tanh), 2×2 average
# pooling, a flatten, dense layers of 120 and 84 units (tanh) and a 10-way
# softmax.
#
# **Your decision:** the dense layers must see the same 5×5×16 map as in the
# original (section 2), so that the network keeps exactly LeNet-5's 61,706
# parameters. Which of the two convolutions get `padding="same"`, and which keep
# Keras' default, no padding? Work out the side of each map before you write
# the code.


# %%
def build_lenet5():
    ### BEGIN SOLUTION
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            # 28 -> 28, pooled to 14
            layers.Conv2D(6, 5, padding="same", activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"),  # 14 -> 10, pooled to 5
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
lenet = exercise_checks.week1_lenet5(build_lenet5)
passed("LeNet-5")

# %% [markdown]
# ## 4. Training
#
# Compile `lenet` (optimizer, loss for integer labels, accuracy metric) and train
# it on `digits.x_train`, `digits.y_train` so that it reaches at least 95%
# accuracy on the test set. Use `EPOCHS` epochs (it depends on the profile; a
# handful of epochs of Adam is enough).

# %%
digits = data.load_digits(size=28, seed=0)
EPOCHS = profile.pick(smoke=8, cpu=30, gpu=30)

# %%
config.seed_everything(0)
### BEGIN SOLUTION
lenet.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
lenet.fit(
    digits.x_train, digits.y_train, epochs=EPOCHS, batch_size=32, verbose=0
)
### END SOLUTION

# %%
# CHECK training points=2
test_accuracy = float(
    np.mean(lenet.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test)
)
print(f"test accuracy: {test_accuracy:.3f}")
check_reached(
    test_accuracy,
    0.95,
    "LeNet-5's test accuracy",
    lambda: diagnose_classifier(
        lenet, digits.x_train, digits.y_train, digits.x_test, digits.y_test
    ),
)
passed("training")

# %% [markdown]
# ## 5. Test-time augmentation, and which augmentation to average over
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
# CHECK tta points=1
def mirror(images, training=False):
    """A deterministic 'augmentation', so that the expected result is known."""
    return images[:, :, ::-1]


some = digits.x_test[:20]
exercise_checks.week1_tta(tta_predict, lenet, some, mirror)
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
# **Which augmentation?** Test-time augmentation averages the predictions of
# transformed copies of an image, so it can only help if every copy still shows
# what the image shows.
#
# First predict: averaged over 8 copies, the first the image itself and the
# others mirrored left to right at random (`layers.RandomFlip("horizontal")`),
# is LeNet-5's test accuracy `"higher"`, `"lower"` or `"the same"` (within a
# point) as without the copies?

# %%
### BEGIN SOLUTION
predicted_effect = "lower"
### END SOLUTION

# %%
# CHECK mirror-prediction points=1
predictions.week1_mirror_tta(predicted_effect, lenet, digits)

# %% [markdown]
# **Your decision:** choose `tta_augment`, a `keras.Sequential` of Keras'
# random layers (`RandomTranslation`, `RandomRotation`, `RandomZoom`,
# `RandomFlip`, `RandomContrast`, ...) for test-time augmentation of these
# digits. It must change the images, and averaging over 8 copies must cost at
# most 2 points of test accuracy. Decide from what a handwritten digit can
# undergo and stay the same digit, not by trying candidates on the test set:
# choosing on the test set makes its accuracy an optimistic estimate.

# %%
### BEGIN SOLUTION
tta_augment = keras.Sequential(
    [
        # a pixel or two: still the same digit
        layers.RandomTranslation(0.05, 0.05, fill_mode="constant"),
        # about 7 degrees: handwriting leans that much
        layers.RandomRotation(0.02, fill_mode="constant"),
    ]
)
### END SOLUTION

# %%
# CHECK tta-augmentation points=2
exercise_checks.week1_tta_augmentation(tta_augment, lenet, digits)
passed("the augmentation for test-time augmentation")

# %% [markdown]
# ## 6. The backward pass of the cross-correlation
#
# Training needs the gradient of the loss with respect to every weight, and,
# to pass it on to the layers below, with respect to the layer's input. Write
# `correlate2d_backward(x, kernel, grad_y, padding, stride)`: given the gradient
# `grad_y` of a scalar loss with respect to the output `y = correlate2d(x,
# kernel, padding, stride)` (so `grad_y` has the shape of `y`), return the pair
# `(grad_x, grad_kernel)`, the gradients with respect to `x` (shape of `x`) and
# to `kernel` (shape of `kernel`).
#
# Both gradients are cross-correlations themselves, so build them from your
# `correlate2d` of part 1, with no loop of your own over the positions (a loop
# over the channels is fine). Deciding how is the exercise: write out, for one
# weight `kernel[a, b, c, f]` and for one input pixel `x[r, s, c]`, which outputs
# they reach and with which factor, and read off what is correlated with what.
# For the input's gradient you will need to decide how much zero padding to add
# around `grad_y`, which axes of the kernel to flip and which to swap; with a
# stride above 1, the outputs sit `stride` pixels apart in the input, so spread
# `grad_y` out with `stride - 1` zeros between its entries first. Work a 1-D
# example on paper (input of 5, kernel of 3, stride 2) before you code.
#
# The check is a **gradient check**: it nudges every entry of `x` and of
# `kernel` up and down by `eps` and measures how your `correlate2d` moves the
# loss (central differences, `course_utils.gradients.numerical_gradient`), and it
# asks `tf.GradientTape` for the same gradients. Both must agree with yours to a
# relative error below 1e-6.
#
# **Predict, then verify** (before you write it): a 3×3 kernel slides over a
# 6×6 input with stride 2 and padding 1. Which input pixels does the output at
# row 1, column 2 depend on? Store the first and last row as a pair in
# `predicted_rows`, the first and last column in `predicted_columns` (rows and
# columns of the input without its padding, counted from 0). In the backward
# pass, these are the pixels that `grad_y[1, 2]` reaches.

# %%
# Your prediction: the input rows (first, last) and columns (first, last) that
# output (1, 2) depends on.
### BEGIN SOLUTION
# the window starts at i * stride - padding and is 3 wide
predicted_rows = (1 * 2 - 1, 1 * 2 - 1 + 2)
predicted_columns = (2 * 2 - 1, 2 * 2 - 1 + 2)
### END SOLUTION

# %%
# CHECK reach points=1
predictions.week1_reach(predicted_rows, predicted_columns)
passed("reach prediction")


# %%
def correlate2d_backward(x, kernel, grad_y, padding=0, stride=1):
    ### BEGIN SOLUTION
    kh, kw, channels, filters = kernel.shape
    padded = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    # The outputs sit `stride` apart in the padded input: put stride - 1 zeros
    # between them.
    spread = np.zeros(
        (
            (grad_y.shape[0] - 1) * stride + 1,
            (grad_y.shape[1] - 1) * stride + 1,
            filters,
        )
    )
    spread[::stride, ::stride] = grad_y
    # kernel[a, b, c, f] met padded[i * stride + a, j * stride + b, c] at output
    # (i, j, f): correlate the padded input, one channel at a time, with the
    # spread gradient as the kernel (rows of the input past the last window give
    # extra rows, cropped off).
    grad_kernel = np.stack(
        [
            correlate2d(padded[:, :, [c]], spread[:, :, None, :])[:kh, :kw]
            for c in range(channels)
        ],
        axis=2,
    )
    # padded[r, s, c] received grad_y * kernel[r - i * stride, s - j * stride,
    # c, f]: a full correlation of the spread gradient with the kernel flipped
    # in both spatial axes, its channel axes swapped; the padded rows past the
    # last window received nothing, so the spread gradient gets zeros there too.
    missing = (
        padded.shape[0] - (spread.shape[0] + kh - 1),
        padded.shape[1] - (spread.shape[1] + kw - 1),
    )
    around = np.pad(
        spread,
        ((kh - 1, kh - 1 + missing[0]), (kw - 1, kw - 1 + missing[1]), (0, 0)),
    )
    grad_padded = correlate2d(around, kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    grad_x = grad_padded[
        padding : padding + x.shape[0], padding : padding + x.shape[1]
    ]
    return grad_x, grad_kernel
    ### END SOLUTION


# %%
# CHECK gradient points=2
exercise_checks.week1_backward(correlate2d_backward, correlate2d, rng)
passed("the backward pass")

# %%
### BEGIN HIDDEN TESTS
# CHECK gradient points=1
from course_utils.exercise_checks.week1 import tape_gradients

hidden_rng = np.random.default_rng(5)
for padding, stride in [(2, 3), (1, 1)]:
    x = hidden_rng.normal(size=(8, 7, 3))
    kernel = hidden_rng.normal(size=(4, 2, 3, 5))
    pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    grad_y = hidden_rng.normal(
        size=tf.nn.conv2d(x[None], kernel, strides=stride, padding=pads).shape[
            1:
        ]
    )
    tape_x, tape_kernel = tape_gradients(x, kernel, grad_y, padding, stride)
    grad_x, grad_kernel = correlate2d_backward(
        x, kernel, grad_y, padding, stride
    )
    check_gradient(
        grad_x, tape_x, f"grad_x (hidden) padding={padding}, stride={stride}"
    )
    check_gradient(
        grad_kernel,
        tape_kernel,
        f"grad_kernel (hidden) padding={padding}, stride={stride}",
    )
### END HIDDEN TESTS

# %% [markdown]
# Done: every check above passed.
