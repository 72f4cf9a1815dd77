"""Training the week's classifiers: compiling, the fit loop and its schedule, class weights, evaluation.

:func:`fit_with_warmup` is the fit loop of every classifier of the chapter: Adam on a
:class:`WarmupExponentialDecay` schedule, fitted quietly, with the wall time of
each epoch kept for :func:`images_per_second`.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import ops
from sklearn.utils.class_weight import compute_class_weight

from course_utils.config import distribute
from course_utils.models import fit_quietly


def compile_classifier(model: keras.Model, learning_rate=1e-3, strategy=None, soft_labels: bool = False) -> keras.Model:
    """Compile for integer labels: Adam, sparse categorical cross-entropy, accuracy.

    ``soft_labels=True``: labels are class probabilities (as :func:`mixup_batches` makes), and the loss is the
    categorical cross-entropy. ``strategy``: a ``tf.distribute`` strategy, by default the model's own
    (see :func:`course_utils.config.distribute`).
    """
    strategy, _ = distribute(model, None, strategy)
    loss = "categorical_crossentropy" if soft_labels else "sparse_categorical_crossentropy"
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return model


@keras.saving.register_keras_serializable(package="course_utils")
class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from ``initial`` to ``peak`` over ``warmup_steps``, then exponential decay.

    ``lr(step) = initial + (peak - initial) * step / warmup_steps`` while
    ``step < warmup_steps``, then
    ``max(floor, peak * decay_rate ** ((step - warmup_steps) / decay_steps))``.
    Warming up avoids large, badly aimed first steps while the weights (and, for
    Adam, its moment estimates) are still random; the decay lets training settle.
    """

    def __init__(self, peak, warmup_steps, decay_steps, decay_rate=0.5, initial=0.0, floor=0.0):
        if peak <= 0:
            raise ValueError(f"peak must be positive, got {peak!r}")
        if warmup_steps < 0 or decay_steps <= 0:
            raise ValueError(f"need warmup_steps >= 0 and decay_steps > 0, got {warmup_steps!r}, {decay_steps!r}")
        if not 0 < decay_rate <= 1:
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = float(decay_steps)
        self.decay_rate = float(decay_rate)
        self.initial = float(initial)
        self.floor = float(floor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        rising = self.initial + (self.peak - self.initial) * step / warm
        decaying = self.peak * ops.power(self.decay_rate, (step - self.warmup_steps) / self.decay_steps)
        decaying = ops.maximum(decaying, self.floor)
        return ops.where(step < self.warmup_steps, rising, decaying)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "initial": self.initial,
            "floor": self.floor,
        }


def fit_with_warmup(
    model: keras.Model,
    x,
    y=None,
    epochs: int = 10,
    learning_rate: float = 3e-3,
    batch_size: int = 64,
    validation=None,
    class_weight=None,
    warmup_epochs: float = 1.0,
    final_fraction: float = 0.02,
    steps_per_epoch: int | None = None,
    strategy=None,
    soft_labels: bool = False,
):
    """Compile ``model`` with Adam on a :class:`WarmupExponentialDecay` schedule and fit it quietly.

    The learning rate rises linearly to its peak, ``learning_rate``, during
    ``warmup_epochs``, then decays exponentially to ``final_fraction * learning_rate``
    at the last step. ``validation``: optional ``(x, y)`` or a dataset, scored after each epoch.
    ``x`` is an array (with labels ``y``) or a ``tf.data.Dataset`` of batches (then
    give ``steps_per_epoch`` if it cannot be computed). Returns ``(history, seconds)``;
    ``history.epoch_seconds`` lists the wall time of each epoch (see
    :func:`images_per_second`).

    ``soft_labels``: the labels are class probabilities (see :func:`compile_classifier`).
    ``strategy``: a ``tf.distribute`` strategy (by default the model's own, see
    :func:`course_utils.config.distribute`); ``batch_size`` is then per replica.
    A dataset of batches is used as it is: batch it with the global batch size.
    """
    strategy, batch_size = distribute(model, batch_size, strategy)
    if steps_per_epoch is None:
        steps_per_epoch = int(np.ceil(len(x) / batch_size)) if y is not None else int(len(x))
    total = max(1, epochs * steps_per_epoch)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    decay_steps = max(1, total - warmup)
    schedule = WarmupExponentialDecay(learning_rate, warmup, decay_steps=decay_steps, decay_rate=final_fraction)
    compile_classifier(model, schedule, strategy=strategy, soft_labels=soft_labels)
    clock = _EpochClock()
    fit_args = dict(epochs=epochs, validation_data=validation, class_weight=class_weight, callbacks=[clock])
    if y is not None:
        history, seconds = fit_quietly(model, x, y, batch_size=batch_size, **fit_args)
    else:
        history, seconds = fit_quietly(model, x, shuffle=False, **fit_args)  # a dataset shuffles itself
    history.epoch_seconds = clock.seconds
    return history, seconds


