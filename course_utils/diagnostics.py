"""Checks to run before a long training, each a few seconds, that catch a broken set-up or a bad learning rate.

* :func:`initial_loss` against :func:`chance_loss`: an untrained classifier that
  finds every class about equally likely starts at a cross-entropy of log C;
* :func:`overfit_one_batch`: a working model, loss and pipeline can drive the
  loss on a handful of images to nearly zero;
* :func:`learning_rate_range_test` (Smith, 2017) and :func:`suggested_learning_rate`:
  the loss over a short run whose learning rate grows step by step, and the
  rate it suggests.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from course_utils.models import make_optimizer


def chance_loss(num_classes: int) -> float:
    """The cross-entropy of a classifier that gives each of ``num_classes`` classes the same probability: log C."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, not {num_classes}")
    return math.log(num_classes)


def initial_loss(model: keras.Model, x, y, batch_size: int = 256) -> float:
    """Mean cross-entropy of ``model``'s predictions for ``(x, y)``, integer labels, before any training.

    Near :func:`chance_loss` when the initial weights make every class about
    equally likely; far above it means confident wrong guesses from the start
    (weights or an output layer at the wrong scale), which the first epochs
    are then spent undoing.
    """
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"expected one probability per class from the model, got shape {probabilities.shape}")
    losses = keras.losses.sparse_categorical_crossentropy(np.asarray(y), probabilities)
    return float(np.mean(keras.ops.convert_to_numpy(losses)))


def overfit_one_batch(
    model: keras.Model, x, y, steps: int = 150, learning_rate: float = 1e-3, optimizer: str = "adam"
) -> np.ndarray:
    """Train ``model`` on the one batch ``(x, y)`` for ``steps`` steps; return the batch's loss before each step.

    A network with thousands of weights can memorise a few images, so the loss
    should fall towards zero. If it stays up, something between the images and
    the loss is broken (labels no longer matching their images, the wrong loss
    for the output, a frozen layer), and a long training would only hide it.
    """
    model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss="sparse_categorical_crossentropy")
    x, y = np.asarray(x), np.asarray(y)
    return np.array([float(model.train_on_batch(x, y)) for _ in range(steps)])


def learning_rate_range_test(
    model: keras.Model,
    x,
    y,
    lowest: float = 1e-5,
    highest: float = 1.0,
    steps: int = 120,
    batch_size: int = 32,
    optimizer: str = "adam",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Smith's learning-rate range test: ``(rates, losses)`` of a run whose rate grows by the same factor each step.

    One random batch of ``(x, y)`` per step, the rate rising geometrically from
    ``lowest`` to ``highest``. While the rate is too small the loss hardly
    moves, then it falls, then it climbs as steps grow too large; the run stops
    once the smoothed loss (:func:`smoothed`) is four times the lowest it
    reached, or a loss is not finite. It trains ``model``: test on a fresh
    copy, not on the one to train.
    """
    if not 0 < lowest < highest:
        raise ValueError(f"need 0 < lowest < highest, got {lowest} and {highest}")
    x, y = np.asarray(x), np.asarray(y)
    model.compile(optimizer=make_optimizer(optimizer, lowest), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    rates, losses = np.geomspace(lowest, highest, steps), []
    for rate in rates:
        model.optimizer.learning_rate = rate
        batch = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        losses.append(float(model.train_on_batch(x[batch], y[batch])))
        curve = smoothed(losses)
        if not math.isfinite(losses[-1]) or curve[-1] > 4 * curve.min():
            break
    return rates[: len(losses)], np.array(losses)


def smoothed(losses, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average of ``losses`` (``weight`` on the past), corrected for its start at zero, so
    that one noisy batch does not decide where the range test's curve is lowest."""
    average, out = 0.0, []
    for step, loss in enumerate(np.asarray(losses, dtype=float), start=1):
        average = weight * average + (1 - weight) * loss
        out.append(average / (1 - weight**step))
    return np.array(out)


def suggested_learning_rate(rates, losses) -> float:
    """A tenth of the rate at which the smoothed loss of a range test is lowest.

    At the lowest point the steps are already about as large as they can be
    before the loss turns up; a tenth of that rate keeps most of the speed with
    a margin (the "minimum" suggestion of the fastai library's ``lr_find``).
    """
    rates, curve = np.asarray(rates, dtype=float), smoothed(losses)
    if len(rates) != len(curve) or len(rates) < 2:
        raise ValueError(f"need at least 2 rates with one loss each, got {len(rates)} rates and {len(curve)} losses")
    finite = np.isfinite(curve)
    if not finite.any():
        raise ValueError("the range test's loss was not finite from its first step: lower its lowest rate")
    return float(rates[np.flatnonzero(finite)[np.argmin(curve[finite])]] / 10)
