"""The visible checks of week 1's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils import models
from course_utils.checks import check, check_close, check_equal, check_gradient, check_own_work, check_shape


def week1_lenet5(build_lenet5) -> keras.Model:
    """LeNet-5 for 28x28 digits as the blank builds it: its output, its two convolutions' shapes and its size.
    Returns the model, which the notebook trains next."""
    lenet = build_lenet5()
    check(
        isinstance(lenet, keras.Model),
        f"build_lenet5 must return a keras Model, got {type(lenet).__name__}",
    )
    check_shape(
        lenet.predict(np.zeros((2, 28, 28, 1)), verbose=0),
        (2, 10),
        "LeNet-5's predictions for 2 images of 28x28",
    )
    shapes = [tuple(layer.output.shape[1:]) for layer in lenet.layers if isinstance(layer, layers.Conv2D)]
    check_equal(
        shapes,
        [(28, 28, 6), (10, 10, 16)],
        "output shapes of the two convolutions",
        mistakes={
            "without padding the maps end at 4x4, not 5x5 (28 -> 24, pooled 12 -> 8, pooled 4): pad the first "
            "convolution, so that it gives 28x28 maps, as the original's did from 32x32 inputs.": [
                (24, 24, 6),
                (8, 8, 16),
            ],
            "with padding='same' on both the maps end at 7x7 (28, pooled 14, 14, pooled 7): the second convolution "
            "must shrink 14 to 10, as in the original.": [(28, 28, 6), (14, 14, 16)],
            "the padding is on the wrong convolution: padding the second gives 28 -> 24 -> 12 -> 12 -> 6. Pad the "
            "first instead, so that 28 stays 28 and the rest is the original's 14 -> 10 -> 5.": [
                (24, 24, 6),
                (12, 12, 16),
            ],
        },
    )
    check_equal(
        lenet.count_params(),
        61_706,
        "number of parameters of LeNet-5",
        mistakes={
            "the dense layers see 4 x 4 x 16 = 256 numbers instead of 400: no convolution keeps its side.": 44_426,
            "the dense layers see 7 x 7 x 16 = 784 numbers instead of 400: both convolutions keep their side.": 107_786,
            "the dense layers see 6 x 6 x 16 = 576 numbers instead of 400: the padding is on the second "
            "convolution, not the first.": 82_826,
        },
    )
    return lenet


def week1_correlate2d(correlate2d, rng) -> None:
    """The visible check of week 1's correlate2d."""

    def reference(x, kernel, padding, stride):
        """TensorFlow's cross-correlation with ``padding`` zeros on each side."""
        pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        return tf.nn.conv2d(x[None], kernel, strides=stride, padding=pads)[0].numpy()

    worked = correlate2d(np.arange(9.0).reshape(3, 3, 1), np.arange(4.0).reshape(2, 2, 1, 1))
    check_close(
        worked[..., 0],
        [[19, 25], [37, 43]],
        "the worked example of the chapter",
        mistakes={
            "you computed a convolution, not a cross-correlation: your kernel is flipped (x[i + a, j + b] times "
            "kernel[kh - 1 - a, kw - 1 - b]). Multiply x[i + a, j + b] by kernel[a, b].": [[5, 11], [23, 29]]
        },
    )
    for padding, stride in [(0, 1), (1, 1), (2, 2), (0, 3)]:
        x = rng.normal(size=(9, 11, 3))
        kernel = rng.normal(size=(3, 2, 3, 4))
        check_close(
            correlate2d(x, kernel, padding, stride),
            reference(x, kernel, padding, stride),
            f"correlate2d with padding={padding}, stride={stride}",
            mistakes={
                "you computed a convolution, not a cross-correlation (the kernel is flipped).": reference(
                    x, kernel[::-1, ::-1], padding, stride
                ),
                "you forgot the padding (add `padding` zeros on each side with np.pad).": (
                    reference(x, kernel, 0, stride) if padding else None
                ),
                "you padded twice as much as asked (`padding` is the number of zeros on EACH side).": (
                    reference(x, kernel, 2 * padding, stride) if padding else None
                ),
                "you ignored the stride (windows start at row i * stride, column j * stride).": (
                    reference(x, kernel, padding, 1) if stride > 1 else None
                ),
            },
        )


