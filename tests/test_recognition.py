"""course_utils.recognition: the MobileNetV2 builder, fine-tuning, schedule, class weights and data."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from keras import layers
from PIL import Image

from course_utils import recognition as rec
from course_utils.recognition.__main__ import main


@pytest.fixture(scope="module")
def scratch():
    return rec.mobilenetv2_classifier(4, input_size=32, alpha=0.35, verbose=False)


# --- the builder ---------------------------------------------------------------------------------


def test_builder_shapes_and_reported_choice(capsys):
    model = rec.mobilenetv2_classifier(5, input_size=48, alpha=0.5, dropout=0.1, hidden_units=(16,))
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "weights=none" in line and "alpha 0.5" in line and "48x48" in line
    assert rec.weights_used(model) == "none"
    assert model.predict(np.zeros((2, 48, 48, 3), np.float32), verbose=0).shape == (2, 5)
    assert model.get_layer("hidden_0").units == 16
    assert rec.base_of(model).output.shape[-1] == 1280  # pooled features


def test_pooling_and_non_square_input_without_imagenet():
    model = rec.mobilenetv2_classifier(3, input_size=(40, 64), pooling="max", dropout=0, verbose=False)
    assert model.input.shape[1:] == (40, 64, 3)
    assert any(isinstance(layer, layers.GlobalMaxPooling2D) for layer in rec.base_of(model).layers)


def test_frozen_base_trains_only_the_head():
    model = rec.mobilenetv2_classifier(4, input_size=32, trainable_base=False, verbose=False)
    trainable, frozen = rec.trainable_counts(model)
    assert trainable == 1280 * 4 + 4
    assert frozen == rec.base_of(model).count_params()


def test_fine_tune_unfreezes_top_layers_but_not_batchnorm():
    model = rec.mobilenetv2_classifier(4, input_size=32, trainable_base=False, verbose=False)
    base = rec.base_of(model)
    unfrozen = rec.fine_tune(model, 10, learning_rate=1e-5)
    top = base.layers[-10:]
    assert unfrozen == sum(1 for layer in top if layer.weights and not isinstance(layer, layers.BatchNormalization))
    assert unfrozen > 0
    assert all(not layer.trainable for layer in base.layers[:-10])
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, layers.BatchNormalization))
    expected = 1280 * 4 + 4 + sum(layer.count_params() for layer in top if layer.trainable)
    assert rec.trainable_counts(model)[0] == expected
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    assert rec.fine_tune(model, 0) == 0 and rec.trainable_counts(model)[0] == 1280 * 4 + 4
    with pytest.raises(ValueError, match="top_layers"):
        rec.fine_tune(model, -1)
    n = len(base.layers)
    assert rec.fine_tune(model, n) > 0  # the whole base is allowed
    with pytest.raises(ValueError, match=f"top_layers=10000 is more than the {n} layers of the base"):
        rec.fine_tune(model, 10_000)


def test_scratch_model_uses_a_fast_batchnorm_momentum(scratch):
    momenta = {layer.momentum for layer in rec.base_of(scratch).layers if isinstance(layer, layers.BatchNormalization)}
    assert momenta == {0.9}


def test_zero_init_residual_starts_each_skip_block_as_the_identity():
    model = rec.mobilenetv2_classifier(4, input_size=32, zero_init_residual=True, verbose=False)
    base = rec.base_of(model)
    with_skip = [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]  # stride 1 and as many channels out as in
    assert rec.residual_blocks(base) == [f"block_{b}" for b in with_skip]
    for block in range(1, 17):
        gamma = keras.ops.convert_to_numpy(base.get_layer(f"block_{block}_project_BN").gamma)
        assert np.all(gamma == 0) == (block in with_skip), block
    # A zeroed block adds nothing to its input: its output equals what comes in through the skip connection.
    probe = keras.Model(base.input, [base.get_layer("block_1_project_BN").output, base.get_layer("block_2_add").output])
    before, after = probe.predict(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
    with pytest.raises(ValueError, match="overwrite pretrained weights"):
        rec.mobilenetv2_classifier(4, input_size=96, weights="imagenet", zero_init_residual=True, verbose=False)


def test_any_positive_alpha_works_from_scratch_as_in_keras():
    model = rec.mobilenetv2_classifier(4, input_size=32, alpha=0.4, dropout=0, verbose=False)
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.4, include_top=False, weights=None)
    assert rec.base_of(model).count_params() == reference.count_params()


@pytest.mark.parametrize("alpha", [0, -0.5, "wide", None, True, float("nan")])
def test_alpha_that_is_not_a_positive_number_is_rejected(alpha):
    with pytest.raises(ValueError, match="must be a positive number"):
        rec.mobilenetv2_classifier(4, input_size=32, alpha=alpha, verbose=False)


@pytest.mark.parametrize("alpha", [0.4, 2])
def test_imagenet_alpha_must_be_a_published_width(alpha, monkeypatch):
    monkeypatch.setattr(keras.applications, "MobileNetV2", lambda *a, **k: pytest.fail("Keras should not be called"))
    with pytest.raises(ValueError, match=r"published only for alpha 0\.35, 0\.5, 0\.75, 1\.0, 1\.3, 1\.4"):
        rec.mobilenetv2_classifier(4, input_size=96, alpha=alpha, weights="imagenet", verbose=False)


@pytest.mark.parametrize("alpha", [1.3, 1.4])
def test_the_wide_alphas_have_imagenet_weights_at_224_only(alpha, monkeypatch):
    monkeypatch.setattr(keras.applications, "MobileNetV2", lambda *a, **k: pytest.fail("Keras should not be called"))
    for size in (96, 128, 160, 192):
        with pytest.raises(ValueError, match="224x224 inputs only"):
            rec.mobilenetv2_classifier(4, input_size=size, alpha=alpha, weights="imagenet", verbose=False)


def test_imagenet_alpha_within_rounding_is_passed_to_keras_as_published():
    assert rec.check_alpha(0.35000000001, "imagenet") == 0.35
    assert rec.check_alpha(0.4) == 0.4


@pytest.mark.parametrize("size", [32, 64, (96, 128), 100])
def test_imagenet_accepts_any_size_from_32_and_says_which_weights(size, monkeypatch, capsys):
    # Keras loads the 224x224 weights for sizes it has none for; we only check what reaches Keras.
    seen = []
    original = keras.applications.MobileNetV2

    def downloaded(*args, weights=None, **kwargs):
        seen.append((kwargs["input_shape"], kwargs["alpha"], weights))
        return original(*args, weights=None, **kwargs)

    monkeypatch.setattr(keras.applications, "MobileNetV2", downloaded)
    model = rec.mobilenetv2_classifier(4, input_size=size, weights="imagenet")
    height, width = (size, size) if isinstance(size, int) else size
    assert seen == [((height, width, 3), 0.35, "imagenet")]
    assert rec.weights_used(model) == "imagenet"
    assert "weights=imagenet (those of the 224x224 model)" in capsys.readouterr().out


def test_published_imagenet_size_has_no_224_note(monkeypatch, capsys):
    original = keras.applications.MobileNetV2
    monkeypatch.setattr(
        keras.applications, "MobileNetV2", lambda *a, weights=None, **k: original(*a, weights=None, **k)
    )
    rec.mobilenetv2_classifier(4, input_size=128, weights="imagenet")
    out = capsys.readouterr().out
    assert "weights=imagenet," in out and "224x224" not in out


def test_a_numpy_class_count_builds_like_an_int():
    model = rec.mobilenetv2_classifier(np.int64(3), input_size=32, alpha=0.35, weights=None, verbose=False)
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("weights", [None, "imagenet"])
def test_inputs_below_32_pixels_are_refused_with_or_without_weights(weights):
    with pytest.raises(ValueError, match="at least 32x32"):
        rec.mobilenetv2_classifier(4, input_size=(32, 31), weights=weights, verbose=False)


def test_other_invalid_options():
    with pytest.raises(ValueError, match="at least 32"):
        rec.mobilenetv2_classifier(4, input_size=16, verbose=False)
    with pytest.raises(ValueError, match="weights must be None, 'imagenet' or 'source'"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="coco", verbose=False)
    with pytest.raises(ValueError, match="pooling"):
        rec.mobilenetv2_classifier(4, input_size=32, pooling="flatten", verbose=False)
    with pytest.raises(ValueError, match="num_classes"):
        rec.mobilenetv2_classifier(1, input_size=32, verbose=False)


def test_hidden_units_may_be_one_int():
    model = rec.mobilenetv2_classifier(3, input_size=32, hidden_units=16, verbose=False)
    assert model.get_layer("hidden_0").units == 16
    assert not any(layer.name == "hidden_1" for layer in model.layers)


@pytest.mark.parametrize("hidden_units", [0, (16, -2), "16", (16.5,), True, None])
def test_invalid_hidden_units_are_explained(hidden_units):
    with pytest.raises(ValueError, match=r"hidden_units must be a positive int \(one layer\) or a sequence"):
        rec.mobilenetv2_classifier(3, input_size=32, hidden_units=hidden_units, verbose=False)


@pytest.mark.parametrize("dropout", ["0.2", None, 1, -0.1])
def test_invalid_dropout_is_explained(dropout):
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        rec.mobilenetv2_classifier(3, input_size=32, dropout=dropout, verbose=False)


def test_offline_imagenet_falls_back_to_scratch_with_one_line(monkeypatch, capsys):
    original = keras.applications.MobileNetV2

    def no_network(*args, weights=None, **kwargs):
        if weights == "imagenet":
            print("Downloading data from https://example.invalid/weights.h5")
            raise Exception("URL fetch failure on https://example.invalid/weights.h5: None -- no route to host")
        return original(*args, weights=weights, **kwargs)

    monkeypatch.setattr(keras.applications, "MobileNetV2", no_network)
    model = rec.mobilenetv2_classifier(4, input_size=96, weights="imagenet", trainable_base=False)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2, out  # the fallback line and the usual summary line, no Keras download line
    assert out[0] == "ImageNet weights are not reachable from this machine: training from scratch."
    assert "URL fetch failure" not in "\n".join(out) and "http" not in "\n".join(out)  # no raw exception text
    assert "weights=none" in out[1]
    assert rec.weights_used(model) == "none"
    assert model.predict(np.zeros((1, 96, 96, 3), np.float32), verbose=0).shape == (1, 4)


def test_imagenet_download_has_a_timeout_and_restores_the_socket_default(monkeypatch):
    import socket

    seen = []

    def hanging_server(*args, weights=None, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise TimeoutError("timed out")

    monkeypatch.setattr(keras.applications, "MobileNetV2", hanging_server)
    previous = socket.getdefaulttimeout()
    base, reason = rec.model._imagenet_base((96, 96, 3), 0.35, "avg")
    assert base is None and "timed out" in reason
    assert seen == [rec.DOWNLOAD_TIMEOUT]
    assert socket.getdefaulttimeout() == previous


def test_imagenet_path_keeps_the_batchnorm_statistics_through_fine_tuning(monkeypatch, capsys):
    original = keras.applications.MobileNetV2
    monkeypatch.setattr(
        keras.applications, "MobileNetV2", lambda *a, weights=None, **k: original(*a, weights=None, **k)
    )  # "downloaded"
    model = rec.mobilenetv2_classifier(4, input_size=96, weights="imagenet", trainable_base=False)
    assert "weights=imagenet" in capsys.readouterr().out
    assert rec.weights_used(model) == "imagenet"
    momenta = {layer.momentum for layer in rec.base_of(model).layers if isinstance(layer, layers.BatchNormalization)}
    assert momenta == {0.999}
    rec.fine_tune(model, 30)
    # BatchNorm statistics must not move during a training step.
    bn = [layer for layer in rec.base_of(model).layers if isinstance(layer, layers.BatchNormalization)][-1]
    before = bn.moving_mean.numpy().copy()
    model.fit(np.random.default_rng(0).random((8, 96, 96, 3), np.float32), np.arange(8) % 4, epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


def test_small_cnn_and_random_dihedral():
    model = rec.small_cnn((32, 32, 3), 4)
    assert model.count_params() == 98_676  # independent of the input size
    assert model.get_layer("pooled").output.shape[-1] == 128
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    layer = rec.RandomDihedral(seed=0)
    np.testing.assert_array_equal(layer(x, training=False), x)
    symmetries = {tuple(np.rot90(x[0, :, :, 0], k).ravel()) for k in range(4)}
    symmetries |= {tuple(np.rot90(x[0, :, :, 0].T, k).ravel()) for k in range(4)}
    seen = {tuple(np.asarray(layer(x, training=True))[0, :, :, 0].ravel()) for _ in range(40)}
    assert seen <= symmetries and len(seen) > 4
    assert rec.RandomDihedral.from_config(layer.get_config()).seed == 0


def test_mixup_blends_images_and_labels_alike():
    import tensorflow as tf

    y = np.array([0, 1, 2, 3, 0, 1, 2, 0])
    x = np.eye(4, dtype=np.float32)[y].reshape(8, 1, 1, 4)  # each image is its label's one-hot vector
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def draws(seed):
        return [
            (np.asarray(i), np.asarray(t)) for i, t in rec.mixup_batches(batches, 4, alpha=0.4, seed=seed).repeat(6)
        ]

    weights = set()
    for images, labels in draws(seed=3):
        np.testing.assert_allclose(images[:, 0, 0, :], labels, atol=1e-6)  # blended with the same weight
        np.testing.assert_allclose(labels.sum(1), 1, atol=1e-6)
        assert ((labels > 1e-6).sum(1) <= 2).all()  # a blend of two images at most
        weights |= {round(float(w), 5) for w in labels[np.arange(8), y]}  # what each image kept of its own class
    assert len(weights) > 20  # a new weight for each image, in each epoch
    for (a, b), (c, d) in zip(draws(seed=3), draws(seed=3)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        rec.mixup_batches(batches, 4, alpha=0)
    with pytest.raises(ValueError, match="num_classes"):
        rec.mixup_batches(batches, 1)


def test_soft_labels_train_with_categorical_cross_entropy():
    model = rec.small_cnn((32, 32, 3), 3)
    rec.compile_classifier(model, soft_labels=True)
    assert model.loss == "categorical_crossentropy"
    rec.compile_classifier(model)
    assert model.loss == "sparse_categorical_crossentropy"


# --- schedule and class weights ------------------------------------------------------------------


def test_warmup_exponential_decay_values():
    schedule = rec.WarmupExponentialDecay(
        peak=1e-3, warmup_steps=100, decay_steps=50, decay_rate=0.5, initial=1e-4, floor=1e-5
    )
    values = [float(schedule(step)) for step in (0, 50, 100, 150, 200, 10_000)]
    np.testing.assert_allclose(values, [1e-4, 5.5e-4, 1e-3, 5e-4, 2.5e-4, 1e-5], rtol=1e-5)


def schedule_of(optimizer):
    """The learning-rate schedule an optimizer holds, rebuilt from its public configuration."""
    return keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])


def test_schedule_round_trips_through_keras_serialisation():
    schedule = rec.WarmupExponentialDecay(2e-3, 10, 20, 0.7)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, rec.WarmupExponentialDecay)
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam.from_config(keras.optimizers.Adam(schedule).get_config())
    assert isinstance(schedule_of(optimizer), rec.WarmupExponentialDecay)
    with pytest.raises(ValueError):
        rec.WarmupExponentialDecay(0, 10, 10)


def test_schedule_survives_model_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(rec.WarmupExponentialDecay(1e-3, 5, 5)), "sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(schedule_of(loaded.optimizer), rec.WarmupExponentialDecay)
    assert schedule_of(loaded.optimizer).get_config() == schedule_of(model.optimizer).get_config()


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    weights = rec.class_weights(labels)
    assert weights == pytest.approx({0: 100 / 30, 1: 100 / 90, 2: 100 / 180})
    totals = [weights[k] * np.sum(labels == k) for k in range(3)]
    assert totals == pytest.approx([100 / 3] * 3)
    assert rec.class_weights([0, 1, 0, 1]) == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no examples"):
        rec.class_weights([0, 0, 2])
    with pytest.raises(ValueError, match="empty"):
        rec.class_weights([])


def test_class_weights_refuse_labels_that_are_not_class_ids():
    assert rec.class_weights([0.0, 1.0, 1.0]) == rec.class_weights([0, 1, 1])
    for labels, found in [([0.7, 1.2, 1.9], "0.7"), ([0, 1, -0.5], "-0.5"), ([0, 1, np.nan], "nan")]:
        with pytest.raises(ValueError, match=f"labels must be integer class ids 0, 1, 2, ..., found {found}"):
            rec.class_weights(labels)
    with pytest.raises(ValueError, match="class ids >= 0, found -1"):
        rec.class_weights([0, 1, -1])
    with pytest.raises(ValueError, match="integer class ids, got an array of <U"):
        rec.class_weights(["cat", "dog"])


# --- data --------------------------------------------------------------------------------------


def test_scenes_classification_set():
    split = rec.load_classification("scenes", image_size=32, n_train=60, n_test=20, seed=3)
    assert split.x_train.shape == (60, 32, 32, 3) and split.x_test.shape == (20, 32, 32, 3)
    assert split.class_names == ("circle", "square", "triangle", "diamond")
    assert set(np.unique(split.y_train)) == {0, 1, 2, 3}
    again = rec.load_classification("scenes", image_size=32, n_train=60, n_test=20, seed=3)
    np.testing.assert_array_equal(split.x_train, again.x_train)


def test_classification_scenes_draw_large_shapes_and_may_skip_the_test_split(monkeypatch):
    assert rec.classification_object_size(32) == (10, 24)
    assert rec.classification_object_size(64) == (19, 48)
    assert rec.classification_object_size(64, (0.5, 0.5)) == (32, 32)
    for bad in [(0, 0.5), (0.6, 0.5), (0.5, 1.5), 0.5]:
        with pytest.raises(ValueError, match="object_fraction"):
            rec.classification_object_size(64, bad)
    calls = []
    original = rec.data.make_scenes  # the scene generator, as the loader imported it
    monkeypatch.setattr(rec.data, "make_scenes", lambda *a, **k: calls.append(k) or original(*a, **k))
    split = rec.load_classification("scenes", image_size=32, n_train=30, n_test=0, object_fraction=(0.5, 0.75))
    assert calls[0]["object_size"] == (16, 24)
    assert split.x_train.shape == (30, 32, 32, 3) and split.x_test.shape == (0, 32, 32, 3)
    with pytest.raises(ValueError, match="n_test"):
        rec.load_classification("scenes-imbalanced", image_size=32, n_train=30, n_test=0)


def test_square_image_size_pair_and_invalid_sizes_and_counts():
    split = rec.load_classification("scenes", image_size=(32, 32), n_train=8, n_test=4)
    assert split.x_train.shape == (8, 32, 32, 3)
    with pytest.raises(ValueError, match=r"square images: image_size must be an int or \(size, size\), got \(32, 48\)"):
        rec.load_classification("scenes", image_size=(32, 48))
    with pytest.raises(ValueError, match="image_size must be"):
        rec.load_classification("scenes", image_size="big")
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 10.5"):
        rec.load_classification("scenes", image_size=32, n_train=10.5)
    with pytest.raises(ValueError, match="n_test must be a non-negative integer, got 4.0"):
        rec.load_classification("scenes", image_size=32, n_train=10, n_test=4.0)
    with pytest.raises(ValueError, match="max_images must be a positive integer, got 5.5"):
        rec.load_classification("scenes", image_size=32, max_images=5.5)


def test_imbalanced_scenes_follow_the_ratio():
    split = rec.load_classification("scenes-imbalanced", image_size=32, n_train=400, n_test=100, imbalance=0.1)
    counts = np.bincount(split.y_train, minlength=4)
    assert len(split.y_train) == 400 and len(split.y_test) == 100
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0
    assert counts[3] / counts[0] == pytest.approx(0.1, abs=0.03)
    np.testing.assert_array_equal(rec.imbalanced_counts(1000, 4, 1.0), [250] * 4)


def _write_folder(root, classes, per_class=4, size=(20, 30)):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_image_folder_source(tmp_path):
    _write_folder(tmp_path, ["cats", "dogs"], per_class=5)
    split = rec.load_classification(tmp_path, image_size=24, test_fraction=0.2)
    assert split.class_names == ("cats", "dogs")
    assert split.x_train.shape == (8, 24, 24, 3) and split.x_test.shape == (2, 24, 24, 3)
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    as_string = rec.load_classification(str(tmp_path), image_size=24)
    assert len(as_string.y_train) == 8


def test_image_folder_corrupt_image_names_the_file(tmp_path):
    _write_folder(tmp_path, ["a", "b"])
    bad = tmp_path / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    with pytest.raises(ValueError, match="broken.png"):
        rec.load_classification(tmp_path, image_size=16)


def test_image_folder_empty_class_names_the_folder(tmp_path):
    _write_folder(tmp_path, ["a"])
    (tmp_path / "class_without_images").mkdir()
    with pytest.raises(ValueError, match=f"no images.*: {re.escape(str(tmp_path / 'class_without_images'))}$"):
        rec.load_classification(tmp_path, image_size=16)


def test_image_folder_too_small_to_split_names_the_folder_and_counts(tmp_path):
    _write_folder(tmp_path, ["cats", "dogs"], per_class=1)
    with pytest.raises(ValueError, match=f"folder {re.escape(str(tmp_path))} .*cats: 1, dogs: 1\\).*at least 2 images"):
        rec.load_classification(tmp_path, image_size=16)
    _write_folder(tmp_path / "more", ["cats", "dogs"], per_class=2)  # a test split of 1 image cannot hold 2 classes
    with pytest.raises(ValueError, match=r"test_fraction=0\.2 .*cats: 2, dogs: 2\).* 1 held out of 4 .* 2 classes"):
        rec.load_classification(tmp_path / "more", image_size=16)
    assert len(rec.load_classification(tmp_path / "more", image_size=16, test_fraction=0.5).y_test) == 2
    _write_folder(tmp_path / "enough", ["cats", "dogs"], per_class=3)  # the minimum: 6 images, 2 held out
    assert len(rec.load_classification(tmp_path / "enough", image_size=16).y_test) == 2


def test_unknown_source_is_explained(tmp_path):
    with pytest.raises(ValueError, match="Unknown data source 'flowers'.*tfds:tf_flowers"):
        rec.load_classification("flowers")
    for path in [str(tmp_path / "missing"), "data/flowers", "./flowers", "~/no_such_folder_here"]:
        with pytest.raises(
            FileNotFoundError, match=f"Image folder not found: {re.escape(str(Path(path).expanduser()))}$"
        ):
            rec.load_classification(path)


def test_home_folder_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _write_folder(tmp_path / "photos", ["cats", "dogs"], per_class=5)
    assert rec.load_classification("~/photos", image_size=16).class_names == ("cats", "dogs")


def test_tfds_source_offline_with_mock_data():
    with tfds.testing.mock_data(num_examples=30):
        split = rec.load_classification("tfds:tf_flowers", image_size=40, test_fraction=0.2, seed=1)
    assert split.class_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    assert split.x_train.shape[1:] == (40, 40, 3) and split.x_train.dtype == np.float32
    assert len(split.x_train) + len(split.x_test) == 30
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0


# --- costs and blocks ----------------------------------------------------------------------------


def test_conv_costs_match_keras():
    params, madds = rec.conv_cost(56, 56, 3, 32, 64)
    standard = keras.Sequential([keras.Input((56, 56, 32)), layers.Conv2D(64, 3, padding="same", use_bias=False)])
    assert params == standard.count_params() and madds == params * 56 * 56
    params, madds = rec.separable_conv_cost(56, 56, 3, 32, 64, stride=2)
    separable = keras.Sequential(
        [keras.Input((56, 56, 32)), layers.SeparableConv2D(64, 3, strides=2, padding="same", use_bias=False)]
    )
    assert params == separable.count_params() and madds == params * 28 * 28


def test_training_multiply_adds_follow_what_is_frozen():
    inputs = keras.Input((8, 8, 2))
    x = layers.Conv2D(3, 3, padding="same", name="first")(inputs)  # 3*3*2*3 weights at 64 pixels
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="depthwise")(x)  # 3*3*3 at 16 pixels
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(5, name="head")(x))  # 3*5
    first, depthwise, head = 3456, 432, 15
    assert [rec.layer_multiply_adds(model.get_layer(n)) for n in ("first", "depthwise", "head")] == [
        first,
        depthwise,
        head,
    ]
    forward = first + depthwise + head
    expected = {"forward": forward, "input_gradients": depthwise + head, "weight_gradients": forward}
    assert rec.training_multiply_adds(model) == expected  # everything trains
    model.get_layer("first").trainable = False  # the lowest trainable layer is now the depthwise one
    expected = {"forward": forward, "input_gradients": head, "weight_gradients": depthwise + head}
    assert rec.training_multiply_adds(model) == expected
    for layer in model.layers[:-1]:
        layer.trainable = False  # a frozen base: only the head learns, no gradient goes below it
    assert rec.training_multiply_adds(model) == {"forward": forward, "input_gradients": 0, "weight_gradients": head}
    model.trainable = False
    assert rec.training_multiply_adds(model)["weight_gradients"] == 0


def test_training_multiply_adds_of_mobilenetv2_match_the_paper():
    # Sandler et al. (2018), Table 4: MobileNetV2 (1.0, 224x224) has 3.4 M parameters and 300 M multiply-adds.
    model = keras.applications.MobileNetV2(weights=None, alpha=1.0, input_shape=(224, 224, 3))
    cost = rec.training_multiply_adds(model)
    assert round(cost["forward"] / 1e7) == 30 and cost["weight_gradients"] == cost["forward"]
    nested = rec.mobilenetv2_classifier(4, input_size=32, alpha=0.35, trainable_base=False, verbose=False)
    frozen = rec.training_multiply_adds(nested)  # the base is a model inside the classifier: it is opened up
    assert frozen["weight_gradients"] == 1280 * 4 and frozen["input_gradients"] == 0
    assert frozen["forward"] > 100 * frozen["weight_gradients"]


def test_block_layers_and_drawing(scratch):
    base = rec.base_of(scratch)
    names = [layer.name for layer in rec.block_layers(base, 2)]
    assert names[0] == "block_2_expand" and names[-1] == "block_2_add"
    assert [r[0] for r in rec.describe_block(base, 2)] == names
    assert rec.block_layers(base, 0)[0].name.startswith("expanded_conv")
    fig = rec.plot_block(base, 2)
    assert fig.axes
    with pytest.raises(ValueError, match="No block 99"):
        rec.block_layers(base, 99)


def test_train_uses_the_warmup_schedule_and_returns_seconds():
    split = rec.load_classification("scenes", image_size=32, n_train=64, n_test=16, seed=0)
    model = rec.small_cnn((32, 32, 3), 4)
    history, seconds = rec.fit_with_warmup(
        model,
        split.x_train,
        split.y_train,
        epochs=2,
        learning_rate=1e-3,
        batch_size=32,
        validation=(split.x_test, split.y_test),
    )
    assert seconds > 0 and len(history.history["val_accuracy"]) == 2
    schedule = schedule_of(model.optimizer)
    assert isinstance(schedule, rec.WarmupExponentialDecay)
    assert (schedule.peak, schedule.warmup_steps, schedule.decay_steps) == (1e-3, 2, 2)
    accuracy, probabilities = rec.evaluate(model, split.x_test, split.y_test)
    assert probabilities.shape == (16, 4) and 0 <= accuracy <= 1


def test_evaluate_takes_a_label_column_and_refuses_other_shapes():
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2, activation="softmax")])
    x = np.eye(2, dtype=np.float32).repeat(4, axis=0)  # 4 x [1, 0] then 4 x [0, 1]
    y = model.predict(x, verbose=0).argmax(1)  # a perfect prediction
    assert rec.evaluate(model, x, y)[0] == 1.0
    assert rec.evaluate(model, x, y[:, None])[0] == 1.0
    with pytest.raises(ValueError, match=r"shape \(8, 2\); for one-hot labels pass y\.argmax\(1\)"):
        rec.evaluate(model, x, np.eye(2)[y])
    with pytest.raises(ValueError, match="x and y have different lengths: 8 images, 7 labels"):
        rec.evaluate(model, x, y[:7])


def test_images_per_second_uses_the_epochs_after_the_first():
    class History:
        epoch_seconds = [10.0, 2.0, 4.0, 2.0]

    assert rec.images_per_second(History(), 100) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no epoch times"):
        rec.images_per_second(object(), 100)


# --- transfer learning offline: the shipped source-task base --------------------------------------


def test_shipped_source_weights_have_the_recorded_checksum():
    assert re.fullmatch(r"[0-9a-f]{64}", rec.SOURCE_SHA256)
    assert rec.SOURCE_WEIGHTS.is_file(), "the source-task weights must ship with the package"
    assert rec.file_sha256(rec.SOURCE_WEIGHTS) == rec.SOURCE_SHA256
    assert rec.check_source_weights() == rec.SOURCE_WEIGHTS
    assert rec.SOURCE_WEIGHTS.stat().st_size < 5_000_000  # a few MB at most


def test_source_weights_are_package_data():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    folder = rec.SOURCE_WEIGHTS.parent.relative_to(root)  # course_utils/weights, the package "course_utils.weights"
    patterns = config["tool"]["setuptools"]["package-data"][".".join(folder.parts)]
    assert any(Path(rec.SOURCE_WEIGHTS.name).match(pattern) for pattern in patterns), patterns


def test_missing_or_wrong_source_weights_are_refused_clearly(tmp_path, monkeypatch):
    missing = tmp_path / "none.weights.h5"
    with pytest.raises(FileNotFoundError, match="pretrain-source"):
        rec.check_source_weights(missing)
    wrong = tmp_path / "wrong.weights.h5"
    wrong.write_bytes(b"not the shipped weights")
    with pytest.raises(ValueError, match=r"SHA-256 [0-9a-f]{64}.*damaged.*pretrain-source"):
        rec.check_source_weights(wrong)
    monkeypatch.setattr(rec.source_weights, "SOURCE_WEIGHTS", wrong)  # the default of check_source_weights
    with pytest.raises(ValueError, match="SHA-256"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="source", verbose=False)
    monkeypatch.setattr(rec.source_weights, "SOURCE_WEIGHTS", missing)
    with pytest.raises(FileNotFoundError, match="missing"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="source", verbose=False)


def test_source_weights_load_into_the_base(capsys):
    model = rec.mobilenetv2_classifier(4, input_size=32, weights="source", trainable_base=False)
    assert "weights=source" in capsys.readouterr().out and rec.weights_used(model) == "source"
    again = rec.mobilenetv2_classifier(4, input_size=32, weights="source", verbose=False)
    fresh = rec.mobilenetv2_classifier(4, input_size=32, weights=None, verbose=False)
    for loaded, other, _ in zip(rec.base_of(model).weights, rec.base_of(again).weights, rec.base_of(fresh).weights):
        np.testing.assert_array_equal(loaded.numpy(), other.numpy())
    moved = [
        not np.allclose(a.numpy(), b.numpy()) for a, b in zip(rec.base_of(model).weights, rec.base_of(fresh).weights)
    ]
    assert np.mean(moved) > 0.9  # the pretrained weights are not a fresh initialisation
    assert rec.base_of(model).get_layer("bn_Conv1").momentum == pytest.approx(0.999)
    with pytest.raises(ValueError, match="alpha 0.35"):
        rec.mobilenetv2_classifier(4, input_size=32, alpha=0.5, weights="source")
    with pytest.raises(ValueError, match="pretrained"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="source", zero_init_residual=True)
    with pytest.raises(ValueError, match="'source'"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="sauce")


def test_weights_used_is_kept_beside_the_model_not_on_it():
    model = rec.mobilenetv2_classifier(4, input_size=32, weights="source", verbose=False)
    assert rec.weights_used(model) == "source"
    assert not [name for name in vars(model) if "weights_used" in name]  # nothing private set on a Keras object
    assert rec.weights_used(keras.Sequential()) == rec.weights_used(None) == "none"


def test_source_task_has_none_of_the_target_classes():
    source = rec.load_classification("scenes-source", image_size=32, n_train=80, n_test=20, seed=1)
    target = rec.load_classification("scenes", image_size=32, n_train=8, n_test=0, seed=1)
    assert source.class_names == rec.SOURCE_CLASSES and not set(source.class_names) & set(target.class_names)
    assert source.x_train.shape == (80, 32, 32, 3) and set(np.unique(source.y_train)) == {0, 1, 2, 3}


def test_pretrain_source_is_deterministic_and_writes_a_loadable_file(tmp_path):
    import h5py

    first = rec.pretrain_source(tmp_path / "a.weights.h5", n_train=48, n_test=16, epochs=1, verbose=False)
    second = rec.pretrain_source(tmp_path / "b.weights.h5", n_train=48, n_test=16, epochs=1, verbose=False)
    assert first["sha256"] == rec.file_sha256(first["path"])

    def arrays(path):  # the weight values; the file's bytes also hold HDF5 timestamps
        found = {}

        def keep(name, item):  # returns None, so that visititems goes on
            if isinstance(item, h5py.Dataset):
                found[name] = item[()]

        with h5py.File(path) as handle:
            handle.visititems(keep)
        return found

    a, b = arrays(first["path"]), arrays(second["path"])
    assert len(a) > 100 and a.keys() == b.keys()
    assert all(np.array_equal(a[name], b[name]) for name in a)  # same seed, same machine: same weights
    assert 0 <= first["source_test_accuracy"] <= 1
    assert rec.check_source_weights(first["path"], first["sha256"]) == first["path"]
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        rec.pretrain_source(tmp_path / "weights.h5", n_train=8, n_test=0, epochs=1)
    with pytest.raises(SystemExit):
        main([])  # python -m course_utils.recognition: the command is required


def test_labelled_subset_draws_per_class_images():
    labels = np.repeat(np.arange(3), [5, 7, 9])
    chosen = rec.labelled_subset(labels, 4, seed=3)
    assert len(chosen) == 12 and len(set(chosen)) == 12
    assert np.bincount(labels[chosen]).tolist() == [4, 4, 4]
    np.testing.assert_array_equal(chosen, rec.labelled_subset(labels, 4, seed=3))
    with pytest.raises(ValueError, match="class 0 has only 5"):
        rec.labelled_subset(labels, 6)
    with pytest.raises(ValueError, match="positive integer"):
        rec.labelled_subset(labels, 0)


def test_fit_steps_keeps_one_batch_shape_so_a_model_retrained_on_fewer_images_is_not_traced_again(trace_counter):
    counter, traces = trace_counter
    x = np.random.default_rng(0).random((20, 4), dtype=np.float32)
    y = np.arange(20) % 2
    model = keras.Sequential([keras.Input((4,)), counter, layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    rec.transfer._fit_steps(model, x, y, steps=2, batch_size=8, seed=0)
    traced = len(traces)
    # Three images repeat within a batch of 8.
    rec.transfer._fit_steps(model, x[:3], y[:3], steps=2, batch_size=8, seed=1)
    assert len(traces) == traced and set(traces) - {None} == {8}
    assert int(model.optimizer.iterations) == 4


def test_transfer_learning_curve_trains_three_methods_per_size():
    data = rec.load_classification("scenes", image_size=32, n_train=120, n_test=40, seed=4)
    curve = rec.transfer_learning_curve(
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        4,
        per_class=(2, 5),
        steps=2,
        batch_size=8,
        head_steps=3,
        include_all=True,
        seed=0,
    )
    assert curve["per_class"] == [2, 5]
    for method in rec.TRANSFER_METHODS:
        assert len(curve[method]) == 2 and all(0 <= a <= 1 for a in curve[method])
        assert curve["seconds"][method] > 0 and curve["step_seconds"][method] > 0
    assert curve["step_seconds"]["from scratch"] < curve["seconds"]["from scratch"] / 2  # a batch of a run
    assert set(curve["all"]) == {"frozen base", "fine-tuned"} and set(curve["all_seconds"]) == set(curve["all"])
    with pytest.raises(ValueError, match="per_class"):
        rec.transfer_learning_curve(data.x_train, data.y_train, data.x_test, data.y_test, 4, per_class=(0,))
    fig = rec.plot_learning_curve(curve["per_class"], {m: curve[m] for m in rec.TRANSFER_METHODS}, chance=0.25)
    assert [line.get_label() for line in fig.axes[0].lines][:3] == list(rec.TRANSFER_METHODS)


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 5, 3), (3, 2, 4, 6, 2)])
def test_batch_norm_written_out_is_keras_layer_in_both_modes(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    layer = keras.layers.BatchNormalization(epsilon=1e-2)
    layer.build(x.shape)
    gamma, beta = rng.normal(size=shape[-1]).astype("float32"), rng.normal(size=shape[-1]).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    moving = (layer.moving_mean.numpy(), layer.moving_variance.numpy())
    inference = rec.batch_norm(x, gamma, beta, *moving, epsilon=1e-2)
    np.testing.assert_allclose(layer(x, training=False), inference, atol=1e-4)
    mean, variance = rec.batch_statistics(x)
    np.testing.assert_allclose(mean, x.reshape(-1, shape[-1]).mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer(x, training=True), rec.batch_norm(x, gamma, beta, mean, variance, 1e-2), atol=1e-4)


# --- attribution maps ------------------------------------------------------------------------------------------------


def corner_classifier():
    """A 16x16 grey-image classifier whose class-0 logit is the sum of the top-left 4x4 pixels (class 1's is 0),
    behind an identity 1x1 convolution named "conv"."""
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
    x = layers.Flatten()(x)
    dense = layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(x))
    kernel = np.zeros((256, 2), np.float32)
    kernel[np.ravel_multi_index(np.nonzero(np.ones((4, 4))), (16, 16)), 0] = 1.0
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    return model


def test_saliency_and_occlusion_find_the_pixels_the_score_reads():
    model = corner_classifier()
    images = np.random.default_rng(0).uniform(0.6, 1.0, (3, 16, 16, 1)).astype(np.float32)
    corner = np.zeros((3, 16, 16), bool)
    corner[:, :4, :4] = True
    saliency = rec.saliency_maps(model, images, [0, 0, 0])
    np.testing.assert_allclose(saliency, np.broadcast_to(corner, saliency.shape).astype(float))
    occlusion = rec.occlusion_maps(model, images, [0, 0, 0], patch=4, stride=4)
    assert (occlusion[corner] > 0).all() and np.allclose(occlusion[~corner], 0, atol=1e-6)
    assert rec.peak_on_object(saliency, corner).all() and rec.peak_on_object(occlusion, corner).all()


def test_grad_cam_weighs_the_layers_maps_by_their_mean_gradient():
    model = corner_classifier()
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 1)).astype(np.float32)
    cam = rec.grad_cam(model, images, [0, 0], "conv")
    # The class-0 gradient is 1 on 16 of the 256 positions: a mean of 1/16, times the map, which is the image.
    np.testing.assert_allclose(cam, images[..., 0] / 16, rtol=1e-5)


def test_maps_refuse_what_they_cannot_explain():
    with pytest.raises(ValueError, match="no Dense layer"):
        rec.saliency_maps(keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten()]), np.zeros((1, 4, 4, 1)), [0])
    with pytest.raises(ValueError, match="patch of at most 16 px"):
        rec.occlusion_maps(corner_classifier(), np.zeros((1, 16, 16, 1)), [0], patch=20)
    with pytest.raises(ValueError, match="must have the same shape"):
        rec.peak_on_object(np.zeros((2, 4, 4)), np.zeros((2, 5, 5)))


def test_scenes_keep_the_masks_of_their_test_shapes():
    split = rec.load_classification("scenes", image_size=32, n_train=8, n_test=6, seed=3)
    assert split.test_masks.shape == (6, 32, 32) and split.test_masks.dtype == bool
    assert all(0 < mask.mean() < 1 for mask in split.test_masks)  # one shape, on a background
    again = rec.load_classification("scenes", image_size=32, n_train=8, n_test=6, seed=3)
    np.testing.assert_array_equal(split.test_masks, again.test_masks)


# --- calibration -----------------------------------------------------------------------------------------------------


def test_a_calibrated_model_has_no_gap_and_an_overconfident_one_is_cooled():
    rng = np.random.default_rng(0)
    n, classes = 4000, 3
    confidence = rng.uniform(0.4, 1.0, n)
    labels = rng.integers(0, classes, n)
    right = rng.random(n) < confidence  # each prediction right as often as it says
    predicted = np.where(right, labels, (labels + rng.integers(1, classes, n)) % classes)
    probabilities = np.zeros((n, classes))
    others = (1 - confidence) / (classes - 1)
    for k in range(classes):
        probabilities[:, k] = np.where(predicted == k, confidence, others)
    assert rec.expected_calibration_error(probabilities, labels) < 0.03
    sharp = rec.with_temperature(probabilities, 0.3)  # the same predictions, far too sure
    np.testing.assert_array_equal(sharp.argmax(1), probabilities.argmax(1))
    assert rec.expected_calibration_error(sharp, labels) > 0.1
    temperature = rec.fit_temperature(sharp, labels)
    assert 2.5 < temperature < 4.5  # about 1 / 0.3 undoes the sharpening
    assert rec.expected_calibration_error(rec.with_temperature(sharp, temperature), labels) < 0.03


def test_reliability_bins_count_every_prediction_once_and_refuse_bad_shapes():
    probabilities = np.array([[0.95, 0.05], [0.55, 0.45], [0.05, 0.95], [1.0, 0.0]])
    rows = rec.reliability_bins(probabilities, [0, 1, 1, 0], n_bins=10)
    assert sum(count for *_, count in rows) == 4
    assert rows[9] == (pytest.approx((0.95 + 0.95 + 1.0) / 3), 1.0, 3) and rows[5] == (0.55, 0.0, 1)
    with pytest.raises(ValueError, match="probabilities of shape"):
        rec.expected_calibration_error(np.ones(4), [0, 1, 1, 0])
    with pytest.raises(ValueError, match="temperature must be positive"):
        rec.with_temperature(probabilities, 0)
