"""Tests for course_utils.data: digits, image folders and the tf.data pipeline."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from course_utils import data

# --------------------------------------------------------------------------- import


def test_import_does_not_load_tensorflow():
    code = "import sys, course_utils.data; print('tensorflow' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits32():
    return data.load_digits()


@pytest.fixture(scope="module")
def digits8():
    return data.load_digits(size=8)


def test_digits_shapes_dtypes_range(digits32):
    s = digits32
    assert s.x_train.shape == (1437, 32, 32, 1)
    assert s.x_test.shape == (360, 32, 32, 1)
    assert s.y_train.shape == (1437,) and s.y_test.shape == (360,)
    assert s.x_train.dtype == np.float32 and s.x_test.dtype == np.float32
    assert s.y_train.dtype == np.int32 and s.y_test.dtype == np.int32
    for x in (s.x_train, s.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert s.class_names == tuple("0123456789")
    assert set(s.y_train) == set(s.y_test) == set(range(10))


def test_digits_split_is_stratified(digits32):
    s = digits32
    all_counts = np.bincount(np.concatenate([s.y_train, s.y_test]), minlength=10)
    test_counts = np.bincount(s.y_test, minlength=10)
    # Each digit is in the test set in the proportion of the whole set, to within one image.
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)


def test_digits_test_fraction():
    s = data.load_digits(size=8, test_fraction=0.5)
    assert abs(len(s.x_test) - len(s.x_train)) <= 1


def test_digits_deterministic_for_a_seed(digits32):
    again = data.load_digits(seed=0)
    np.testing.assert_array_equal(again.x_train, digits32.x_train)
    np.testing.assert_array_equal(again.y_test, digits32.y_test)
    other = data.load_digits(seed=1)
    assert not np.array_equal(other.y_test, digits32.y_test)


def test_digits_size_8_keeps_original_pixels(digits8):
    from sklearn.datasets import load_digits

    original = load_digits()
    expected = Counter(
        (img.astype(np.float32).tobytes(), int(t)) for img, t in zip(original.images / 16.0, original.target)
    )
    s = digits8
    assert s.x_train.shape[1:] == (8, 8, 1)
    got = Counter(
        (img[..., 0].tobytes(), int(t))
        for img, t in zip(np.concatenate([s.x_train, s.x_test]), np.concatenate([s.y_train, s.y_test]))
    )
    assert got == expected


def _bilinear_matrix(n_out, n_in):
    """(n_out, n_in) weights of 1-D linear interpolation, pixel centres aligned, edges repeated."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = np.clip((i + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = int(np.floor(c))
        hi = min(lo + 1, n_in - 1)
        weights[i, lo] += 1 - (c - lo)
        weights[i, hi] += c - lo
    return weights


def test_digits_resize_is_bilinear_upscaling_of_the_originals(digits8, digits32):
    # The split depends on the seed and labels only, so both sizes hold the same images in the same order.
    np.testing.assert_array_equal(digits8.y_train, digits32.y_train)
    small, big = digits8.x_train[..., 0], digits32.x_train[..., 0]
    w = _bilinear_matrix(32, 8)
    expected = np.einsum("ij,njk,lk->nil", w, small, w)
    np.testing.assert_allclose(big, expected, atol=1e-5)


def test_check_integer_accepts_integers_and_names_bad_values():
    assert data.check_integer(3, "k") == 3
    value = data.check_integer(np.int64(5), "k")
    assert value == 5 and type(value) is int
    assert data.check_integer(0, "k", minimum=0) == 0
    assert data.check_integer(16, "size", minimum=16) == 16
    for bad in (True, False, 2.0, 2.5, "3", None):
        with pytest.raises(ValueError, match=f"k must be a positive integer, got {bad!r}"):
            data.check_integer(bad, "k")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        data.check_integer(0, "batch_size")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got -3"):
        data.check_integer(-3, "batch_size")
    with pytest.raises(ValueError, match="top_layers must be a non-negative integer, got -1"):
        data.check_integer(-1, "top_layers", minimum=0)
    with pytest.raises(ValueError, match="size must be an integer >= 16, got 15"):
        data.check_integer(15, "size", minimum=16)


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        data.load_digits(size=0)
    with pytest.raises(ValueError, match="test_fraction"):
        data.load_digits(test_fraction=1.0)


# --------------------------------------------------------------------------- image folders


def _save(path, array, **kwargs):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, **kwargs)


def _solid(h, w, rgb):
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3))


