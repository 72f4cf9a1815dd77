"""Week 3 helpers of course_utils.detection: data, boxes, anchors, model, augmentation, loaders, mAP."""

import json
import re
import socket

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import detection as d
from course_utils.scenes import make_scenes


@pytest.fixture(scope="module")
def scenes():
    return d.make_detection_scenes(24, size=64, seed=3, objects=(1, 4), object_size=(8, 24))


def components(binary):
    """Tight xyxy boxes of the connected components of a 2-D boolean image, sorted."""
    labelled, _ = ndi.label(binary)
    return sorted((s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndi.find_objects(labelled))


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize("target", ["xywh", "center_xywh", "yxyx", "rel_xyxy", "center_yxhw"])
def test_box_format_conversions_round_trip(scenes, target):
    boxes = scenes.boxes[scenes.classes >= 0]
    there = d.convert_boxes(boxes, "xyxy", target, image_size=scenes.image_size)
    back = d.convert_boxes(there, target, "xyxy", image_size=scenes.image_size)
    np.testing.assert_allclose(back, boxes, atol=1e-4)
    if target == "xywh":
        np.testing.assert_allclose(there[:, 2:], boxes[:, 2:] - boxes[:, :2])


def test_generator_boxes_are_the_tight_boxes_of_the_drawn_objects():
    s = make_scenes(12, size=64, seed=5, objects=(1, 4), object_size=(8, 24))
    data = d.from_scenes(s)
    for i in range(len(data)):
        expected = sorted(tuple(int(v) for v in b) for b, c in zip(data.boxes[i], data.classes[i]) if c >= 0)
        assert components(s.masks[i] > 0) == expected
        for b, c in zip(data.boxes[i], data.classes[i]):
            if c >= 0:
                x0, y0, x1, y1 = b.astype(int)
                assert set(np.unique(s.masks[i, y0:y1, x0:x1])) <= {0, c + 1}
    targets = data.targets()
    assert targets["boxes"].dtype == np.float32 and targets["classes"].dtype == np.float32
    assert np.all(targets["boxes"][targets["classes"] < 0] == -1)


def test_iou_matrix_matches_keras_and_a_hand_computed_value():
    import keras

    np.testing.assert_allclose(d.iou_matrix([[0, 0, 10, 10]], [[5, 5, 15, 15]]), [[25 / 175]])
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(2, 30, 2))
    wh = rng.uniform(1, 30, size=(2, 30, 2))
    a, b = np.concatenate([xy[0], xy[0] + wh[0]], 1), np.concatenate([xy[1], xy[1] + wh[1]], 1)
    expected = np.asarray(keras.utils.bounding_boxes.compute_iou(a.astype("float32"), b.astype("float32"), "xyxy"))
    np.testing.assert_allclose(d.iou_matrix(a, b), expected, atol=1e-5)


# ------------------------------------------------------------------------------- anchors


def test_anchors_cover_each_level_grid_and_matching_counts_add_up(scenes):
    config = d.AnchorConfig(sizes=(8.0, 16.0, 32.0))
    anchors = d.make_anchors(config, 64)
    assert {k: len(v) for k, v in anchors.items()} == {"P3": 8 * 8 * 2, "P4": 4 * 4 * 2, "P5": 2 * 2 * 2}
    stats = d.matching_statistics(scenes, config)
    assert stats["positive"] + stats["ignored"] + stats["negative"] == len(scenes) * stats["anchors_per_image"]
    assert stats["negative"] > 10 * stats["positive"] > 0
    labels, _, best = d.match_anchors(anchors["P3"], [[0, 0, 8, 8]])
    assert labels[0] == 1 and best[0] == pytest.approx(1.0)


