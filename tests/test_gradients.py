"""Finite-difference gradient checks of course_utils.gradients."""

import numpy as np
import pytest
import tensorflow as tf

from course_utils.gradients import numerical_gradient, relative_error


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda v: np.sum(v**3) + 2 * v[0, 1], x)
    expected = 3 * x**2
    expected[0, 1] += 2
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, expected, rtol=1e-8)


def test_numerical_gradient_leaves_x_untouched_and_accepts_float32_and_tensors():
    x = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    before = x.copy()
    grad = numerical_gradient(lambda v: tf.reduce_sum(tf.sin(tf.constant(v))), x)
    np.testing.assert_array_equal(x, before)
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, np.cos(x.astype(np.float64)), rtol=1e-6)


def test_numerical_gradient_agrees_with_gradient_tape_on_a_convolution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 5, 1))
    kernel = tf.constant(rng.normal(size=(3, 3, 1, 1)))
    weights = tf.constant(rng.normal(size=(1, 3, 3, 1)))

    def loss(v):
        return tf.reduce_sum(weights * tf.nn.conv2d(tf.constant(v), kernel, 1, "VALID"))

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = tf.reduce_sum(weights * tf.nn.conv2d(xt, kernel, 1, "VALID"))
    by_tape = tape.gradient(value, xt).numpy()
    assert relative_error(numerical_gradient(loss, x), by_tape) < 1e-8


def test_a_wrong_gradient_has_a_large_relative_error():
    x = np.arange(1.0, 5.0)
    right = numerical_gradient(lambda v: np.sum(v**2), x)
    assert relative_error(right, 2 * x) < 1e-8
    assert relative_error(right, -2 * x) == pytest.approx(1.0)
    assert relative_error(right, 2 * x[::-1]) > 0.1
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="one number"):
        numerical_gradient(lambda v: v * 2, np.ones(3))
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(np.sum, np.ones(3), eps=0)
    with pytest.raises(TypeError, match="function"):
        numerical_gradient(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        numerical_gradient(np.sum, [])
    with pytest.raises(ValueError, match=r"one shape.*\(2,\).*\(3,\)"):
        relative_error(np.ones(2), np.ones(3))
