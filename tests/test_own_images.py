"""The chapters' data loaders on real photographs (tests/photo_fixtures.py), and their errors on bad data."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import photo_fixtures
import pytest
from PIL import Image

from course_utils import detection as det
from course_utils import recognition, segmentation


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return {
        "classes": photo_fixtures.classification_folder(root / "classes"),
        "coco": photo_fixtures.coco_file(root / "detection"),
        "pairs": photo_fixtures.segmentation_folders(root / "segmentation"),
    }


def test_a_folder_of_class_folders_gives_a_stratified_split_with_the_folder_names(photos):
    split = recognition.load_classification(str(photos["classes"]), image_size=48, seed=0)
    assert split.class_names == ("astronaut", "cat", "coffee", "rocket")
    assert split.x_train.shape[1:] == (48, 48, 3) and split.x_test.shape[1:] == (48, 48, 3)
    assert len(split.x_train) + len(split.x_test) == 4 * 12  # the grayscale and the RGBA file included
    assert set(np.unique(split.y_test)) == {0, 1, 2, 3}  # every class on both sides
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0


def test_a_coco_file_of_photographs_of_many_sizes_loads_resized_with_its_boxes(photos):
    data = det.load_detection_data(str(photos["coco"]), image_size=128)
    coco = json.loads(photos["coco"].read_text())
    assert data.class_names == ("cat", "coin")
    assert len(data.images) == len(coco["images"]) == 28
    real = data.classes >= 0  # each image's rows beyond its own boxes are padding (class -1)
    assert real.sum() == len(coco["annotations"])
    assert np.all((data.boxes[real] >= 0) & (data.boxes[real] <= 128))
    assert data.images.shape[1:] == (128, 128, 3)


def test_image_and_mask_folders_load_with_their_class_ids_and_names(photos):
    data = segmentation.load_segmentation(str(photos["pairs"]), image_size=(64, 64))
    assert data.class_names == ("background", "horse", "coin")  # from classes.txt
    assert data.images.shape == (16, 64, 64, 3) and data.masks.shape == (16, 64, 64)
    assert set(np.unique(data.masks)) == {0, 1, 2}
    train, valid, test = segmentation.split_data(data, seed=0)
    assert (len(train), len(valid), len(test)) == (12, 2, 2)
    assert sorted(train.names + valid.names + test.names) == sorted(data.names)
    with pytest.raises(ValueError, match="2 image"):
        segmentation.split_data(data.subset(slice(0, 2)))


def run_chapter(root, tmp_path, chapter, source, tolerated=None):
    """Execute ``book/<chapter>`` at profile smoke on ``source``; return its printed text. It fails on any line
    of stderr but TensorFlow's start-up notices and those matching the regular expression ``tolerated``."""
    import nbformat
    import papermill

    from course_utils import build

    notebook = tmp_path / f"{chapter}.ipynb"
    notebook.write_text(build.generated_files(root)[Path("book") / f"{chapter}.ipynb"])
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"PROFILE": "smoke", "DATA_SOURCE": str(source)},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    cells = nbformat.read(out, as_version=4).cells
    outputs = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    noise = unexpected_stderr("".join(o["text"] for o in outputs if o.get("name") == "stderr"))
    noise = [line for line in noise if not (tolerated and re.search(tolerated, line))]
    assert not noise, f"{chapter} on {source} writes to stderr, which a student sees:\n" + "\n".join(noise)
    return "".join(o.get("text", "") for o in outputs)


# TensorFlow's start-up notices from its C++ logging (before any cell runs; the book drops stderr).
TENSORFLOW_NOTICES = re.compile(
    r"^(I0000 |WARNING: All log messages before absl|To enable the following instructions"
    r"|This TensorFlow binary is optimized)"
)


def unexpected_stderr(text: str) -> list[str]:
    """The lines of a notebook's stderr other than TensorFlow's start-up notices: warnings a student would see."""
    return [line for line in text.splitlines() if line.strip() and not TENSORFLOW_NOTICES.match(line)]


def test_the_stderr_filter_keeps_warnings_and_drops_start_up_notices():
    text = (
        "I0000 00:00:1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use ...\n"
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "/x.py:3: RuntimeWarning: Mean of empty slice\n"
        "W0000 00:00:1 loop_optimizer.cc:934] Skipping loop optimization\n"
    )
    assert unexpected_stderr(text) == [
        "/x.py:3: RuntimeWarning: Mean of empty slice",
        "W0000 00:00:1 loop_optimizer.cc:934] Skipping loop optimization",
    ]