def test_focal_loss_matches_the_training_loss_and_core_keras():
    """The NumPy focal loss equals the loss the model trains with (KerasCV's) and Keras' BinaryFocalCrossentropy."""
    import keras

    rng = np.random.default_rng(1)
    y = (rng.random((4, 7)) < 0.3).astype("float32")
    logits = rng.normal(0, 3, size=(4, 7)).astype("float32")
    ours = d.binary_focal_loss(y, logits).sum()
    assert ours == pytest.approx(float(d.focal_loss()(y, logits)), rel=1e-4)
    core = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True, reduction="sum"
    )
    assert ours == pytest.approx(float(core(y[..., None], logits[..., None])), rel=1e-4)
    assert d.focal_loss_values(0.9, gamma=0) == pytest.approx(-np.log(0.9))


# --------------------------------------------------------------------------------- model


def tiny_retinanet(num_classes=4, anchors=None, **options):
    """A RetinaNet small enough to build and train in seconds: 64-pixel images, 16-wide pyramid and heads."""
    anchors = anchors or d.AnchorConfig(sizes=(8.0, 16.0, 32.0))
    return d.build_retinanet(
        num_classes,
        image_size=64,
        backbone_filters=(8, 8, 16, 16),
        pyramid_channels=16,
        head_width=16,
        head_depth=1,
        anchors=anchors,
        **options,
    )


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_retinanet(learning_rate=3e-3)


def test_builder_makes_no_network_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    model = tiny_retinanet()
    shapes = d.pyramid_shapes(model, 64)
    assert shapes["P3"] == (8, 8, 16) and shapes["P5"] == (2, 2, 16)
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert tuple(out["classification"].shape) == (1, (64 + 16 + 4) * 2, 4)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch(tiny_model, scenes):
    import keras

    keras.utils.set_random_seed(0)
    x, y = scenes.images[:8], {k: v[:8] for k, v in scenes.targets().items()}
    import tensorflow as tf

    # One step per epoch; each epoch reports the loss computed before its update, so the
    # second epoch's loss is the loss on the same batch after one training step.
    batch = tf.data.Dataset.from_tensors((x, y))
    before, after = tiny_model.fit(batch, epochs=2, verbose=0).history["loss"]
    assert after < before


def test_predictions_have_the_documented_format(tiny_model, scenes):
    p = d.predict(tiny_model, scenes.images[:3])
    assert p["boxes"].shape[:2] == p["classes"].shape == p["confidence"].shape
    assert p["num_detections"].shape == (3,)
    assert p["classes"].dtype == np.int32


def test_predict_decodes_boxes_as_the_model_itself_does(tiny_model, scenes):
    """det.predict decodes with Keras' public decode_deltas_to_boxes; KerasCV's own predict gives the same boxes."""
    kept = tiny_model.prediction_decoder
    tiny_model.prediction_decoder = d.PerClassNMS(confidence_threshold=0.001)  # an untrained model is unsure
    try:
        ours = d.predict(tiny_model, scenes.images[:3])
        theirs = tiny_model.predict(scenes.images[:3], verbose=0)
    finally:
        tiny_model.prediction_decoder = kept
    assert ours["num_detections"].min() > 0
    np.testing.assert_array_equal(ours["num_detections"], np.asarray(theirs["num_detections"]))
    for k, n in enumerate(ours["num_detections"]):
        np.testing.assert_allclose(ours["boxes"][k, :n], np.asarray(theirs["boxes"])[k, :n], atol=1e-3)
        np.testing.assert_array_equal(ours["classes"][k, :n], np.asarray(theirs["classes"])[k, :n])


def test_focal_loss_object_is_cross_entropy_at_gamma_zero_and_checks_its_arguments():
    rng = np.random.default_rng(2)
    y = (rng.random((3, 5)) < 0.3).astype("float32")
    logits = rng.normal(0, 2, size=(3, 5)).astype("float32")
    ce = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))  # sigmoid cross-entropy
    weights = np.where(y == 1, 0.75, 0.25)
    assert float(d.focal_loss(gamma=0, alpha=0.75)(y, logits)) == pytest.approx(float(np.sum(weights * ce)), rel=1e-4)
    assert float(d.focal_loss()(y, logits)) == pytest.approx(d.binary_focal_loss(y, logits).sum(), rel=1e-4)
    # per anchor, summed over the classes like KerasCV's FocalLoss (RetinaNet weighs anchors, not classes)
    per_anchor = d.focal_loss(gamma=0, alpha=0.75).call(y, logits)
    assert tuple(per_anchor.shape) == (3,)
    with pytest.raises(ValueError, match="gamma"):
        d.focal_loss(gamma=-1)
    with pytest.raises(ValueError, match="alpha"):
        d.focal_loss(alpha=1.5)


