"""Tests of course_utils.scenes: the synthetic data of weeks 2-5.

The annotations (labels, boxes, box classes, masks) must agree exactly with
each other and with the requested settings, since the detection and
segmentation chapters train on them without further checks.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from course_utils.scenes import EXTRA_SHAPES, SHAPES, Scenes, make_scenes

SIZE = 64


@pytest.fixture(scope="module")
def single() -> Scenes:
    return make_scenes(400, size=SIZE, seed=11)


@pytest.fixture(scope="module")
def crowd() -> Scenes:
    return make_scenes(300, size=SIZE, seed=12, objects=(0, 6))


def _objects(scenes: Scenes):
    """Yield (image index, slot, class id, x0, y0, x1, y1) for every real object."""
    for i in range(len(scenes)):
        for j in range(scenes.boxes.shape[1]):
            cls = int(scenes.box_classes[i, j])
            if cls < 0:
                continue
            x0, y0, x1, y1 = (int(v) for v in scenes.boxes[i, j])
            yield i, j, cls, x0, y0, x1, y1


def _assert_same(a: Scenes, b: Scenes) -> None:
    for field in ("images", "labels", "boxes", "box_classes", "masks"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        assert np.array_equal(x, y), field
    assert a.class_names == b.class_names


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_arrays():
    kwargs = dict(size=48, seed=5, objects=(1, 4), noise=0.05)
    # 150 images at 48 px span several internal chunks.
    _assert_same(make_scenes(150, **kwargs), make_scenes(150, **kwargs))


def test_different_seeds_give_different_scenes():
    a = make_scenes(20, seed=1)
    b = make_scenes(20, seed=2)
    assert not np.array_equal(a.images, b.images)
    assert not np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.boxes, b.boxes)


def test_images_within_a_batch_differ(single):
    flat = single.images.reshape(len(single), -1)
    assert len(np.unique(flat[:50], axis=0)) == 50


def test_no_global_random_state_used():
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    make_scenes(5, seed=3)
    assert np.random.random() == before


# ---------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("size, objects", [(64, (1, 1)), (40, (2, 5)), (128, (0, 3))])
def test_shapes_dtypes_and_ranges(size, objects):
    n = 12
    s = make_scenes(n, size=size, seed=0, objects=objects)
    hi = objects[1]
    assert len(s) == n
    assert s.images.shape == (n, size, size, 3) and s.images.dtype == np.float32
    assert s.labels.shape == (n,) and s.labels.dtype == np.int32
    assert s.boxes.shape == (n, hi, 4) and s.boxes.dtype == np.float32
    assert s.box_classes.shape == (n, hi) and s.box_classes.dtype == np.int32
    assert s.masks.shape == (n, size, size) and s.masks.dtype == np.uint8
    assert s.class_names == SHAPES
    assert s.images.min() >= 0.0 and s.images.max() <= 1.0
    assert np.isfinite(s.images).all()
    assert s.masks.max() <= len(SHAPES)
    assert set(np.unique(s.box_classes)) <= {-1, 0, 1, 2, 3}


def test_zero_images():
    s = make_scenes(0)
    assert len(s) == 0
    assert s.images.shape == (0, 64, 64, 3)
    assert s.boxes.shape == (0, 1, 4)


def test_images_are_textured_and_noisy(single):
    # Background pixels are far from flat: colour field + stripes + noise.
    bg = single.images[0][single.masks[0] == 0]
    assert bg.std(axis=0).min() > 0.02
    # Object pixels get the noise too ...
    obj = single.images[0][single.masks[0] > 0]
    assert 0.02 < obj.std(axis=0).mean() < 0.08
    # ... and without noise they are one flat colour.
    clean = make_scenes(3, seed=11, noise=0.0)
    for img, mask in zip(clean.images, clean.masks):
        assert np.ptp(img[mask > 0], axis=0).max() < 1e-6


def test_noise_sets_pixel_noise_level():
    quiet = make_scenes(20, seed=4, noise=0.0)
    loud = make_scenes(20, seed=4, noise=0.2)

    # High-pass residual (pixel minus right neighbour) grows with the noise.
    def roughness(s):
        return np.abs(np.diff(s.images, axis=2)).mean()

    assert roughness(loud) > 3 * roughness(quiet)


# ----------------------------------------------------- boxes, masks, classes


@pytest.mark.parametrize("name", ["single", "crowd"])
def test_boxes_inside_image_with_positive_size(name, request):
    s = request.getfixturevalue(name)
    real = s.box_classes >= 0
    b = s.boxes[real]
    assert np.array_equal(b, np.round(b)), "box corners are whole pixels"
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= SIZE).all() and (b[:, 3] <= SIZE).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    # Padding rows are all -1 and come after the real objects.
    assert (s.boxes[~real] == -1).all()
    counts = s.object_counts()
    assert np.array_equal(real, np.arange(real.shape[1])[None, :] < counts[:, None])


@pytest.mark.parametrize("name", ["single", "crowd"])
def test_each_box_is_tight_box_of_its_mask_pixels(name, request):
    s = request.getfixturevalue(name)
    n_objects = 0
    for i, _, cls, x0, y0, x1, y1 in _objects(s):
        n_objects += 1
        crop = s.masks[i, y0:y1, x0:x1]
        # Only this object (and background) inside its box, with the box's class.
        assert set(np.unique(crop)) <= {0, cls + 1}
        on = crop == cls + 1
        # Tight: the first and last rows and columns all contain object pixels.
        assert on[0].any() and on[-1].any() and on[:, 0].any() and on[:, -1].any()
    assert n_objects == s.object_counts().sum() > 0


@pytest.mark.parametrize("name", ["single", "crowd"])
def test_no_mask_pixels_outside_boxes(name, request):
    s = request.getfixturevalue(name)
    inside = np.zeros(s.masks.shape, dtype=bool)
    for i, _, _, x0, y0, x1, y1 in _objects(s):
        inside[i, y0:y1, x0:x1] = True
    assert not s.masks[~inside].any()
    # Every labelled pixel class is one of the image's box classes.
    for i in range(len(s)):
        present = set(np.unique(s.masks[i])) - {0}
        assert present == {int(c) + 1 for c in s.box_classes[i] if c >= 0}


def test_boxes_keep_a_gap(crowd):
    for i in range(len(crowd)):
        b = crowd.boxes[i][crowd.box_classes[i] >= 0]
        for p in range(len(b)):
            for q in range(p + 1, len(b)):
                apart_x = b[p, 2] < b[q, 0] or b[q, 2] < b[p, 0]
                apart_y = b[p, 3] < b[q, 1] or b[q, 3] < b[p, 1]
                assert apart_x or apart_y, (i, b[p], b[q])


@pytest.mark.parametrize("name", ["single", "crowd"])
def test_label_is_class_of_largest_object(name, request):
    s = request.getfixturevalue(name)
    area = np.zeros(s.box_classes.shape, dtype=np.int64)
    for i, j, cls, x0, y0, x1, y1 in _objects(s):
        area[i, j] = np.count_nonzero(s.masks[i, y0:y1, x0:x1] == cls + 1)
    counts = s.object_counts()
    has = counts > 0
    largest = np.argmax(area, axis=1)
    expected = np.where(has, s.box_classes[np.arange(len(s)), largest], -1)
    assert np.array_equal(s.labels, expected)


def test_object_counts_within_range(crowd, single):
    counts = crowd.object_counts()
    assert counts.dtype.kind == "i"
    assert counts.min() >= 0 and counts.max() <= 6
    # All counts of the range occur.
    assert set(np.unique(counts)) == set(range(7))
    assert (crowd.labels[counts == 0] == -1).all()
    assert (crowd.labels[counts > 0] >= 0).all()
    assert (single.object_counts() == 1).all()
    s = make_scenes(60, seed=3, objects=(3, 5))
    assert 3 <= s.object_counts().min() and s.object_counts().max() <= 5


def test_single_object_labels_equal_the_box_class(single):
    assert np.array_equal(single.labels, single.box_classes[:, 0])


def test_classes_roughly_uniform(single):
    share = np.bincount(single.labels, minlength=4) / len(single)
    assert ((share >= 0.15) & (share <= 0.35)).all(), share


def test_several_object_sizes_occur(single, crowd):
    # Detection needs objects at several scales.
    widths = single.boxes[:, 0, 2] - single.boxes[:, 0, 0]
    assert widths.min() <= SIZE // 5 and widths.max() >= SIZE // 2 - 2
    w = (crowd.boxes[..., 2] - crowd.boxes[..., 0])[crowd.box_classes >= 0]
    assert w.max() >= 2 * w.min()


def test_object_size_is_respected():
    s = make_scenes(100, seed=2, object_size=(20, 24))
    extent = np.maximum(s.boxes[:, 0, 2] - s.boxes[:, 0, 0], s.boxes[:, 0, 3] - s.boxes[:, 0, 1])
    # Triangles and anti-aliased corners can lose a pixel or two at each side.
    assert extent.max() <= 24 and extent.min() >= 20 - 4


def test_shapes_look_like_their_class():
    s = make_scenes(200, seed=6, object_size=(12, 30), objects=(1, 2), size=96)
    for i, _, cls, x0, y0, x1, y1 in _objects(s):
        on = s.masks[i, y0:y1, x0:x1] == cls + 1
        fill = on.mean()
        mirror = np.array_equal(on, on[::-1]) and np.array_equal(on, on[:, ::-1])
        name = SHAPES[cls]
        if name == "square":
            assert on.all() and on.shape[0] == on.shape[1]
        elif name == "circle":
            assert 0.74 < fill < 0.86 and mirror
        elif name == "diamond":
            assert 0.48 < fill < 0.65 and mirror and np.array_equal(on, on.T)
        else:  # a triangle has no two perpendicular mirror axes
            assert 0.44 < fill < 0.62 and not mirror


def test_extra_shapes_are_drawn_only_when_named_and_look_like_their_class():
    s = make_scenes(200, seed=6, object_size=(12, 30), objects=(1, 2), size=96, classes=EXTRA_SHAPES)
    assert s.class_names == EXTRA_SHAPES and set(np.unique(s.labels)) == {0, 1, 2, 3}
    lying = standing = 0
    for i, _, cls, x0, y0, x1, y1 in _objects(s):
        on = s.masks[i, y0:y1, x0:x1] == cls + 1
        fill, (h, w) = on.mean(), on.shape
        name = EXTRA_SHAPES[cls]
        if name == "rectangle":
            assert on.all() and abs(max(h, w) - 2 * min(h, w)) <= 2  # edges halved by rounding count as inside
            lying, standing = lying + (w > h), standing + (h > w)
        elif name == "cross":
            mirror = np.array_equal(on, on[::-1]) and np.array_equal(on, on[:, ::-1])
            assert 0.5 < fill < 0.66 and mirror and on[h // 2].all() and not on[0, 0]
        else:  # regular polygons fill more of their box than a triangle, less than a square
            assert 0.6 < fill < 0.86, (name, fill)
    assert lying and standing
    # The default classes, and the images drawn for them, do not change.
    default = make_scenes(20, size=32, seed=1)
    assert default.class_names == SHAPES
    named = make_scenes(20, size=32, seed=1, classes=SHAPES)
    assert np.array_equal(default.images, named.images)
    with pytest.raises(ValueError, match="pentagon"):
        make_scenes(2, classes=("heptagon",))


def test_colour_does_not_reveal_the_class():
    s = make_scenes(800, seed=8, noise=0.0)
    colour = np.stack([img[mask > 0][0] for img, mask in zip(s.images, s.masks)])
    means = np.stack([colour[s.labels == c].mean(axis=0) for c in range(4)])
    assert np.abs(means - colour.mean(axis=0)).max() < 0.06


def test_objects_contrast_with_their_surroundings():
    s = make_scenes(200, seed=9, noise=0.0)
    for i, _, cls, x0, y0, x1, y1 in _objects(s):
        ya, yb, xa, xb = max(y0 - 3, 0), min(y1 + 3, SIZE), max(x0 - 3, 0), min(x1 + 3, SIZE)
        ring = s.images[i, ya:yb, xa:xb][s.masks[i, ya:yb, xa:xb] == 0].mean(axis=0)
        obj = s.images[i][s.masks[i] == cls + 1][0]
        assert np.linalg.norm(obj - ring) > 0.25


# --------------------------------------------------------------------- classes


def test_classes_subset_and_order():
    classes = ("diamond", "circle")
    s = make_scenes(120, seed=1, classes=classes)
    assert s.class_names == classes
    assert set(np.unique(s.labels)) == {0, 1}
    assert set(np.unique(s.masks)) == {0, 1, 2}
    for i, _, cls, x0, y0, x1, y1 in _objects(s):
        on = s.masks[i, y0:y1, x0:x1] == cls + 1
        # diamond (id 0) fills about half of its box, circle (id 1) about 79 %.
        assert (on.mean() < 0.7) == (cls == 0)


def test_single_class():
    s = make_scenes(10, seed=1, classes=["square"])
    assert s.class_names == ("square",)
    assert (s.labels == 0).all()
    assert set(np.unique(s.masks)) == {0, 1}


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, mention",
    [
        (dict(n=-1), "n must be a non-negative integer, got -1"),
        (dict(n=2.5), "n "),
        (dict(n=3, size=8), "size must be an integer >= 16, got 8"),
        (dict(n=3, size=15), "size must be an integer >= 16, got 15"),
        (dict(n=3, objects=(3, 2)), "objects=(3, 2)"),
        (dict(n=3, objects=(-1, 2)), "objects[0] must be a non-negative integer, got -1"),
        (dict(n=3, objects="many"), "objects"),
        (dict(n=3, object_size=(2, 10)), "object_size=(2, 10)"),
        (dict(n=3, object_size=(10, 65)), "object_size=(10, 65)"),
        (dict(n=3, object_size=(20, 10)), "object_size=(20, 10)"),
        (dict(n=3, noise=-0.1), "noise=-0.1"),
        (dict(n=3, noise=float("nan")), "noise=nan"),
        (dict(n=3, classes=("circle", "heptagon")), "heptagon"),
        (dict(n=3, classes=()), "classes"),
        (dict(n=3, classes=("circle", "circle")), "classes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, mention):
    with pytest.raises(ValueError) as err:
        make_scenes(**kwargs)
    assert mention in str(err.value)


def test_impossible_crowding_raises_instead_of_hanging():
    start = time.perf_counter()
    # Cannot fit geometrically: caught before drawing anything.
    with pytest.raises(ValueError, match=r"size=64.*objects=\(30, 30\).*object_size=\(10, 12\)"):
        make_scenes(5, objects=(30, 30), object_size=(10, 12))
    # Fits on paper (25 slots) but random placement cannot find room: bounded retries.
    with pytest.raises(ValueError, match=r"size=64.*objects=\(20, 20\).*object_size=\(10, 12\)"):
        make_scenes(5, objects=(20, 20), object_size=(10, 12))
    # Tiny images with default sizes.
    with pytest.raises(ValueError, match="size=16"):
        make_scenes(5, size=16, objects=(12, 12))
    assert time.perf_counter() - start < 5.0


def test_crowded_but_feasible_settings_work():
    s = make_scenes(30, seed=2, objects=(4, 8), object_size=(8, 12), size=48)
    counts = s.object_counts()
    assert counts.min() >= 4 and counts.max() <= 8


# ---------------------------------------------------------------- Scenes API


def test_subset(crowd):
    idx = np.array([5, 0, 7])
    sub = crowd.subset(idx)
    assert isinstance(sub, Scenes) and len(sub) == 3
    assert np.array_equal(sub.images, crowd.images[idx])
    assert np.array_equal(sub.masks, crowd.masks[idx])
    assert np.array_equal(sub.boxes, crowd.boxes[idx])
    assert np.array_equal(sub.box_classes, crowd.box_classes[idx])
    assert np.array_equal(sub.labels, crowd.labels[idx])
    assert sub.class_names == crowd.class_names
    assert np.array_equal(sub.object_counts(), crowd.object_counts()[idx])

    sliced = crowd.subset(slice(10, 20))
    assert len(sliced) == 10 and np.array_equal(sliced.images, crowd.images[10:20])

    chosen = crowd.subset(crowd.labels == 2)
    assert len(chosen) == int((crowd.labels == 2).sum()) and (chosen.labels == 2).all()

    one = crowd.subset(3)
    assert len(one) == 1 and one.images.shape == (1, SIZE, SIZE, 3)


def test_binary_masks(crowd):
    binary = crowd.binary_masks()
    assert binary.dtype == np.uint8 and binary.shape == crowd.masks.shape
    assert set(np.unique(binary)) == {0, 1}
    assert np.array_equal(binary == 1, crowd.masks > 0)


def test_scenes_is_frozen(single):
    with pytest.raises(AttributeError):
        single.labels = None


def test_package_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from course_utils.scenes import make_scenes\n"
        "make_scenes(2)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
