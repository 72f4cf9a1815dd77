"""Segmentation data: :class:`SegmentationData`, splitting it, and loading image/mask folders or TFDS sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from course_utils.data import IMAGE_EXTENSIONS, check_image_size, check_integer, read_rgb, tfds_name


@dataclass(frozen=True, eq=False)
class SegmentationData:
    """Images (n, H, W, 3) float32 in [0, 1], masks (n, H, W) uint8 class ids, the class names, and the file stems."""

    images: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def binary_masks(self) -> np.ndarray:
        """Object-versus-background masks (every class but 0 is "object"), uint8 of 0/1, as ``Scenes`` has."""
        return (self.masks > 0).astype(np.uint8)

    def subset(self, index) -> SegmentationData:
        """The images selected by ``index`` (integer array, boolean mask or slice)."""
        names = tuple(np.asarray(self.names, dtype=object)[index]) if self.names else ()
        return SegmentationData(self.images[index], self.masks[index], self.class_names, names)


def split_data(data, valid_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0):
    """Shuffle ``data`` (``SegmentationData`` or ``Scenes``) and cut it into (train, validation, test).

    Each part gets at least one image; fewer than three images, or fractions that leave no training
    images, are an error naming the counts.
    """
    n = len(data)
    n_valid, n_test = max(1, round(valid_fraction * n)), max(1, round(test_fraction * n))
    if n - n_valid - n_test < 1:
        raise ValueError(
            f"{n} image(s) cannot be split into training, validation ({valid_fraction:.0%}) and test "
            f"({test_fraction:.0%}) parts with at least one image each: add images"
        )
    order = np.random.default_rng(seed).permutation(n)
    return (
        data.subset(np.sort(order[n_valid + n_test :])),
        data.subset(np.sort(order[:n_valid])),
        data.subset(np.sort(order[n_valid : n_valid + n_test])),
    )


TFDS_PRESETS = {
    # The pets' trimaps: 1 pet, 2 outline, 3 background; mapped to 0 background, 1 pet, 2 outline.
    "oxford_iiit_pet": {
        "image_key": "image",
        "mask_key": "segmentation_mask",
        "mask_map": {3: 0, 1: 1, 2: 2},
        "class_names": ("background", "pet", "outline"),
    },
}


def load_segmentation(
    source,
    masks=None,
    image_size=(64, 64),
    class_names=None,
    split: str = "train",
    max_examples: int | None = None,
    mask_map=None,
) -> SegmentationData:
    """Load images with their masks, from folders or from TensorFlow Datasets, resized to ``image_size``.

    * **Folders**: ``source`` is the folder of images and ``masks`` the folder of
      masks; without ``masks``, ``source`` must hold the sub-folders ``images/``
      and ``masks/``. An image and its mask share the file name without the
      suffix (``cat_01.jpg`` and ``cat_01.png``). Masks are single-channel images
      of class ids (0 background); use PNG (lossless). Errors name the file: an
      image without a mask, a mask without an image, an image and mask of
      different sizes, a mask value that is not a class.
    * **TensorFlow Datasets**: ``source="tfds:<name>"``, e.g. ``"tfds:oxford_iiit_pet"``
      (downloads on first use: for Colab), with ``split`` and ``max_examples``.
      Known sets (:data:`TFDS_PRESETS`) come with their mask mapping and class names.

    ``class_names`` fixes the classes (default: the lines of ``classes.txt`` in
    ``source`` if there is one, background first, else ``class0``, ``class1``, ...
    up to the largest value found). ``mask_map`` (dict stored value -> class id) recodes
    mask values first, e.g. ``{255: 1}`` for black-and-white masks. Images are
    resized bilinearly, masks by nearest neighbour (no invented classes at edges).
    """
    height, width = check_image_size(image_size)
    if max_examples is not None:
        max_examples = check_integer(max_examples, "max_examples")
    if (name := tfds_name(source)) is not None:
        return _load_tfds(name, (height, width), class_names, split, max_examples, mask_map)
    root = Path(source)
    image_dir, mask_dir = _pair_folders(root, masks)
    if class_names is None and masks is None:
        class_names = _names_from_file(root / "classes.txt")
    pairs = _match_pairs(image_dir, mask_dir, max_examples)
    images, raw_masks = _read_pairs(pairs, height, width)
    mask_array, names = _class_ids(raw_masks, [mask_path for _, _, mask_path in pairs], class_names, mask_map)
    return SegmentationData(images, mask_array, names, tuple(stem for stem, _, _ in pairs))


def _pair_folders(root: Path, masks) -> tuple[Path, Path]:
    """The image and mask folders, ``root/images`` and ``root/masks`` unless ``masks`` is given; both must exist."""
    if masks is None:
        image_dir, mask_dir = root / "images", root / "masks"
        if not (image_dir.is_dir() and mask_dir.is_dir()):
            raise FileNotFoundError(
                f"{root} should hold the folders 'images' and 'masks' (or pass masks=<mask folder>); "
                "for a TensorFlow Datasets set write source='tfds:<name>'"
            )
    else:
        image_dir, mask_dir = root, Path(masks)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"Folder not found: {folder}")
    return image_dir, mask_dir


def _names_from_file(names_file: Path):
    """The class names in ``names_file`` (one a line, background first, blank lines skipped), or ``None`` if absent."""
    if not names_file.is_file():
        return None
    return [line.strip() for line in names_file.read_text().splitlines() if line.strip()]


def _image_files(folder: Path) -> dict[str, Path]:
    """The image files of ``folder`` by stem, hidden ones skipped; a repeated stem would make the pairing ambiguous."""
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in files:
                raise ValueError(f"Two files named {p.stem!r} in {folder}: {files[p.stem].name} and {p.name}")
            files[p.stem] = p
    return files


def _match_pairs(image_dir: Path, mask_dir: Path, max_examples) -> list[tuple[str, Path, Path]]:
    """``(stem, image path, mask path)`` of the first ``max_examples`` images by stem; every file must have its partner.

    An image without a mask or a mask without an image is an error naming the
    file, rather than a silently smaller data set.
    """
    image_files, mask_files = _image_files(image_dir), _image_files(mask_dir)
    if not image_files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}")
    for stem, path in image_files.items():
        if stem not in mask_files:
            raise FileNotFoundError(f"No mask for image {path}: expected a file named {stem}.png in {mask_dir}")
    orphans = sorted(set(mask_files) - set(image_files))
    if orphans:
        raise ValueError(f"Mask without an image: {mask_files[orphans[0]]} (no {orphans[0]}.* in {image_dir})")
    return [(stem, image_files[stem], mask_files[stem]) for stem in sorted(image_files)[:max_examples]]


def _read_pairs(pairs, height: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The resized images, float32 ``(n, height, width, 3)`` in ``[0, 1]``, and the resized masks of ``pairs``."""
    images = np.empty((len(pairs), height, width, 3), dtype=np.float32)
    raw_masks = []
    for i, (_, image_path, mask_path) in enumerate(pairs):
        images[i], mask_array = _read_pair(image_path, mask_path, height, width)
        raw_masks.append(mask_array)
    return images, raw_masks


