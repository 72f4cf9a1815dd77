# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Week 5: Metric learning and k-nearest neighbours
#
# In week 2 a network learned to answer one question: *which of these classes
# is this image?* This week it learns to answer a different one: *how alike are
# these two images?* We train a small CNN to place every image on the surface of
# a sphere, so that images of the same class land close together and images of
# different classes far apart, and then classify by looking up the nearest
# labelled images (k-nearest neighbours, kNN).
#
# We do it in a *few-labels* regime: 20 labelled images per class, of which the
# network is trained on three classes only; the fourth class is kept out of
# training altogether, to see what the learned distance makes of a class it has
# never seen. Along the way we look at what the loss does (a similarity matrix
# and a softmax with a {term}`temperature <Temperature>`), how kNN turns votes into a confidence, and
# how the learned {term}`embedding <Embedding>` compares with raw pixels, with MobileNetV2 features
# and with an ordinary supervised classifier trained on the same images.
# Last, a denoising autoencoder learns from images without any labels at all:
# how well it removes noise, and what its latent space is worth for the same
# kNN.
#
# Every result on this page is computed by the code above it, except two kinds
# of quoted number: the papers' figures, named as such, and the ranges the
# benchmark measured over several run seeds, each with a folded note saying
# where and when. The data are the course's synthetic scenes, so nothing is
# downloaded.
#
# **After this chapter you can**
#
# * train an embedding network with a similarity-softmax loss on class-
#   balanced batches, and set it beside the triplet and contrastive losses;
# * read a sweep of the temperature and the embedding size over run seeds;
# * classify with k-nearest neighbours from a few labelled images, including a
#   class never seen in training;
# * compare a learned distance with raw pixels, pretrained features and a
#   supervised classifier;
# * train a denoising autoencoder without labels and judge its latent space.
#
# **Running time:** between 5.8 and 5.9 minutes at profile `cpu` on a 2-core
# machine without a GPU (the benchmark's five run seeds 0 to 4, which ran
# alone; `week5.chapter.seconds` in `bench/results.json`); seconds at profile
# `smoke`.

# %% tags=["parameters"]
# Papermill sets PROFILE: "smoke" (seconds, for tests), "cpu" (minutes) or
# "gpu". None picks "gpu" when TensorFlow sees a GPU and "cpu" otherwise.
PROFILE = None
# The run seed: 0 for the book; the benchmarks rerun the chapter with others
# (fresh data, weights and order).
SEED = 0
# The data: "scenes" (synthetic, offline), a folder with one sub-folder of
# images per class (at least PER_CLASS + a few images in each), or a TensorFlow
# Datasets name such as "tfds:tf_flowers" (Colab). See the page "Use your own
# images".
DATA_SOURCE = "scenes"
# The class kept out of training (a name); None: "diamond" for the scenes, the
# last class of a folder.
HELD_OUT = None

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter

from course_utils import claims, config, data, models, plots
from course_utils import metric_learning as ml
from course_utils import recognition as rec
from course_utils.scenes import make_scenes

profile = config.setup(PROFILE, seed=SEED, data_source=DATA_SOURCE)
# image side in pixels
SIZE = profile.pick(smoke=32, cpu=32, gpu=64)
# labelled images per class
PER_CLASS = 20
# test images per class
TEST_PER_CLASS = profile.pick(smoke=30, cpu=150, gpu=500)
# epochs of STEPS batches
EPOCHS = profile.pick(smoke=1, cpu=60, gpu=100)
STEPS = profile.pick(smoke=3, cpu=10, gpu=10)
# neighbours that vote
K = 5
# a few steps only: skip building TensorFlow graphs
EAGER = profile.name == "smoke"
TEMPERATURE = 0.1
print(
    f"profile: {profile}, {SIZE}x{SIZE} images, {EPOCHS} epochs of {STEPS}"
    " batches per model"
)
print(config.describe_device())


# %% tags=["remove-cell"]
claims.quoted_from_bench(
    "week5.chapter.seconds",
    5.8,
    5.9,
    scale=1 / 60,
)

# %% [markdown]
# ## 1. Two ways to learn from labels
#
# A **discriminative** classifier, like week 2's MobileNetV2, ends in a softmax
# layer with one output per class and is trained with {term}`cross-entropy <Cross-entropy>`: it is
# rewarded for putting probability on the right class. Its features only have to
# be good enough for the last layer to separate a fixed list of classes. Nothing
# in that objective says that two images with similar features should look alike,
# or that the distance between two feature vectors means anything; and a new class
# needs a new output and new training.
#
# **Metric learning** drops the classifying head. The network maps an image to
# an *embedding*, here a vector of length 1, and the loss only looks at pairs:
# embeddings of two images of the same class should be similar, those of two
# different classes dissimilar. The idea goes back to *siamese* networks
# {cite}`bromley1993`: two copies of one network, sharing their weights,
# trained to verify signatures by the distance between their two outputs. The
# margin-based {term}`contrastive loss <Contrastive loss>` for such pairs, still in wide use, came
# later {cite}`hadsell2006`. The loss only needs to know, for each pair, *same*
# or *different*: no image is ever mapped to a class. Where such pairs come
# without class names (two photographs of one person, two crops of one scene),
# learning from them is called *weakly supervised*; here the pairs are formed
# from the scenes' class labels, so strictly this chapter does *supervised*
# metric learning. What comes out is a distance that reflects how
# different two images are. Classification is then left to a separate, very simple
# step: find the labelled images nearest to a new one and let them vote (kNN).
# A new class needs a few labelled examples in the reference set, not a new
# network.
#
# ## 2. Few labels
#
# Each synthetic scene holds one shape: a circle, a square, a triangle or a
# diamond, on a random textured background, in a random colour. We draw
# `PER_CLASS` labelled images of each class; those of the held-out class go into
# the kNN *reference set* only, never into training. A separate test set, seen
# by no model, measures everything.

# %% tags=["nbval-check-output"]
if DATA_SOURCE == "scenes":
    split = ml.scenes_few_labels(
        size=SIZE,
        per_class=PER_CLASS,
        test_per_class=TEST_PER_CLASS,
        held_out=HELD_OUT or "diamond",
        seed=profile.seed(0),
    )
else:
    # every image of the set's split, divided below as a folder's
    if str(DATA_SOURCE).startswith("tfds:"):
        whole = rec.load_classification(
            DATA_SOURCE,
            image_size=SIZE,
            test_fraction=0.5,
            seed=profile.seed(0),
        )
        images, labels = (
            np.concatenate([whole.x_train, whole.x_test]),
            np.concatenate([whole.y_train, whole.y_test]),
        )
        names = whole.class_names
    else:
        images, labels, names = data.load_image_folder(
            DATA_SOURCE, image_size=(SIZE, SIZE)
        )
    split = ml.few_label_split(
        images,
        labels,
        names,
        per_class=PER_CLASS,
        held_out=HELD_OUT or names[-1],
        test_per_class=TEST_PER_CLASS,
        seed=profile.seed(0),
    )
names = split.class_names
held = split.held_out
seen_names = [n for c, n in enumerate(names) if c != held]
print(f"classes: {', '.join(names)}; held out of training: {names[held]}")
print(
    f"labelled training images: {split.x_labelled.shape}, "
    f"per class {np.bincount(split.y_labelled, minlength=len(names))}"
)
print(
    f"kNN reference images:     {split.x_reference.shape}, per class"
    f" {np.bincount(split.y_reference)}"
)
print(
    f"test images:              {split.x_test.shape}, per class"
    f" {np.bincount(split.y_test)}"
)

# %% mystnb={"figure": {"name": "fig-w5-images", "caption": "Labelled images of each class; the held-out class is only in the kNN reference set."}}
show = np.concatenate(
    [np.flatnonzero(split.y_reference == c)[:6] for c in range(len(names))]
)
fig = plots.image_grid(
    split.x_reference[show],
    titles=[names[c] for c in split.y_reference[show]],
    ncols=6,
    title=(
        "labelled images (the held-out class is only in the kNN reference set)"
    ),
)

# %% [markdown]
# The shape, not the colour, tells the class: every class draws its colours from
# the same distribution. Sixty labelled training images are very few for a CNN;
# we will see that the augmentation used during training matters as much as
# the loss.
#
# ## 3. The embedding network
#
# `ml.embedding_model` is a small CNN: each image is first standardised (its mean
# colour removed, its contrast normalised), then three blocks of two 3×3
# convolutions with {term}`batch normalisation <Batch normalisation>` and a max
# {term}`pooling <Pooling>`, a global average
# pooling (the *encoder*, 64 numbers), a dense *projection* to 32 numbers and a
# division by their length. Every embedding therefore lies on the unit sphere,
# and the dot product of two embeddings is their **cosine similarity**, between
# −1 (opposite) and 1 (same direction).

# %% tags=["nbval-check-output"]
embedder = ml.embedding_model((SIZE, SIZE, 3), embedding_dim=32)
print(
    f"{embedder.name}: {embedder.count_params():,} parameters, output"
    f" {embedder.output.shape}"
)
norms = np.linalg.norm(ml.embed(embedder, split.x_test[:100]), axis=1)
print(
    f"lengths of 100 embeddings: min {norms.min():.4f}, max {norms.max():.4f}"
)

# %% [markdown]
# ## 4. Class-balanced batches
#
# A pair loss needs pairs in every batch: for each image, at least one other of
# its class and some of other classes. A random batch from a large data set may
# contain neither. `ml.BalancedBatches` (a `keras.utils.PyDataset`, so `fit`
# takes it directly) builds each batch from *P* classes × *K* images, arranged
# in two halves: the *anchors* and their *positives*, where anchor *j* and
# positive *j* are two different images of the same class. Each image is
# randomly turned by a multiple of 90°, mirrored, shifted by up to two pixels and
# recoloured (its colour channels shuffled and some of them inverted): changes
# that keep the shape, and so the label.

# %% tags=["nbval-check-output"]
batches = ml.BalancedBatches(
    split.x_labelled,
    split.y_labelled,
    per_class=16,
    steps=STEPS,
    seed=profile.seed(0),
)
x_batch, y_batch = batches[0]
half = len(y_batch) // 2
print(
    f"one batch: images {x_batch.shape}, {len(np.unique(y_batch))} classes x"
    f" {np.bincount(y_batch)[0]} images"
)
print("anchor labels:  ", y_batch[:half])
print("positive labels:", y_batch[half:])

