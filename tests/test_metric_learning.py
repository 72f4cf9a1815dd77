"""course_utils.metric_learning: sampler, losses, embedding model, training step, kNN helpers."""

import keras
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from course_utils import metric_learning as ml
from course_utils import models


def separated(labels, dim=8):
    """Unit embeddings with one orthogonal direction per class."""
    return np.eye(dim, dtype=np.float32)[labels]


def test_sampler_yields_anchor_positive_halves_of_p_classes_by_k_images():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 6)
    images = rng.random((30, 16, 16, 3)).astype(np.float32)
    images[:, 0, 0, 0] = np.arange(30)  # tag each image, to see which one is drawn (no augmentation)
    batches = ml.BalancedBatches(images, labels, classes_per_batch=3, per_class=4, steps=7, augment=False, seed=1)
    assert len(batches) == 7
    for i in range(len(batches)):
        x, y = batches[i]
        assert x.shape == (12, 16, 16, 3) and y.shape == (12,)
        assert len(np.unique(y)) == 3 and set(np.bincount(y)[np.unique(y)]) == {4}
        np.testing.assert_array_equal(y[:6], y[6:])  # anchor j and positive j share a class
        drawn = x[:, 0, 0, 0].astype(int)
        assert np.all(drawn[:6] != drawn[6:])  # ... but are different images
        np.testing.assert_array_equal(labels[drawn], y)
    x0, _ = batches[0]
    np.testing.assert_array_equal(x0, batches[0][0])  # reproducible within an epoch
    batches.on_epoch_end()
    assert not np.array_equal(x0, batches[0][0])  # a new draw next epoch


def test_sampler_rejects_odd_per_class_and_single_image_classes():
    images = np.zeros((5, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="even"):
        ml.BalancedBatches(images, [0, 0, 1, 1, 1], per_class=3)
    with pytest.raises(ValueError, match="fewer than 2"):
        ml.BalancedBatches(images, [0, 1, 1, 1, 1], per_class=2)


def test_augmentation_keeps_shapes_and_the_set_of_values_without_colour():
    rng = np.random.default_rng(0)
    images = rng.random((4, 10, 10, 3)).astype(np.float32)
    out = ml.augment_batch(images, rng, shift=0, colour=False)
    assert out.shape == images.shape
    for a, b in zip(images, out):
        np.testing.assert_allclose(np.sort(a.ravel()), np.sort(b.ravel()))


def test_cosine_similarity_matrix_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(3, 7))
    expected = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(np.asarray(ml.cosine_similarity_matrix(a, b)), expected, atol=1e-6)


def test_softmax_loss_is_at_its_floor_when_separated_and_high_when_collapsed():
    labels = np.repeat(np.arange(4), 3)
    good = separated(labels)
    low = np.asarray(ml.similarity_softmax_loss(good, good, 0.05, labels, labels))
    np.testing.assert_allclose(low, np.log(3), atol=1e-4)  # 3 equally right positives per anchor
    pairwise = np.asarray(ml.similarity_softmax_loss(separated(np.arange(6)), separated(np.arange(6)), 0.05))
    assert pairwise.max() < 1e-6
    collapsed = np.ones((12, 8), np.float32)
    high = np.asarray(ml.similarity_softmax_loss(collapsed, collapsed, 0.05, labels, labels))
    np.testing.assert_allclose(high, np.log(12), atol=1e-4)
    # A higher temperature cannot reach the floor even for perfect embeddings.
    assert np.mean(ml.similarity_softmax_loss(good, good, 1.0, labels, labels)) > np.log(3) + 0.5


def test_loss_class_splits_the_batch_into_anchors_and_positives():
    labels = np.tile(np.arange(3), 2)
    embeddings = separated(labels)
    loss = ml.SimilaritySoftmaxLoss(0.05, use_labels=False)
    assert float(loss(labels, embeddings)) < 1e-6
    swapped = np.concatenate([embeddings[:3], embeddings[3:][::-1]])
    assert float(loss(labels, swapped)) > 1.0


@pytest.mark.parametrize("mining", ["hard", "semi-hard"])
def test_triplet_loss_is_zero_when_separated_and_the_margin_when_collapsed(mining):
    labels = np.repeat(np.arange(3), 4)
    np.testing.assert_allclose(np.asarray(ml.triplet_loss(labels, separated(labels), 0.2, mining)), 0.0, atol=1e-6)
    collapsed = np.ones((12, 8), np.float32) / np.sqrt(8)
    np.testing.assert_allclose(np.asarray(ml.triplet_loss(labels, collapsed, 0.2, mining)), 0.2, atol=1e-5)


