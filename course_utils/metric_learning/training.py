"""Training an embedding (or its classifier twin) on balanced batches, one whole batch per replica."""

from __future__ import annotations

import math

import keras
import numpy as np

from course_utils.config import distribute
from course_utils.metric_learning.batches import BalancedBatches
from course_utils.models import fit_quietly


class ReplicaBatches(keras.utils.PyDataset):
    """``replicas`` consecutive batches of ``batches`` stacked into one global batch, for ``tf.distribute``.

    A strategy splits each global batch into contiguous parts, one per replica,
    so replica ``r`` gets exactly batch ``i * replicas + r`` of ``batches`` with
    its anchor/positive layout intact. An epoch covers the batches of ``batches``
    once (the last global batch wraps around to the first ones when
    ``replicas`` does not divide their number).
    """

    def __init__(self, batches, replicas: int):
        super().__init__()
        self.batches, self.replicas = batches, int(replicas)

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.replicas)

    def __getitem__(self, i):
        parts = [self.batches[(i * self.replicas + r) % len(self.batches)] for r in range(self.replicas)]
        return tuple(np.concatenate(arrays) for arrays in zip(*parts))

    def on_epoch_begin(self):
        self.batches.on_epoch_begin()

    def on_epoch_end(self):
        self.batches.on_epoch_end()


def fit_embedding(
    model: keras.Model,
    batches: BalancedBatches,
    loss,
    epochs: int,
    learning_rate: float = 3e-3,
    callbacks=(),
    jit_compile: bool = False,
    run_eagerly: bool = False,
    strategy=None,
):
    """Compile ``model`` with ``loss`` (e.g. :class:`SimilaritySoftmaxLoss`) and fit it quietly on ``batches``.

    Adam with a cosine-decaying learning rate. Returns ``(history, seconds)``.
    The same function trains a classifier when ``loss`` is a cross-entropy.
    XLA compilation is off by default: for the short runs of the course,
    compiling a network like MobileNetV2 takes longer than training it.
    ``run_eagerly`` skips building a TensorFlow graph altogether: slower per
    step, but quicker for a run of a few steps (the smoke profile).
    ``strategy``: a ``tf.distribute`` strategy the model was built under
    (default: the model's own, see :func:`course_utils.config.distribute`). With
    several replicas each one gets a whole batch of ``batches``
    (:class:`ReplicaBatches`): the losses compare anchors with the positives of
    their own batch, and an epoch then has fewer, larger steps.
    """
    strategy, _ = distribute(model, None, strategy)
    if strategy.num_replicas_in_sync > 1:
        batches = ReplicaBatches(batches, strategy.num_replicas_in_sync)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * len(batches)))
    metrics = ["accuracy"] if isinstance(loss, (str, keras.losses.SparseCategoricalCrossentropy)) else None
    with strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=loss,
            metrics=metrics,
            jit_compile=jit_compile,
            run_eagerly=run_eagerly,
        )
    return fit_quietly(model, batches, epochs=epochs, callbacks=list(callbacks))
