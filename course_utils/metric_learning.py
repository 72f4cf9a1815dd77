"""Metric learning and k-nearest neighbours (week 5).

Instead of mapping an image to class scores, an *embedding model* maps it to a
point on the unit sphere, trained so that images of the same class end up close
together and images of different classes far apart. Classes are then read off
with k-nearest neighbours (kNN) among a few labelled reference images.

* :func:`embedding_model` -- small CNN encoder, dense projection, unit normalisation.
* :class:`BalancedBatches` -- a ``keras.utils.PyDataset`` of class-balanced
  batches (``classes_per_batch`` classes x ``per_class`` images), ordered so that
  the first half of a batch are *anchors* and the second half their *positives*
  (same classes, same order, different images).
* Losses, written with ``keras.ops`` only (any Keras backend):
  :func:`cosine_similarity_matrix`, :func:`similarity_softmax_loss` (anchors
  against positives, with a temperature) and :func:`triplet_loss` (batch-hard or
  semi-hard mining), and their ``keras.losses.Loss`` forms
  :class:`SimilaritySoftmaxLoss` and :class:`TripletLoss` for ``model.compile``;
  training is a plain ``model.fit`` on :class:`BalancedBatches` (:func:`fit_embedding`;
  under ``tf.distribute``, :class:`ReplicaBatches` gives each replica a whole batch).
* kNN on embeddings with scikit-learn (cosine metric): :func:`knn_fit`,
  :func:`knn_predict` (prediction and vote agreement as confidence),
  :func:`accuracy_vs_k`, :func:`retrieve` (top-k neighbours of a query) and
  :func:`coverage_curve` (accuracy of the confident predictions against the
  fraction of predictions kept).
* :func:`few_label_split` -- the few-labels regime of the chapter (a small
  labelled set, a test set and a class held out of training), for the
  synthetic scenes or any ``(images, labels)`` arrays such as an image folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from course_utils.config import distribute
from course_utils.data import check_integer
from course_utils.models import fit_quietly

# ------------------------------------------------------------------------- the model


@keras.saving.register_keras_serializable(package="course_utils")
class PerImageStandardization(layers.Layer):
    """Subtract each image's mean and divide by its standard deviation, channel by channel.

    The background of a scene sets the average colour of the image; removing it
    leaves the contrasts (edges, the outline of the shape) that tell the class.
    """

    def call(self, images):
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        std = ops.std(images, axis=(1, 2), keepdims=True)
        return (images - mean) / ops.maximum(std, 1e-3)


def embedding_model(
    input_shape=(32, 32, 3),
    embedding_dim: int = 32,
    filters=(16, 32, 64),
    batch_norm: bool = True,
    standardize: bool = True,
    name: str = "embedding",
) -> keras.Model:
    """A small CNN that maps an image to a unit-length vector of ``embedding_dim`` numbers.

    Encoder: a :class:`PerImageStandardization` (when ``standardize``); for each
    entry of ``filters``, two 3x3 convolutions (each with
    batch normalisation when ``batch_norm``, and ReLU) and a 2x2 max pooling;
    then global average pooling.
    Projection: one dense layer (no activation) to ``embedding_dim`` numbers,
    then division by their Euclidean norm, so that every embedding lies on the
    unit sphere and the dot product of two embeddings is their cosine similarity.
    The layers are named ``encoder`` (the pooled features) and ``projection``.
    The standardisation, the projection and the normalisation are float32 even
    under the ``mixed_float16`` policy of the gpu profile (a mean over thousands
    of pixels and a norm are where float16 loses precision); the convolutions
    follow the policy.
    """
    inputs = keras.Input(input_shape)
    x = PerImageStandardization(dtype="float32", name="standardize")(inputs) if standardize else inputs
    for level, width in enumerate(filters):
        for j in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"conv{level}_{j}")(x)
            if batch_norm:
                # A short memory (momentum 0.9): with a few hundred training steps the
                # default 0.99 leaves the running statistics far from the real ones.
                x = layers.BatchNormalization(momentum=0.9, name=f"bn{level}_{j}")(x)
            x = layers.ReLU(name=f"relu{level}_{j}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = layers.GlobalAveragePooling2D(name="encoder")(x)
    x = layers.Dense(embedding_dim, dtype="float32", name="projection")(x)
    outputs = layers.UnitNormalization(dtype="float32", name="unit_norm")(x)
    return keras.Model(inputs, outputs, name=name)


def classifier_from(
    model: keras.Model, num_classes: int, layer: str = "encoder", name: str = "classifier"
) -> keras.Model:
    """A supervised classifier: the layers of ``model`` up to ``layer``, then a (float32) softmax over ``num_classes``.

    With a fresh :func:`embedding_model` this gives the discriminative twin of the
    embedding network: the same encoder, trained with cross-entropy instead.
    """
    features = model.get_layer(layer).output
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="class_scores")(features)
    return keras.Model(model.inputs, outputs, name=name)


def embed(model: keras.Model, images, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``images`` (in inference mode) as a NumPy array.

    The model is called directly, batch by batch, rather than through
    ``predict``: for the few hundred images of the course that is as fast, and
    it does not build (and rebuild, for every new feature extractor) a graph.
    """
    images = np.asarray(images, dtype=np.float32)
    # A functional model built from a list of inputs (as models.feature_extractor does) wants a list.
    wrap = isinstance(model.input, (list, tuple))
    outputs = [
        np.asarray(model([images[i : i + batch_size]] if wrap else images[i : i + batch_size], training=False))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(model.output.shape[1:]), np.float32)