@pytest.fixture
def folder(tmp_path):
    """root/cats: 3 images, root/dogs: 3 images, plus files and folders to ignore."""
    root = tmp_path / "pets"
    cats, dogs = root / "cats", root / "dogs"
    cats.mkdir(parents=True)
    dogs.mkdir()
    _save(cats / "a_red.png", _solid(20, 30, (255, 0, 0)))
    _save(cats / "b_green.jpg", _solid(16, 16, (0, 255, 0)), quality=95)
    _save(cats / "c_gray.png", np.full((10, 12), 128))  # mode "L"
    rgba = np.zeros((12, 12, 4), dtype=np.uint8)
    rgba[:6] = (0, 0, 255, 255)  # top half opaque blue, bottom half fully transparent
    _save(dogs / "a_rgba.png", rgba)
    _save(dogs / "b_blue.JPEG", _solid(8, 8, (0, 0, 255)))  # upper-case extension
    # 40 tall x 20 wide: top half black, bottom half white (checks height/width are not swapped)
    half = np.zeros((40, 20, 3), dtype=np.uint8)
    half[20:] = 255
    _save(dogs / "c_half.bmp", half)
    (dogs / "notes.txt").write_text("not an image")
    (dogs / "sub").mkdir()
    _save(dogs / "sub" / "ignored.png", _solid(4, 4, (9, 9, 9)))
    (root / ".ipynb_checkpoints").mkdir()
    (root / "README.md").write_text("class folders below")
    return root


def test_image_folder_loads_images_labels_and_classes(folder):
    images, labels, class_names = data.load_image_folder(folder, image_size=(24, 16))
    assert class_names == ("cats", "dogs")
    assert images.shape == (6, 24, 16, 3)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])

    red, green, gray, rgba, blue, half = images
    np.testing.assert_allclose(red, np.broadcast_to([1, 0, 0], red.shape), atol=1e-6)
    np.testing.assert_allclose(green, np.broadcast_to([0, 1, 0], green.shape), atol=0.03)  # JPEG is lossy
    np.testing.assert_allclose(gray, 128 / 255, atol=1e-6)  # grayscale -> 3 equal channels
    np.testing.assert_allclose(blue, np.broadcast_to([0, 0, 1], blue.shape), atol=0.03)
    # RGBA: opaque part keeps its colour, transparent part becomes white.
    np.testing.assert_allclose(rgba[:8], np.broadcast_to([0, 0, 1], rgba[:8].shape), atol=1e-6)
    np.testing.assert_allclose(rgba[-8:], 1.0, atol=1e-6)
    # Tall image resized to 24 rows x 16 columns: black rows above white rows.
    np.testing.assert_allclose(half[:10], 0.0, atol=1e-6)
    np.testing.assert_allclose(half[-10:], 1.0, atol=1e-6)


def test_image_folder_default_size(folder):
    images, _, _ = data.load_image_folder(str(folder))  # str paths work too
    assert images.shape == (6, 64, 64, 3)


def test_image_folder_reads_gif(tmp_path):
    (tmp_path / "x").mkdir()
    Image.fromarray(_solid(5, 5, (255, 0, 0)).copy()).convert("P").save(tmp_path / "x" / "one.GIF")
    images, labels, names = data.load_image_folder(tmp_path, image_size=(4, 4))
    assert names == ("x",) and images.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(images[0], np.broadcast_to([1, 0, 0], (4, 4, 3)), atol=1e-6)


def test_image_folder_given_class_names_set_order_and_subset(folder):
    _, labels, names = data.load_image_folder(folder, image_size=(8, 8), class_names=["dogs", "cats"])
    assert names == ("dogs", "cats")
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])  # dogs are loaded first, as label 0

    images, labels, names = data.load_image_folder(folder, image_size=(8, 8), class_names=["cats"])
    assert names == ("cats",) and len(images) == 3 and set(labels) == {0}


def test_image_folder_missing_root(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError) as info:
        data.load_image_folder(missing)
    assert str(missing) in str(info.value)


def test_image_folder_root_is_a_file(tmp_path):
    file = tmp_path / "file.png"
    file.write_bytes(b"")
    with pytest.raises(NotADirectoryError) as info:
        data.load_image_folder(file)
    assert str(file) in str(info.value)


def test_image_folder_without_class_folders(tmp_path):
    _save(tmp_path / "loose.png", _solid(4, 4, (0, 0, 0)))  # images directly in root do not count
    with pytest.raises(ValueError, match="No class folders") as info:
        data.load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_image_folder_empty_class_folder(folder):
    empty = folder / "birds"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no images") as info:
        data.load_image_folder(folder)
    assert str(empty) in str(info.value)


def test_image_folder_class_name_without_folder(folder):
    with pytest.raises(FileNotFoundError) as info:
        data.load_image_folder(folder, class_names=["cats", "horses"])
    assert str(folder / "horses") in str(info.value)
    assert "horses" in str(info.value)


def test_image_folder_corrupt_random_bytes(folder):
    bad = folder / "cats" / "z_bad.png"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match="Cannot read image") as info:
        data.load_image_folder(folder, image_size=(8, 8))
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("load_truncated", [False, True])
def test_image_folder_truncated_png(folder, monkeypatch, load_truncated):
    # Even when a notebook has set PIL's LOAD_TRUNCATED_IMAGES, the truncated file is reported.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    good = folder / "dogs" / "good.png"
    _save(good, np.random.default_rng(1).integers(0, 256, (32, 32, 3)))
    truncated = folder / "dogs" / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="Cannot read image") as info:
        data.load_image_folder(folder, image_size=(8, 8))
    assert str(truncated) in str(info.value)


