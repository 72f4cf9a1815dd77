"""Distributed training (tf.distribute) and mixed precision in the training helpers and config.setup.

The distributed tests run in a subprocess: the CPU must be split into two
logical devices before TensorFlow initialises, which it has already done in
the test process. There a ``MirroredStrategy`` over ``/cpu:0`` and ``/cpu:1``
really runs every helper with two replicas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils import config, models
from course_utils import detection as det
from course_utils import metric_learning as ml
from course_utils import recognition as rec
from course_utils import segmentation as seg

DISTRIBUTED = textwrap.dedent('''
    import json, os, warnings
    warnings.simplefilter("ignore")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from course_utils import config, models
    from course_utils import detection as det
    from course_utils import metric_learning as ml
    from course_utils import segmentation as seg
    from course_utils.scenes import make_scenes

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync}

    def steps(model):
        return int(model.optimizer.iterations.numpy())

    def twin(build, model):
        """The same network with the same weights, outside any strategy."""
        single = build()
        single.set_weights(model.get_weights())
        return single

    # Classifier: built under the scope, trained outside it with strategy=None (the model's own).
    config.seed_everything(0)
    rng = np.random.default_rng(0)
    x = rng.random((72, 32, 32, 1)).astype("float32")
    y = (x[:, :16].mean(axis=(1, 2, 3)) > x[:, 16:].mean(axis=(1, 2, 3))).astype("int32")  # learnable
    with strategy.scope():
        lenet = models.lenet5(num_classes=2)
    history, _ = models.fit_classifier(lenet, x, y, epochs=3, batch_size=8, validation_split=0.0)
    single = twin(lambda: models.lenet5(num_classes=2), lenet)
    single.compile(loss="sparse_categorical_crossentropy")
    out["classifier"] = {"steps": steps(lenet), "loss": history.history["loss"],
                         "eval": [lenet.evaluate(x[:16], y[:16], batch_size=16, verbose=0, return_dict=True)["loss"],
                                  single.evaluate(x[:16], y[:16], batch_size=16, verbose=0)]}

    # Week 2's helper: rec.fit_with_warmup with the strategy given explicitly.
    from course_utils import recognition as rec
    images, labels = rng.random((32, 16, 16, 3)).astype("float32"), rng.integers(0, 2, 32)
    with strategy.scope():
        cnn = rec.small_cnn((16, 16, 3), 2, filters=(8,))
    history, _ = rec.fit_with_warmup(cnn, images, labels, epochs=2, batch_size=8, strategy=strategy)
    out["recognition"] = {"steps": steps(cnn), "loss": history.history["loss"]}

    # The clear error: a model built outside the strategy, with the strategy.
    outside = models.lenet5(num_classes=2)
    try:
        models.fit_classifier(outside, x, y, epochs=1, strategy=strategy)
        out["error"] = None
    except ValueError as error:
        out["error"] = str(error)

    # Segmenter: a tiny U-Net, loss "ce+dice" (a whole-batch loss that relies on config.replica_share).
    config.seed_everything(0)
    scenes = make_scenes(12, size=16, seed=3, classes=("circle", "square"))
    masks = scenes.binary_masks()
    build = lambda: seg.unet((16, 16, 3), 1, depth=1, base_filters=4, batch_norm=False)
    with strategy.scope():
        unet = build()
    history, _ = seg.fit_segmenter(unet, scenes.images, masks, epochs=3, loss="ce+dice", learning_rate=1e-2,
                                   batch_size=2, strategy=strategy)
    # Twice the same 4 images: each replica gets the same 4, so its loss is the single-device loss.
    xs, ms = np.concatenate([scenes.images[:4]] * 2), np.concatenate([masks[:4]] * 2)
    single = seg.compile_segmenter(twin(build, unet), loss="ce+dice")
    out["segmenter"] = {"steps": steps(unet), "loss": history.history["loss"],
                        "eval": [unet.evaluate(xs, ms, batch_size=8, verbose=0)[0],
                                 single.evaluate(xs[:4], ms[:4], batch_size=4, verbose=0)[0]]}

    # Embedding: each replica gets one whole balanced batch (metric_learning.ReplicaBatches).
    config.seed_everything(0)
    split = ml.scenes_few_labels(size=16, per_class=4, test_per_class=2, held_out=None, seed=0)
    batches = ml.BalancedBatches(split.x_labelled, split.y_labelled, per_class=4, steps=5, augment=False, seed=0)
    build = lambda: ml.embedding_model((16, 16, 3), embedding_dim=8, filters=(8,), batch_norm=False)
    with strategy.scope():
        embedder = build()
    loss = ml.SimilaritySoftmaxLoss(0.1)
    history, _ = ml.fit_embedding(embedder, batches, loss, epochs=3, learning_rate=1e-2, strategy=strategy)
    single = twin(build, embedder)
    single.compile(loss=loss)
    bx, by = batches[0]
    out["embedding"] = {"steps": steps(embedder), "batches": len(batches), "loss": history.history["loss"],
                        "eval": [embedder.evaluate(np.concatenate([bx, bx]), np.concatenate([by, by]),
                                                   batch_size=2 * len(bx), verbose=0),
                                 single.evaluate(bx, by, batch_size=len(bx), verbose=0)]}

    # Detection: a tiny KerasCV RetinaNet, built and compiled under the scope.
    config.seed_everything(0)
    data = det.make_detection_scenes(8, size=64, seed=3, objects=(1, 3), object_size=(8, 24))
    build = lambda: det.build_retinanet(4, image_size=64, backbone_filters=(8, 8, 16, 16), pyramid_channels=16,
                                        head_width=16, head_depth=1, anchors=det.AnchorConfig(sizes=(8.0, 16.0, 32.0)),
                                        learning_rate=3e-3)
    with strategy.scope():
        retinanet = build()
    history, _ = det.fit_detector(retinanet, data, epochs=1, batch_size=2, augment=False, strategy=strategy)
    single = twin(build, retinanet)
    four = data.subset(np.arange(4))
    twice = data.subset(np.array([0, 1, 2, 3, 0, 1, 2, 3]))
    dataset = lambda d, n: tf.data.Dataset.from_tensor_slices((d.images, d.targets())).batch(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["detection"] = {"steps": steps(retinanet), "loss": history.history["loss"],
                            "eval": [retinanet.evaluate(dataset(twice, 8), verbose=0, return_dict=True)["loss"],
                                     single.evaluate(dataset(four, 4), verbose=0, return_dict=True)["loss"]]}

    # setup("gpu") on a machine that seems to have two GPUs (the two logical CPUs stand in for them):
    # mixed precision, and a MirroredStrategy that notebook code uses without naming it.
    from types import SimpleNamespace

    real_list, real_mirrored = tf.config.list_physical_devices, tf.distribute.MirroredStrategy
    gpus = [SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(2)]
    tf.config.list_physical_devices = lambda kind=None: gpus if kind == "GPU" else real_list(kind)
    tf.distribute.MirroredStrategy = lambda: real_mirrored(["/cpu:0", "/cpu:1"])
    profile = config.setup("gpu", seed=0)
    device = config.describe_device()
    tf.config.list_physical_devices, tf.distribute.MirroredStrategy = real_list, real_mirrored
    lenet = models.lenet5(num_classes=2)  # no scope, as in a notebook
    history, _ = models.fit_classifier(lenet, x, y, epochs=1, batch_size=8, validation_split=0.0)
    out["gpu_profile"] = {"mixed_precision": profile.mixed_precision, "replicas": profile.replicas,
                          "policy": keras.mixed_precision.global_policy().name,
                          "model_replicas": lenet.distribute_strategy.num_replicas_in_sync,
                          "optimizer": type(lenet.optimizer).__name__, "steps": steps(lenet),
                          "loss": history.history["loss"], "device": device}
    profile = config.setup("cpu", seed=0)
    out["cpu_after_gpu"] = {"policy": keras.mixed_precision.global_policy().name,
                            "has_strategy": tf.distribute.has_strategy(), "replicas": profile.replicas}
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def distributed(root):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True, timeout=600, cwd=root, env=env, check=False
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def decreases(losses):
    return all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_two_replicas_really_run(distributed):
    assert distributed["replicas"] == 2


def test_classifier_trains_with_the_batch_scaled_by_the_replicas(distributed):
    result = distributed["classifier"]
    assert result["steps"] == 3 * int(np.ceil(72 / (8 * 2)))  # 15; 27 if the batch were not scaled
    assert decreases(result["loss"]), result["loss"]
    assert result["eval"][0] == pytest.approx(result["eval"][1], rel=1e-4)


def test_week2_training_helper_scales_the_batch_too(distributed):
    result = distributed["recognition"]
    assert result["steps"] == 2 * int(np.ceil(32 / (8 * 2)))  # 4; 8 if the batch were not scaled
    assert all(np.isfinite(result["loss"]))


def test_a_model_built_outside_the_strategy_is_refused_clearly(distributed):
    assert distributed["error"] is not None
    assert "not built under the MirroredStrategy" in distributed["error"]
    assert "with strategy.scope():" in distributed["error"]


def test_segmenter_trains_distributed_and_reports_the_single_device_loss(distributed):
    result = distributed["segmenter"]
    assert result["steps"] == 3 * int(np.ceil(12 / (2 * 2)))
    assert decreases(result["loss"]), result["loss"]
    # Without config.replica_share the Dice part would count twice (each replica's share not halved).
    assert result["eval"][0] == pytest.approx(result["eval"][1], rel=1e-4)


def test_embedding_gives_each_replica_a_whole_balanced_batch(distributed):
    result = distributed["embedding"]
    assert result["batches"] == 5 and result["steps"] == 3 * int(np.ceil(5 / 2))
    assert decreases(result["loss"]), result["loss"]
    # The global batch is split into contiguous halves, each laid out as anchors then positives.
    assert result["eval"][0] == pytest.approx(result["eval"][1], rel=1e-4)


def test_detection_trains_distributed_and_reports_the_single_device_loss(distributed):
    result = distributed["detection"]
    assert result["steps"] == 8 // (2 * 2)  # whole batches only
    assert all(np.isfinite(result["loss"]))
    assert result["eval"][0] == pytest.approx(result["eval"][1], rel=1e-3)


def test_gpu_profile_with_several_gpus_mirrors_them_in_mixed_precision(distributed):
    result = distributed["gpu_profile"]
    assert result["mixed_precision"] and result["replicas"] == 2 and result["model_replicas"] == 2
    assert result["policy"] == "mixed_float16" and result["optimizer"] == "LossScaleOptimizer"
    assert result["steps"] == int(np.ceil(72 / 16)) and all(np.isfinite(result["loss"]))
    assert "mixed_float16, MirroredStrategy over 2 replicas" in result["device"]
    assert distributed["cpu_after_gpu"] == {"policy": "float32", "has_strategy": False, "replicas": 1}


def test_replica_batches_stack_consecutive_batches_and_wrap_around():
    rng = np.random.default_rng(0)
    images, labels = rng.random((24, 8, 8, 3)).astype("float32"), np.repeat(np.arange(3), 8)
    batches = ml.BalancedBatches(images, labels, per_class=4, steps=5, augment=False, seed=0)
    stacked = ml.ReplicaBatches(batches, 2)
    assert len(stacked) == 3
    for i, parts in enumerate([(0, 1), (2, 3), (4, 0)]):
        x, y = stacked[i]
        np.testing.assert_array_equal(x, np.concatenate([batches[p][0] for p in parts]))
        np.testing.assert_array_equal(y, np.concatenate([batches[p][1] for p in parts]))
    stacked.on_epoch_end()
    assert batches.epoch == 1


# -------------------------------------------------------------------------------- profiles


@pytest.fixture
def restore_precision():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_gpu_profile_without_a_gpu_changes_nothing(restore_precision):
    assert not tf.config.list_physical_devices("GPU")
    keras.mixed_precision.set_global_policy("mixed_float16")  # left over from an earlier call: undone
    for name in ("gpu", "cpu"):
        profile = config.setup(name, seed=0)
        assert (profile.name, profile.mixed_precision, profile.replicas) == (name, False, 1)
        assert keras.mixed_precision.global_policy().name == "float32"
        assert not tf.distribute.has_strategy()
    assert models.lenet5().get_layer("c1").compute_dtype == "float32"


def test_distribute_scales_the_batch_and_keeps_the_default_strategy():
    model = models.lenet5()
    strategy, batch = config.distribute(model, 32)
    assert strategy is tf.distribute.get_strategy() and batch == 32
    assert config.distribute(model)[1] is None
    assert config.replicas() == 1
    assert float(config.replica_share(tf.constant(3.0))) == 3.0


# -------------------------------------------------------------------------- mixed precision


@pytest.fixture
def mixed(restore_precision):
    keras.mixed_precision.set_global_policy("mixed_float16")
    config.seed_everything(0)


def float16_inside_float32_out(model, x):
    assert any(layer.compute_dtype == "float16" for layer in model.layers), "the policy did not apply"
    wrap = not isinstance(model, keras.Sequential) and isinstance(model.input, list)
    out = model([x] if wrap else x, training=False)
    assert out.dtype == "float32" and model.outputs[0].dtype == "float32"
    assert np.isfinite(np.asarray(out)).all()


def test_classifiers_output_float32_and_train_in_mixed_precision(mixed):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 32, 32, 1)).astype("float32"), rng.integers(0, 10, 32)
    for model in (models.lenet5(), models.dense_classifier()):
        float16_inside_float32_out(model, x[:2])
        history, _ = models.fit_classifier(model, x, y, epochs=1, batch_size=16, validation_split=0.0)
        assert type(model.optimizer).__name__ == "LossScaleOptimizer"
        assert np.isfinite(history.history["loss"]).all()


def test_recognition_classifiers_output_float32_and_train_in_mixed_precision(mixed):
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 32, 32, 3)).astype("float32"), rng.integers(0, 4, 16)
    cnn = rec.small_cnn((32, 32, 3), 4, filters=(8, 16))
    float16_inside_float32_out(cnn, x[:2])
    history, _ = rec.fit_with_warmup(cnn, x, y, epochs=1, batch_size=8)
    assert type(cnn.optimizer).__name__ == "LossScaleOptimizer" and np.isfinite(history.history["loss"]).all()
    # MobileNetV2 takes long to train on a CPU: its output dtype only.
    float16_inside_float32_out(rec.mobilenetv2_classifier(4, input_size=32, verbose=False), x[:2])


@pytest.mark.parametrize("num_classes", [1, 3])
def test_unet_outputs_float32_and_trains_in_mixed_precision(mixed, num_classes):
    rng = np.random.default_rng(0)
    x, masks = rng.random((8, 16, 16, 3)).astype("float32"), rng.integers(0, max(2, num_classes), (8, 16, 16))
    model = seg.unet((16, 16, 3), num_classes, depth=1, base_filters=4)
    float16_inside_float32_out(model, x[:2])
    history, _ = seg.fit_segmenter(model, x, masks, epochs=1, loss="ce+dice", batch_size=4)
    assert np.isfinite(history.history["loss"]).all()


def test_metric_learning_models_output_float32_and_train_in_mixed_precision(mixed):
    split = ml.scenes_few_labels(size=32, per_class=4, test_per_class=2, held_out=None, seed=0)
    batches = ml.BalancedBatches(split.x_labelled, split.y_labelled, per_class=4, steps=2, seed=0)
    embedder = ml.embedding_model((32, 32, 3), embedding_dim=8, filters=(8, 16))
    classifier = ml.classifier_from(ml.embedding_model((32, 32, 3), filters=(8,)), 4)
    float16_inside_float32_out(embedder, split.x_labelled[:2])
    history, _ = ml.fit_embedding(embedder, batches, ml.SimilaritySoftmaxLoss(0.1), epochs=1)
    assert np.isfinite(history.history["loss"]).all()
    np.testing.assert_allclose(np.linalg.norm(ml.embed(embedder, split.x_labelled[:4]), axis=1), 1.0, atol=1e-5)
    float16_inside_float32_out(classifier, split.x_labelled[:2])
    history, _ = ml.fit_embedding(classifier, batches, "sparse_categorical_crossentropy", epochs=1)
    assert np.isfinite(history.history["loss"]).all()


def test_retinanet_stays_float32_under_mixed_precision(mixed):
    data = det.make_detection_scenes(4, size=64, seed=3, objects=(1, 3), object_size=(8, 24))
    model = det.build_retinanet(
        4,
        image_size=64,
        backbone_filters=(8, 8, 16, 16),
        pyramid_channels=16,
        head_width=16,
        head_depth=1,
        anchors=det.AnchorConfig(sizes=(8.0, 16.0, 32.0)),
    )
    assert keras.mixed_precision.global_policy().name == "mixed_float16"  # restored after building
    assert all(layer.compute_dtype == "float32" for layer in model._flatten_layers())
    history, _ = det.fit_detector(model, data, epochs=1, batch_size=4, augment=False)
    assert np.isfinite(history.history["loss"]).all()
    assert det.predict(model, data.images[:2])["boxes"].dtype == np.float32
