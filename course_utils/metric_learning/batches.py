"""Class-balanced batches of anchors and positives for metric learning, with label-preserving augmentation."""

from __future__ import annotations

import keras
import numpy as np


def augment_batch(images: np.ndarray, rng: np.random.Generator, shift: int = 2, colour: bool = True) -> np.ndarray:
    """Random label-preserving changes of a batch: quarter turns, mirror images, small shifts, colours.

    A circle, a square, a diamond and a triangle stay what they are when turned by
    90 degrees or mirrored, so these are safe for the synthetic shapes. Shifts
    move each image by up to ``shift`` pixels (edge pixels repeat). ``colour``
    shuffles the colour channels of each image and inverts some of them
    (``1 - value``): the outline of a shape survives, its colour and the colour
    of the background do not, so a model cannot tell images apart by colour.
    """
    out = np.empty_like(images)
    n = len(images)
    turns = rng.integers(0, 4, n)
    flips = rng.random(n) < 0.5
    moves = rng.integers(-shift, shift + 1, (n, 2))
    orders = np.argsort(rng.random((n, images.shape[-1])), axis=1)
    inverts = rng.random((n, images.shape[-1])) < 0.5
    for i, image in enumerate(images):
        if colour:
            image = image[..., orders[i]]
            image = np.where(inverts[i], 1.0 - image, image)
        image = np.rot90(image, turns[i], axes=(0, 1))
        if flips[i]:
            image = image[:, ::-1]
        if shift:
            dy, dx = moves[i]
            image = np.pad(image, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
            image = image[shift + dy : shift + dy + images.shape[1], shift + dx : shift + dx + images.shape[2]]
        out[i] = image
    return out


class BalancedBatches(keras.utils.PyDataset):
    """Class-balanced batches for metric learning, as a ``keras.utils.PyDataset`` for ``model.fit``.

    Each batch draws ``classes_per_batch`` classes (all of them by default) and
    ``per_class`` images of each (``per_class`` must be even). Item ``i`` is
    ``(images, labels)`` with ``classes_per_batch * per_class`` rows, arranged in
    two halves: row ``j`` of the first half (the *anchors*) and row ``j`` of the
    second half (the *positives*) are two different images of the same class.
    :func:`similarity_softmax_loss` relies on this order; the triplet loss and
    cross-entropy ignore it.

    Batches are random but reproducible: batch ``i`` of epoch ``e`` only depends
    on ``seed``, ``i`` and ``e``. The epoch count goes on from one ``fit`` to the
    next, so a second model trained on the same object gets other batches.
    ``augment`` (default True) applies
    :func:`augment_batch` (with its colour changes when ``colour``).
    """

    def __init__(
        self,
        images,
        labels,
        classes_per_batch: int | None = None,
        per_class: int = 4,
        steps: int = 20,
        augment: bool = True,
        colour: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels).astype(np.int32)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.classes = np.unique(self.labels)
        self.classes_per_batch = len(self.classes) if classes_per_batch is None else int(classes_per_batch)
        if not 1 <= self.classes_per_batch <= len(self.classes):
            raise ValueError(f"classes_per_batch must be between 1 and {len(self.classes)}, got {classes_per_batch}")
        if per_class < 2 or per_class % 2:
            raise ValueError(f"per_class must be an even number >= 2 (anchors and positives), got {per_class}")
        self.per_class = int(per_class)
        self.steps = int(steps)
        self.augment = augment
        self.colour = colour
        self.seed = seed
        self.epoch = 0
        self.index_of = {c: np.flatnonzero(self.labels == c) for c in self.classes}
        small = [int(c) for c, idx in self.index_of.items() if len(idx) < 2]
        if small:
            raise ValueError(f"classes {small} have fewer than 2 images: no anchor/positive pair possible")

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        chosen = rng.choice(self.classes, self.classes_per_batch, replace=False)
        half = self.per_class // 2
        anchors, positives = [], []
        for c in chosen:
            pool = self.index_of[c]
            picks = rng.choice(pool, self.per_class, replace=len(pool) < self.per_class)
            anchors.append(picks[:half])
            positives.append(picks[half:])
        # Interleave by class so that anchor j and positive j share a class.
        anchors = np.stack(anchors, axis=1).ravel()
        positives = np.stack(positives, axis=1).ravel()
        index = np.concatenate([anchors, positives])
        x = self.images[index]
        if self.augment:
            x = augment_batch(x, rng, colour=self.colour)
        return x, self.labels[index]