# %% mystnb={"figure": {"name": "fig-w5-pairs", "caption": "The first eight anchors of a training batch and their positives: other images of the same class, augmented."}}
fig = plots.image_grid(
    np.concatenate([x_batch[:8], x_batch[half : half + 8]]),
    titles=[f"anchor {names[c]}" for c in y_batch[:8]]
    + [f"positive {names[c]}" for c in y_batch[half : half + 8]],
    ncols=8,
    title="the first 8 anchors (top) and their positives (bottom), augmented",
)

# %% [markdown]
# ## 5. The loss: a similarity matrix and a softmax
#
# Take the *n* anchors $a_i$ and *n* positives $p_j$ of a batch, all unit
# vectors. Their cosine similarities form an $n \times n$ matrix
# $S_{ij} = a_i \cdot p_j$. Divided by a **temperature** $\tau$, each row is
# turned into probabilities with a softmax,
#
# $$ P_{ij} = \frac{\exp(S_{ij}/\tau)}{\sum_{l} \exp(S_{il}/\tau)}, $$
#
# and the loss is the cross-entropy between row $i$ and a target that spreads
# its mass evenly over the positives of anchor $i$'s class. Each row is a small
# classification problem ("which of these positives belongs with me?") whose
# classes are the other images of the batch, not a fixed list of labels; this
# is a form of the multi-class N-pair loss {cite}`sohn2016`, on cosine
# similarities with a temperature. With a single positive per anchor, the
# softmax of the right pair against the rest of the batch has the form of the
# InfoNCE loss of contrastive predictive coding {cite}`oord2018` (whose score is
# a learned bilinear product rather than a cosine over a temperature), which
# self-supervised methods train with two augmentations of one image as the
# pair. Spreading the target over every positive of the anchor's class is the
# form of the supervised contrastive loss {cite}`khosla2020` that its authors
# found to work best (its softmax runs over all the other images of the batch,
# not over the positives alone). In order of appearance: the contrastive loss
# with a margin (2006), FaceNet's triplet loss (2015, below), the N-pair loss (2016),
# InfoNCE (2018), supervised contrastive learning (2020). The lowest possible
# value is $\log m$, when
# each of the $m$ positives of the right class gets probability $1/m$ and all
# others none.
#
# The temperature decides how sharp the softmax can get. Cosine similarities lie
# between −1 and 1, so with $\tau = 1$ two logits never differ by more than 2 and
# even perfectly separated embeddings keep a large loss; with a small $\tau$ a
# modest gap in similarity becomes a confident match. We compute the loss
# (`ml.similarity_softmax_loss`) on fixed embeddings for 4 classes with 3 pairs
# each: random ones, perfectly separated ones (one direction per class) and
# collapsed ones (every image on the same point).

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
pair_labels = np.repeat(np.arange(4), 3)
# 4 orthogonal unit vectors
directions = np.linalg.qr(rng.normal(size=(32, 32)))[0][:4]
cases = {
    "random": (rng.normal(size=(12, 32)), rng.normal(size=(12, 32))),
    "separated": (directions[pair_labels], directions[pair_labels]),
    "collapsed": (np.ones((12, 32)), np.ones((12, 32))),
}
temperatures = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
print(f"{'embeddings':<10} " + " ".join(f"tau={t:<5}" for t in temperatures))
for case, (a, p) in cases.items():
    losses = [
        float(
            np.mean(
                ml.similarity_softmax_loss(a, p, t, pair_labels, pair_labels)
            )
        )
        for t in temperatures
    ]
    print(f"{case:<10} " + " ".join(f"{v:9.3f}" for v in losses))
print(
    f"lowest possible value, log(3) = {np.log(3):.3f}; collapsed = log(12) ="
    f" {np.log(12):.3f}"
)

# %% [markdown]
# Collapsed embeddings cost $\log 12$ at every temperature: all 12 positives
# look the same, so each gets probability 1/12. Separated embeddings reach the
# floor $\log 3$ only at small temperatures; at $\tau = 1$ they still pay 1.84,
# closer to the 2.49 of random embeddings than to the floor of 1.10, so a high
# temperature keeps pushing classes apart long after they are separated. Random
# embeddings, on the other hand, are punished hardest at the lowest temperature
# (15.1 at $\tau = 0.02$), where any accidental similarity becomes a confident
# wrong match.
#
# The classic alternative is the **triplet loss** of FaceNet {cite}`schroff2015`:
# for an anchor $a$, a positive $p$ and a negative $n$ (another class),
# $\max(0,\ \lVert a-p \rVert^2 - \lVert a-n \rVert^2 + \text{margin})$, with
# *squared* Euclidean distances. `ml.triplet_loss` uses plain Euclidean
# distances $d$ instead, $\max(0,\ d(a,p) - d(a,n) + \text{margin})$. Which
# triplets to use matters: *batch-hard* mining {cite}`hermans2017` takes, for
# each anchor, its farthest positive and nearest negative in the batch;
# *semi-hard* mining, FaceNet's choice, takes the nearest negative that is
# still farther than the positive. `ml.triplet_loss` implements both.
#
# The oldest loss of the family, the **contrastive loss** of
# {cite:t}`hadsell2006`, looks at one pair at a time and asks for absolute
# distances rather than an order: a pair of the same class costs
# $\tfrac12 d^2$, a pair of different classes $\tfrac12 \max(0,\ m - d)^2$, so
# it is pulled together always and pushed apart only while it is closer than
# the margin $m$. `ml.contrastive_loss` averages this over every pair of the
# batch. On the unit sphere distances lie between 0 and 2, and two orthogonal
# embeddings are $\sqrt 2 \approx 1.41$ apart; we use $m = 1$
# (`CONTRASTIVE_MARGIN`). On the same fixed embeddings (triplet margin 0.2):

# %% tags=["nbval-check-output"]
# the contrastive loss's margin, a distance on the unit sphere
CONTRASTIVE_MARGIN = 1.0
contrastive_losses = {}
for case, (a, p) in cases.items():
    batch = np.concatenate([a, p]) / np.linalg.norm(
        np.concatenate([a, p]), axis=1, keepdims=True
    )
    batch_labels = np.tile(pair_labels, 2)
    values = {
        m: float(np.mean(ml.triplet_loss(batch_labels, batch, 0.2, m)))
        for m in ("hard", "semi-hard")
    }
    contrastive_losses[case] = float(
        np.mean(ml.contrastive_loss(batch_labels, batch, CONTRASTIVE_MARGIN))
    )
    print(
        f"{case:<10} batch-hard {values['hard']:.3f}   semi-hard"
        f" {values['semi-hard']:.3f}   contrastive"
        f" {contrastive_losses[case]:.3f}"
    )

# %% [markdown]
# Note the collapsed case: the triplet loss is exactly the margin, 0.2, a
# value it can sit at with no gradient pushing the points apart
# (all distances are zero). We come back to this below. The contrastive loss
# of collapsed embeddings is $\tfrac12 m^2$ times the share of pairs that
# differ in class (18 of the 23 pairs of each image here: 0.391); the
# separated ones, $\sqrt 2$ apart, are beyond the margin and cost nothing
# (0.000).

# %% tags=["remove-cell"]
claims.expect_rounded(
    "week5.fixed_embeddings.contrastive_collapsed",
    contrastive_losses["collapsed"],
    0.391,
    3,
    profile,
)
claims.expect_rounded(
    "week5.fixed_embeddings.contrastive_separated",
    contrastive_losses["separated"],
    0.000,
    3,
    profile,
)

# %% [markdown]
# ## 6. Training
#
# Training is an ordinary `fit`: the loss is a `keras.losses.Loss`
# (`ml.SimilaritySoftmaxLoss`) that receives the labels and the batch of
# embeddings, and the batches come from the balanced sampler.
# First, the similarity matrix of a batch of test images (anchors and positives
# sorted by class, 8 of each class, no augmentation) *before* training:


# %%
def sorted_pairs(images, labels, classes, per_class=8, seed=1):
    """Anchors and positives: per_class different test images of each class,
    sorted by class."""
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), 2 * per_class, replace=False)
        for c in classes
    ]
    anchors = np.concatenate([p[:per_class] for p in picks])
    positives = np.concatenate([p[per_class:] for p in picks])
    return images[anchors], images[positives], labels[anchors]


seen_classes = [c for c in range(len(names)) if c != held]
# 8 on the scenes
pairs_per_class = min(
    8, min(int(np.sum(split.y_test == c)) for c in seen_classes) // 2
)
eval_anchors, eval_positives, eval_labels = sorted_pairs(
    split.x_test, split.y_test, seen_classes, pairs_per_class
)


def batch_similarity(model):
    return np.asarray(
        ml.cosine_similarity_matrix(
            ml.embed(model, eval_anchors), ml.embed(model, eval_positives)
        )
    )


def similarity_gap(matrix):
    same = eval_labels[:, None] == eval_labels[None, :]
    return matrix[same].mean() - matrix[~same].mean()


config.seed_everything(profile.seed(1))
embedder = ml.embedding_model((SIZE, SIZE, 3), embedding_dim=32)
before = batch_similarity(embedder)
print(
    "before training: mean similarity same class"
    f" {before[eval_labels[:, None] == eval_labels].mean():.2f}, gap to"
    f" different classes {similarity_gap(before):.2f}"
)

# %%
history, embed_seconds = ml.fit_embedding(
    embedder,
    batches,
    ml.SimilaritySoftmaxLoss(TEMPERATURE),
    EPOCHS,
    learning_rate=3e-3,
    run_eagerly=EAGER,
)
after = batch_similarity(embedder)
print(
    f"trained {EPOCHS} epochs in {embed_seconds:.0f} s; loss"
    f" {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}"
    f" (floor log(8) = {np.log(8):.3f})"
)
print(
    "after training: gap between same-class and different-class similarity"
    f" {similarity_gap(after):.2f}"
)

# %% mystnb={"figure": {"name": "fig-w5-curves", "caption": "The similarity softmax loss per epoch."}}
fig = plots.training_curves(
    history,
    metrics=("loss",),
    title=f"similarity softmax loss, tau = {TEMPERATURE}",
)

# %% mystnb={"figure": {"name": "fig-w5-similarities", "caption": "Cosine similarities between test anchors (rows) and positives (columns), sorted by class, before and after training."}}
fig = ml.plot_similarity_heatmaps(
    {"before training": before, "after training": after},
    labels=eval_labels,
    class_names=names,
    title="cosine similarities of test anchors and positives",
)