def _read_pair(image_path: Path, mask_path: Path, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (bilinear) and its mask (nearest neighbour: no invented classes at edges), resized, of equal sizes.

    Any failure to read either file is a ``ValueError`` naming both files.
    """
    try:
        image = read_rgb(image_path)
        original = image.size
        image_array = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float32) / 255.0
        mask_size, mask_array = _read_mask(mask_path, height, width)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"Cannot read {image_path} or {mask_path}: {type(error).__name__}: {error}") from error
    if mask_size != original:
        raise ValueError(
            f"Size mismatch: image {image_path} is {original[0]}x{original[1]} (width x height) "
            f"but its mask {mask_path} is {mask_size[0]}x{mask_size[1]}"
        )
    return image_array, mask_array


def _read_mask(mask_path: Path, height: int, width: int) -> tuple[tuple[int, int], np.ndarray]:
    """A mask's original ``(width, height)`` and its class ids resized; an RGB mask must be gray, not a colour image."""
    with Image.open(mask_path) as mask:
        if mask.mode in ("RGB", "RGBA"):
            rgb = np.asarray(mask.convert("RGB"))
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise ValueError(
                    f"Mask {mask_path} is a colour image: save class ids as a single-channel (grayscale or palette) PNG"
                )
            mask = Image.fromarray(rgb[..., 0])
        return mask.size, np.asarray(mask.resize((width, height), Image.Resampling.NEAREST))


def _class_ids(masks, sources, class_names, mask_map):
    """Stack masks, recode them with ``mask_map`` and check every value is a class; errors name the source."""
    out = np.stack(masks).astype(np.int64) if masks else np.zeros((0, 1, 1), np.int64)
    if mask_map:
        recoded = np.full_like(out, -1)
        for stored, cls in mask_map.items():
            recoded[out == stored] = cls
        unknown = np.flatnonzero((recoded < 0).reshape(len(out), -1).any(axis=1))
        if unknown.size:
            i = unknown[0]
            values = sorted(int(v) for v in set(np.unique(out[i])) - set(mask_map))
            shown = f"{values[:10]}" + (f" and {len(values) - 10} more" if len(values) > 10 else "")
            raise ValueError(
                f"Mask {sources[i]} has values {shown} that mask_map does not map (it maps {sorted(mask_map)})"
            )
        out = recoded
    if class_names is None:
        top = int(out.max()) if out.size else 0
        class_names = tuple(f"class{k}" for k in range(max(top, 1) + 1))
    class_names = tuple(str(c) for c in class_names)
    bad = np.flatnonzero((out >= len(class_names)).reshape(len(out), -1).any(axis=1))
    if bad.size:
        i = bad[0]
        values = sorted(int(v) for v in np.unique(out[i]) if v >= len(class_names))
        raise ValueError(
            f"Mask {sources[i]} has values {values} outside the classes 0..{len(class_names) - 1} "
            f"({', '.join(class_names)})"
        )
    return out.astype(np.uint8), class_names


def _load_tfds(name, size, class_names, split, max_examples, mask_map):
    """The TensorFlow Datasets set ``name`` resized to ``size``, its keys and classes from :data:`TFDS_PRESETS`."""
    try:  # on use: an optional package (for Colab users), slow to import
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError("Loading 'tfds:...' needs tensorflow-datasets: pip install tensorflow-datasets") from None
    preset = TFDS_PRESETS.get(name, {})
    image_key, mask_key = preset.get("image_key", "image"), preset.get("mask_key", "segmentation_mask")
    mask_map = mask_map if mask_map is not None else preset.get("mask_map")
    class_names = class_names if class_names is not None else preset.get("class_names")
    dataset = tfds.load(name, split=split)
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    images, masks, sources = [], [], []
    for i, example in enumerate(dataset):
        if image_key not in example or mask_key not in example:
            raise KeyError(f"tfds set {name!r} has features {sorted(example)}, not {image_key!r} and {mask_key!r}")
        image = tf.image.resize(tf.cast(example[image_key], tf.float32) / 255.0, size, method="bilinear")
        mask = example[mask_key]
        if mask.shape.rank == 2:
            mask = mask[..., None]
        mask = tf.image.resize(mask, size, method="nearest")[..., 0]
        images.append(np.clip(image.numpy(), 0.0, 1.0))
        masks.append(mask.numpy())
        sources.append(f"tfds:{name}[{split}] example {i}")
    if not images:
        raise ValueError(f"tfds:{name} split {split!r} gave no examples")
    mask_array, names = _class_ids(masks, sources, class_names, mask_map)
    return SegmentationData(np.stack(images).astype(np.float32), mask_array, names, tuple(sources))


def touching_discs(size: int = 64, radius: int = 9, gap: int = 2) -> np.ndarray:
    """Instances of discs of one class packed in a honeycomb, ``gap`` pixels apart, as (size, size) integers
    (0 background, 1, 2, ... the discs): the touching objects the original U-Net's border weights are for."""
    check_integer(size, "size")
    check_integer(radius, "radius")
    check_integer(gap, "gap", minimum=0)
    step = 2 * radius + gap
    rows, cols = np.mgrid[0:size, 0:size]
    instances = np.zeros((size, size), np.int32)
    count = 0
    for k, y in enumerate(np.arange(radius, size - radius + 1, step * np.sqrt(3) / 2)):
        offset = radius + (step / 2 if k % 2 else 0)
        for x in np.arange(offset, size - radius + 1, step):
            count += 1
            instances[(rows - y) ** 2 + (cols - x) ** 2 <= radius**2] = count
    return instances