def test_builder_takes_a_classification_loss_and_rejects_a_mean_or_a_name():
    import keras

    ce = d.focal_loss(gamma=0.0, alpha=0.75)
    model = tiny_retinanet(classification_loss=ce)
    assert model.classification_loss is ce
    assert tiny_retinanet().classification_loss.gamma == 2.0
    with pytest.raises(TypeError, match="keras.losses.Loss"):
        tiny_retinanet(classification_loss="binary_crossentropy")
    with pytest.raises(ValueError, match="reduction='sum'"):
        tiny_retinanet(classification_loss=keras.losses.BinaryFocalCrossentropy(from_logits=True))


def test_cross_entropy_stays_finite_where_the_sigmoid_saturates():
    import tensorflow as tf

    y = tf.constant([[1.0, 0.0, 0.0]])
    logits = tf.Variable([[30.0, -30.0, 2.0]])  # sigmoid(30) is 1 in float32
    with tf.GradientTape() as tape:
        loss = d.focal_loss(gamma=0.0, alpha=0.75)(y, logits)
    gradient = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(gradient)) and np.isfinite(float(loss))
    p = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(
        gradient, [[0.75 * (-1 / (1 + np.exp(30.0))), 0.25 / (1 + np.exp(30.0)), 0.25 * p]], rtol=1e-4, atol=1e-12
    )


def test_features_from_copies_and_freezes_the_backbone_and_pyramid(tiny_model):
    other = tiny_retinanet(
        anchors=d.AnchorConfig(sizes=(8.0, 16.0, 32.0), scales=(1.0,), aspect_ratios=(0.5, 1.0, 2.0)),
        features_from=tiny_model,
    )
    for part in ("backbone", "feature_pyramid"):
        for a, b in zip(getattr(tiny_model, part).get_weights(), getattr(other, part).get_weights()):
            np.testing.assert_array_equal(a, b)
        assert not getattr(other, part).trainable_weights
    trainable = sum(int(np.prod(w.shape)) for w in other.trainable_weights)
    assert trainable == other.classification_head.count_params() + other.box_head.count_params()
    with pytest.raises(ValueError, match="same backbone"):
        d.build_retinanet(
            4,
            image_size=64,
            backbone_filters=(8, 16, 16, 16),
            pyramid_channels=16,
            head_width=16,
            head_depth=1,
            anchors=d.AnchorConfig(sizes=(8.0, 16.0, 32.0)),
            features_from=tiny_model,
        )


def test_anchor_targets_follow_the_numpy_matching_and_scores_split_by_target(tiny_model, scenes):
    data = scenes.subset(slice(0, 6))
    targets = d.anchor_targets(tiny_model, data, batch_size=4)
    anchors = np.concatenate(list(d.make_anchors(d.AnchorConfig(sizes=(8.0, 16.0, 32.0)), 64).values()))
    assert targets.shape == (6, len(anchors))
    for i in range(len(data)):
        gt = data.boxes[i][data.classes[i] >= 0]
        labels, best, _ = d.match_anchors(anchors, gt)
        expected = np.where(labels == 1, data.classes[i][data.classes[i] >= 0][best], np.where(labels == 0, -1, -2))
        np.testing.assert_array_equal(targets[i], expected)
    raw = d.raw_outputs(tiny_model, data.images)
    scores = d.anchor_scores(raw, targets)
    assert len(scores["object"]) == np.sum(targets >= 0) and len(scores["background"]) == np.sum(targets == -1)
    i, a = np.argwhere(targets >= 0)[0]
    assert scores["object"][0] == pytest.approx(1 / (1 + np.exp(-raw["classification"][i, a, targets[i, a]])))
    assert np.all((scores["background"] > 0) & (scores["background"] < 1))
    with pytest.raises(ValueError, match="same images"):
        d.anchor_scores(raw, targets[:3])
    fig = d.plot_score_distributions({"focal loss": scores, "cross-entropy": scores})
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="empty"):
        d.plot_score_distributions({})