# %% [markdown]
# Before training, all similarities are high: an untrained network maps every
# image to much the same direction. After training, the diagonal blocks (same
# class) are mostly dark red and the rest paler: the network has learned a
# similarity that holds on test images it has never seen. Circles and triangles
# remain the most similar pair of classes.
#
# ### The temperature, in training
#
# The same network trained with a temperature of 1, with the triplet loss
# (semi-hard and batch-hard mining) and with the contrastive loss, for the same
# number of steps. We report the
# similarity gap on the test batch above and the accuracy of kNN with $k = 5$ on
# the test images of the three training classes (the reference set is the 60
# labelled images).

# %%
seen_ref = split.y_reference != held
seen_test = split.seen


def knn_accuracy(model, k=K):
    predicted, _ = ml.knn_predict(
        ml.embed(model, split.x_reference[seen_ref]),
        split.y_reference[seen_ref],
        ml.embed(model, split.x_test[seen_test]),
        k,
    )
    return float(np.mean(predicted == split.y_test[seen_test]))


def train_embedder(loss, embedding_dim=32):
    """The embedding network of this section, trained afresh with `loss`: the
    same initial weights (for a given size) and number of steps as above, on
    batches that the sampler goes on drawing afresh."""
    config.seed_everything(profile.seed(1))
    model = ml.embedding_model((SIZE, SIZE, 3), embedding_dim=embedding_dim)
    hist, _ = ml.fit_embedding(
        model, batches, loss, EPOCHS, learning_rate=3e-3, run_eagerly=EAGER
    )
    return model, hist


variants = {f"softmax, tau = {TEMPERATURE}": (embedder, history)}
other_losses = [
    ("softmax, tau = 1.0", ml.SimilaritySoftmaxLoss(1.0)),
    ("triplet, semi-hard", ml.TripletLoss(0.2, "semi-hard")),
    ("triplet, batch-hard", ml.TripletLoss(0.2, "hard")),
    (
        f"contrastive, m = {CONTRASTIVE_MARGIN}",
        ml.ContrastiveLoss(CONTRASTIVE_MARGIN),
    ),
]
for label, loss in other_losses[: profile.pick(smoke=1, cpu=4, gpu=4)]:
    variants[label] = train_embedder(loss)
print(
    f"{'loss':<22} {'final loss':>10} {'similarity gap':>15}"
    f" {'kNN accuracy':>13}"
)
for label, (model, hist) in variants.items():
    print(
        f"{label:<22} {hist.history['loss'][-1]:>10.3f}"
        f" {similarity_gap(batch_similarity(model)):>15.2f}"
        f" {knn_accuracy(model):>13.3f}"
    )

# %% tags=["remove-cell"]
if f"contrastive, m = {CONTRASTIVE_MARGIN}" in variants:
    claims.record(
        "week5.contrastive.knn_accuracy",
        knn_accuracy(variants[f"contrastive, m = {CONTRASTIVE_MARGIN}"][0]),
    )

# %% mystnb={"figure": {"name": "fig-w5-variants", "caption": "Test-batch similarities after training, for each loss."}}
fig = ml.plot_similarity_heatmaps(
    {label: batch_similarity(model) for label, (model, _) in variants.items()},
    labels=eval_labels,
    class_names=names,
    title="test-batch similarities after training",
)

# %% [markdown]
# The table and the heatmaps of {numref}`fig-w5-variants` show what each loss made of the same
# labelled images in this run. (Each model starts from the same weights, but the
# sampler goes on counting epochs from one training to the next, so each gets
# its own draw of batches: part of any small difference between two rows is
# that draw.) Read the similarity gap and the kNN accuracy together: they can
# disagree. The gap is an average over all pairs of images, so pushing two
# classes to opposite poles of the sphere raises it even while two other
# classes share one place. kNN needs the *nearest* reference images to be of
# the right class, and two classes that share a place cost it about half of
# their test images.
#
# That is the failure to look for with $\tau = 1$: one class at one pole, the
# two others *together* at the opposite pole, which a heatmap would show as two
# classes sharing one bright block. Not every run falls into it: check the
# $\tau = 1$ heatmap and its kNN accuracy above (the sweep at the end of this
# section counts the benchmark's runs that did). It is not what the loss asks
# for. The cell
# below computes the loss of a training batch of section 4 (8 anchors per
# class) for ideal embeddings, every image exactly at its class centre.


# %% tags=["nbval-check-output"]
def simplex(n, dim=32):
    """n unit vectors in dim dimensions at equal angles (cosine -1/(n-1))."""
    if n == 1:
        return np.eye(1, dim)
    v = np.eye(n, dim) - np.pad(np.full((n, n), 1 / n), ((0, 0), (0, dim - n)))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def two_merged(n, angle=0.0, dim=32):
    """Classes 0 and 1 on one point (or `angle` degrees apart, out of the plane
    of the others), the rest apart."""
    centres = simplex(n - 1, dim)[[0] + list(range(n - 1))]
    half_angle, away = np.radians(angle) / 2, np.eye(1, dim, dim - 1)[0]
    centres[0] = np.cos(half_angle) * centres[0] + np.sin(half_angle) * away
    centres[1] = np.cos(half_angle) * centres[1] - np.sin(half_angle) * away
    return centres


# the training batch shown in section 4
batch_classes, class_of = np.unique(y_batch, return_inverse=True)
n_pairs = len(class_of) // 2


def ideal_loss(centres, tau):
    e = centres[class_of]
    return float(
        np.mean(
            ml.similarity_softmax_loss(
                e[:n_pairs],
                e[n_pairs:],
                tau,
                class_of[:n_pairs],
                class_of[n_pairs:],
            )
        )
    )


ideal = {
    f"{len(batch_classes)} classes, equally spaced": simplex(
        len(batch_classes)
    ),
    "two classes on one point": two_merged(len(batch_classes)),
    "the same two, 20 degrees apart": two_merged(len(batch_classes), 20),
}
print(
    f"{'every image at its class centre':<34} {'tau = 1':>8}"
    f" {f'tau = {TEMPERATURE:g}':>10}"
)
for label, centres in ideal.items():
    print(
        f"{label:<34} {ideal_loss(centres, 1.0):>8.3f}"
        f" {ideal_loss(centres, TEMPERATURE):>10.3f}"
    )
positives_per_class = np.bincount(class_of[n_pairs:])[0]
print(f"floor: log {positives_per_class} = {np.log(positives_per_class):.3f}")
for tau in (1.0, TEMPERATURE):
    drop = ideal_loss(two_merged(len(batch_classes)), tau) - ideal_loss(
        two_merged(len(batch_classes), 20), tau
    )
    print(
        "moving the two classes 20 degrees apart lowers the loss at tau ="
        f" {tau:g} by {drop:.3f}"
    )

# %% [markdown]
# Even at $\tau = 1$, three equally spaced classes (120° apart) cost less,
# 2.448, than two classes on one point and the third opposite, 2.665: the loss
# does prefer every class to have a place of its own. A run that ends near
# 2.665 has not found a better configuration of the loss; it has stopped near
# a *saddle point*. While two classes sit on exactly the same point, the loss
# treats them exactly alike, so its gradient moves them alike and they stay
# together: the slope that would pull them apart is zero there. It only grows
# as their embeddings start to differ, and at $\tau = 1$ it grows slowly:
# moving the two classes 20° apart lowers the loss by 0.017 at $\tau = 1$, ten
# times less than at $\tau = 0.1$ (0.171; both drops are printed under the
# table, computed before rounding). A network whose features do not yet
# tell two classes apart therefore gets almost no push from the $\tau = 1$
# loss to learn the difference. A small temperature does not change which
# configuration is best; it makes the loss steep around the bad one, and it
# concentrates the softmax, and with it the gradient, on the most similar
# wrong matches: the confusable pairs.

# %% tags=["remove-cell"]
merged_loss = {
    tau: ideal_loss(two_merged(len(batch_classes)), tau)
    for tau in (1.0, TEMPERATURE)
}
apart_loss = {
    tau: ideal_loss(two_merged(len(batch_classes), 20), tau)
    for tau in (1.0, TEMPERATURE)
}
equally_spaced = ideal_loss(simplex(len(batch_classes)), 1.0)
claims.expect_rounded(
    "week5.ideal_loss.equally_spaced_tau_1", equally_spaced, 2.448, 3, profile
)
claims.expect_rounded(
    "week5.ideal_loss.two_merged_tau_1", merged_loss[1.0], 2.665, 3, profile
)
claims.expect_rounded(
    "week5.ideal_loss.drop_20_degrees_tau_1",
    merged_loss[1.0] - apart_loss[1.0],
    0.017,
    3,
    profile,
)
claims.expect_rounded(
    "week5.ideal_loss.drop_20_degrees_tau_small",
    merged_loss[TEMPERATURE] - apart_loss[TEMPERATURE],
    0.171,
    3,
    profile,
)

# %% [markdown]
# Among the triplet losses, compare the two kinds of mining row by row. A
# batch-hard run whose final loss equals the margin (0.2), with a similarity
# gap of 0 and a uniform heatmap, has collapsed: every image is mapped to the
# same point, the case of section 5 where the loss has no gradient left, and
# kNN is then at chance level. This is the failure that made FaceNet's authors
# avoid the hardest negatives: early in training they can lead to a collapsed
# model, so FaceNet mines semi-hard ones {cite}`schroff2015`.
# {cite:t}`hermans2017` later defended batch-hard mining, which worked well in
# their experiments on person re-identification, with far more images than
# our sixty.
#
# The contrastive loss asks for less than the softmax. On the unit sphere two
# embeddings at distance $d$ have a cosine of $1 - d^2/2$, so with a margin of
# 1 a pair of different classes costs nothing once its cosine is below 0.5,
# while the softmax at $\tau = 0.1$ goes on rewarding every further step
# apart. For kNN that was enough: over the benchmark's five run seeds, kNN
# after the contrastive loss scored between 0.97 and 1.00, and seed by seed it
# was between -0.7 and +0.2 points from the softmax at $\tau = 0.1$, from three
# test images of the 450 behind to one ahead (one image is 0.22 points): no
# difference this chapter can resolve. (On this page kNN after the contrastive
# loss is checked to lie between 0.93 and 1.00.)

# %% tags=["remove-cell"]
if f"contrastive, m = {CONTRASTIVE_MARGIN}" in variants:
    claims.expect(
        "week5.contrastive.knn_accuracy",
        knn_accuracy(variants[f"contrastive, m = {CONTRASTIVE_MARGIN}"][0]),
        0.93,
        1.00,
        profile,
    )
claims.quoted_from_bench("week5.contrastive.knn_accuracy", 0.97, 1.00)
claims.quoted_from_bench(
    "week5.contrastive.knn_accuracy",
    -0.7,
    0.2,
    scale=100,
    minus="week5.temperature.knn_accuracy_tau_0_1",
)