# ---------------------------------------------------------------------- the batches


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
    on ``seed``, ``i`` and ``e``. ``augment`` (default True) applies
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


# -------------------------------------------------------------------------- losses


def cosine_similarity_matrix(a, b=None):
    """Cosine similarities of every row of ``a`` with every row of ``b`` (default ``a``), shape (len(a), len(b)).

    Rows are normalised first, so the inputs need not have unit length.
    """
    a = ops.convert_to_tensor(a)
    b = a if b is None else ops.convert_to_tensor(b)
    a = a / ops.maximum(ops.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / ops.maximum(ops.norm(b, axis=1, keepdims=True), 1e-12)
    return ops.matmul(a, ops.transpose(b))


def similarity_softmax_loss(anchors, positives, temperature: float = 0.1, anchor_labels=None, positive_labels=None):
    """Softmax cross-entropy over the anchor-positive similarity matrix, one value per anchor.

    Row ``i`` of ``S = cos(anchors, positives) / temperature`` is turned into
    probabilities with a softmax; the target puts all of its mass on positive
    ``i`` (no labels given) or spreads it evenly over the positives that share
    the anchor's label (labels given). The loss is small when every anchor is
    more similar to its own positives than to the others, and the temperature
    sets how much more: cosine similarities lie in [-1, 1], so with a
    temperature of 1 two logits differ by at most 2 and the softmax can never
    become sharp, while a small temperature turns a modest margin in cosine
    into a confident match.
    """
    logits = cosine_similarity_matrix(anchors, positives) / temperature
    if anchor_labels is None:
        n = ops.shape(logits)[0]
        targets = ops.eye(n, dtype=logits.dtype)
    else:
        same = ops.equal(ops.reshape(anchor_labels, (-1, 1)), ops.reshape(positive_labels, (1, -1)))
        targets = ops.cast(same, logits.dtype)
        targets = targets / ops.maximum(ops.sum(targets, axis=1, keepdims=True), 1.0)
    log_probabilities = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return -ops.sum(targets * log_probabilities, axis=1)


def _pairwise_distances(embeddings):
    """Euclidean distances between all rows (for unit vectors: sqrt(2 - 2 cos))."""
    squared = ops.sum(ops.square(embeddings), axis=1)
    d2 = (
        ops.expand_dims(squared, 1)
        - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
        + ops.expand_dims(squared, 0)
    )
    d2 = ops.maximum(d2, 0.0)
    # sqrt has an infinite slope at 0: keep the zeros (the diagonal) out of it.
    zero = ops.cast(ops.less_equal(d2, 1e-12), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-12) * (1.0 - zero)


def triplet_loss(labels, embeddings, margin: float = 0.2, mining: str = "hard"):
    """Triplet loss with in-batch mining, one value per anchor (``mining="hard"``) or per positive pair.

    For an anchor ``a``, a positive ``p`` (same label) and a negative ``n``
    (different label) the triplet loss is ``max(0, d(a, p) - d(a, n) + margin)``
    with Euclidean distances ``d``. Which triplets count:

    * ``"hard"`` (batch-hard): for each anchor, its farthest positive and its
      nearest negative in the batch; returns one value per anchor.
    * ``"semi-hard"``: for each anchor-positive pair, the nearest negative that
      is still farther than the positive (``d(a, p) < d(a, n)``), or the farthest
      negative when there is none; the result is averaged over the anchor's
      positive pairs, one value per anchor.

    Anchors without a positive or a negative in the batch contribute 0.
    """
    if mining not in ("hard", "semi-hard"):
        raise ValueError(f"mining must be 'hard' or 'semi-hard', got {mining!r}")
    labels = ops.reshape(labels, (-1,))
    d = _pairwise_distances(embeddings)
    n = ops.shape(d)[0]
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
    positive = ops.cast(ops.logical_and(same, not_self), d.dtype)
    negative = ops.cast(ops.logical_not(same), d.dtype)
    has_both = ops.cast(ops.logical_and(ops.sum(positive, axis=1) > 0, ops.sum(negative, axis=1) > 0), d.dtype)
    big = ops.max(d) + 1.0
    if mining == "hard":
        hardest_positive = ops.max(d * positive, axis=1)
        hardest_negative = ops.min(d + big * (1.0 - negative), axis=1)
        return ops.relu(hardest_positive - hardest_negative + margin) * has_both
    # Semi-hard: d_ap[i, j] against d_an[i, k] for every anchor i, positive j, negative k.
    d_ap = ops.expand_dims(d, 2)  # (n, n, 1)
    d_an = ops.expand_dims(d, 1)  # (n, 1, n)
    neg = ops.expand_dims(negative, 1)  # (n, 1, n)
    farther = ops.cast(ops.greater(d_an, d_ap), d.dtype) * neg
    semi_hard = ops.min(d_an + big * (1.0 - farther), axis=2)  # nearest negative beyond the positive
    any_farther = ops.cast(ops.sum(farther, axis=2) > 0, d.dtype)
    farthest = ops.max(d_an * neg - big * (1.0 - neg), axis=2)  # fallback: the farthest negative
    chosen = any_farther * semi_hard + (1.0 - any_farther) * farthest
    per_pair = ops.relu(d - chosen + margin) * positive
    per_anchor = ops.sum(per_pair, axis=1) / ops.maximum(ops.sum(positive, axis=1), 1.0)
    return per_anchor * has_both


@keras.saving.register_keras_serializable(package="course_utils")
class SimilaritySoftmaxLoss(keras.losses.Loss):
    """:func:`similarity_softmax_loss` for ``model.compile``, on batches laid out by :class:`BalancedBatches`.

    ``y_pred`` is the batch of embeddings, ``y_true`` their labels; the first
    half of the batch are the anchors, the second half their positives.
    ``use_labels`` (default True) counts every positive of the anchor's class as
    a match; False counts only the positive in the same row.
    """

    def __init__(self, temperature: float = 0.1, use_labels: bool = True, name: str = "similarity_softmax", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature
        self.use_labels = use_labels

    def call(self, y_true, y_pred):
        half = ops.shape(y_pred)[0] // 2
        labels = ops.reshape(y_true, (-1,))
        if self.use_labels:
            return similarity_softmax_loss(y_pred[:half], y_pred[half:], self.temperature, labels[:half], labels[half:])
        return similarity_softmax_loss(y_pred[:half], y_pred[half:], self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "use_labels": self.use_labels}


@keras.saving.register_keras_serializable(package="course_utils")
class TripletLoss(keras.losses.Loss):
    """:func:`triplet_loss` for ``model.compile``: ``y_true`` labels, ``y_pred`` embeddings."""

    def __init__(self, margin: float = 0.2, mining: str = "hard", name: str = "triplet", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.mining = mining

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, self.margin, self.mining)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


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


# ----------------------------------------------------------------------------- kNN


def knn_fit(reference, labels, k: int = 5):
    """A scikit-learn ``KNeighborsClassifier`` with the cosine metric, fitted on the reference embeddings."""
    from sklearn.neighbors import KNeighborsClassifier

    k = min(int(k), len(reference))
    return KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(
        np.asarray(reference).reshape(len(reference), -1), np.asarray(labels)
    )


def knn_predict(reference, labels, queries, k: int = 5):
    """kNN predictions for ``queries`` and their confidence, the share of the k votes won by the prediction.

    Ties are won by the smaller label (scikit-learn's rule). Returns
    ``(predicted labels, confidence)``.
    """
    knn = knn_fit(reference, labels, k)
    probabilities = knn.predict_proba(np.asarray(queries).reshape(len(queries), -1))
    return knn.classes_[probabilities.argmax(axis=1)], probabilities.max(axis=1)


def accuracy_vs_k(reference, labels, queries, query_labels, ks=(1, 3, 5, 7, 9, 15)) -> dict[int, float]:
    """Test accuracy of kNN for each k in ``ks`` (those not larger than the reference set)."""
    result = {}
    for k in ks:
        if k <= len(reference):
            predicted, _ = knn_predict(reference, labels, queries, k)
            result[int(k)] = float(np.mean(predicted == np.asarray(query_labels)))
    return result


def retrieve(gallery, queries, k: int = 5):
    """The ``k`` gallery items most similar (cosine) to each query: ``(indices, similarities)``, best first."""
    from sklearn.neighbors import NearestNeighbors

    gallery = np.asarray(gallery).reshape(len(gallery), -1)
    nn = NearestNeighbors(n_neighbors=min(k, len(gallery)), metric="cosine").fit(gallery)
    distance, index = nn.kneighbors(np.asarray(queries).reshape(len(queries), -1))
    return index, 1.0 - distance


def coverage_curve(correct, confidence):
    """Accuracy of the predictions whose confidence reaches each threshold, against the share kept.

    Returns a list of ``(threshold, coverage, accuracy)``, one per distinct
    confidence value, from the lowest threshold (everything kept) to the highest.
    """
    correct = np.asarray(correct, dtype=float)
    confidence = np.asarray(confidence, dtype=float)
    rows = []
    for threshold in np.unique(confidence):
        kept = confidence >= threshold
        rows.append((float(threshold), float(kept.mean()), float(correct[kept].mean())))
    return rows


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class FewLabels:
    """The few-labels regime: a small labelled set, a test set, and one class held out of training.

    * ``x_labelled, y_labelled`` -- ``per_class`` images of each *training* class:
      all the labels the embedding (and every model compared with it) sees;
    * ``x_reference, y_reference`` -- the labelled set plus ``per_class`` images of
      the held-out class: the kNN reference set, for all classes;
    * ``x_test, y_test`` -- test images of all classes, seen by no model;
    * ``class_names`` and ``held_out`` (the id of the held-out class, or None).
    """

    x_labelled: np.ndarray
    y_labelled: np.ndarray
    x_reference: np.ndarray
    y_reference: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    held_out: int | None

    @property
    def seen(self) -> np.ndarray:
        """Boolean mask of the test images whose class was used in training."""
        return self.y_test != self.held_out if self.held_out is not None else np.ones(len(self.y_test), bool)


def few_label_split(
    images, labels, class_names, per_class: int = 20, held_out=None, test_per_class: int | None = None, seed: int = 0
) -> FewLabels:
    """Split ``(images, labels)`` into the few-labels regime of :class:`FewLabels`.

    ``held_out`` is a class name or id (or None). For each class, ``per_class``
    random images become labelled (reference only, for the held-out class) and
    up to ``test_per_class`` others (default: all the others) the test set.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int32)
    class_names = tuple(class_names)
    if isinstance(held_out, str):
        if held_out not in class_names:
            raise ValueError(f"held_out={held_out!r} is not one of the classes {class_names}")
        held_out = class_names.index(held_out)
    rng = np.random.default_rng(seed)
    labelled, reference, test = [], [], []
    for c in range(len(class_names)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < per_class + 1:
            raise ValueError(f"class {class_names[c]!r} has {len(idx)} images; per_class={per_class} needs more")
        reference.append(idx[:per_class])
        if c != held_out:
            labelled.append(idx[:per_class])
        rest = idx[per_class:]
        test.append(rest if test_per_class is None else rest[:test_per_class])
    labelled, reference, test = (np.sort(np.concatenate(part)) for part in (labelled, reference, test))
    return FewLabels(
        images[labelled],
        labels[labelled],
        images[reference],
        labels[reference],
        images[test],
        labels[test],
        class_names,
        held_out,
    )


def scenes_few_labels(
    size: int = 32, per_class: int = 20, test_per_class: int = 150, held_out="diamond", seed: int = 0, **scene_kwargs
) -> FewLabels:
    """:func:`few_label_split` on synthetic scenes with one shape per image (``course_utils.scenes``)."""
    from course_utils.scenes import SHAPES, make_scenes

    classes = scene_kwargs.pop("classes", SHAPES)
    # Enough images that every class has per_class + test_per_class with a wide margin.
    n = math.ceil(len(classes) * (per_class + test_per_class) * 1.3) + 40
    scenes = make_scenes(n, size=size, seed=seed, objects=(1, 1), classes=classes, **scene_kwargs)
    return few_label_split(scenes.images, scenes.labels, scenes.class_names, per_class, held_out, test_per_class, seed)


# --------------------------------------------------------------------------- figures


def plot_similarity_heatmaps(matrices: dict, labels=None, class_names=None, title: str | None = None):
    """Side-by-side heatmaps of similarity matrices (e.g. before and after training), values in [-1, 1].

    ``labels`` (of the rows/columns) draws lines between the classes of a sorted batch.
    """
    import matplotlib.pyplot as plt

    from course_utils.plots import PAGE_WIDTH

    # No wider than the page, which would scale the figure (and its labels) down.
    width = min(4.2 * len(matrices), PAGE_WIDTH)
    fig, axes = plt.subplots(
        1,
        len(matrices),
        figsize=(width, 3.9 * width / (4.2 * len(matrices)) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for i, (ax, (name, matrix)) in enumerate(zip(axes.flat, matrices.items())):
        image = ax.imshow(np.asarray(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("positives")
        if i == 0:  # one label for the row: the panels' own labels ran into their neighbours
            ax.set_ylabel("anchors")
        if labels is not None:
            labels_arr = np.asarray(labels)
            edges = np.flatnonzero(np.diff(labels_arr)) + 0.5
            for e in edges:
                ax.axhline(e, color="black", lw=0.6)
                ax.axvline(e, color="black", lw=0.6)
            if class_names is not None:
                starts = np.concatenate([[0], np.flatnonzero(np.diff(labels_arr)) + 1])
                ends = np.concatenate([starts[1:], [len(labels_arr)]])
                centres = (starts + ends - 1) / 2
                names = [class_names[labels_arr[s]] for s in starts]
                ax.set_xticks(centres, names, fontsize=9)
                ax.set_yticks(centres, names, fontsize=9, rotation=90, va="center")
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="cosine similarity")
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------ autoencoders


def add_noise(images, sigma: float, seed=0) -> np.ndarray:
    """``images`` (values in [0, 1]) plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1].

    ``seed`` is anything :func:`numpy.random.default_rng` takes (an int, a list
    of ints): the same seed gives the same noise.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    images = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0.0, sigma, images.shape).astype(np.float32), 0.0, 1.0)