def test_feature_pyramid_and_heads_round_trip_through_keras_serialisation(tiny_model):
    import keras

    for layer in (tiny_model.feature_pyramid, tiny_model.classification_head, tiny_model.box_head):
        serialised = keras.saving.serialize_keras_object(layer)
        assert serialised["registered_name"] == f"course_utils>{type(layer).__name__}"
        restored = keras.saving.deserialize_keras_object(serialised)
        assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


KERAS_CV_IMPORT = re.compile(r"^\s*(import|from) keras_cv\b", re.MULTILINE)


def test_keras_cv_is_imported_by_kerascv_py_alone(root):
    """The move to keras-hub changes course_utils/detection/kerascv.py, not a line scattered elsewhere."""
    importers = {
        path.relative_to(root).as_posix()
        for folder in ("course_utils", "book", "solutions", "exercises", "tests", "bench")
        for path in (root / folder).rglob("*.py")
        if KERAS_CV_IMPORT.search(path.read_text(encoding="utf-8"))
    }
    assert importers == {"course_utils/detection/kerascv.py"}


# -------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_boxes_inside_and_consistent_with_the_pixels():
    s = make_scenes(24, size=64, seed=7, objects=(1, 4), object_size=(8, 24))
    masks = np.repeat((s.masks > 0).astype("float32")[..., None], 3, axis=-1)
    images, boxes, classes = (np.asarray(v) for v in d.augmenter(scale=0.3, seed=2)(masks, s.boxes, s.box_classes))
    assert images.shape == masks.shape and boxes.shape == s.boxes.shape
    kept = classes >= 0
    assert np.all(boxes[~kept] == -1)
    inside = boxes[kept]
    assert np.all(inside[:, :2] >= 0) and np.all(inside[:, 2] <= 64) and np.all(inside[:, 3] <= 64)
    assert np.all(inside[:, 2:] > inside[:, :2])
    changed = 0
    for i in range(len(s)):
        found = components(images[i, ..., 0] > 0.5)
        for box in boxes[i][kept[i]]:
            # every kept box has a drawn object within 2 pixels (interpolation blurs the edges)
            err = min(max(abs(a - b) for a, b in zip(box, f)) for f in found)
            assert err <= 2.0, (i, box, found)
        changed += not np.allclose(boxes[i][kept[i]], s.boxes[i][kept[i]])
    assert changed > len(s) // 2  # the augmentation does something


def test_training_dataset_yields_what_retinanet_expects(scenes):
    ds = d.make_train_dataset(scenes, batch_size=8, augment=True, seed=0)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (8, 64, 64, 3)
    assert set(y) == {"boxes", "classes"} and y["classes"].dtype.name == "float32"


# ------------------------------------------------------------------------------ loaders


def test_coco_loader_reads_what_write_coco_wrote(tmp_path, scenes):
    small = scenes.subset(slice(0, 5))
    path = d.write_coco(small, tmp_path)
    loaded = d.load_detection_data(str(path), image_size=32)
    assert loaded.class_names == small.class_names and len(loaded) == 5
    m = small.boxes.shape[1]
    np.testing.assert_allclose(loaded.boxes[:, :m][small.classes >= 0], small.boxes[small.classes >= 0] / 2, atol=1e-4)
    np.testing.assert_array_equal(loaded.object_counts(), small.object_counts())
    assert loaded.images.shape == (5, 32, 32, 3)