# %% [markdown]
# ### Temperature and embedding size, swept
#
# Two numbers of the recipe were chosen rather than derived: the temperature,
# 0.1, and the 32 numbers of the embedding. The cell below trains the same
# network at a third temperature, 0.03 (0.1 and 1 are trained above), and with
# an embedding of 2 numbers (at $\tau = 0.1$), everything else unchanged, and
# scores each with kNN as above. Two numbers are the fewest on which three
# classes can each have a direction of their own (on a circle, 120° apart).
# Each training costs about half a minute here, which is why the sweep stops
# at these.

# %%
SWEPT_TEMPERATURES = [0.03]
SWEPT_SIZES = [2]
by_temperature = {
    TEMPERATURE: embedder,
    1.0: variants["softmax, tau = 1.0"][0],
}
by_temperature |= {
    tau: train_embedder(ml.SimilaritySoftmaxLoss(tau))[0]
    for tau in SWEPT_TEMPERATURES
}
by_size = {32: embedder} | {
    dim: train_embedder(ml.SimilaritySoftmaxLoss(TEMPERATURE), dim)[0]
    for dim in SWEPT_SIZES
}
temperature_knn = {
    tau: knn_accuracy(by_temperature[tau]) for tau in sorted(by_temperature)
}
size_knn = {dim: knn_accuracy(by_size[dim]) for dim in sorted(by_size)}
print("kNN accuracy (k = 5, three training classes)")
print("temperature    " + "".join(f"{tau:>8g}" for tau in temperature_knn))
print(
    "               " + "".join(f"{a:>8.3f}" for a in temperature_knn.values())
)
print("embedding size " + "".join(f"{dim:>8d}" for dim in size_knn))
print("               " + "".join(f"{a:>8.3f}" for a in size_knn.values()))

# %% tags=["remove-cell"]
for tau, accuracy in temperature_knn.items():
    tau_name = f"{tau:g}".replace(".", "_")
    claims.record(f"week5.temperature.knn_accuracy_tau_{tau_name}", accuracy)
for dim, accuracy in size_knn.items():
    claims.record(f"week5.embedding_size.knn_accuracy_dim_{dim}", accuracy)

# %% [markdown]
# One run says little here: one test image is 0.22 points, and each model gets
# its own draw of batches. Over the benchmark's five run seeds:
#
# * **$\tau = 0.03$ against 0.1**: seed by seed, between -0.7 and +0.9 points
#   apart, three test images one way or four the other: between these two the
#   temperature made no difference the chapter can resolve.
# * **$\tau = 1$** is where it does: kNN scored 0.99, 0.78, 0.95, 0.71 and
#   0.69 on seeds 0 to 4. Two classes that share one place cost kNN about half
#   of their test images, which leaves about 2/3 of the three classes right:
#   seeds 3 and 4 scored that, as a run stuck at the saddle point of section 6
#   would, and seed 1 little more (its score alone does not say whether that
#   run half merged a pair or told part of it apart). On seeds 5 to 9, which the benchmark ran
#   beyond these five, it scored 0.70 to 0.83: none came near the 0.95 and
#   0.99 of seeds 2 and 0.
#   At 0.03 and 0.1 kNN scored between 0.96
#   and 1.00 on every seed. As section 6 computed, the loss at $\tau = 1$
#   prefers the right configuration but hardly pushes a run out of the wrong
#   one.
# * **2 numbers against 32**: kNN between 0.95 and 1.00 with 2; seed by seed,
#   32 numbers were -0.2 to 2.2 points ahead, behind by one test image on
#   seed 3 and ahead by 1.1 or more on the others (and -0.4 to 0.9 on seeds
#   5 to 9, behind by two test images on one). Three classes fit on a circle, 120°
#   apart; a plausible reason for the small loss, not tested here, is that an
#   image between two classes' arcs has only one direction in which to move.
#
# (On this page kNN is checked to lie between 0.92 and 1.00 at $\tau = 0.03$,
# between 0.89 and 1.00 with 2 numbers, and between 0.37 and 1.00 at
# $\tau = 1$.)

# %% tags=["remove-cell"]
claims.expect(
    "week5.temperature.knn_accuracy_tau_0_03",
    temperature_knn[0.03],
    0.92,
    1.00,
    profile,
)
claims.expect(
    "week5.temperature.knn_accuracy_tau_1",
    temperature_knn[1.0],
    0.37,
    1.00,
    profile,
)
claims.expect(
    "week5.embedding_size.knn_accuracy_dim_2",
    size_knn[2],
    0.89,
    1.00,
    profile,
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_0_03",
    -0.7,
    0.9,
    scale=100,
    minus="week5.temperature.knn_accuracy_tau_0_1",
)
claims.quoted_from_bench(
    [
        "week5.temperature.knn_accuracy_tau_0_03",
        "week5.temperature.knn_accuracy_tau_0_1",
    ],
    0.96,
    1.00,
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.99, 0.99, seeds=(0,)
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.78, 0.78, seeds=(1,)
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.95, 0.95, seeds=(2,)
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.71, 0.71, seeds=(3,)
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.69, 0.69, seeds=(4,)
)
claims.quoted_from_bench(
    "week5.temperature.knn_accuracy_tau_1", 0.70, 0.83, seeds=(5, 6, 7, 8, 9)
)
claims.quoted_from_bench("week5.embedding_size.knn_accuracy_dim_2", 0.95, 1.00)
claims.quoted_from_bench(
    "week5.embedding_size.knn_accuracy_dim_32",
    -0.4,
    0.9,
    scale=100,
    minus="week5.embedding_size.knn_accuracy_dim_2",
    seeds=(5, 6, 7, 8, 9),
)
claims.quoted_from_bench(
    "week5.embedding_size.knn_accuracy_dim_32",
    -0.2,
    2.2,
    scale=100,
    minus="week5.embedding_size.knn_accuracy_dim_2",
)

# %% [markdown]
# ## 7. Classifying with k-nearest neighbours
#
# kNN needs no training: the reference embeddings are stored, and a new image
# gets the majority label of the $k$ reference images most similar to it
# (scikit-learn's `KNeighborsClassifier` with the cosine metric, in
# `ml.knn_predict`). From here on the reference set holds all four classes:
# adding the 20 labelled diamonds is all it takes to make the held-out class
# predictable, without touching the network.

# %%
ref_embeddings = ml.embed(embedder, split.x_reference)
test_embeddings = ml.embed(embedder, split.x_test)
ks = [1, 3, 5, 7, 9, 15, 25, 39]
by_k_all = ml.accuracy_vs_k(
    ref_embeddings, split.y_reference, test_embeddings, split.y_test, ks
)
by_k_seen = ml.accuracy_vs_k(
    ref_embeddings[seen_ref],
    split.y_reference[seen_ref],
    test_embeddings[seen_test],
    split.y_test[seen_test],
    ks,
)
print(f"{'k':>3} {'3 training classes':>19} {'all 4 classes':>14}")
for k in ks:
    print(f"{k:>3} {by_k_seen[k]:>19.3f} {by_k_all[k]:>14.3f}")

# %% mystnb={"figure": {"name": "fig-w5-k", "caption": "kNN test accuracy against k, on the three training classes, and on all four with the class never trained on."}}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(
    list(by_k_seen), list(by_k_seen.values()), "o-", label="3 training classes"
)
ax.plot(
    list(by_k_all),
    list(by_k_all.values()),
    "s-",
    label=f"all {len(names)} classes ({names[held]} unseen in training)",
)
ax.set_xlabel("k (neighbours that vote)")
ax.set_ylabel("test accuracy")
ax.grid(alpha=0.3)
ax.legend()
ax.set_title("kNN on the learned embedding")
fig.tight_layout()

# %% [markdown]
# On this data $k$ matters little: from $k = 1$ to $k = 25$ the accuracy moves
# by a few points at most, on the three training classes as with the held-out
# class (the table above; on this page the largest minus the smallest accuracy
# over those $k$ lies between 0 and 6 points, with or without the held-out
# class). A very large vote ($k = 39$, with 20 reference
# images per class) can lose accuracy once the held-out class is included,
# since at least 19 of its 39 voters are then of other classes. In practice $k$
# is chosen on a validation split, as in the exercise.

# %% tags=["remove-cell"]
small_k = [k for k in ks if k <= 25]
claims.expect(
    "week5.knn.k_spread_seen_points",
    100
    * (max(by_k_seen[k] for k in small_k) - min(by_k_seen[k] for k in small_k)),
    0,
    6,
    profile,
)
claims.expect(
    "week5.knn.k_spread_all_points",
    100
    * (max(by_k_all[k] for k in small_k) - min(by_k_all[k] for k in small_k)),
    0,
    6,
    profile,
)

# %% [markdown]
# Where do the mistakes go? The confusion matrix for all four classes, $k = 5$:

# %% mystnb={"figure": {"name": "fig-w5-confusion", "caption": "The kNN classifier's confusion matrix on the test set, the held-out class included."}}
predicted, confidence = ml.knn_predict(
    ref_embeddings, split.y_reference, test_embeddings, K
)
correct = predicted == split.y_test
fig = plots.confusion_matrix(
    split.y_test,
    predicted,
    names,
    title=f"kNN (k = {K}) on the embedding, test set",
)

# %%
for c, name in enumerate(names):
    chosen = split.y_test == c
    print(
        f"{name:>9}: accuracy {correct[chosen].mean():.3f}"
        + ("  (held out of training)" if c == held else "")
    )

# %% [markdown]
# The held-out diamonds are recognised most of the time, from 20 reference
# images and a network that has never seen one: over the benchmark's five run
# seeds (`SEED` = 0..4, `week5.embedding_knn.held_out_class_accuracy` in
# `bench/results.json`), the share of test diamonds kNN got right lay between
# 0.91 and 0.97. Five more seeds (5 to 9), run to test this page, gave 0.85
# to 0.98, a wider spread than the first five: a class learned from 20
# references is fragile. A run of this page is therefore
# checked only for getting most diamonds right, between 0.5 and 1.0. Most of the mistakes are between the new class and the old
# ones: circles and triangles taken for diamonds, and diamonds for circles or
# triangles. Squares, the diamonds' twins turned by 45°, are rarely confused
# with them. The embedding was never asked to separate diamonds from
# anything, so it places them where their features fall, close to the other
# rounded or pointed shapes.

# %% tags=["remove-cell"]
claims.expect(
    "week5.embedding_knn.held_out_class_accuracy",
    correct[split.y_test == held].mean(),
    0.5,
    1.0,
    profile,
)
claims.quoted_from_bench(
    "week5.embedding_knn.held_out_class_accuracy", 0.91, 0.97
)
claims.quoted_from_bench(
    "week5.embedding_knn.held_out_class_accuracy",
    0.85,
    0.98,
    seeds=(5, 6, 7, 8, 9),
)