class _EpochClock(keras.callbacks.Callback):
    """Wall time of each epoch (the first one includes tracing the training step)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def images_per_second(history, images_per_epoch: int) -> float:
    """Training speed from a history returned by :func:`fit_with_warmup`: the median epoch after the first
    (which also traces the training step), or the only epoch if there is one."""
    seconds = getattr(history, "epoch_seconds", None)
    if not seconds:
        raise ValueError(
            "this history has no epoch times: train the model with course_utils.recognition.fit_with_warmup"
        )
    steady = seconds[1:] or seconds
    return float(images_per_epoch / np.median(steady))


def accuracy_in_both_modes(model: keras.Model, x, y) -> tuple[float, float]:
    """``(training-mode accuracy, inference-mode accuracy)`` of ``model`` on ``x`` with integer labels ``y``.

    Training mode normalises each BatchNormalization layer with the statistics of ``x`` itself (and applies
    dropout); inference mode, as ``predict``, with the moving averages. Far apart on the training images, they
    say the averages no longer fit the weights. The call in training mode moves the averages a little: the
    model's weights are put back after it.
    """
    y = np.asarray(y).reshape(-1)
    kept = model.get_weights()
    training = keras.ops.convert_to_numpy(model(np.asarray(x), training=True)).argmax(axis=-1)
    model.set_weights(kept)
    inference = keras.ops.convert_to_numpy(model(np.asarray(x), training=False)).argmax(axis=-1)
    return float(np.mean(training == y)), float(np.mean(inference == y))


def evaluate(model: keras.Model, x, y, batch_size: int = 256) -> tuple[float, np.ndarray]:
    """``(accuracy, probabilities)`` of ``model`` on ``x`` with integer labels ``y`` (shape ``(n,)`` or ``(n, 1)``)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"y must be integer labels of shape (n,), got shape {y.shape}; for one-hot labels pass y.argmax(1)"
        )
    if len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} images, {len(y)} labels")
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(probabilities.argmax(1) == y)), probabilities


def class_weights(labels, num_classes: int | None = None) -> dict[int, float]:
    """Weights ``n / (K * n_k)`` per class, for ``model.fit(class_weight=...)``.

    Each class then contributes the same total weight to the loss, as if the
    classes were balanced; a class of average size gets weight 1. Raises a clear
    error when a class has no example (its weight would be infinite), and for
    labels that are not class ids >= 0 (whole-number floats such as ``1.0`` are accepted).
    """
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("labels is empty")
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"labels must be integer class ids, got an array of {labels.dtype}")
    fractional = ~np.isfinite(labels) | (labels != np.round(labels))
    if fractional.any():
        raise ValueError(f"labels must be integer class ids 0, 1, 2, ..., found {labels[fractional][0].item()!r}")
    labels = labels.astype(int)
    if labels.min() < 0:
        raise ValueError(f"labels must be class ids >= 0, found {labels.min()}")
    k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    if labels.max() >= k:
        raise ValueError(f"label {labels.max()} is out of range for num_classes={k}")
    missing = np.setdiff1d(np.arange(k), labels)
    if missing.size:
        raise ValueError(f"class(es) {missing.tolist()} have no examples: cannot weight them")
    weights = compute_class_weight("balanced", classes=np.arange(k), y=labels)  # n / (K * n_k)
    return {i: float(w) for i, w in enumerate(weights)}