def test_batch_hard_triplet_loss_by_hand():
    # 1-D points: class 0 at 0 and 1, class 1 at 1.5 and 4.
    points = np.array([[0.0], [1.0], [1.5], [4.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    loss = np.asarray(ml.triplet_loss(labels, points, margin=0.2, mining="hard"))
    # anchor 0: farthest positive 1, nearest negative 1.5 -> max(0, 1 - 1.5 + .2) = 0
    # anchor 1: 1 - 0.5 + .2 = 0.7; anchor 2: 2.5 - 0.5 + .2 = 2.2; anchor 3: 2.5 - 3 + .2 = 0
    np.testing.assert_allclose(loss, [0.0, 0.7, 2.2, 0.0], atol=1e-5)
    with pytest.raises(ValueError):
        ml.triplet_loss(labels, points, mining="easy")


def test_contrastive_loss_by_hand():
    # 1-D points: class 0 at 0 and 0.5, class 1 at 0.8 and 3; margin 1.
    points = np.array([[0.0], [0.5], [0.8], [3.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    loss = np.asarray(ml.contrastive_loss(labels, points, margin=1.0))
    # point 0: same 0.5**2/2, different (1 - 0.8)**2/2 and 0 (3 > margin); mean over its 3 pairs
    expected = [
        (0.125 + 0.02 + 0.0) / 3,
        (0.125 + 0.7**2 / 2 + 0.0) / 3,
        (0.02 + 0.7**2 / 2 + 2.2**2 / 2) / 3,
        (0.0 + 0.0 + 2.2**2 / 2) / 3,
    ]
    np.testing.assert_allclose(loss, expected, atol=1e-5)
    with pytest.raises(ValueError, match="margin"):
        ml.contrastive_loss(labels, points, margin=0.0)


def test_contrastive_loss_is_zero_when_classes_sit_on_points_a_margin_apart_and_trains_as_a_keras_loss():
    labels = np.repeat(np.arange(3), 4)
    assert np.allclose(np.asarray(ml.contrastive_loss(labels, separated(labels), margin=1.0)), 0.0, atol=1e-6)
    # Collapsed: every different-label pair costs margin**2 / 2; 8 of each image's 11 pairs are such.
    collapsed = np.ones((12, 8), np.float32) / np.sqrt(8)
    np.testing.assert_allclose(np.asarray(ml.contrastive_loss(labels, collapsed, 1.0)), 8 / 11 * 0.5, atol=1e-5)
    loss = ml.ContrastiveLoss(0.5)
    assert loss.get_config()["margin"] == 0.5
    assert float(loss(labels, separated(labels))) == pytest.approx(0.0, abs=1e-6)


def test_embeddings_have_unit_length():
    model = ml.embedding_model((16, 16, 3), embedding_dim=8, filters=(4, 8))
    out = ml.embed(model, np.random.default_rng(0).random((5, 16, 16, 3)).astype(np.float32))
    assert out.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    keras.utils.set_random_seed(0)
    from course_utils.scenes import make_scenes

    scenes = make_scenes(24, size=16, seed=0, classes=("circle", "square", "triangle"))
    batches = ml.BalancedBatches(scenes.images, scenes.labels, per_class=4, steps=1, augment=False, seed=0)
    x, y = batches[0]
    model = ml.embedding_model((16, 16, 3), embedding_dim=8, filters=(8, 16))
    loss = ml.SimilaritySoftmaxLoss(0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    before = float(loss(y, model(x, training=True)))
    model.train_on_batch(x, y)
    after = float(loss(y, model(x, training=True)))
    assert after < before


def test_fit_embedding_trains_through_keras_fit_and_returns_history():
    from course_utils.scenes import make_scenes

    scenes = make_scenes(24, size=16, seed=0, classes=("circle", "square"))
    batches = ml.BalancedBatches(scenes.images, scenes.labels, per_class=4, steps=2, seed=0)
    model = ml.embedding_model((16, 16, 3), embedding_dim=8, filters=(4,))
    history, seconds = ml.fit_embedding(model, batches, ml.TripletLoss(0.2, "semi-hard"), epochs=2)
    assert len(history.history["loss"]) == 2 and seconds > 0
    after_first = batches.epoch
    assert after_first >= 2
    classifier = ml.classifier_from(ml.embedding_model((16, 16, 3), filters=(4,)), num_classes=2)
    history, _ = ml.fit_embedding(classifier, batches, "sparse_categorical_crossentropy", epochs=1)
    assert "accuracy" in history.history
    assert batches.epoch > after_first  # the count goes on: the second model drew other batches (as documented)


def test_knn_matches_scikit_learn_and_confidence_is_vote_share():
    rng = np.random.default_rng(2)
    reference, labels, queries = rng.normal(size=(40, 6)), rng.integers(0, 3, 40), rng.normal(size=(25, 6))
    predicted, confidence = ml.knn_predict(reference, labels, queries, k=5)
    expected = KNeighborsClassifier(5, metric="cosine").fit(reference, labels).predict(queries)
    np.testing.assert_array_equal(predicted, expected)
    index, similarity = ml.retrieve(reference, queries, k=5)
    votes = np.array([np.mean(labels[row] == p) for row, p in zip(index, predicted)])
    np.testing.assert_allclose(confidence, votes)
    assert np.all(np.diff(similarity, axis=1) <= 1e-12)  # best first
    scores = ml.accuracy_vs_k(reference, labels, queries, expected, ks=(5, 100))
    assert scores == {5: 1.0}  # k larger than the reference set is skipped


def test_coverage_curve():
    correct = np.array([1, 1, 0, 1, 0, 1])
    confidence = np.array([1.0, 1.0, 0.6, 0.8, 0.6, 0.6])
    curve = ml.coverage_curve(correct, confidence)
    assert curve[0] == (0.6, 1.0, 4 / 6)
    assert curve[-1] == (1.0, 2 / 6, 1.0)


def test_few_label_split_keeps_the_held_out_class_out_of_training():
    split = ml.scenes_few_labels(size=16, per_class=5, test_per_class=7, held_out="diamond", seed=0)
    assert split.class_names[split.held_out] == "diamond"
    assert split.held_out not in split.y_labelled
    assert np.bincount(split.y_labelled).tolist() == [5, 5, 5]
    assert np.bincount(split.y_reference).tolist() == [5, 5, 5, 5]
    assert np.bincount(split.y_test).tolist() == [7, 7, 7, 7]
    assert split.seen.sum() == 21
    # No test image is also a labelled one.
    flat_ref = {im.tobytes() for im in split.x_reference}
    assert not any(im.tobytes() in flat_ref for im in split.x_test)
    with pytest.raises(ValueError, match="held_out"):
        ml.few_label_split(split.x_test, split.y_test, split.class_names, per_class=2, held_out="hexagon")


def test_image_folder_arrays_work_with_few_label_split(tmp_path):
    from PIL import Image

    from course_utils import data

    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).save(tmp_path / name / f"{i}.png")
    images, labels, names = data.load_image_folder(tmp_path, image_size=(16, 16))
    split = ml.few_label_split(images, labels, names, per_class=2, held_out=names[-1])
    assert split.x_labelled.shape == (2, 16, 16, 3) and split.class_names == ("cats", "dogs")
    assert split.y_test.tolist() == [0, 0, 1, 1]


def test_psnr_matches_its_formula_and_rejects_mismatched_shapes():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 8, 8, 3)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape).astype(np.float32), 0, 1)
    mse = np.mean((clean - noisy) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(ml.psnr(clean, noisy), 10 * np.log10(1.0 / mse), rtol=1e-4)
    np.testing.assert_allclose(
        ml.psnr(clean[0] * 255, noisy[0] * 255, max_val=255), 10 * np.log10(1 / mse[0]), rtol=1e-4
    )
    halved = clean + (noisy - clean) / np.sqrt(2)  # half the squared error: +3 dB
    np.testing.assert_allclose(ml.psnr(clean, halved) - ml.psnr(clean, noisy), 10 * np.log10(2), rtol=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        ml.psnr(clean, noisy[:2])
    with pytest.raises(ValueError, match="height, width, channels"):
        ml.psnr(clean[0, 0], noisy[0, 0])


def test_add_noise_is_seeded_clipped_and_has_the_asked_spread():
    images = np.full((4, 16, 16, 3), 0.5, np.float32)
    noisy = ml.add_noise(images, 0.1, seed=3)
    np.testing.assert_array_equal(noisy, ml.add_noise(images, 0.1, seed=3))
    assert not np.array_equal(noisy, ml.add_noise(images, 0.1, seed=4))
    assert abs(np.std(noisy - images) - 0.1) < 0.01  # no clipping this far from 0 and 1
    assert ml.add_noise(images, 2.0, seed=0).min() == 0.0 and ml.add_noise(images, 2.0, seed=0).max() == 1.0
    with pytest.raises(ValueError, match="sigma"):
        ml.add_noise(images, -0.1)


def test_denoising_autoencoder_shapes_and_bottleneck():
    model = ml.denoising_autoencoder((16, 16, 3), filters=(8, 16), latent_channels=4)
    assert model.output.shape[1:] == (16, 16, 3)
    assert model.get_layer("latent").output.shape[1:] == (4, 4, 4)
    out = ml.embed(model, np.random.default_rng(0).random((2, 16, 16, 3)))
    assert out.min() >= 0.0 and out.max() <= 1.0  # a sigmoid: valid pixel values
    with pytest.raises(ValueError, match="divisible by 4"):
        ml.denoising_autoencoder((18, 16, 3), filters=(8, 16))


def test_noisy_batches_pair_fresh_noise_with_the_clean_images():
    rng = np.random.default_rng(0)
    images = rng.random((10, 8, 8, 3)).astype(np.float32)
    batches = ml.NoisyBatches(images, 0.1, batch_size=4, seed=1)
    assert len(batches) == 3
    seen = []
    for i in range(len(batches)):
        noisy, clean = batches[i]
        assert noisy.shape == clean.shape and 0 < len(clean) <= 4
        assert 0.05 < np.std(noisy - clean) < 0.15
        seen.append(clean)
    np.testing.assert_allclose(np.sort(np.concatenate(seen).ravel()), np.sort(images.ravel()))  # each image once
    first = batches[0][0]
    np.testing.assert_array_equal(first, batches[0][0])  # reproducible within an epoch
    batches.on_epoch_end()
    assert not np.array_equal(first, batches[0][0])  # new order and noise next epoch
    with pytest.raises(ValueError, match="non-empty"):
        ml.NoisyBatches(images[:0], 0.1)


def test_fit_autoencoder_lowers_the_reconstruction_error():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = np.repeat(rng.random((4, 1, 1, 3)), 8, axis=1).repeat(8, axis=2).astype(np.float32)  # flat colours
    images = np.tile(images, (8, 1, 1, 1))
    model = ml.denoising_autoencoder((8, 8, 3), filters=(8,), latent_channels=4)
    batches = ml.NoisyBatches(images, 0.1, batch_size=16, seed=0)
    history, seconds = ml.fit_autoencoder(model, batches, epochs=15, learning_rate=1e-2)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0] and seconds > 0


def test_a_sparse_autoencoder_pays_for_its_code_and_trains_it_to_zeros():
    images = np.tile(np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32), (8, 1, 1, 1))
    zeros = {}
    for l1 in (0.0, 1e-2):
        keras.utils.set_random_seed(0)
        model = ml.denoising_autoencoder((8, 8, 3), filters=(8,), latent_channels=4, latent_l1=l1)
        model(images[:2])
        assert (len(model.losses) > 0) == (l1 > 0)  # the penalty is a loss of its own, only when asked for
        ml.fit_autoencoder(model, ml.NoisyBatches(images, 0.1, batch_size=16, seed=0), epochs=10, learning_rate=1e-2)
        code = ml.embed(models.feature_extractor(model, "latent"), images)
        zeros[l1] = np.mean(code == 0)
    assert zeros[1e-2] > zeros[0.0] + 0.2
    with pytest.raises(ValueError, match="latent_l1"):
        ml.denoising_autoencoder((8, 8, 3), filters=(8,), latent_l1=-1.0)


# --- verification: pairs, rates, the equal error threshold ---------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def labelled_vectors(draw):
    """3 to 12 nonzero vectors of 2 to 4 numbers, with labels from 2 classes that both occur twice."""
    n, dim = draw(st.integers(4, 12)), draw(st.integers(2, 4))
    values = draw(st.lists(st.integers(-5, 5), min_size=n * dim, max_size=n * dim))
    vectors = np.array(values, float).reshape(n, dim)
    vectors[np.all(vectors == 0, axis=1), 0] = 1.0
    labels = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    labels[:2], labels[2:4] = 0, 1
    return vectors, labels


@settings(max_examples=60, deadline=None)
@given(labelled_vectors())
def test_all_pairs_holds_every_pair_once_with_its_cosine_and_class(case):
    vectors, labels = case
    similarities, same = ml.all_pairs(vectors, labels)
    first, second = ml.pair_indices(len(labels))
    assert len(similarities) == len(labels) * (len(labels) - 1) // 2 == len(set(zip(first, second)))
    for s, equal, i, j in zip(similarities, same, first, second):
        cosine = vectors[i] @ vectors[j] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[j])
        assert i < j and np.isclose(s, cosine) and equal == (labels[i] == labels[j])


@settings(max_examples=60, deadline=None)
@given(labelled_vectors())
def test_the_equal_error_threshold_brings_the_two_rates_closest(case):
    similarities, same = ml.all_pairs(*case)
    assert ml.verification_rates(similarities, same, -np.inf) == (1.0, 0.0)  # everything accepted
    assert ml.verification_rates(similarities, same, np.inf) == (0.0, 1.0)  # nothing accepted
    gap = {t: abs(np.subtract(*ml.verification_rates(similarities, same, t))) for t in similarities}
    chosen = ml.equal_error_threshold(similarities, same)
    assert np.isclose(
        gap[min(gap, key=lambda t: (gap[t], t))], abs(np.subtract(*ml.verification_rates(similarities, same, chosen)))
    )


@settings(max_examples=60, deadline=None)
@given(labelled_vectors())
def test_the_roc_area_is_the_chance_a_same_class_pair_ranks_above_another(case):
    similarities, same = ml.all_pairs(*case)
    above = similarities[same][:, None] - similarities[~same][None, :]
    ranked = np.mean(np.where(above == 0, 0.5, above > 0))  # exact ties count half
    assert np.isclose(ml.verification_auc(similarities, same), ranked)


def test_verification_refuses_pairs_of_one_kind_and_mismatched_labels():
    with pytest.raises(ValueError, match="same class and pairs of different"):
        ml.verification_rates([0.1, 0.5], [True, True], 0.3)
    with pytest.raises(ValueError, match="3 embeddings but 2 labels"):
        ml.all_pairs(np.ones((3, 2)), [0, 1])


def test_the_roc_figure_draws_each_curve_with_its_area_and_the_chosen_point():
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.3
    curves = {"good": (same + rng.normal(0, 0.3, 400), same), "chance": (rng.normal(size=400), same)}
    chosen = {"good": ml.verification_rates(*curves["good"], 0.5)}
    fig = ml.plot_verification_roc(curves, chosen)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("good (area 0.9") and legend[1].startswith("chance (area 0.")
    assert legend[2] == "chance (area 0.5)"
    far, frr = chosen["good"]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "o"] == [
        (far, 1 - frr)
    ]
    assert ax.get_xlim() == (0, 1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=2, max_size=10),
    st.integers(0, 2**32 - 1),
    st.floats(0.1, 3.0),
)
def test_contrastive_loss_matches_its_definition_pair_by_pair(labels, seed, margin):
    labels = np.array(labels)
    points = np.random.default_rng(seed).normal(size=(len(labels), 4)).astype(np.float32)
    got = np.asarray(ml.contrastive_loss(labels, points, margin))
    for i in range(len(labels)):
        terms = []
        for j in range(len(labels)):
            if j == i:
                continue
            d = float(np.linalg.norm(points[i] - points[j]))
            terms.append(d**2 / 2 if labels[i] == labels[j] else max(0.0, margin - d) ** 2 / 2)
        assert got[i] == pytest.approx(np.mean(terms), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("panels, rows, columns", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 2), (5, 2, 3), (7, 3, 3)])
def test_similarity_heatmaps_take_at_most_three_panels_a_row(panels, rows, columns):
    import matplotlib.pyplot as plt

    labels = np.repeat(np.arange(3), 2)
    matrices = {f"run {i}": np.eye(6) for i in range(panels)}
    fig = ml.plot_similarity_heatmaps(matrices, labels=labels, class_names=["a", "b", "c"])
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == list(matrices)
    grid = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in shown}
    assert max(r for r, _ in grid) + 1 == rows and max(c for _, c in grid) + 1 == columns
    assert sum(ax.get_ylabel() == "anchors" for ax in shown) == rows
    plt.close(fig)