# %% [markdown]
# ### Confidence: how many of the votes agree
#
# The share of the $k$ neighbours that voted for the winning class is a
# confidence: 5 of 5 is unanimous, 3 of 5 a narrow majority. If we only accept
# predictions above a threshold, we answer fewer images (*coverage*) but are
# right more often:

# %%
curve = ml.coverage_curve(correct, confidence)
print(f"{'votes for the winner':>20} {'coverage':>9} {'accuracy':>9}")
for threshold, coverage, accuracy in curve:
    print(
        f"{f'>= {threshold * K:.0f} of {K}':>20} {coverage:>9.3f}"
        f" {accuracy:>9.3f}"
    )

# %% mystnb={"figure": {"name": "fig-w5-coverage", "caption": "Accuracy against coverage when kNN answers only if enough of its k neighbours agree; each point is labelled with the votes it needs."}}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot([c for _, c, _ in curve], [a for _, _, a in curve], "o-")
for threshold, coverage, accuracy in curve:
    ax.annotate(
        f"{threshold * K:.0f}/{K}",
        (coverage, accuracy),
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=9,
    )
ax.set_xlabel("coverage (share of test images answered)")
ax.set_ylabel("accuracy of the answered images")
ax.grid(alpha=0.3)
ax.set_title(f"only confident predictions (kNN, k = {K}, all 4 classes)")
fig.tight_layout()

# %% [markdown]
# With five voters and four classes the winner has at least two votes; the
# table starts at the smallest share of votes any winner had in this run. Each
# row raises the threshold: fewer test images are answered, and the last row,
# unanimous votes only, answers the fewest. Whether the answered images are
# also more often right, and by how much, is what the accuracy column says.
# Whether such a trade is worth it depends on the cost of a mistake against the
# cost of asking a person, and the two columns are what that decision needs.
#
# ## 8. Side by side, on the same 60 labelled images
#
# How much of this is the metric learning, and how much the network or the
# augmentation? We give the same 60 labelled training images (the same
# balanced sampler and augmentation, each model with its own draw of batches,
# the same number of steps) to:
#
# * **raw pixels**: kNN directly on the 3,072 pixel values (cosine);
# * **MobileNetV2** {cite}`sandler2018` (week 2's network, α = 0.35, no ImageNet
#   weights since we are offline) trained as a classifier; kNN on its 1,280 pooled
#   features;
# * **supervised CNN**: the *same* encoder as our embedding network with a
#   softmax layer on top, trained with cross-entropy; both its own predictions
#   and kNN on its 64 encoder features;
# * **learned embedding**: kNN on the 32-number embedding.
#
# The classifiers only know the three training classes, so we compare on those
# first; the last column adds the held-out class to the test and to the kNN
# reference set.

# %%
config.seed_everything(profile.seed(1))
supervised = ml.classifier_from(
    ml.embedding_model((SIZE, SIZE, 3)), num_classes=len(names)
)
_, supervised_seconds = ml.fit_embedding(
    supervised,
    batches,
    "sparse_categorical_crossentropy",
    EPOCHS,
    learning_rate=3e-3,
    run_eagerly=EAGER,
)
config.seed_everything(profile.seed(1))
mobilenet = rec.mobilenetv2_classifier(
    len(names),
    input_size=SIZE,
    alpha=0.35,
    weights=None,
    dropout=0,
    verbose=False,
)
_, mobilenet_seconds = ml.fit_embedding(
    mobilenet,
    batches,
    "sparse_categorical_crossentropy",
    EPOCHS,
    learning_rate=3e-3,
    run_eagerly=EAGER,
)
print(
    f"supervised CNN: {supervised.count_params():,} parameters, trained in"
    f" {supervised_seconds:.0f} s"
)
print(
    f"MobileNetV2:    {mobilenet.count_params():,} parameters, trained in"
    f" {mobilenet_seconds:.0f} s"
)
print(
    f"embedding:      {embedder.count_params():,} parameters, trained in"
    f" {embed_seconds:.0f} s"
)


# %%
def flat(images):
    return images.reshape(len(images), -1)


spaces = {
    "raw pixels": flat,
    "MobileNetV2 features": lambda x: ml.embed(
        models.feature_extractor(mobilenet, "features"), x
    ),
    "supervised CNN features": lambda x: ml.embed(
        models.feature_extractor(supervised, "encoder"), x
    ),
    "learned embedding": lambda x: ml.embed(embedder, x),
}
comparison = {}
for name, describe in spaces.items():
    ref, test = describe(split.x_reference), describe(split.x_test)
    seen_pred, _ = ml.knn_predict(
        ref[seen_ref], split.y_reference[seen_ref], test[seen_test], K
    )
    all_pred, _ = ml.knn_predict(ref, split.y_reference, test, K)
    comparison[f"kNN on {name}"] = (
        np.mean(seen_pred == split.y_test[seen_test]),
        np.mean(all_pred == split.y_test),
    )
for name, classifier in [
    ("supervised CNN", supervised),
    ("MobileNetV2", mobilenet),
]:
    softmax_pred = ml.embed(classifier, split.x_test).argmax(1)
    comparison[f"{name}, its softmax"] = (
        np.mean(softmax_pred[seen_test] == split.y_test[seen_test]),
        np.mean(softmax_pred == split.y_test),
    )
print(f"{'method':<34} {'3 training classes':>19} {'all 4 classes':>14}")
for name, (seen_acc, all_acc) in comparison.items():
    print(f"{name:<34} {seen_acc:>19.3f} {all_acc:>14.3f}")

# %% tags=["remove-cell"]
claims.record(
    "week5.embedding_knn.test_accuracy",
    comparison["kNN on learned embedding"][0],
)
claims.record(
    "week5.embedding_knn.test_accuracy_with_held_out_class",
    comparison["kNN on learned embedding"][1],
)
claims.record(
    "week5.raw_pixels_knn.test_accuracy", comparison["kNN on raw pixels"][0]
)
claims.record(
    "week5.supervised_features_knn.test_accuracy_with_held_out_class",
    comparison["kNN on supervised CNN features"][1],
)
claims.record("week5.embedding.train_seconds", embed_seconds)

# %% [markdown]
# The table above gives this run's accuracies. At profile cpu, over the
# benchmark's five run seeds (`SEED` = 0..4, `week5.*` in `bench/results.json`),
# with in brackets the range a run of this page is checked against (the seeds'
# range widened by its width on either side, and no narrower than the check an
# earlier machine's runs set):
#
# * **Raw pixels** are at chance level (chance is 1/3 on three classes): kNN on
#   the pixels scored 0.32 to 0.37 (this run: between 0.27 and 0.42). A pixel
#   distance compares backgrounds and colours, and the shape is a small part of
#   the image.
# * **MobileNetV2 trained from scratch** does no better: near chance with its
#   own softmax, 0.32 to 0.40 on the three classes (this run: between 0.24 and
#   0.48; kNN on its features is in the table). Sixty images and 600 steps are far too little
#   for a network of 415 thousand parameters designed for ImageNet and 224-pixel
#   inputs (on 32 pixels its last {term}`feature map <Feature map>` is a single pixel). This is the
#   situation in which week 2 used ImageNet weights; without a network they are
#   out of reach here.
# * The **supervised CNN**, the same encoder trained with cross-entropy on the
#   same labelled images, does well on the three classes it knows (its softmax 0.96 to
#   0.99; this run: between 0.89 and 1.0), and so does kNN on the **learned
#   embedding** (0.97 to 1.00; this run: between 0.93 and 1.0). kNN on the
#   embedding was never behind the softmax: 0.4 to 2.0 points ahead, two to
#   nine of the 450 test images. A lead that small, on five seeds, does not rank the
#   two losses; with the same encoder and the same augmentation, the choice of
#   loss changes little on the classes seen in training.
# * The **held-out class** is where the softmax fails outright: it can only
#   answer circle, square or triangle, so every diamond, a quarter of the
#   four-class test set, is wrong. kNN can use the diamond reference images, on
#   the classifier's features as on the embedding (on the embedding, 0.92 to
#   0.96 with all four classes; this run: between 0.88 and 1.0), and both stay
#   well above the softmax, which cannot exceed 0.75 there. Neither set of
#   features was trained to keep diamonds apart, but the embedding, trained
#   only to make similar things similar, transferred at least as well to the
#   class it never saw: kNN on it was -0.3 to 8.3 points from kNN on the
#   classifier's features, ahead on four seeds of five and two test images
#   behind on the fifth.

# %% tags=["remove-cell"]
claims.expect(
    "week5.raw_pixels_knn.test_accuracy",
    comparison["kNN on raw pixels"][0],
    0.27,
    0.42,
    profile,
)
claims.expect(
    "week5.mobilenetv2_softmax.test_accuracy",
    comparison["MobileNetV2, its softmax"][0],
    0.24,
    0.48,
    profile,
)
claims.expect(
    "week5.supervised_softmax.test_accuracy",
    comparison["supervised CNN, its softmax"][0],
    0.89,
    1.0,
    profile,
)
claims.expect(
    "week5.embedding_knn.test_accuracy",
    comparison["kNN on learned embedding"][0],
    0.93,
    1.0,
    profile,
)
claims.expect(
    "week5.embedding_knn.test_accuracy_with_held_out_class",
    comparison["kNN on learned embedding"][1],
    0.88,
    1.0,
    profile,
)
claims.quoted_from_bench("week5.raw_pixels_knn.test_accuracy", 0.32, 0.37)
claims.quoted_from_bench("week5.mobilenetv2_softmax.test_accuracy", 0.32, 0.40)
claims.quoted_from_bench("week5.supervised_softmax.test_accuracy", 0.96, 0.99)
claims.quoted_from_bench("week5.embedding_knn.test_accuracy", 0.97, 1.00)
claims.quoted_from_bench(
    "week5.embedding_knn.test_accuracy",
    0.4,
    2.0,
    scale=100,
    minus="week5.supervised_softmax.test_accuracy",
)
claims.quoted_from_bench(
    "week5.embedding_knn.test_accuracy_with_held_out_class", 0.92, 0.96
)
claims.quoted_from_bench(
    "week5.embedding_knn.test_accuracy_with_held_out_class",
    -0.3,
    8.3,
    scale=100,
    minus="week5.supervised_features_knn.test_accuracy_with_held_out_class",
)