@pytest.mark.notebooks
def test_week4_runs_on_a_folder_of_photographs(root, tmp_path, photos):
    text = run_chapter(root, tmp_path, "week4_segmentation", photos["pairs"])
    assert "DATA_SOURCE = " in text and "the text describes the synthetic scenes" in text
    assert "validation: 2 scenes, test: 2 scenes" in text  # 16 pairs split 12 / 2 / 2
    assert "background" in text and "horse" in text and "coin" in text  # the classes of classes.txt in the tables
    assert "objects misread: skipped" in text


def damaged(tmp_path, photos, name):
    """A copy of one fixture to break."""
    target = tmp_path / name
    shutil.copytree(photos[name].parent if name == "coco" else photos[name], target)
    return target


def test_a_class_with_one_image_is_named(tmp_path, photos):
    folder = damaged(tmp_path, photos, "classes")
    for extra in sorted((folder / "cat").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(ValueError, match=r"Too few images in folder .*cat: 1"):
        recognition.load_classification(str(folder), image_size=32)


def test_an_unreadable_image_is_named(tmp_path, photos):
    folder = damaged(tmp_path, photos, "classes")
    (folder / "cat" / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(ValueError, match=r"Cannot read image .*cat/broken\.jpg"):
        recognition.load_classification(str(folder), image_size=32)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["annotations"][0].update(bbox=[500, 10, 40, 40]), r"photo_00\.jpg.*box outside the image"),
        (lambda c: c["annotations"][0].update(category_id=9), r"photo_00\.jpg.*unknown class id 9"),
        (lambda c: c["images"][0].update(file_name="gone.jpg"), r"gone\.jpg.*file not found"),
    ],
)
def test_bad_coco_annotations_are_named(tmp_path, photos, change, message):
    folder = damaged(tmp_path, photos, "coco")
    coco = json.loads((folder / "annotations.json").read_text())
    change(coco)
    (folder / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(det.AnnotationError, match=message):
        det.load_detection_data(str(folder / "annotations.json"), image_size=64)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m, size: m.unlink(), r"No mask for image .*scene_00\.jpg"),
        (lambda m, size: Image.new("L", (10, 10)).save(m), r"Size mismatch: image .*scene_00\.jpg"),
        (lambda m, size: Image.new("L", size, 7).save(m), r"scene_00\.png has values \[7\] outside the classes"),
    ],
)
def test_bad_masks_are_named(tmp_path, photos, damage, message):
    folder = damaged(tmp_path, photos, "pairs")
    size = Image.open(folder / "images" / "scene_00.jpg").size
    damage(folder / "masks" / "scene_00.png", size)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        segmentation.load_segmentation(str(folder), image_size=(32, 32), class_names=["background", "horse", "coin"])


def test_a_tensorflow_datasets_classification_set_loads_through_the_same_function():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=60):  # random images with the real set's classes, offline
        split = recognition.load_classification("tfds:tf_flowers", image_size=32, max_images=60, seed=0)
    assert split.class_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    assert len(split.x_train) + len(split.x_test) == 60 and split.x_train.shape[1:] == (32, 32, 3)
    assert set(np.unique(split.y_test)) == set(range(5))