def week1_sizes(c3_params, conv_params, first_layer_side, halving, output_size, same_padding, vgg_block_params) -> None:
    """The visible check of week 1's sizes: the output-size formula, the parameter counts, the padding decisions."""
    check_own_work(output_size, models.conv_output_size, "output_size")
    check_own_work(conv_params, models.count_conv_params, "conv_params")
    _week1_output_sizes(output_size)
    _week1_parameter_counts(conv_params, first_layer_side, c3_params, vgg_block_params)
    _week1_padding_decisions(same_padding, halving)


def _week1_output_sizes(output_size) -> None:
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
        total = n + 2 * padding - kernel
        check_equal(
            output_size(n, kernel, stride, padding),
            expected,
            f"output_size({n}, {kernel}, {stride}, {padding})",
            mistakes={
                "you forgot the +1 (the first window position counts too).": total // stride,
                "you added the padding once; it goes on both sides (2 * padding).": (total - padding) // stride + 1,
                "you added the padding four times (2 * padding is already both sides).": (total + 2 * padding) // stride
                + 1,
            },
        )


def _week1_parameter_counts(conv_params, first_layer_side, c3_params, vgg_block_params) -> None:
    def count_mistakes(kh, kw, in_channels, filters):
        """What the usual wrong formulas give for a convolution layer."""
        weights = kh * kw * in_channels * filters
        return {
            "you forgot the biases (one per filter).": weights,
            "you counted a bias per input channel and filter; a filter has ONE bias.": weights + in_channels * filters,
            "you counted a bias per input channel; there is one per filter.": weights + in_channels,
            "each filter spans all the input channels: kh * kw * in_channels weights per filter.": kh * kw * filters
            + filters,
        }

    check_equal(conv_params(5, 5, 3, 2), 152, "conv_params(5, 5, 3, 2)", mistakes=count_mistakes(5, 5, 3, 2))
    check_equal(first_layer_side, 112, "first_layer_side")
    check_equal(
        c3_params,
        keras.Sequential([keras.Input((14, 14, 6)), layers.Conv2D(16, 5)]).count_params(),
        "c3_params",
        mistakes=count_mistakes(5, 5, 6, 16),
    )
    check_equal(vgg_block_params, 73_856, "vgg_block_params", mistakes=count_mistakes(3, 3, 64, 128))


def _week1_padding_decisions(same_padding, halving) -> None:
    def side_after(n, kernel, stride, padding):
        """The output side TensorFlow computes for an n x n input."""
        pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        probe = tf.nn.conv2d(
            np.zeros((1, n, n, 1), np.float32),
            np.zeros((kernel, kernel, 1, 1), np.float32),
            strides=stride,
            padding=pads,
        )
        return int(probe.shape[1])

    check(
        isinstance(same_padding, (int, np.integer)) and same_padding >= 0,
        f"same_padding must be a whole number of zeros, got {same_padding!r}",
    )
    check_equal(
        side_after(28, 5, 1, int(same_padding)),
        28,
        f"the side of 28x28 after a 5x5 kernel with padding {same_padding}",
        mistakes={"each side needs (kernel - 1) / 2 zeros: the 5x5 window loses 4 positions, 2 per side.": 26},
    )
    check(
        isinstance(halving, (tuple, list))
        and len(halving) == 2
        and all(isinstance(v, (int, np.integer)) for v in halving)
        and halving[0] >= 1
        and halving[1] >= 0,
        f"halving must be a pair of whole numbers (stride, padding), got {halving!r}",
    )
    check_equal(
        side_after(64, 3, *map(int, halving)),
        32,
        f"the side of 64x64 after a 3x3 kernel with (stride, padding) = {halving}",
        mistakes={
            "off by one: without padding the 3x3 window fits (64 - 3) // 2 + 1 = 31 times; one zero "
            "on each side gives the 32nd position.": 31,
            "one position too many: use less padding.": 33,
            "stride 1 never shrinks a map by half: choose stride 2.": lambda side: int(halving[0]) == 1,
        },
    )