# %% [markdown]
# ## 9. The embedding in two dimensions
#
# t-SNE {cite}`vandermaaten2008` lays the 32-dimensional test embeddings out in
# a plane, keeping neighbours together. The held-out class was never used in
# training; crosses mark the test images that kNN gets wrong.

# %% mystnb={"figure": {"name": "fig-w5-tsne", "caption": "A t-SNE map of the test embeddings, coloured by class; crosses are kNN's mistakes."}}
points = plots.tsne_2d(test_embeddings)
fig = plots.embedding_scatter(
    points,
    split.y_test,
    names,
    highlight=~correct,
    title=(
        f"t-SNE of the test embeddings ({names[held]}: never trained on; x: kNN"
        " wrong)"
    ),
)

# %% [markdown]
# Read {numref}`fig-w5-tsne` for its neighbourhoods: whether the neighbours of a point are
# of its own class, whether the diamonds, never seen in training, have
# diamonds as neighbours, and next to which class the crosses (kNN mistakes)
# sit. Do not read it for distances between groups or for their sizes: t-SNE
# keeps near neighbours near, but it stretches and shrinks the rest, so a
# class that looks far from the others, or a group that looks compact, says
# nothing about the 32-dimensional embedding. To compare classes, use the
# cosine similarities themselves, as in {numref}`fig-w5-similarities`.
#
# ## 10. Retrieval
#
# The embedding is also a search engine: for a query image, the most similar
# reference images. Two test queries per class, with the cosine similarity of
# each neighbour; red titles mark neighbours of another class.

# %% mystnb={"figure": {"name": "fig-w5-retrieval", "caption": "Test images (left) and their nearest reference images in the learned embedding, with class and cosine similarity; a neighbour of another class is titled in red."}}
queries = np.concatenate(
    [np.flatnonzero(split.y_test == c)[:2] for c in range(len(names))]
)
index, similarity = ml.retrieve(ref_embeddings, test_embeddings[queries], k=6)
neighbour_titles = [
    [f"{names[split.y_reference[i]]} {s:.2f}" for i, s in zip(row, sims)]
    for row, sims in zip(index, similarity)
]
fig = plots.retrieval_grid(
    split.x_test[queries],
    split.x_reference[index],
    query_titles=[f"query: {names[c]}" for c in split.y_test[queries]],
    neighbour_titles=neighbour_titles,
    title="nearest reference images in the learned embedding",
)
for r, (row, q) in enumerate(zip(index, queries)):
    for col, i in enumerate(row):
        if split.y_reference[i] != split.y_test[q]:
            fig.axes[r * 7 + col + 1].title.set_color("red")

# %% [markdown]
# Most of the neighbours share the query's shape, whatever their colours and
# backgrounds. The exceptions, in red, change from run to run; compare them
# with the confusion matrix above. A wrong neighbour can be as similar to the
# query as a right one: the embedding places some shapes of different classes
# almost on top of each other, and a small shape differs from another by a
# handful of pixels.
#
# ### Verification: the same class or not?
#
# Retrieval ranks; a {term}`verification <Verification>` system decides. Given two images, it
# answers "same class" when the cosine similarity of their embeddings reaches a
# threshold, as a face-unlock system does with two faces. It can err in two
# ways: a **false accept** (two classes taken for one) and a **false reject**
# (one class taken for two), and the threshold trades one for the other. The
# {term}`ROC curve` draws the whole trade: for every threshold, the share of same-class
# pairs accepted against the share of different-class pairs accepted.
#
# A threshold must be chosen before it is measured. We split the test images in
# two halves: on the pairs of the first we choose the threshold at which the
# two error rates come closest (the *equal error* threshold), and on the pairs
# of the second, which played no part in that choice, we measure. Both halves include
# the held-out class: pairs of two diamonds, which the network never saw in
# training, must be accepted too.

# %% mystnb={"figure": {"name": "fig-w5-roc", "caption": "ROC curves of verification by a similarity threshold, for the learned embedding and for raw pixels, on the second half's pairs; the marks are the thresholds chosen on the first half."}}
half = np.arange(len(split.y_test)) % 2
choose, measure = half == 0, half == 1  # choose the threshold, then measure
verification = {}
features = {
    "learned embedding": test_embeddings,
    "raw pixels": flat(split.x_test),
}
for name, vectors in features.items():
    threshold = ml.equal_error_threshold(
        *ml.all_pairs(vectors[choose], split.y_test[choose])
    )
    pairs = ml.all_pairs(vectors[measure], split.y_test[measure])
    verification[name] = dict(
        threshold=threshold,
        pairs=pairs,
        rates=ml.verification_rates(*pairs, threshold),
    )
fig = ml.plot_verification_roc(
    {name: v["pairs"] for name, v in verification.items()},
    {name: v["rates"] for name, v in verification.items()},
    title="verification, measured on the second half's pairs",
)
print(f"{'':<18} {'threshold':>9} {'false accepts':>13} {'false rejects':>13}")
for name, v in verification.items():
    far, frr = v["rates"]
    print(f"{name:<18} {v['threshold']:>9.3f} {far:>13.2%} {frr:>13.2%}")

# %% [markdown]
# Where does the embedding go wrong? Split the second half's pairs by whether
# they involve the class held out of training:

# %%
similarities, same = verification["learned embedding"]["pairs"]
first, second = ml.pair_indices(int(measure.sum()))
labels = split.y_test[measure]
with_held = (labels[first] == held) | (labels[second] == held)
threshold = verification["learned embedding"]["threshold"]
held_rates = {}
for kind, subset in [
    ("classes seen in training", ~with_held),
    (f"involving a {names[held]}", with_held),
]:
    far, frr = ml.verification_rates(
        similarities[subset], same[subset], threshold
    )
    held_rates[kind] = (far, frr)
    print(
        f"pairs {kind:<26} false accepts {far:>6.2%}   "
        f"false rejects {frr:>6.2%}"
    )

# %% [markdown]
# The dot on each curve is the threshold chosen on the first half, where the
# two error rates came closest. On the second half they came apart by 0.04 to
# 2.4 points over the benchmark's five run seeds (this run: at most 19 points
# apart): a threshold chosen on one set of pairs carries over to others, but
# not exactly. On raw pixels the curve runs along the diagonal of chance: a
# pixel similarity says next to nothing about the class, and the area under
# the curve is a coin's, 0.500 to 0.508 (this run: between 0.49 and 0.52), so
# every threshold that accepts most same-class pairs accepts as many of the
# others. On the learned embedding the curve climbs far above it, to an area
# of 0.946 to 0.979 (this run: between 0.91 and 1.0).
#
# The errors are not spread evenly. Pairs of the three classes the network
# trained on are seldom accepted wrongly, 0.02% to 1.5% of those of different
# classes over the benchmark's seeds (this run: at most 3%). The diamond, which
# the network never saw, is taken for another shape far more often: its pairs
# with the other classes were accepted 12.8 to 20.4 points more often than the
# pairs of trained classes (this run: by between 4 and 29 points). Whether two
# diamonds are also refused more often is not settled: that difference ranged
# from -2.0 to 9.9 points, both signs (this run: between -14 and 26). A
# system that verifies classes it never trained on (new faces, new signatures:
# the usual case for verification) has to be measured on such classes.

# %% tags=["remove-cell"]
embedding_auc, pixels_auc = (
    ml.verification_auc(*v["pairs"]) for v in verification.values()
)
claims.record("week5.verification.embedding_auc", embedding_auc)
claims.record("week5.verification.raw_pixels_auc", pixels_auc)
claims.record(
    "week5.verification.embedding_false_accept_rate",
    verification["learned embedding"]["rates"][0],
)
claims.record(
    "week5.verification.embedding_false_reject_rate",
    verification["learned embedding"]["rates"][1],
)
claims.record(
    "week5.verification.seen_false_reject_rate",
    held_rates["classes seen in training"][1],
)
claims.record(
    "week5.verification.held_out_false_reject_rate",
    held_rates[f"involving a {names[held]}"][1],
)
claims.record(
    "week5.verification.held_out_false_accept_rate",
    held_rates[f"involving a {names[held]}"][0],
)
embedding_far, embedding_frr = verification["learned embedding"]["rates"]
claims.expect(
    "week5.verification.seen_false_accept_rate",
    held_rates["classes seen in training"][0],
    0,
    0.03,
    profile,
)
claims.expect(
    "week5.verification.raw_pixels_auc", pixels_auc, 0.49, 0.52, profile
)
claims.expect(
    "week5.verification.embedding_auc", embedding_auc, 0.91, 1.0, profile
)
claims.expect(
    "week5.verification.rates_apart_points",
    100 * abs(embedding_far - embedding_frr),
    0,
    19,
    profile,
)
claims.expect(
    "week5.verification.held_out_minus_seen_false_reject_points",
    100
    * (
        held_rates[f"involving a {names[held]}"][1]
        - held_rates["classes seen in training"][1]
    ),
    -14,
    26,
    profile,
)
claims.expect(
    "week5.verification.held_out_minus_seen_false_accept_points",
    100
    * (
        held_rates[f"involving a {names[held]}"][0]
        - held_rates["classes seen in training"][0]
    ),
    4,
    29,
    profile,
)
claims.quoted_from_bench("week5.verification.rates_apart_points", 0.04, 2.4)
claims.quoted_from_bench("week5.verification.raw_pixels_auc", 0.500, 0.508)
claims.quoted_from_bench("week5.verification.embedding_auc", 0.946, 0.979)
claims.quoted_from_bench(
    "week5.verification.seen_false_accept_rate", 0.02, 1.5, scale=100
)
claims.quoted_from_bench(
    "week5.verification.held_out_minus_seen_false_accept_points", 12.8, 20.4
)
claims.quoted_from_bench(
    "week5.verification.held_out_minus_seen_false_reject_points", -2.0, 9.9
)

# %% [markdown]
# ## 11. Without any labels: a denoising autoencoder
#
# Everything so far used labels, if only to say *same* or *different*. An
# **autoencoder** uses none. It is two networks in a row: an *encoder* that
# squeezes the image into a small *latent* representation (the bottleneck), and
# a *decoder* that rebuilds the image from it; the pair is trained to make its
# output equal to its input. Copying the input through a narrow bottleneck
# forces the network to keep what matters most for the reconstruction and drop
# the rest. A **denoising** autoencoder {cite}`vincent2008` is given a
# corrupted copy of the image and trained to reconstruct the *clean* one, so
# that it cannot simply learn to copy: it has to learn what images of this kind
# look like, which is what Vincent and his colleagues wanted as features for
# other tasks. Two questions, then: how well does it remove noise, and is its
# latent space a useful embedding for kNN, without a single label?
#
# Unlabelled images are cheap, so the autoencoder gets a pool of new scenes,
# none of them in the test set (with your own image folder: the reference
# images, without their labels). The corruption is Gaussian noise of standard
# deviation `NOISE` added to every pixel value (values in [0, 1], clipped),
# drawn afresh for every batch (`ml.NoisyBatches`); the loss is the mean
# squared error between the output and the clean image. `ml.denoising_autoencoder`
# has two 3×3 convolutions with 2×2 max pooling down to an 8×8×16 bottleneck
# (1,024 numbers for the 3,072 of an image) and two {term}`transposed convolutions <Transposed convolution>`
# back up.

