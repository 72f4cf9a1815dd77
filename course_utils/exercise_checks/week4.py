"""The visible checks of week 4's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
from keras import layers

from course_utils import segmentation
from course_utils.checks import check_equal, check_own_work


def week4_transposed_convolution_sizes(transposed_output_size) -> None:
    """The visible check of week 4's transposed convolution sizes."""
    check_own_work(transposed_output_size, segmentation.transposed_conv_output_size, "transposed_output_size")
    for n, kernel, stride, padding in [
        (4, 3, 2, "valid"),
        (4, 2, 2, "same"),
        (7, 5, 3, "valid"),
        (5, 3, 1, "same"),
        (1, 4, 2, "valid"),
    ]:
        probe = keras.Sequential(
            [keras.Input((n, n, 1)), layers.Conv2DTranspose(1, kernel, strides=stride, padding=padding)]
        )
        if padding == "valid":
            mistakes = {
                "that is the size of a (forward) convolution; a transposed one grows the input.": (n - kernel) // stride
                + 1,
                "the input with zeros in between has (n - 1) * stride + 1 values, not n * stride.": n * stride
                + kernel
                - 1,
                "the kernel adds kernel - 1 values to the (n - 1) * stride + 1 of the spread-out input.": (n - 1)
                * stride
                + kernel
                + 1,
                "'same' gives stride * n; with 'valid' the kernel's overhang adds to it.": n * stride,
            }
        else:
            mistakes = {"with 'same' the output is exactly stride * n.": (n - 1) * stride + kernel}
        check_equal(
            transposed_output_size(n, kernel, stride, padding),
            probe.output_shape[1],
            f"transposed_output_size({n}, {kernel}, {stride}, {padding!r})",
            mistakes=mistakes,
        )