def week1_tta(tta_predict, lenet, some, mirror) -> None:
    """The check of week 1's ``tta_predict`` on the trained ``lenet`` and the images ``some``: with ``mirror``, a
    deterministic "augmentation" the check cell defines (so that the grader can hand it to the student's code),
    one and two copies give known averages; with a random shift the averages are still probabilities."""
    check_own_work(tta_predict, models.predict_with_tta, "tta_predict")
    plain = lenet.predict(some, verbose=0)
    mirrored = lenet.predict(mirror(some), verbose=0)
    missing = "the original image is missing: the first of the `copies` versions is the image itself."
    one_more = "you averaged the image with `copies` augmented versions: `copies` counts the original too."
    check_close(
        tta_predict(lenet, some, mirror, copies=1),
        plain,
        "tta_predict with copies=1",
        mistakes={missing: mirrored, one_more: (plain + mirrored) / 2},
    )
    check_close(
        tta_predict(lenet, some, mirror, copies=2),
        (plain + mirrored) / 2,
        "tta_predict with copies=2 and a mirror augmentation",
        mistakes={
            missing: mirrored,
            one_more: (plain + 2 * mirrored) / 3,
            "you summed the probabilities: divide by the number of versions.": plain + mirrored,
        },
    )
    shift = keras.Sequential([layers.RandomTranslation(0.1, 0.1, fill_mode="constant")])
    probabilities = tta_predict(lenet, some, shift, copies=4)
    check_close(
        np.asarray(probabilities).sum(axis=1), np.ones(len(some)), "the averaged probabilities of each image sum to 1"
    )


def tape_gradients(x, kernel, grad_y, padding, stride):
    """TensorFlow's gradients of ``sum(conv2d(x, kernel) * grad_y)`` with respect to ``x`` and the kernel: the
    reference of week 1's backward pass (withheld from the student's kernel while it is graded)."""
    x_t, kernel_t = tf.constant(x[None]), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([x_t, kernel_t])
        pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        loss = tf.reduce_sum(tf.nn.conv2d(x_t, kernel_t, strides=stride, padding=pads)[0] * grad_y)
    grad_x, grad_kernel = tape.gradient(loss, [x_t, kernel_t])
    return grad_x.numpy()[0], grad_kernel.numpy()


def _gradient_mistakes(x, kernel, grad_y, padding, stride):
    """The gradients that the usual mistakes give, as ({explanation: grad_x}, {explanation: grad_kernel})."""
    right_kernel = tape_gradients(x, kernel, grad_y, padding, stride)[1]
    padded_shape = (x.shape[0] + 2 * padding, x.shape[1] + 2 * padding, x.shape[2])
    for_x = {
        "the input's gradient is the kernel flipped: a window at (i, j) receives grad_y[i, j, f] * kernel[a, b, :, f] "
        "at offset (a, b), not kernel[kh - 1 - a, kw - 1 - b] (a 'full convolution' needs the flipped kernel).": (
            tape_gradients(x, kernel[::-1, ::-1], grad_y, padding, stride)[0]
        ),
    }
    if padding:
        for_x[
            "you returned the gradient of the PADDED input: crop the padding off (rows and columns padding .. "
            "padding + height)."
        ] = lambda g: np.shape(g) == padded_shape
    for_kernel = {
        "your kernel gradient is flipped: kernel[a, b] meets x[i * stride + a, j * stride + b].": right_kernel[
            ::-1, ::-1
        ]
    }
    return for_x, for_kernel


def week1_backward(correlate2d_backward, correlate2d, rng) -> None:
    """The check of week 1's backward pass: both gradients against central differences of the student's own
    ``correlate2d`` and against ``tf.GradientTape``, with and without padding and stride."""
    check_own_work(correlate2d_backward, tape_gradients, "correlate2d_backward")
    for padding, stride in [(0, 1), (1, 2)]:
        x = rng.normal(size=(5, 6, 2))
        kernel = rng.normal(size=(3, 3, 2, 2))
        grad_y = rng.normal(size=np.shape(correlate2d(x, kernel, padding, stride)))  # the loss is sum(y * grad_y)
        _check_backward(correlate2d_backward, correlate2d, x, kernel, grad_y, padding, stride)