# %% tags=["nbval-check-output"]
# standard deviation of the added noise
NOISE = 0.2
# unlabelled training images
AE_IMAGES = profile.pick(smoke=64, cpu=2000, gpu=4000)
AE_EPOCHS = profile.pick(smoke=1, cpu=10, gpu=30)
if DATA_SOURCE == "scenes":
    unlabelled = make_scenes(
        AE_IMAGES, size=SIZE, seed=profile.seed(2), objects=(1, 1)
    ).images
else:
    # a folder has no spare images: the reference set, unlabelled
    unlabelled = split.x_reference
config.seed_everything(profile.seed(3))
autoencoder = ml.denoising_autoencoder(
    (SIZE, SIZE, 3), filters=(32, 64), latent_channels=16
)
latent_layer = autoencoder.get_layer("latent")
print(
    f"{autoencoder.name}: {autoencoder.count_params():,} parameters, bottleneck"
    f" {latent_layer.output.shape[1:]} ="
    f" {int(np.prod(latent_layer.output.shape[1:])):,} numbers per image;"
    f" {len(unlabelled)} unlabelled training images"
)

# %%
noisy_batches = ml.NoisyBatches(
    unlabelled, NOISE, batch_size=64, seed=profile.seed(3)
)
ae_history, ae_seconds = ml.fit_autoencoder(
    autoencoder, noisy_batches, AE_EPOCHS, run_eagerly=EAGER
)
print(
    f"trained {AE_EPOCHS} epochs of {len(noisy_batches)} batches in"
    f" {ae_seconds:.0f} s; mean squared error"
    f" {ae_history.history['loss'][0]:.4f} ->"
    f" {ae_history.history['loss'][-1]:.4f}"
)

# %% tags=["remove-cell"]
claims.record("week5.autoencoder.train_seconds", ae_seconds)

# %% [markdown]
# ### Denoising, measured
#
# The measure is the **peak signal-to-noise ratio** of an image against the
# clean original, $\mathrm{PSNR} = 10 \log_{10}(1 / \mathrm{MSE})$ in decibels
# for pixel values in [0, 1] (`ml.psnr`, which is `tf.image.psnr`): the higher,
# the closer to the original; every halving of the mean squared error adds
# 3 dB. We corrupt the test images with the same kind of noise (a fixed draw)
# and compare two numbers, both against the *clean* test image: the PSNR of the
# noisy input, and the PSNR of the autoencoder's output for that noisy input.
# The difference is what the network removed. As a yardstick that knows nothing
# about the images, a Gaussian blur of 1 pixel's standard deviation
# (scipy's `gaussian_filter`) is scored the same way. ("Clean" means the scene
# as the generator made it: it already holds a faint noise of its own, part of
# the scene's texture.)

# %%


noisy_test = ml.add_noise(split.x_test, NOISE, seed=profile.seed(4))
denoised_test = ml.embed(autoencoder, noisy_test)
# 1 pixel across height and width, per channel
blurred_test = gaussian_filter(noisy_test, sigma=(0, 1, 1, 0))
psnr_noisy = ml.psnr(split.x_test, noisy_test)
psnr_denoised = ml.psnr(split.x_test, denoised_test)
psnr_blurred = ml.psnr(split.x_test, blurred_test)
print(
    f"PSNR against the clean test images, mean over {len(split.x_test)} images:"
)
print(f"  noisy input (sigma = {NOISE}):   {psnr_noisy.mean():6.2f} dB")
print(f"  Gaussian blur of the input:    {psnr_blurred.mean():6.2f} dB")
print(f"  autoencoder output:            {psnr_denoised.mean():6.2f} dB")
print(
    "the autoencoder's output is better than its noisy input on"
    f" {np.mean(psnr_denoised > psnr_noisy):.0%} of the images"
)

# %% tags=["remove-cell"]
claims.record("week5.autoencoder.psnr_noisy", float(psnr_noisy.mean()))
claims.record("week5.autoencoder.psnr_denoised", float(psnr_denoised.mean()))
claims.record("week5.autoencoder.psnr_blurred", float(psnr_blurred.mean()))

# %% mystnb={"figure": {"name": "fig-w5-denoised", "caption": "Clean test images, their noisy copies and the autoencoder's output, with the PSNR against the clean image."}}
panel = np.concatenate(
    [np.flatnonzero(split.y_test == c)[:2] for c in range(len(names))]
)
fig = plots.image_grid(
    np.concatenate(
        [split.x_test[panel], noisy_test[panel], denoised_test[panel]]
    ),
    titles=[names[c] for c in split.y_test[panel]]
    + [f"{psnr_noisy[i]:.1f} dB" for i in panel]
    + [f"{psnr_denoised[i]:.1f} dB" for i in panel],
    ncols=len(panel),
    title="clean, noisy and denoised test images (PSNR against the clean one)",
)
# %% [markdown]
# Read the table and the panels of {numref}`fig-w5-denoised` together. The gain of the autoencoder is the
# difference between its row and the noisy row: each 3 dB is a halving of the
# squared error. Over the benchmark's five run seeds (`SEED` = 0..4, at profile
# cpu; `week5.autoencoder.*` in `bench/results.json`) the noisy inputs scored
# between 14.66 and 14.68 dB and the autoencoder's outputs between 21.1 and
# 21.3 dB, a gain of 6.5 to 6.6 dB. The blur is the honest yardstick: these
# scenes are smooth backgrounds with one flat-coloured shape, exactly the kind
# of image a blur cleans well, and here it did *better* than the network on
# every seed, by 0.9 to 1.0 dB. (On this page, checked on every build: noisy
# between 14.5 and 14.9 dB, denoised between 20.8 and 21.6 dB, a gain between
# 6.2 and 6.9 dB, the blur ahead by between 0.5 and 1.5 dB.) A likely reason,
# which this page does not test, is the bottleneck: everything the 8×8×16
# latent cannot hold (fine texture, sharp corners, a small shape's exact
# outline) would come back smoothed, noisy input or not. A denoising network
# *without* a bottleneck (week 4's {term}`U-Net <U-Net>`, whose {term}`skip connections <Skip connection>` carry the
# full-resolution detail past it) would not have this limit, and training one
# on the same scenes would test the explanation; but it would also have no
# small latent to use as an embedding.

# %% tags=["remove-cell"]
claims.expect(
    "week5.autoencoder.psnr_noisy", psnr_noisy.mean(), 14.5, 14.9, profile
)
claims.expect(
    "week5.autoencoder.psnr_denoised", psnr_denoised.mean(), 20.8, 21.6, profile
)
claims.expect(
    "week5.autoencoder.psnr_gain_db",
    psnr_denoised.mean() - psnr_noisy.mean(),
    6.2,
    6.9,
    profile,
)
claims.expect(
    "week5.autoencoder.blur_minus_autoencoder_db",
    psnr_blurred.mean() - psnr_denoised.mean(),
    0.5,
    1.5,
    profile,
)
claims.quoted_from_bench("week5.autoencoder.psnr_noisy", 14.66, 14.68)
claims.quoted_from_bench("week5.autoencoder.psnr_denoised", 21.1, 21.3)
claims.quoted_from_bench(
    "week5.autoencoder.psnr_denoised",
    6.5,
    6.6,
    minus="week5.autoencoder.psnr_noisy",
)
claims.quoted_from_bench(
    "week5.autoencoder.psnr_blurred",
    0.9,
    1.0,
    minus="week5.autoencoder.psnr_denoised",
)

# %% [markdown]
# ### The latent space as an embedding
#
# The bottleneck is a description of each image learned without labels. We use
# it exactly as the learned embedding of section 7: kNN ($k = 5$, cosine) with
# the same reference images and the same test images, and retrieval for the
# same queries, on the clean images. Two forms of the latent: all 1,024
# numbers (flattened), and the 16 channel means (pooled over the 8×8
# positions, as the embedding network's encoder pools).

# %%
latent_model = models.feature_extractor(autoencoder, "latent")
latent_spaces = {
    "autoencoder latent, flattened": lambda x: flat(ml.embed(latent_model, x)),
    "autoencoder latent, pooled": (
        lambda x: ml.embed(latent_model, x).mean(axis=(1, 2))
    ),
}
for name, describe in latent_spaces.items():
    ref, test = describe(split.x_reference), describe(split.x_test)
    seen_pred, _ = ml.knn_predict(
        ref[seen_ref], split.y_reference[seen_ref], test[seen_test], K
    )
    all_pred, _ = ml.knn_predict(ref, split.y_reference, test, K)
    comparison[f"kNN on {name}"] = (
        np.mean(seen_pred == split.y_test[seen_test]),
        np.mean(all_pred == split.y_test),
    )
print(
    f"{'kNN (k = 5) on':<34} {'3 training classes':>19} {'all 4 classes':>14}"
)
for name in ["raw pixels", *latent_spaces, "learned embedding"]:
    seen_acc, all_acc = comparison[f"kNN on {name}"]
    print(f"{name:<34} {seen_acc:>19.3f} {all_acc:>14.3f}")

# %% tags=["remove-cell"]
claims.record(
    "week5.autoencoder.knn_accuracy",
    comparison["kNN on autoencoder latent, flattened"][0],
)
claims.record(
    "week5.autoencoder.knn_accuracy_pooled",
    comparison["kNN on autoencoder latent, pooled"][0],
)
claims.record(
    "week5.autoencoder.knn_accuracy_with_held_out_class",
    comparison["kNN on autoencoder latent, flattened"][1],
)

# %% [markdown]
# Without labels, the latent space is no better than the pixels it was
# trained to reproduce. Over the five run seeds kNN on the flattened latent
# scored between 0.33 and 0.36 on the three training classes, at chance level
# like raw pixels, and within a few points of raw pixels on every seed, ahead
# on some and level or behind on others; the pooled latent was at chance too. The
# learned embedding was ahead of the flattened latent by 60 to 66 points on
# every seed. (On this page: the latent between 0.28 and 0.42, the embedding
# ahead by between 54 and 72 points.) The retrieval below shows why.