def _corrupt(tmp_path, scenes, change):
    path = d.write_coco(scenes.subset(slice(0, 3)), tmp_path)
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["annotations"][0].update(bbox=[60, 10, 20, 10]), "box outside the image"),
        (lambda c: c["annotations"][0].update(bbox=[10, 10, -4, 6]), "negative or zero size"),
        (lambda c: c["annotations"][0].update(category_id=99), "unknown class id 99"),
        (lambda c: c["images"][1].update(file_name="missing.png"), "file not found"),
    ],
)
def test_coco_loader_names_the_image_and_the_box_of_a_bad_annotation(tmp_path, scenes, change, message):
    path = _corrupt(tmp_path, scenes, change)
    with pytest.raises(d.AnnotationError, match=message) as error:
        d.load_coco(path)
    text = str(error.value)
    assert "image_0000.png" in text or "missing.png" in text
    if "file" not in message:
        assert "box 0" in text


def test_validate_boxes_names_the_box(scenes):
    boxes = scenes.boxes.copy()
    boxes[2, 0] = (-5, 0, 10, 10)
    with pytest.raises(d.AnnotationError, match=r"scene 2, box 0 .*outside"):
        d.validate_boxes(boxes, scenes.classes, scenes.image_size, 4, scenes.names)
    d.validate_boxes(scenes.boxes, scenes.classes, scenes.image_size, 4, scenes.names)


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown detection data source"):
        d.load_detection_data("voc")


def test_tfds_entry_point_with_mocked_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    def examples(builder, *args, **kwargs):
        # tfds' random mock boxes are not valid boxes: give it three images with known ones
        image = np.zeros((3, 40, 80, 3), np.uint8)
        bbox = np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]] * 3, np.float32)  # ymin, xmin, ymax, xmax
        label = np.array([[3, 14]] * 3, np.int64)
        return tf.data.Dataset.from_tensor_slices({"image": image, "objects": {"bbox": bbox, "label": label}})

    with tfds.testing.mock_data(as_dataset_fn=examples):
        data = d.load_detection_data("tfds:voc/2007", n=3, image_size=32)
    assert len(data) == 3 and data.images.shape == (3, 32, 32, 3)
    assert len(data.class_names) == 20 and data.class_names[14] == "person"
    np.testing.assert_allclose(data.boxes[0, :2], [[0.2 * 32, 0.1 * 32, 0.6 * 32, 0.5 * 32], [0, 0, 32, 32]], atol=1e-4)
    np.testing.assert_array_equal(data.classes[0, :3], [3, 14, -1])


# ----------------------------------------------------------------------------- evaluation


def test_map_of_perfect_predictions_is_one_and_of_shuffled_ones_is_low(scenes):
    perfect = d.mean_average_precision(d.perfect_predictions(scenes), scenes, iou_thresholds=(0.5, 0.75))
    assert perfect["map"][0.5] == pytest.approx(1.0) and perfect["map"][0.75] == pytest.approx(1.0)
    shuffled = d.mean_average_precision(d.shuffled_predictions(scenes, seed=0), scenes)
    assert shuffled["map"][0.5] < 0.2


def test_class_matches_count_every_object_and_find_each_once(scenes):
    """Perfect predictions find every object of the class; the same boxes twice find each object once."""
    perfect = d.perfect_predictions(scenes)
    objects = int(np.sum(scenes.classes == 0))
    scores, found, n_objects = d.class_matches(perfect, scenes, 0)
    assert n_objects == objects and len(scores) == objects and found.all()
    doubled = {key: np.concatenate([value, value], axis=1) for key, value in perfect.items() if key != "num_detections"}
    first = np.argsort(doubled["confidence"] < 0, axis=1, kind="stable")  # each image's detections first, then padding
    doubled = {
        key: np.take_along_axis(value, first[..., None] if value.ndim == 3 else first, axis=1)
        for key, value in doubled.items()
    }
    doubled["num_detections"] = 2 * perfect["num_detections"]
    scores, found, _ = d.class_matches(doubled, scenes, 0)
    assert len(scores) == 2 * objects and found.sum() == objects


def test_average_precision_on_a_small_ranking():
    # ranking: TP, FP, TP with 3 objects -> precision envelope 1 up to recall 1/3, 2/3 up to 2/3
    ap, recall, precision = d.average_precision([0.9, 0.8, 0.7], [True, False, True], 3)
    assert ap == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3])