def _check_backward(correlate2d_backward, correlate2d, x, kernel, grad_y, padding, stride) -> None:
    """One setting of :func:`week1_backward`."""
    from course_utils.gradients import numerical_gradient  # on use: only this check

    grad_x, grad_kernel = correlate2d_backward(x, kernel, grad_y, padding, stride)
    for_x, for_kernel = _gradient_mistakes(x, kernel, grad_y, padding, stride)
    numeric_x = numerical_gradient(lambda v: np.sum(correlate2d(v, kernel, padding, stride) * grad_y), x, eps=1e-5)
    numeric_kernel = numerical_gradient(lambda k: np.sum(correlate2d(x, k, padding, stride) * grad_y), kernel, eps=1e-5)
    tape_x, tape_kernel = tape_gradients(x, kernel, grad_y, padding, stride)
    setting = f"padding={padding}, stride={stride}"
    check_gradient(grad_x, numeric_x, f"grad_x against central differences ({setting})", mistakes=for_x)
    check_gradient(
        grad_kernel, numeric_kernel, f"grad_kernel against central differences ({setting})", mistakes=for_kernel
    )
    check_gradient(grad_x, tape_x, f"grad_x against tf.GradientTape ({setting})", mistakes=for_x)
    check_gradient(grad_kernel, tape_kernel, f"grad_kernel against tf.GradientTape ({setting})", mistakes=for_kernel)


TTA_COPIES = 8
TTA_ALLOWED_LOSS = 0.02  # of test accuracy: 7 of the 360 test digits


def tta_accuracies(lenet, augment, digits) -> tuple[float, float]:
    """LeNet-5's test accuracy on ``digits`` alone and averaged over :data:`TTA_COPIES` copies under ``augment``,
    both computed here (with the package's TTA), so that they are the grader's own numbers. Refuses an untrained
    ``lenet``."""
    plain = float(np.mean(lenet.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))
    check(
        plain >= 0.9,
        f"LeNet-5 scores {plain:.3f} on the test digits: train it first (part 4). What augmentation does to the "
        "predictions of an untrained network says nothing.",
    )
    averaged = models.predict_with_tta(lenet, digits.x_test, augment, copies=TTA_COPIES)
    return plain, float(np.mean(averaged.argmax(1) == digits.y_test))


def week1_tta_augmentation(tta_augment, lenet, digits) -> None:
    """The check of week 1's chosen TTA augmentation: Keras layers that change the images and with which TTA costs
    LeNet-5 at most :data:`TTA_ALLOWED_LOSS` of test accuracy."""
    check(
        isinstance(tta_augment, keras.Model),
        f"tta_augment must be a keras.Sequential of Keras' random layers, got {type(tta_augment).__name__}",
    )
    some = digits.x_test[:64]
    changed = np.asarray(tta_augment(some, training=True))
    check_shape(changed, some.shape, "tta_augment's output for 64 test digits")
    check(
        float(np.mean(np.abs(changed - some))) > 0.005,
        "tta_augment leaves the images (almost) as they are: averaging identical copies changes nothing. Use a "
        "random transformation, called with training=True.",
    )
    plain, averaged = tta_accuracies(lenet, tta_augment, digits)
    print(f"test accuracy alone: {plain:.3f}; averaged over {TTA_COPIES} copies under tta_augment: {averaged:.3f}")
    flips = [layer for layer in tta_augment.layers if isinstance(layer, layers.RandomFlip)]
    check(
        averaged >= plain - TTA_ALLOWED_LOSS,
        f"test-time augmentation with tta_augment costs {plain - averaged:.1%} of test accuracy, more than "
        f"{TTA_ALLOWED_LOSS:.0%}: its copies are not all the digit the image shows. "
        + (
            "Likely cause: a flipped digit is another shape (a mirrored 3 or 7 is no digit at all)."
            if flips
            else "Ask what a handwritten digit can undergo and stay that digit: how far it can move, how much "
            "it can turn."
        ),
    )
