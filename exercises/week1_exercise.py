# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# <!-- Generated from solutions/week1_exercise.py by `make sync`: edit that file, not this one. -->
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
    raise NotImplementedError("Blank 1 of week1_exercise is not filled in yet")


# %%
# CHECK correlate2d points=2
exercise_checks.week1_correlate2d(correlate2d, rng)
passed("correlate2d")

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
    raise NotImplementedError("Blank 2 of week1_exercise is not filled in yet")


def conv_params(kh, kw, in_channels, filters):
    raise NotImplementedError("Blank 3 of week1_exercise is not filled in yet")


# first_layer_side: the output side length for a 224x224 input, a 7x7 kernel,
# stride 2, padding 3.
raise NotImplementedError("Blank 4 of week1_exercise is not filled in yet")
# c3_params: the parameters of LeNet-5's second convolution, 16 filters of 5x5
# over 6 maps.
raise NotImplementedError("Blank 5 of week1_exercise is not filled in yet")
# vgg_block_params: the parameters of a 3x3 convolution with 128 filters over 64
# maps.
raise NotImplementedError("Blank 6 of week1_exercise is not filled in yet")
# Design decisions: same_padding, the padding that keeps 28x28 at 28x28 (5x5
# kernel, stride 1), and halving, a (stride, padding) that takes 64x64 to 32x32
# with a 3x3 kernel.
raise NotImplementedError("Blank 7 of week1_exercise is not filled in yet")
# Predictions for LeNet-5: predicted_flatten_input, the shape entering the
# flatten (a tuple), and predicted_dense_params, the parameters of the first
# dense layer.
raise NotImplementedError("Blank 8 of week1_exercise is not filled in yet")

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
    raise NotImplementedError("Blank 9 of week1_exercise is not filled in yet")


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
raise NotImplementedError("Blank 10 of week1_exercise is not filled in yet")

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
    raise NotImplementedError("Blank 11 of week1_exercise is not filled in yet")


# %%
# CHECK tta points=1
def mirror(images, training=False):
    """A deterministic 'augmentation', so that the expected result is known."""
    return images[:, :, ::-1]


some = digits.x_test[:20]
exercise_checks.week1_tta(tta_predict, lenet, some, mirror)
passed("test-time augmentation")

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
raise NotImplementedError("Blank 12 of week1_exercise is not filled in yet")

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
raise NotImplementedError("Blank 13 of week1_exercise is not filled in yet")

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
raise NotImplementedError("Blank 14 of week1_exercise is not filled in yet")

# %%
# CHECK reach points=1
predictions.week1_reach(predicted_rows, predicted_columns)
passed("reach prediction")


# %%
def correlate2d_backward(x, kernel, grad_y, padding=0, stride=1):
    raise NotImplementedError("Blank 15 of week1_exercise is not filled in yet")


# %%
# CHECK gradient points=2
exercise_checks.week1_backward(correlate2d_backward, correlate2d, rng)
passed("the backward pass")

# %% [markdown]
# Done: every check above passed.
