"""course_utils.diagnostics: the checks before a training, each shown to pass on a working set-up and to fail on a
broken one."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import diagnostics, models


def uniform_classifier(num_classes: int) -> keras.Model:
    """A classifier whose zero weights give every class the same probability, whatever the image."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax", kernel_initializer="zeros"),
        ]
    )


@pytest.mark.parametrize("num_classes", [2, 4, 10])
def test_a_classifier_that_finds_every_class_equally_likely_starts_at_log_c(num_classes):
    x, y = np.random.default_rng(0).normal(size=(20, 8, 8, 1)), np.arange(20) % num_classes
    loss = diagnostics.initial_loss(uniform_classifier(num_classes), x, y)
    assert loss == pytest.approx(diagnostics.chance_loss(num_classes)) == pytest.approx(math.log(num_classes))


def test_a_confidently_wrong_start_is_far_above_log_c():
    model = uniform_classifier(4)
    model.layers[-1].bias.assign([20.0, 0.0, 0.0, 0.0])  # class 0, whatever the image
    x, y = np.zeros((8, 8, 8, 1)), np.full(8, 3)
    assert diagnostics.initial_loss(model, x, y) > 5 * diagnostics.chance_loss(4)


def test_chance_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes, not 1"):
        diagnostics.chance_loss(1)


def test_a_working_set_up_memorises_one_batch_and_a_broken_one_cannot():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 32, 32, 1)).astype("float32"), np.arange(16) % 4
    keras.utils.set_random_seed(0)
    working = diagnostics.overfit_one_batch(models.lenet5(num_classes=4), x, y, steps=100)
    assert len(working) == 100 and working[-1] < 0.05 * working[0]
    # The images lost: every image the same, so no weights can tell the labels apart.
    keras.utils.set_random_seed(0)
    broken = diagnostics.overfit_one_batch(models.lenet5(num_classes=4), np.zeros_like(x), y, steps=100)
    assert broken[-1] > 0.9 * diagnostics.chance_loss(4)


def test_the_range_test_raises_the_rate_geometrically_and_stops_where_the_loss_climbs():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 32, 32, 1)).astype("float32"), rng.integers(0, 4, 200)
    keras.utils.set_random_seed(1)
    rates, losses = diagnostics.learning_rate_range_test(
        models.lenet5(num_classes=4), x, y, lowest=1e-5, highest=100.0, steps=80
    )
    ratios = rates[1:] / rates[:-1]
    assert rates[0] == pytest.approx(1e-5) and np.allclose(ratios, ratios[0])
    assert len(rates) == len(losses) < 80  # Adam's steps at rates up to 100 throw the loss up before the end
    curve = diagnostics.smoothed(losses)
    assert not np.isfinite(losses[-1]) or curve[-1] > 4 * curve.min()
    suggested = diagnostics.suggested_learning_rate(rates, losses)
    assert 1e-6 <= suggested <= 10.0


def test_the_range_test_refuses_a_range_that_does_not_rise():
    with pytest.raises(ValueError, match="0 < lowest < highest"):
        diagnostics.learning_rate_range_test(None, [], [], lowest=0.1, highest=0.01)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 100), st.integers(1, 50), st.floats(0.0, 0.99))
def test_smoothing_a_constant_loss_returns_it_from_the_first_step(value, n, weight):
    assert np.allclose(diagnostics.smoothed([value] * n, weight), value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 10) | st.just(float("nan")), min_size=2, max_size=40))
def test_the_suggestion_is_a_tenth_of_the_rate_where_the_smoothed_loss_is_lowest(losses):
    rates = np.geomspace(1e-5, 1.0, len(losses))
    curve = diagnostics.smoothed(losses)
    if not np.isfinite(curve).any():
        with pytest.raises(ValueError, match="not finite from its first step"):
            diagnostics.suggested_learning_rate(rates, losses)
        return
    suggested = diagnostics.suggested_learning_rate(rates, losses)
    lowest = np.nanmin(np.where(np.isfinite(curve), curve, np.nan))
    assert any(np.isclose(suggested, r / 10) and curve[i] == lowest for i, r in enumerate(rates))


def test_the_suggestion_names_a_mismatch_between_rates_and_losses():
    with pytest.raises(ValueError, match="3 rates and 2 losses"):
        diagnostics.suggested_learning_rate([1e-3, 1e-2, 1e-1], [1.0, 2.0])