def test_image_folder_progress_bar_only_for_many_files(tmp_path, capsys):
    few = tmp_path / "few" / "a"
    few.mkdir(parents=True)
    for i in range(3):
        _save(few / f"{i}.png", _solid(2, 2, (i, i, i)))
    data.load_image_folder(tmp_path / "few", image_size=(2, 2))
    assert "Loading images" not in capsys.readouterr().err

    many = tmp_path / "many" / "a"
    many.mkdir(parents=True)
    for i in range(200):
        _save(many / f"{i:03d}.png", _solid(2, 2, (i, i, i)))
    images, _, _ = data.load_image_folder(tmp_path / "many", image_size=(2, 2))
    assert "Loading images" in capsys.readouterr().err
    np.testing.assert_allclose(images[:, 0, 0, 0] * 255, np.arange(200), atol=1e-3)  # sorted file order


# --------------------------------------------------------------------------- make_dataset


def _arrays(n=10, size=4):
    rng = np.random.default_rng(0)
    return rng.random((n, size, size, 3), dtype=np.float32), np.arange(n, dtype=np.int32)


def _epoch(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_make_dataset_batches_in_order():
    x, y = _arrays()
    ds = data.make_dataset(x, y, batch_size=4)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert batches[0][0].shape == (4, 4, 4, 3) and batches[0][1].shape == (4,)
    xs, ys = _epoch(ds)
    np.testing.assert_array_equal(ys, y)
    np.testing.assert_array_equal(xs, x)


@pytest.mark.parametrize("cache", [True, False])
def test_make_dataset_shuffle_is_seeded_and_reshuffles(cache):
    x, y = _arrays(n=50)
    first = data.make_dataset(x, y, batch_size=8, shuffle=True, seed=3, cache=cache)
    second = data.make_dataset(x, y, batch_size=8, shuffle=True, seed=3, cache=cache)
    epochs_a = [_epoch(first) for _ in range(2)]
    epochs_b = [_epoch(second) for _ in range(2)]
    for (xa, ya), (_, yb) in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ya, yb)  # same seed, same orders
        assert sorted(ya) == list(y)  # each epoch has every example once
        np.testing.assert_array_equal(xa, x[ya])  # images stay with their labels
    assert not np.array_equal(epochs_a[0][1], y)  # shuffled
    assert not np.array_equal(epochs_a[0][1], epochs_a[1][1])  # new order each epoch
    other = data.make_dataset(x, y, batch_size=8, shuffle=True, seed=4)
    assert not np.array_equal(_epoch(other)[1], epochs_a[0][1])


def test_make_dataset_augment_gets_training_true():
    class AddOneWhenTraining:
        def __call__(self, images, training=False):
            return images + 1.0 if training else images

    x, y = _arrays()
    xs, ys = _epoch(data.make_dataset(x, y, batch_size=4, augment=AddOneWhenTraining()))
    np.testing.assert_allclose(xs, x + 1.0)
    np.testing.assert_array_equal(ys, y)


def test_make_dataset_augment_plain_function():
    x, y = _arrays()
    xs, _ = _epoch(data.make_dataset(x, y, batch_size=4, augment=lambda images: images * 0.0))
    assert np.all(xs == 0.0)


def test_make_dataset_augment_with_keras_random_layer():
    import keras

    flip = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=1)])
    x, y = _arrays(n=32)
    xs, ys = _epoch(data.make_dataset(x, y, batch_size=8, augment=flip))
    flipped = x[:, :, ::-1]
    is_flipped = np.all(np.isclose(xs, flipped), axis=(1, 2, 3))
    is_same = np.all(np.isclose(xs, x), axis=(1, 2, 3))
    assert np.all(is_flipped | is_same)  # every image is the original or its mirror image
    assert is_flipped.any() and is_same.any()  # the layer ran in training mode: some flipped


def test_make_dataset_length_mismatch():
    x, y = _arrays()
    with pytest.raises(ValueError, match="10 images, 9 labels"):
        data.make_dataset(x, y[:9])


def test_make_dataset_requires_4d_images():
    x, y = _arrays()
    with pytest.raises(ValueError, match=r"4-D.*\(10, 4, 4\)"):
        data.make_dataset(x[..., 0], y)


def test_make_dataset_bad_batch_size():
    x, y = _arrays()
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(x, y, batch_size=0)


def test_tfds_sources_are_read_the_same_way_everywhere():
    assert data.tfds_name("tfds:voc/2007") == "voc/2007"
    assert data.tfds_name("scenes") is None and data.tfds_name(Path("tfds:x")) is None
    with pytest.raises(ValueError, match="'tfds:' names no data set"):
        data.tfds_name("tfds:")
