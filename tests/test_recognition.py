"""course_utils.recognition: the MobileNetV2 builder, fine-tuning, schedule, class weights and data."""

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from course_utils import recognition as rec


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
    assert any(isinstance(l, layers.GlobalMaxPooling2D) for l in rec.base_of(model).layers)


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
    assert unfrozen == sum(1 for l in top if l.weights and not isinstance(l, layers.BatchNormalization))
    assert unfrozen > 0
    assert all(not l.trainable for l in base.layers[:-10])
    assert all(not l.trainable for l in base.layers if isinstance(l, layers.BatchNormalization))
    expected = 1280 * 4 + 4 + sum(l.count_params() for l in top if l.trainable)
    assert rec.trainable_counts(model)[0] == expected
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    assert rec.fine_tune(model, 0) == 0 and rec.trainable_counts(model)[0] == 1280 * 4 + 4
    with pytest.raises(ValueError, match="top_layers"):
        rec.fine_tune(model, -1)


def test_scratch_model_uses_a_fast_batchnorm_momentum(scratch):
    momenta = {l.momentum for l in rec.base_of(scratch).layers if isinstance(l, layers.BatchNormalization)}
    assert momenta == {0.9}


def test_zero_init_residual_starts_each_skip_block_as_the_identity():
    model = rec.mobilenetv2_classifier(4, input_size=32, zero_init_residual=True, verbose=False)
    base = rec.base_of(model)
    with_skip = [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]  # stride 1 and as many channels out as in
    for block in range(1, 17):
        gamma = keras.ops.convert_to_numpy(base.get_layer(f"block_{block}_project_BN").gamma)
        assert np.all(gamma == 0) == (block in with_skip), block
    # A zeroed block adds nothing to its input: its output equals what comes in through the skip connection.
    probe = keras.Model(base.input, [base.get_layer("block_1_project_BN").output, base.get_layer("block_2_add").output])
    before, after = probe.predict(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
    with pytest.raises(ValueError, match="overwrite ImageNet weights"):
        rec.mobilenetv2_classifier(4, input_size=96, weights="imagenet", zero_init_residual=True, verbose=False)


@pytest.mark.parametrize("alpha", [0.4, 2, "wide", None])
def test_invalid_alpha_is_rejected_with_the_published_values(alpha):
    with pytest.raises(ValueError, match=r"published.*0\.35, 0\.5, 0\.75, 1\.0, 1\.3, 1\.4"):
        rec.mobilenetv2_classifier(4, input_size=32, alpha=alpha, verbose=False)


@pytest.mark.parametrize("size", [64, (96, 128), 100])
def test_imagenet_needs_a_square_published_size(size):
    with pytest.raises(ValueError, match="96, 128, 160, 192, 224"):
        rec.mobilenetv2_classifier(4, input_size=size, weights="imagenet", verbose=False)


def test_other_invalid_options():
    with pytest.raises(ValueError, match="at least 32"):
        rec.mobilenetv2_classifier(4, input_size=16, verbose=False)
    with pytest.raises(ValueError, match="weights must be None or 'imagenet'"):
        rec.mobilenetv2_classifier(4, input_size=32, weights="coco", verbose=False)
    with pytest.raises(ValueError, match="pooling"):
        rec.mobilenetv2_classifier(4, input_size=32, pooling="flatten", verbose=False)
    with pytest.raises(ValueError, match="num_classes"):
        rec.mobilenetv2_classifier(1, input_size=32, verbose=False)


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
    assert "could not be fetched" in out[0] and "from scratch" in out[0] and "URL fetch failure" in out[0]
    assert "weights=none" in out[1]
    assert rec.weights_used(model) == "none"
    assert model.predict(np.zeros((1, 96, 96, 3), np.float32), verbose=0).shape == (1, 4)


def test_imagenet_success_path_calls_the_base_in_inference_mode(monkeypatch, capsys):
    original = keras.applications.MobileNetV2
    monkeypatch.setattr(keras.applications, "MobileNetV2",
                        lambda *a, weights=None, **k: original(*a, weights=None, **k))  # "downloaded"
    model = rec.mobilenetv2_classifier(4, input_size=96, weights="imagenet", trainable_base=False)
    assert "weights=imagenet" in capsys.readouterr().out
    assert rec.weights_used(model) == "imagenet"
    momenta = {l.momentum for l in rec.base_of(model).layers if isinstance(l, layers.BatchNormalization)}
    assert momenta == {0.999}
    rec.fine_tune(model, 30)
    # BatchNorm statistics must not move during a training step.
    bn = [l for l in rec.base_of(model).layers if isinstance(l, layers.BatchNormalization)][-1]
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


# --- schedule and class weights ------------------------------------------------------------------


def test_warmup_exponential_decay_values():
    schedule = rec.WarmupExponentialDecay(peak=1e-3, warmup_steps=100, decay_steps=50, decay_rate=0.5,
                                          initial=1e-4, floor=1e-5)
    values = [float(schedule(step)) for step in (0, 50, 100, 150, 200, 10_000)]
    np.testing.assert_allclose(values, [1e-4, 5.5e-4, 1e-3, 5e-4, 2.5e-4, 1e-5], rtol=1e-5)


def test_schedule_round_trips_through_keras_serialisation():
    schedule = rec.WarmupExponentialDecay(2e-3, 10, 20, 0.7)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, rec.WarmupExponentialDecay)
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam.from_config(keras.optimizers.Adam(schedule).get_config())
    assert isinstance(optimizer._learning_rate, rec.WarmupExponentialDecay)
    with pytest.raises(ValueError):
        rec.WarmupExponentialDecay(0, 10, 10)