# %% tags=["remove-cell"]
claims.expect(
    "week5.autoencoder.knn_accuracy",
    comparison["kNN on autoencoder latent, flattened"][0],
    0.28,
    0.42,
    profile,
)
ae_behind = 100 * (
    comparison["kNN on learned embedding"][0]
    - comparison["kNN on autoencoder latent, flattened"][0]
)
claims.expect(
    "week5.embedding_minus_autoencoder_knn.points", ae_behind, 54, 72, profile
)
claims.quoted_from_bench("week5.autoencoder.knn_accuracy", 0.33, 0.36)
claims.quoted_from_bench(
    "week5.embedding_knn.test_accuracy",
    60,
    66,
    scale=100,
    minus="week5.autoencoder.knn_accuracy",
)

# %% mystnb={"figure": {"name": "fig-w5-latent-retrieval", "caption": "Test images (left) and their nearest reference images in the autoencoder's latent space."}}
latent_index, latent_similarity = ml.retrieve(
    latent_spaces["autoencoder latent, flattened"](split.x_reference),
    latent_spaces["autoencoder latent, flattened"](split.x_test[queries]),
    k=6,
)
fig = plots.retrieval_grid(
    split.x_test[queries],
    split.x_reference[latent_index],
    query_titles=[f"query: {names[c]}" for c in split.y_test[queries]],
    neighbour_titles=[
        [f"{names[split.y_reference[i]]} {s:.2f}" for i, s in zip(row, sims)]
        for row, sims in zip(latent_index, latent_similarity)
    ],
    title="nearest reference images in the autoencoder's latent space",
)
for r, (row, q) in enumerate(zip(latent_index, queries)):
    for col, i in enumerate(row):
        if split.y_reference[i] != split.y_test[q]:
            fig.axes[r * 7 + col + 1].title.set_color("red")

# %% [markdown]
# Compare the neighbours with those of section 10. In the autoencoder's
# latent space the nearest images are the ones whose *pixels* are alike:
# similar background colours and brightness, wherever the shape is and
# whatever it is. That is what a reconstruction loss rewards: the background
# fills most of the image, so most of the squared error, and so most of the
# latent, is about the background. Nothing in the loss says that the shape is
# what matters, and the latent cannot know it; the labels of the learned
# embedding, and its colour augmentation, are exactly that knowledge. An
# autoencoder's latent is a compressed description of the image, not of its
# class: useful where the task is "find images that look like this one", or
# as a starting point that a few labels then {term}`fine-tune <Fine-tuning>`, but no substitute for
# the labels when the class is a small part of the picture.

# %% [markdown]
# ### A sparse code
#
# Noise is one way to keep an autoencoder from copying; a penalty on the code
# is another. A {term}`sparse autoencoder <Sparse autoencoder>` adds to the
# reconstruction error the L1 norm of the latent, $\lambda \sum_i |h_i|$,
# which drives most of the numbers of an image's code to exactly zero (with
# ReLU units a zero is exact), so that each image is described by a few active
# units. We train the same network again, with the same noise, initial
# weights and batches, and $\lambda$ = `SPARSITY` on its 1,024 latent numbers
# (`latent_l1`, a Keras activity regularizer), and compare the codes, the
# denoised outputs and what kNN makes of the codes. A *dead* channel is one of
# the 16 latent channels that is zero on every test image.

# %%
# weight of the L1 penalty on the latent numbers
SPARSITY = 3e-6
config.seed_everything(profile.seed(3))
sparse_autoencoder = ml.denoising_autoencoder(
    (SIZE, SIZE, 3), filters=(32, 64), latent_channels=16, latent_l1=SPARSITY
)
ml.fit_autoencoder(
    sparse_autoencoder,
    ml.NoisyBatches(unlabelled, NOISE, batch_size=64, seed=profile.seed(3)),
    AE_EPOCHS,
    run_eagerly=EAGER,
)


def describe_code(network):
    """The latent code of the test images, the denoised PSNR and kNN on the
    flattened code, for one autoencoder."""
    encoder = models.feature_extractor(network, "latent")
    test_code = ml.embed(encoder, split.x_test)
    ref_code = flat(ml.embed(encoder, split.x_reference))
    predicted, _ = ml.knn_predict(
        ref_code[seen_ref],
        split.y_reference[seen_ref],
        flat(test_code)[seen_test],
        K,
    )
    return {
        "zeros": float(np.mean(test_code == 0)),
        "dead": int(np.sum(np.all(test_code == 0, axis=(0, 1, 2)))),
        "psnr": float(
            ml.psnr(split.x_test, ml.embed(network, noisy_test)).mean()
        ),
        "knn": float(np.mean(predicted == split.y_test[seen_test])),
    }


codes = {"denoising": describe_code(autoencoder)}
codes[f"sparse, {SPARSITY:g}"] = describe_code(sparse_autoencoder)
print(
    f"{'autoencoder':<14} {'zeros in the code':>18} {'dead channels':>14}"
    f" {'PSNR (dB)':>10} {'kNN accuracy':>13}"
)
for label, c in codes.items():
    print(
        f"{label:<14} {c['zeros']:>18.1%} {c['dead']:>11d}/16"
        f" {c['psnr']:>10.2f} {c['knn']:>13.3f}"
    )

# %% tags=["remove-cell"]
plain_code, sparse_code = codes.values()
for measure in ("zeros", "dead", "psnr", "knn"):
    claims.record(f"week5.autoencoder.code_{measure}", plain_code[measure])
    claims.record(
        f"week5.sparse_autoencoder.code_{measure}", sparse_code[measure]
    )

# %% [markdown]
# Over the benchmark's five run seeds the penalty did what it is for: 66 to 84%
# of the code's numbers were zero, against 13 to 37% without it, and 5 to 9 of
# the 16 channels were dead, against 0 to 4. A channel that is zero for every
# input gets no gradient through its ReLU, so once the penalty has pushed it
# there, training cannot bring it back (the "dying ReLU"); an L1 penalty on
# ReLU units therefore prunes whole channels, not only single numbers. The
# price was 0.1 to 4.0 dB of PSNR (the sparse network's output at 17.2 to
# 21.0 dB). And kNN on the sparse code was at chance, 0.33 to 0.38, like the
# plain latent: fewer active numbers describe the same thing, the pixels, not
# the class. (On this page the share of zeros is checked to lie between 47% and
# 100%, the dead channels between 1 and 13, the PSNR between 13.3 and 25.0 dB
# and kNN between 0.28 and 0.43.)

# %% tags=["remove-cell"]
claims.expect(
    "week5.sparse_autoencoder.code_zeros",
    sparse_code["zeros"],
    0.47,
    1.00,
    profile,
)
claims.expect(
    "week5.sparse_autoencoder.code_dead", sparse_code["dead"], 1, 13, profile
)
claims.expect(
    "week5.sparse_autoencoder.code_psnr",
    sparse_code["psnr"],
    13.3,
    25.0,
    profile,
)
claims.expect(
    "week5.sparse_autoencoder.code_knn", sparse_code["knn"], 0.28, 0.43, profile
)
claims.quoted_from_bench(
    "week5.sparse_autoencoder.code_zeros", 66, 84, scale=100
)
claims.quoted_from_bench("week5.autoencoder.code_zeros", 13, 37, scale=100)
claims.quoted_from_bench("week5.sparse_autoencoder.code_dead", 5, 9)
claims.quoted_from_bench("week5.autoencoder.code_dead", 0, 4)
claims.quoted_from_bench(
    "week5.autoencoder.code_psnr",
    0.1,
    4.0,
    minus="week5.sparse_autoencoder.code_psnr",
)
claims.quoted_from_bench("week5.sparse_autoencoder.code_psnr", 17.2, 21.0)
claims.quoted_from_bench("week5.sparse_autoencoder.code_knn", 0.33, 0.38)

# %% [markdown]
# ## Summary
#
# * Metric learning trains an embedding with pairs: same class close, different
#   classes far; no classifying head, no fixed list of classes.
# * The similarity-matrix softmax loss turns each batch into a small
#   classification problem over the batch's own images. Its temperature
#   matters: at $\tau = 1$ the loss still prefers every class in a place of its
#   own, but it is nearly flat around the saddle point where two classes share
#   one, so a run can stop there; a small $\tau$ makes the loss steep around
#   it. Batch-hard triplet mining can collapse every image onto one point, the
#   risk that led FaceNet to semi-hard negatives.
# * kNN on the embedding classifies from a handful of reference images, gives a
#   confidence for free (the share of agreeing votes), and accepts a new class by
#   adding its reference images, without retraining.
# * With 20 labelled images per class, kNN on the embedding beat kNN on raw
#   pixels by 60 to 66 points of accuracy over the benchmark's five run seeds
#   (a run of this page: between 52 and 74), and MobileNetV2 from scratch,
#   which learned next to nothing from so little data. A supervised CNN with the
#   same encoder did about as well on the classes it was trained on (kNN on the
#   embedding 0.4 to 2.0 points ahead of its softmax, too little to rank them).
# * Two numbers of the recipe, swept: between $\tau = 0.03$ and 0.1 the
#   temperature made no difference the chapter could resolve, while at
#   $\tau = 1$ most runs stopped at the saddle point where two classes share one
#   place; an embedding of 2 numbers cost at most about two points
#   against 32, and nothing on some seeds. The older contrastive loss, which asks for a distance rather
#   than an order, did as well as the softmax for kNN.
# * A denoising autoencoder learns without labels to remove noise (measured as
#   the PSNR of its output against the clean image, beside that of its noisy
#   input), but its latent space describes the pixels, mostly the background,
#   not the shape: no labels, no knowledge of what the class is.
# * An L1 penalty on the code makes it sparse, most of its numbers zero, and
#   switches whole ReLU channels off for good; the sparse code knows the class
#   no better than the plain one.
#
# The exercise of this week has you write the similarity matrix, the
# temperature softmax loss, a target that knows the classes, and the kNN vote
# yourself, choose $k$ on a validation split, train an embedding that
# classifies the shapes, and choose a verification threshold for a system in
# which a false accept costs five false rejects.

# %% tags=["remove-cell"]
points_over_pixels = 100 * (
    comparison["kNN on learned embedding"][0]
    - comparison["kNN on raw pixels"][0]
)
claims.expect(
    "week5.embedding_minus_raw_pixels_knn.points",
    points_over_pixels,
    52,
    74,
    profile,
)
claims.quoted_from_bench("week5.embedding_minus_raw_pixels_knn.points", 60, 66)