def test_coco_metrics_agree_on_perfect_predictions(scenes, capsys):
    result = d.coco_metrics(d.perfect_predictions(scenes), scenes)
    assert result == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0}, abs=1e-6)
    assert capsys.readouterr().out == ""  # pycocotools' summary is silenced


def test_coco_metrics_count_the_objects_of_images_without_any_detection(scenes):
    """KerasCV 0.9's BoxCOCOMetrics skips such images (keras-cv issue 2504); COCOeval over all images does not."""
    predictions = d.perfect_predictions(scenes)
    half = len(scenes) // 2
    predictions["num_detections"][:half] = 0
    predictions["confidence"][:half] = -1
    objects = scenes.object_counts()
    found_share = objects[half:].sum() / objects.sum()  # every object of the other half is found, with score 1
    assert d.coco_metrics(predictions, scenes)["map50"] == pytest.approx(found_share, abs=0.05)
    assert d.mean_average_precision(predictions, scenes)["map"][0.5] == pytest.approx(found_share, abs=0.05)


def test_per_class_nms_suppresses_within_a_class_only():
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]]], np.float32)
    scores = np.full((1, 4, 2), logit(0.001), np.float32)
    scores[0, 0, 0], scores[0, 1, 0], scores[0, 2, 1], scores[0, 3, 1] = logit(0.9), logit(0.8), logit(0.7), logit(0.6)
    out = {k: np.asarray(v) for k, v in d.PerClassNMS(0.05, 0.5, 5)(boxes, scores).items()}
    assert out["num_detections"].tolist() == [3]  # the 0.8 box of class 0 is a duplicate of the 0.9 one
    np.testing.assert_allclose(out["confidence"][0], [0.9, 0.7, 0.6, -1, -1], atol=1e-6)
    assert out["classes"][0].tolist() == [0, 1, 1, -1, -1]  # class 1's box on top of class 0's survives
    off = {k: np.asarray(v) for k, v in d.PerClassNMS(0.05, 1.0, 5)(boxes, scores).items()}
    assert off["num_detections"].tolist() == [4]  # IoU threshold 1 switches NMS off


def test_counting_merges_boxes_of_different_classes_on_one_object():
    predictions = {
        "boxes": np.array([[[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]]], np.float32),
        "classes": np.array([[0, 1, 1]]),
        "confidence": np.array([[0.9, 0.6, 0.4]], np.float32),
    }
    assert d.count_objects(predictions, 0.3).tolist() == [2]  # the square on the circle is the same object
    assert d.count_objects(predictions, 0.3, merge_iou=None).tolist() == [3]
    assert d.count_objects(predictions, 0.5).tolist() == [1]


def test_count_threshold_is_chosen_where_counts_are_best(scenes):
    predictions = d.perfect_predictions(scenes)
    predictions["confidence"] = np.where(predictions["confidence"] > 0, 0.6, -1.0).astype(np.float32)
    threshold, errors = d.choose_count_threshold(predictions, scenes, thresholds=[0.3, 0.5, 0.7])
    assert threshold == 0.3 and errors.tolist() == [0.0, 0.0, pytest.approx(scenes.object_counts().mean())]


# ---------------------------------------------------------------------------------------------- figures