def psnr(reference, images, max_val: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each image against its reference, in decibels: ``tf.image.psnr``.

    ``10 * log10(max_val**2 / MSE)``, the mean squared error taken over all the
    pixels and channels of one image; higher is closer. Inputs are batches of
    shape (n, height, width, channels) or single images (height, width,
    channels); returns one value per image (infinite where they are equal).
    """
    import tensorflow as tf

    reference = np.asarray(reference, dtype=np.float32)
    images = np.asarray(images, dtype=np.float32)
    if reference.shape != images.shape:
        raise ValueError(f"psnr needs images of the same shape, got {reference.shape} and {images.shape}")
    if reference.ndim not in (3, 4):
        raise ValueError(f"psnr needs (height, width, channels) images or a batch of them, got shape {reference.shape}")
    return np.asarray(tf.image.psnr(reference, images, max_val=max_val))


def denoising_autoencoder(
    input_shape=(32, 32, 3), filters=(32, 64), latent_channels: int = 16, name: str = "autoencoder"
) -> keras.Model:
    """A convolutional autoencoder: images in [0, 1] in, images of the same shape in [0, 1] out.

    Encoder: for each entry of ``filters``, a 3x3 convolution (ReLU) and a 2x2
    max pooling; then a 3x3 convolution to ``latent_channels`` maps (ReLU), the
    *bottleneck*, a layer named ``latent`` of shape
    (height / 2**len(filters), width / 2**len(filters), latent_channels).
    Decoder: the mirror image, a 3x3 transposed convolution with stride 2
    (ReLU) per entry of ``filters`` in reverse order, then a 3x3 convolution to
    the input's channels with a sigmoid. Trained on (noisy, clean) pairs
    (:class:`NoisyBatches`) it is a *denoising* autoencoder. The height and
    width of the input must be divisible by ``2**len(filters)``.
    """
    height, width, channels = input_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(f"input height and width must be divisible by {scale} (2 ** len(filters)), got {input_shape}")
    inputs = keras.Input(input_shape)
    x = inputs
    for level, width_ in enumerate(filters):
        x = layers.Conv2D(width_, 3, padding="same", activation="relu", name=f"enc_conv{level}")(x)
        x = layers.MaxPooling2D(2, name=f"enc_pool{level}")(x)
    x = layers.Conv2D(latent_channels, 3, padding="same", activation="relu", name="latent")(x)
    for level, width_ in reversed(list(enumerate(filters))):
        x = layers.Conv2DTranspose(width_, 3, strides=2, padding="same", activation="relu", name=f"dec_up{level}")(x)
    outputs = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", dtype="float32", name="reconstruction")(
        x
    )
    return keras.Model(inputs, outputs, name=name)


class NoisyBatches(keras.utils.PyDataset):
    """``(noisy, clean)`` batches of ``images`` for training a denoising autoencoder with ``model.fit``.

    Every epoch shuffles the images and draws fresh noise (:func:`add_noise`
    with ``sigma``), so the network never sees the same corrupted copy twice
    and cannot learn the noise by heart. Batch ``i`` of epoch ``e`` only
    depends on ``seed``, ``e`` and ``i``.
    """

    def __init__(self, images, sigma: float, batch_size: int = 64, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images, dtype=np.float32)
        if self.images.ndim != 4 or not len(self.images):
            raise ValueError(
                f"NoisyBatches needs a non-empty batch of images (n, height, width, channels), "
                f"got shape {self.images.shape}"
            )
        self.batch_size = check_integer(batch_size, "batch_size")
        self.sigma, self.seed = float(sigma), seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
        clean = self.images[order[i * self.batch_size : (i + 1) * self.batch_size]]
        return add_noise(clean, self.sigma, [self.seed, self.epoch, i, 1]), clean


def fit_autoencoder(
    model: keras.Model, batches: NoisyBatches, epochs: int, learning_rate: float = 2e-3, run_eagerly: bool = False
):
    """Compile ``model`` with the mean squared error and fit it quietly on ``batches``: ``(history, seconds)``.

    Adam with a cosine-decaying learning rate, as :func:`fit_embedding`.
    """
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * len(batches)))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", run_eagerly=run_eagerly)
    return fit_quietly(model, batches, epochs=epochs)