def test_schedule_survives_model_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(rec.WarmupExponentialDecay(1e-3, 5, 5)), "sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer._learning_rate, rec.WarmupExponentialDecay)
    assert loaded.optimizer._learning_rate.get_config() == model.optimizer._learning_rate.get_config()


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
    import course_utils.scenes

    calls = []
    original = course_utils.scenes.make_scenes
    monkeypatch.setattr(course_utils.scenes, "make_scenes", lambda *a, **k: calls.append(k) or original(*a, **k))
    split = rec.load_classification("scenes", image_size=32, n_train=30, n_test=0, object_fraction=(0.5, 0.75))
    assert calls[0]["object_size"] == (16, 24)
    assert split.x_train.shape == (30, 32, 32, 3) and split.x_test.shape == (0, 32, 32, 3)
    with pytest.raises(ValueError, match="n_test"):
        rec.load_classification("scenes-imbalanced", image_size=32, n_train=30, n_test=0)


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
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        rec.load_classification(tmp_path, image_size=16)


def test_unknown_source_is_explained(tmp_path):
    with pytest.raises(ValueError, match="Unknown data source 'flowers'.*tfds:tf_flowers"):
        rec.load_classification("flowers")
    with pytest.raises(ValueError, match="Unknown data source"):
        rec.load_classification(str(tmp_path / "missing"))


def test_tfds_source_offline_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
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
    separable = keras.Sequential([keras.Input((56, 56, 32)),
                                  layers.SeparableConv2D(64, 3, strides=2, padding="same", use_bias=False)])
    assert params == separable.count_params() and madds == params * 28 * 28


def test_block_layers_and_drawing(scratch):
    base = rec.base_of(scratch)
    names = [l.name for l in rec.block_layers(base, 2)]
    assert names[0] == "block_2_expand" and names[-1] == "block_2_add"
    assert [r[0] for r in rec.describe_block(base, 2)] == names
    assert rec.block_layers(base, 0)[0].name.startswith("expanded_conv")
    fig = rec.draw_block(base, 2)
    assert fig.axes
    with pytest.raises(ValueError, match="No block 99"):
        rec.block_layers(base, 99)


def test_train_uses_the_warmup_schedule_and_returns_seconds():
    split = rec.load_classification("scenes", image_size=32, n_train=64, n_test=16, seed=0)
    model = rec.small_cnn((32, 32, 3), 4)
    history, seconds = rec.train(model, split.x_train, split.y_train, epochs=2, peak_lr=1e-3, batch_size=32,
                                 validation_data=(split.x_test, split.y_test))
    assert seconds > 0 and len(history.history["val_accuracy"]) == 2
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, rec.WarmupExponentialDecay)
    assert (schedule.peak, schedule.warmup_steps, schedule.decay_steps) == (1e-3, 2, 2)
    accuracy, probabilities = rec.evaluate(model, split.x_test, split.y_test)
    assert probabilities.shape == (16, 4) and 0 <= accuracy <= 1


def test_images_per_second_uses_the_epochs_after_the_first():
    class History:
        epoch_seconds = [10.0, 2.0, 4.0, 2.0]

    assert rec.images_per_second(History(), 100) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no epoch times"):
        rec.images_per_second(object(), 100)