def test_ground_truth_is_labelled_with_class_names_and_predictions_with_class_and_score(scenes):
    import matplotlib.pyplot as plt

    from course_utils import plots

    data = scenes.subset(slice(0, 4))
    names = list(data.class_names)
    truth = d.plot_detections(data.images, names, data.boxes, data.classes)
    labels = {t.get_text() for ax in truth.axes for t in ax.texts}
    assert labels and labels <= set(names)  # "circle", never "circle 1.00"
    predicted = d.plot_detections(data.images, names, data.boxes, data.classes, d.perfect_predictions(data))
    labels = [t.get_text() for ax in predicted.axes for t in ax.texts]
    # the truth beside predictions is unlabelled (below: every label has a score); a label with no room is left out
    assert 0.8 * int((data.classes >= 0).sum()) <= len(labels) <= int((data.classes >= 0).sum())
    assert all(label.rsplit(" ", 1)[0] in names and label.endswith(" 1.00") for label in labels)
    assert truth.get_size_inches()[0] <= plots.PAGE_WIDTH + 1e-9
    plt.close("all")


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@st.composite
def boxes_in_an_image(draw):
    """1 to 6 boxes (xyxy) inside a 64-pixel image, and a label size in pixels."""
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        x0, y0 = draw(st.integers(0, 56)), draw(st.integers(0, 56))
        boxes.append((x0, y0, draw(st.integers(x0 + 4, 64)), draw(st.integers(y0 + 4, 64))))
    return boxes, (draw(st.integers(8, 30)), draw(st.integers(4, 8)))


@settings(max_examples=150, deadline=None)
@given(boxes_in_an_image())
def test_a_label_goes_inside_the_image_clear_of_the_others_or_is_left_out(case):
    from course_utils.detection.plots import _label_place

    boxes, size = case
    taken = []
    for box in boxes:
        x0, y0, x1, y1 = box
        places = [
            (left, top, left + size[0], top + size[1])
            for top in (y0 - 1.0 - size[1], y1, y0 - 0.5, y1 - 0.5 - size[1])
            for left in (x0 - 0.5, x1 - 0.5 - size[0])
        ]
        inside = [p for p in places if p[0] >= -0.5 and p[1] >= -0.5 and p[2] <= 63.5 and p[3] <= 63.5]
        free = [p for p in inside if not any(_overlap(p, t) for t in taken)]
        place = _label_place(box, size, (64, 64), taken)
        if free:  # the first free place inside: above, below, inside the top, inside the bottom of the box
            assert place is not None and place[-1] == free[0]
            taken.append(place[-1])
        else:
            assert place is None  # no room: left out, never drawn over another label
    assert all(not _overlap(a, b) for i, a in enumerate(taken) for b in taken[i + 1 :])


def test_no_two_labels_of_a_drawn_panel_overlap(scenes):
    """On the drawn figure of crowded training scenes (up to four objects in 64 pixels), no label's patch covers
    another's."""
    import matplotlib.pyplot as plt

    data = scenes.subset(slice(0, 16))
    fig = d.plot_detections(data.images, list(data.class_names), data.boxes, data.classes)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = 0
    for ax in fig.axes:
        patches = [text.get_bbox_patch().get_window_extent(renderer) for text in ax.texts]
        drawn += len(patches)
        for i, a in enumerate(patches):
            for b in patches[i + 1 :]:
                across = min(a.x1, b.x1) - max(a.x0, b.x0)
                up = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert min(across, up) < 1.0, (a, b)  # at most a sliver under one screen pixel, where two touch
    plt.close(fig)
    assert drawn >= 0.8 * int((data.classes >= 0).sum())  # few labels are left out for want of room


def test_the_room_a_label_is_given_holds_the_label_as_drawn(scenes):
    """The placement above works on estimated label sizes; on the drawn figure each label's patch fits inside its
    estimate, so that labels placed apart are drawn apart."""
    import matplotlib.pyplot as plt

    from course_utils.detection.plots import _label_size

    data = scenes.subset(slice(0, 8))
    fig = d.plot_detections(data.images, list(data.class_names), data.boxes, data.classes)
    fig.canvas.draw()  # places each label's patch
    renderer = fig.canvas.get_renderer()
    too_big = []
    for ax in fig.axes:
        per_point = 64 / (ax.get_window_extent().width / fig.dpi * 72)  # image pixels per point of this panel
        for text in ax.texts:
            (left, bottom), (right, top) = ax.transData.inverted().transform(
                text.get_bbox_patch().get_window_extent(renderer).get_points()
            )
            width, height = _label_size(text.get_text(), per_point)
            if abs(right - left) > width + 0.5 or abs(top - bottom) > height + 0.5:
                too_big.append((text.get_text(), abs(right - left), width, abs(top - bottom), height))
    plt.close(fig)
    assert not too_big, f"labels drawn larger than the room given them (text, width, room, height, room): {too_big}"


