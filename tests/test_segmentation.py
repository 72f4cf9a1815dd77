"""course_utils.segmentation: U-Net builder, losses and metrics, paired augmentation, mask loaders."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from course_utils import config
from course_utils import segmentation as seg
from course_utils.scenes import make_scenes

# ------------------------------------------------------------------------------------- builder


@pytest.mark.parametrize("num_classes, channels, activation", [(1, 1, "sigmoid"), (5, 5, "softmax")])
def test_unet_output_matches_the_input_size_with_the_right_head(num_classes, channels, activation):
    model = seg.unet((32, 48, 3), num_classes=num_classes, depth=3, base_filters=4)
    assert model.output_shape == (None, 32, 48, channels)
    assert model.get_layer("head").activation.__name__ == activation
    out = model.predict(np.zeros((2, 32, 48, 3), np.float32), verbose=0)
    assert out.shape == (2, 32, 48, channels)
    if channels > 1:
        np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_unet_filters_double_per_level_and_shapes_halve():
    model = seg.unet((32, 32, 3), num_classes=3, depth=2, base_filters=8)
    shapes = dict(seg.level_shapes(model))
    assert shapes["enc0_relu2"] == (32, 32, 8)
    assert shapes["pool0"] == (16, 16, 8)
    assert shapes["enc1_relu2"] == (16, 16, 16)
    assert shapes["bottleneck_relu2"] == (8, 8, 32)
    assert shapes["up1"] == (16, 16, 16)
    assert shapes["dec0_relu2"] == (32, 32, 8)


def test_skip_modes_change_the_parameter_count_as_expected():
    counts = {
        mode: seg.unet((16, 16, 3), 2, depth=2, base_filters=4, skip=mode).count_params() for mode in seg.SKIP_MODES
    }
    # add and none give the decoder blocks the same input channels; concat doubles them.
    assert counts["add"] == counts["none"] < counts["concat"]
    model = seg.unet((16, 16, 3), 2, depth=2, base_filters=4, skip="none")
    assert not any(layer.name.startswith("skip") for layer in model.layers)


def test_residual_variant_and_dropout_build():
    model = seg.unet((16, 16, 1), 1, depth=2, base_filters=4, residual=True, dropout=0.3)
    names = [layer.name for layer in model.layers]
    assert "enc0_shortcut" in names and "bottleneck_dropout" in names
    assert model.output_shape == (None, 16, 16, 1)


@pytest.mark.parametrize("shape, depth", [((30, 32, 3), 2), ((32, 36, 3), 3)])
def test_unet_refuses_sizes_not_divisible_by_two_to_the_depth(shape, depth):
    with pytest.raises(ValueError, match=rf"not divisible by 2\*\*depth = {2**depth}"):
        seg.unet(shape, depth=depth)


def test_unet_accepts_any_size_when_left_open():
    model = seg.unet((None, None, 3), 2, depth=2, base_filters=4)
    assert model.predict(np.zeros((1, 24, 40, 3)), verbose=0).shape == (1, 24, 40, 2)


def test_transposed_convolution_by_hand_matches_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    kernel = rng.normal(size=(3, 3)).astype(np.float32)
    for stride in (1, 2, 3):
        layer = keras.layers.Conv2DTranspose(1, 3, strides=stride, padding="valid", use_bias=False)
        layer.build((1, 4, 5, 1))
        layer.set_weights([kernel[:, :, None, None]])
        expected = layer(x[None, :, :, None]).numpy()[0, :, :, 0]
        by_hand = seg.transposed_conv_by_hand(x, kernel, stride)
        assert (
            by_hand.shape
            == expected.shape
            == (seg.transposed_conv_output_size(4, 3, stride), seg.transposed_conv_output_size(5, 3, stride))
        )
        np.testing.assert_allclose(by_hand, expected, atol=1e-5)
    assert seg.transposed_conv_output_size(8, 3, 2, "same") == 16


# ---------------------------------------------------------------------------- metrics and losses


def test_iou_and_dice_on_hand_made_masks():
    truth = np.array([[0, 1, 1], [0, 1, 1], [0, 0, 2]])
    guess = np.array([[0, 1, 0], [0, 1, 1], [2, 0, 0]])
    # class 0: 3 pixels in both, 6 in either; class 1: 3 of 4; class 2: 0 of 2
    np.testing.assert_allclose(seg.per_class_iou(truth, guess, 3), [3 / 6, 3 / 4, 0.0])
    assert seg.mean_iou(truth, guess, 3) == pytest.approx((3 / 6 + 3 / 4) / 3)
    metric = seg.MeanIoU(3)
    metric.update_state(truth[None], keras.ops.one_hot(guess[None], 3))
    assert float(metric.result()) == pytest.approx((3 / 6 + 3 / 4) / 3)
    per_class = [seg.ClassIoU(3, k) for k in range(3)]
    for m in per_class:
        m.update_state(truth[None], keras.ops.one_hot(guess[None], 3))
    np.testing.assert_allclose([float(m.result()) for m in per_class], [3 / 6, 3 / 4, 0.0], atol=1e-6)
    binary_truth, binary_guess = (truth == 1).astype(np.float32), (guess == 1).astype(np.float32)
    dice = seg.dice_coefficient(binary_truth[None], binary_guess[None, ..., None], smooth=0.0)
    assert float(dice) == pytest.approx(2 * 3 / (4 + 3))
    score = seg.DiceScore(2)
    score.update_state(binary_truth[None], binary_guess[None, ..., None])
    assert float(score.result()) == pytest.approx(6 / 7)


def test_empty_masks_give_no_division_by_zero():
    empty = np.zeros((1, 4, 4))
    assert float(seg.dice_coefficient(empty, np.zeros((1, 4, 4, 1)), smooth=0.0)) == 1.0
    assert float(seg.dice_coefficient(empty, np.zeros((1, 4, 4, 1)))) == 1.0
    assert float(seg.dice_coefficient(empty, np.ones((1, 4, 4, 1)), smooth=0.0)) == 0.0
    iou = seg.per_class_iou(empty, empty, 3)
    assert iou[0] == 1.0 and np.isnan(iou[1:]).all()
    assert seg.mean_iou(empty, empty, 3) == 1.0
    metric = seg.ClassIoU(3, 2)
    metric.update_state(empty, keras.ops.one_hot(np.zeros((1, 4, 4), "int32"), 3))
    assert np.isnan(float(metric.result()))
    mean = seg.MeanIoU(3)
    mean.update_state(empty, keras.ops.one_hot(np.zeros((1, 4, 4), "int32"), 3))
    assert float(mean.result()) == 1.0
    for loss in (seg.DiceLoss(), seg.CrossEntropyDiceLoss()):
        assert np.isfinite(float(loss(empty, np.full((1, 4, 4, 1), 0.5))))


def test_metrics_accept_masks_with_a_channel_axis():
    truth = np.array([[[1, 0], [0, 1]]])
    probabilities = np.array([[[[0.9], [0.2]], [[0.4], [0.6]]]])
    assert float(seg.dice_coefficient(truth[..., None], probabilities, 0.0)) == pytest.approx(
        float(seg.dice_coefficient(truth, probabilities, 0.0))
    )
    metric = seg.MeanIoU(2)
    metric.update_state(truth[..., None], probabilities)
    assert float(metric.result()) == 1.0


def test_confusion_refuses_labels_outside_the_classes():
    with pytest.raises(ValueError, match="outside 0..1"):
        seg.per_class_iou(np.array([0, 2]), np.array([0, 1]), 2)


@pytest.mark.parametrize(
    "loss, num_classes",
    [
        (seg.DiceLoss(), 1),
        (seg.CrossEntropyDiceLoss(), 1),
        (seg.DiceLoss(), 3),
        (seg.CrossEntropyDiceLoss(), 3),
        (seg.cross_entropy, 3),
    ],
)
def test_losses_decrease_on_a_fixed_batch(loss, num_classes):
    config.seed_everything(0)
    data = make_scenes(8, size=16, seed=3, classes=("circle", "square"))
    masks = data.binary_masks() if num_classes == 1 else data.masks
    # Without batch norm, so that evaluate() and fit() compute the same function.
    model = seg.unet((16, 16, 3), num_classes, depth=1, base_filters=8, batch_norm=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    before = model.evaluate(data.images, masks, verbose=0)
    model.fit(data.images, masks, epochs=40, batch_size=8, verbose=0)
    after = model.evaluate(data.images, masks, verbose=0)
    assert after < before - 0.05, (before, after)


def test_compiled_model_reports_the_metrics_and_the_losses_save_and_load(tmp_path):
    model = seg.compile_segmenter(seg.unet((16, 16, 3), 1, depth=1, base_filters=4), loss="ce+dice", steps=10)
    data = make_scenes(4, size=16, seed=0)
    history = model.fit(data.images, data.binary_masks(), epochs=1, verbose=0)
    assert {"loss", "mean_iou", "dice"} <= set(history.history)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(data.images, verbose=0), model.predict(data.images, verbose=0), atol=1e-5)


def test_predicting_with_many_fresh_models_gives_the_labels_of_predict_without_retracing_warnings(caplog):
    images = make_scenes(10, size=16, seed=0).images
    models = [seg.unet((16, 16, 3), num_classes, depth=1, base_filters=4) for num_classes in (1, 1, 1, 3, 3, 3)]
    with caplog.at_level("WARNING", logger="tensorflow"):
        found = [seg.predict_masks(model, images, batch_size=4) for model in models]  # the last batch is partial
    assert "retracing" not in caplog.text
    for model, labels in zip(models[2:4], found[2:4]):  # a binary and a multi-class model
        assert labels.dtype == np.uint8 and labels.shape == (10, 16, 16)
        np.testing.assert_array_equal(labels, np.asarray(seg.predicted_labels(model.predict(images, verbose=0))))
    assert seg.predict_masks(models[0], images[:0]).shape == (0, 16, 16)


# -------------------------------------------------------------------------------- augmentation


def test_paired_augmentation_keeps_image_and_mask_aligned():
    data = make_scenes(6, size=24, seed=5, objects=(2, 3))
    # An "image" that is the mask itself: after augmentation it must still equal the mask.
    for i in range(len(data)):
        image = np.repeat(data.masks[i][..., None].astype(np.float32), 3, axis=-1)
        for s in range(4):
            out_image, out_mask = seg.augment_pair(image, data.masks[i], tf.constant([i, s]), colour=0.0)
            assert out_mask.dtype == tf.uint8 and out_mask.shape == (24, 24)
            np.testing.assert_array_equal(out_image.numpy()[..., 0], out_mask.numpy())
            assert sorted(np.bincount(out_mask.numpy().ravel())) == sorted(np.bincount(data.masks[i].ravel()))


def test_paired_augmentation_changes_the_colours_of_the_image_only_and_repeats_with_the_seed():
    data = make_scenes(1, size=16, seed=1)
    a = seg.augment_pair(data.images[0], data.masks[0], tf.constant([1, 2]), flips=False, turns=False, colour=0.2)
    b = seg.augment_pair(data.images[0], data.masks[0], tf.constant([1, 2]), flips=False, turns=False, colour=0.2)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), data.masks[0])
    assert not np.allclose(a[0].numpy(), data.images[0])


def test_segmentation_dataset_batches_augmented_pairs():
    data = make_scenes(10, size=16, seed=2)
    dataset = seg.make_segmentation_dataset(data.images, data.masks, batch_size=4, shuffle=True, augment=True)
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert batches[0][1].shape == (4, 16, 16)
    with pytest.raises(ValueError, match="must match"):
        seg.make_segmentation_dataset(data.images, data.masks[:, :8])


# ------------------------------------------------------------------------------------- loaders


def write_pairs(root, n=3, size=(20, 16)):
    data = make_scenes(n, size=32, seed=4)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = Image.fromarray((data.images[i] * 255).astype(np.uint8)).resize(size)
        image.save(root / "images" / f"scene_{i}.jpg")
        Image.fromarray(data.masks[i]).resize(size, Image.Resampling.NEAREST).save(root / "masks" / f"scene_{i}.png")
    return data


def test_folder_pairs_load_resized_with_class_ids(tmp_path):
    write_pairs(tmp_path)
    loaded = seg.load_segmentation(tmp_path, image_size=(8, 8), class_names=("background", "a", "b", "c", "d"))
    assert loaded.images.shape == (3, 8, 8, 3) and loaded.images.dtype == np.float32
    assert loaded.masks.shape == (3, 8, 8) and loaded.masks.dtype == np.uint8
    assert loaded.names == ("scene_0", "scene_1", "scene_2")
    assert 0 <= loaded.images.min() and loaded.images.max() <= 1
    same = seg.load_segmentation(tmp_path / "images", masks=tmp_path / "masks", image_size=(8, 8))
    np.testing.assert_array_equal(same.masks, loaded.masks)
    assert same.class_names[0] == "class0"


def test_folder_loader_names_the_missing_mask(tmp_path):
    write_pairs(tmp_path)
    (tmp_path / "masks" / "scene_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"No mask for image .*scene_1\.jpg"):
        seg.load_segmentation(tmp_path)


def test_folder_loader_names_the_mask_of_another_size(tmp_path):
    write_pairs(tmp_path)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "scene_2.png")
    with pytest.raises(ValueError, match=r"Size mismatch: image .*scene_2\.jpg .* mask .*scene_2\.png"):
        seg.load_segmentation(tmp_path)


def test_folder_loader_names_the_mask_with_a_value_outside_the_classes(tmp_path):
    write_pairs(tmp_path)
    bad = np.zeros((16, 20), np.uint8)
    bad[3, 4] = 9
    Image.fromarray(bad).save(tmp_path / "masks" / "scene_0.png")
    with pytest.raises(ValueError, match=r"scene_0\.png has values \[9\] outside the classes 0..1"):
        seg.load_segmentation(tmp_path, class_names=("background", "object"))
    with pytest.raises(ValueError, match=r"scene_0\.png has values \[9\] that mask_map does not map"):
        seg.load_segmentation(tmp_path, mask_map={0: 0, 1: 1, 2: 1, 3: 1, 4: 1})


def test_folder_loader_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="should hold the folders 'images' and 'masks'"):
        seg.load_segmentation(tmp_path)
    write_pairs(tmp_path)
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "masks" / "stray.png")
    with pytest.raises(ValueError, match=r"Mask without an image: .*stray\.png"):
        seg.load_segmentation(tmp_path)
    (tmp_path / "masks" / "stray.png").unlink()
    colour = np.zeros((16, 20, 3), np.uint8)
    colour[..., 1] = 50
    Image.fromarray(colour).save(tmp_path / "masks" / "scene_0.png")
    with pytest.raises(ValueError, match=r"scene_0\.png is a colour image"):
        seg.load_segmentation(tmp_path)
    with pytest.raises(ValueError, match="max_examples must be a positive integer, got 0"):
        seg.load_segmentation(tmp_path, max_examples=0)


def test_tfds_source_goes_through_the_same_entry_point():
    tfds = pytest.importorskip("tensorflow_datasets")
    # mock_data fills masks with random bytes (0..255): map them onto the three classes.
    with tfds.testing.mock_data(num_examples=5):
        with pytest.raises(ValueError, match=r"tfds:oxford_iiit_pet\[train\] example 0 has values .* that mask_map"):
            seg.load_segmentation("tfds:oxford_iiit_pet", image_size=(16, 16), max_examples=3)
        loaded = seg.load_segmentation(
            "tfds:oxford_iiit_pet",
            image_size=(16, 16),
            split="train",
            max_examples=3,
            mask_map={v: v % 3 for v in range(256)},
        )
    assert loaded.images.shape == (3, 16, 16, 3)
    assert loaded.masks.shape == (3, 16, 16)
    assert loaded.class_names == ("background", "pet", "outline")
    assert loaded.masks.max() <= 2


# --------------------------------------------------------------------------------------- plots


def test_figures_draw():
    import matplotlib.pyplot as plt

    data = make_scenes(3, size=16, seed=0, objects=(1, 2))
    fig = seg.plot_segmentation(data.images, data.masks, np.roll(data.masks, 1, axis=2), ("bg",) + data.class_names)
    assert len(fig.axes) == 12
    plt.close(fig)
    errors = seg.error_map(np.array([[0, 1], [2, 0]]), np.array([[1, 1], [0, 0]]))
    np.testing.assert_allclose(errors[0, 1], 1.0)
    missed, invented = seg.ERROR_COLOURS.values()
    np.testing.assert_allclose(errors[1, 0], missed)  # an object pixel called background
    np.testing.assert_allclose(errors[0, 0], invented)  # a background pixel called an object
    # The two error colours are far apart, and far from every class colour of the masks.
    colours = np.array([missed, invented])
    assert np.abs(colours[0] - colours[1]).sum() > 1.0
    assert min(np.abs(c - k).sum() for c in colours for k in seg.MASK_COLOURS[1:]) > 0.3
    assert "mean" in seg.iou_table({"model": np.array([0.5, np.nan])}, ["a", "b"])


def test_iou_metrics_agree_with_keras_own():
    """MeanIoU and ClassIoU give what keras.metrics.MeanIoU and keras.metrics.IoU give on the same batches."""
    rng = np.random.default_rng(3)
    ours, theirs = seg.MeanIoU(4), keras.metrics.MeanIoU(4, sparse_y_pred=False)
    ours_class = [seg.ClassIoU(4, k) for k in range(4)]
    theirs_class = [keras.metrics.IoU(4, target_class_ids=[k], sparse_y_pred=False) for k in range(4)]
    for _ in range(3):  # accumulated over batches, with class 3 never present
        truth = rng.integers(0, 3, (2, 8, 8))
        scores = rng.random((2, 8, 8, 4)).astype("float32")
        scores[..., 3] = 0
        for metric in [ours, theirs, *ours_class, *theirs_class]:
            metric.update_state(truth, scores)
    assert float(ours.result()) == pytest.approx(float(theirs.result()), abs=1e-6)
    for k in range(3):
        assert float(ours_class[k].result()) == pytest.approx(float(theirs_class[k].result()), abs=1e-6)
    assert np.isnan(float(ours_class[3].result()))  # Keras says 0 for a class that never appeared


# --- the original U-Net's sizes and weights, and objects found --------------------------------------------------


def test_the_original_unet_takes_572_pixels_to_388_as_keras_does():
    sizes = seg.valid_unet_sizes(572, depth=4)
    assert sizes[-1] == ("dec0", 388) and ("bottleneck", 28) in sizes
    keras_sides = {name.split("_")[0]: shape[0] for name, shape in seg.level_shapes(seg.valid_unet(572))}
    assert all(keras_sides[stage] == side for stage, side in sizes)


@given(size=st.integers(1, 3000), depth=st.integers(1, 5))
@settings(max_examples=300, deadline=None)
def test_every_fitting_input_loses_the_same_border_and_every_other_is_refused(size, depth):
    fitting = seg.valid_unet_input_sizes(3000, depth)
    first = seg.valid_unet_sizes(fitting[0], depth)[-1][1]
    if size in fitting:
        sizes = seg.valid_unet_sizes(size, depth)
        assert all(side > 0 for _, side in sizes)
        assert all(side % 2 == 0 for stage, side in sizes if stage.startswith("enc"))
        assert sizes[-1][1] == size - (fitting[0] - first)  # the context consumed does not depend on the size
    else:
        with pytest.raises(ValueError, match=f"input size {size}"):
            seg.valid_unet_sizes(size, depth)


def test_the_border_weights_are_high_in_the_gaps_and_balance_the_classes():
    discs = seg.touching_discs(64, radius=9, gap=2)
    assert discs.max() >= 6
    weights = seg.border_weight_map(discs, w0=10.0, sigma=5.0)
    assert weights.max() > 9 and weights[discs > 0].max() == pytest.approx(weights[discs > 0].min())
    alone = np.zeros((20, 20), int)
    alone[5:10, 5:10] = 1  # one object: no separation term, only the class balance
    single = seg.border_weight_map(alone)
    assert single[alone > 0].sum() == pytest.approx(single[alone == 0].sum())
    for bad in (np.zeros((4, 4), int), np.ones((4, 4), int), np.full((4, 4), -1), np.zeros((2, 4, 4), int)):
        with pytest.raises(ValueError, match="instances must"):
            seg.border_weight_map(bad)


def test_objects_found_counts_each_object_once():
    scenes = make_scenes(20, seed=3, size=32, objects=(2, 4), object_size=(6, 10))
    assert seg.objects_found(scenes, scenes.masks) == 1.0
    assert seg.objects_found(scenes, np.zeros_like(scenes.masks)) == 0.0
    with pytest.raises(ValueError, match="predicted masks have shape"):
        seg.objects_found(scenes, scenes.masks[:, :16])


@settings(max_examples=60, deadline=None)
@given(arrays(np.int8, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 2)))
def test_edge_pixels_are_those_with_a_differently_labelled_neighbour(masks):
    edges = seg.edge_pixels(masks)
    _, height, width = masks.shape
    for i, y, x in np.ndindex(masks.shape):
        neighbours = [(y + dy, x + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        differs = any(masks[i, v, u] != masks[i, y, x] for v, u in neighbours if 0 <= v < height and 0 <= u < width)
        assert edges[i, y, x] == differs, (i, y, x)


def test_misread_objects_counts_objects_painted_with_another_class():
    scenes = make_scenes(20, seed=3, size=32, objects=(2, 4), object_size=(6, 10))
    visible = sum(
        np.any(scenes.masks[i, y0:y1, x0:x1] == cls + 1)
        for i, (boxes, classes) in enumerate(zip(scenes.boxes.astype(int), scenes.box_classes))
        for (x0, y0, x1, y1), cls in zip(boxes, classes)
        if cls >= 0
    )
    total = int((scenes.box_classes >= 0).sum())
    assert seg.misread_objects(scenes, scenes.masks) == (0, total)
    shifted = np.where(scenes.masks > 0, scenes.masks % scenes.masks.max() + 1, 0)  # every class to another
    assert seg.misread_objects(scenes, shifted) == (visible, total)
    with pytest.raises(ValueError, match="predicted masks have shape"):
        seg.misread_objects(scenes, scenes.masks[:, :16])


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.integers(0, 4)),
    st.integers(0, 2**32 - 1),
    st.floats(0, 20),
    st.integers(2, 5),
)
def test_elastic_pair_moves_image_and_mask_together_and_invents_no_class(mask, seed, std, grid):
    image = np.stack([mask / 4.0, 1 - mask / 4.0], axis=-1).astype(np.float32)  # the image shows the mask
    bent_image, bent_mask = seg.elastic_pair(image, mask, np.random.default_rng(seed), grid=grid, std=std)
    assert bent_image.shape == image.shape and bent_image.dtype == image.dtype
    assert bent_mask.shape == mask.shape and bent_mask.dtype == mask.dtype
    assert set(np.unique(bent_mask)) <= set(np.unique(mask))
    assert bent_image.min() >= image.min() - 1e-6 and bent_image.max() <= image.max() + 1e-6  # linear: no overshoot
    unmoved_image, unmoved_mask = seg.elastic_pair(image, mask, np.random.default_rng(seed), grid=grid, std=0.0)
    assert np.array_equal(unmoved_mask, mask) and np.allclose(unmoved_image, image)


def test_elastic_pair_bends_and_names_bad_input():
    scene = make_scenes(1, seed=0, size=64, objects=(1, 1), object_size=(30, 40))
    image, mask = seg.elastic_pair(scene.images[0], scene.masks[0], np.random.default_rng(1), std=6.0)
    assert 0 < np.mean(mask != scene.masks[0]) < 0.5  # the object moved, it did not vanish
    assert not np.allclose(image, scene.images[0])
    with pytest.raises(ValueError, match="need an"):
        seg.elastic_pair(scene.images[0], scene.masks[0][:10], np.random.default_rng(1))
    with pytest.raises(ValueError, match="grid of at least 2"):
        seg.elastic_pair(scene.images[0], scene.masks[0], np.random.default_rng(1), grid=1)