def test_a_tensorflow_datasets_segmentation_set_is_recoded_with_its_preset():
    """The pets' trimaps (1 pet, 2 outline, 3 background) become 0 background, 1 pet, 2 outline."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def pets(*args, **kwargs):
        mask = np.full((6, 40, 50, 1), 3, np.uint8)
        mask[:, 10:30, 10:40] = 2
        mask[:, 14:26, 14:36] = 1
        images = np.random.default_rng(0).integers(0, 255, (6, 40, 50, 3), dtype=np.uint8)
        return tf.data.Dataset.from_tensor_slices({"image": images, "segmentation_mask": mask})

    with tfds.testing.mock_data(as_dataset_fn=pets):
        data = segmentation.load_segmentation("tfds:oxford_iiit_pet", image_size=(20, 25), max_examples=6)
    assert data.class_names == ("background", "pet", "outline")
    assert data.images.shape == (6, 20, 25, 3) and data.masks.shape == (6, 20, 25)
    assert data.masks[0, 0, 0] == 0 and data.masks[0, 10, 12] == 1 and data.masks[0, 6, 6] == 2


@pytest.mark.notebooks
def test_week3_runs_on_a_coco_file_of_photographs(root, tmp_path, photos):
    text = run_chapter(root, tmp_path, "week3_detection", photos["coco"])
    assert "the text describes the synthetic scenes" in text
    assert "objects per class: {'cat': " in text and "'coin': " in text  # the file's categories
    assert "validation (4, 64, 64, 3), test (5, 64, 64, 3)" in text  # 28 photographs split 19 / 4 / 5


def test_an_unreadable_photograph_in_a_coco_file_is_named(tmp_path, photos):
    folder = damaged(tmp_path, photos, "coco")
    (folder / "photo_03.jpg").write_bytes(b"truncated")
    with pytest.raises(det.AnnotationError, match=r"image 'photo_03\.jpg' \(id 4\): Cannot read image"):
        det.load_detection_data(str(folder / "annotations.json"), image_size=64)


def cache_stand_in_imagenet_weights(keras_home):
    """Put random MobileNetV2 weights where Keras caches the ImageNet ones (alpha 0.35, 96 px, no top).

    Keras loads a cached file without checking its hash, so the chapter takes
    its ImageNet path offline. The file is written in Keras' legacy h5 layout,
    the one the published weights use.
    """
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    (keras_home / "models").mkdir(parents=True)
    with h5py.File(
        keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5", "w"
    ) as weights_file:
        legacy_h5_format.save_weights_to_hdf5_group(weights_file, base)


@pytest.mark.notebooks
def test_week2_runs_on_a_folder_of_class_folders_and_fills_the_imagenet_rows_when_the_weights_load(
    root, tmp_path, photos, monkeypatch
):
    """One run of the chapter for two things: a reader's own photographs, and ImageNet weights that load (Colab)."""
    cache_stand_in_imagenet_weights(tmp_path / "keras_home")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # the papermill kernel inherits it
    text = run_chapter(root, tmp_path, "week2_recognition", photos["classes"])
    assert "the text describes the synthetic scenes" in text
    assert "images per class, training: {'astronaut': " in text and "'rocket': " in text
    assert "(skipped: the small shapes are scenes" in text and "(skipped: this example turns" in text
    assert "circle" in text  # the imbalance experiment keeps its synthetic scenes and their names
    assert "ImageNet weights available: True" in text
    assert "not available offline" not in text
    for row in ["MobileNetV2, ImageNet, frozen base", "MobileNetV2, ImageNet, fine-tuned"]:
        assert re.search(rf"^{re.escape(row)}\s+[01]\.\d{{3}}\s", text, re.MULTILINE), row
    unfrozen = int(re.search(r"fine-tuning unfroze (\d+) layers", text).group(1))
    assert 0 < unfrozen <= 30


@pytest.mark.notebooks
def test_week5_runs_on_a_folder_of_class_folders(root, tmp_path):
    folder = photo_fixtures.classification_folder(tmp_path / "classes", per_class=30)
    text = run_chapter(root, tmp_path, "week5_metric_learning", folder)
    assert "the text describes the synthetic scenes" in text
    assert "classes: astronaut, cat, coffee, rocket; held out of training: rocket" in text


@pytest.mark.notebooks
@pytest.mark.parametrize(
    "chapter, source, expected",
    [
        ("week3_detection", "tfds:voc/2007", ["objects per class: {'aeroplane': ", "'tvmonitor': ", "images: train ("]),
        (
            "week5_metric_learning",
            "tfds:tf_flowers",
            ["classes: dandelion, daisy, tulips, sunflowers, roses; held out of training: roses"],
        ),
    ],
)
def test_each_chapter_runs_on_a_tensorflow_datasets_name(root, tmp_path, monkeypatch, chapter, source, expected):
    """The kernel starts tests/tfds_kernel/sitecustomize.py: the set's real metadata, made-up examples, offline.

    Week 5 reads a ``tfds:`` source in a branch of its own, and week 3 meets twenty
    classes instead of the photographs' two. Weeks 2 and 4 give any source that
    is not ``"scenes"`` to their loader and run the same cells after it: they run
    on photographs above, and their loaders read the sets (tf_flowers, the pets'
    trimaps) in tests/test_own_images.py, test_recognition.py and test_segmentation.py.
    """
    stand_ins = root / "tests" / "tfds_kernel"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(stand_ins), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("COURSE_TEST_TFDS_EXAMPLES", "150")
    # The stand-in reads TensorFlow Datasets' test metadata, which lacks the dataset_info.json of a real download.
    text = run_chapter(root, tmp_path, chapter, source, tolerated=r"^WARNING:absl:Variant folder .*/testing/metadata/")
    assert f"DATA_SOURCE = '{source}'" in text and "the text describes the synthetic scenes" in text
    for line in expected:
        assert line in text