def test_count_plot_has_integer_ticks_fitted_to_the_counts_and_shows_how_many_images_share_a_point():
    import matplotlib.pyplot as plt

    true = np.array([1, 1, 1, 2, 2, 3, 4, 4])
    predicted = np.array([1, 1, 2, 2, 2, 3, 4, 5])
    ax = d.plot_counts(true, predicted).axes[0]
    assert ax.get_xlim() == (0.5, 4.5) and ax.get_ylim() == (0.5, 5.5)
    for ticks, (lo, hi) in ((ax.get_xticks(), ax.get_xlim()), (ax.get_yticks(), ax.get_ylim())):
        shown = [t for t in ticks if lo <= t <= hi]
        assert shown and all(float(t).is_integer() for t in shown)
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 6  # one disc per distinct (true, predicted) pair, not one dot per image
    assert sorted(t.get_text() for t in ax.texts) == sorted(["2", "1", "2", "1", "1", "1"])
    plt.close("all")


def _one_image(objects, object_classes, boxes, classes, scores):
    """A DetectionData of one image and predictions of its detections (the format of ``det.predict``)."""
    data = d.DetectionData(
        images=np.zeros((1, 64, 64, 3), np.float32),
        boxes=[np.array(objects, np.float32).reshape(-1, 4)],
        classes=[np.array(object_classes)],
        class_names=("a", "b"),
        names=("image",),
    )
    predictions = {
        "boxes": [np.array(boxes, np.float32).reshape(-1, 4)],
        "classes": [np.array(classes)],
        "confidence": [np.array(scores, np.float32)],
        "num_detections": np.array([len(scores)]),
    }
    return predictions, data


def test_each_kind_of_detection_mistake_is_counted_as_tide_defines_it():
    square = [10, 10, 30, 30]
    detections = [
        ([10, 10, 30, 30], 0, 0.9),  # right
        ([11, 10, 31, 30], 0, 0.8),  # the same object again: duplicate
        ([40, 40, 60, 60], 0, 0.7),  # on the class-1 object: wrong class
        ([10, 10, 30, 17], 0, 0.6),  # a third of the square (IoU 0.35): poorly located
        ([40, 40, 60, 47], 0, 0.55),  # a third of the class-1 object: both
        ([0, 50, 8, 62], 0, 0.5),  # nothing there: background
        ([0, 0, 64, 64], 1, 0.01),  # below the threshold: not counted
    ]
    boxes, classes, scores = zip(*detections)
    predictions, data = _one_image([square, [40, 40, 60, 60], [2, 2, 6, 6]], [0, 1, 1], boxes, classes, scores)
    counts = d.detection_errors(predictions, data, confidence_threshold=0.1)
    assert list(counts) == list(d.ERROR_KINDS)
    assert counts == {
        "right": 1,
        "duplicate": 1,
        "wrong class": 1,
        "poorly located": 1,
        "wrong class, poorly located": 1,
        "background": 1,
        "missed": 2,  # the class-1 objects: no class-1 detection claims them
    }


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(2, 14), st.integers(0, 1)), max_size=6),
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(2, 14), st.integers(0, 1), st.floats(0, 1)),
        max_size=8,
    ),
    st.floats(0, 1),
)
def test_every_detection_and_object_is_counted_once(objects, detections, threshold):
    predictions, data = _one_image(
        [(x, y, x + s, y + s) for x, y, s, _ in objects],
        [c for *_, c in objects],
        [(x, y, x + s, y + s) for x, y, s, _, _ in detections],
        [c for *_, c, _ in detections],
        [p for *_, p in detections],
    )
    counts = d.detection_errors(predictions, data, threshold)
    kept = sum(p >= np.float32(threshold) for *_, p in detections)
    assert sum(counts[k] for k in d.ERROR_KINDS if k != "missed") == kept
    assert counts["right"] + counts["missed"] == len(objects)
