"""Data loading for the course: a small built-in data set, image folders, tf.data.

* :func:`load_digits` gives scikit-learn's bundled handwritten digits (no download),
  resized so the classic CNNs of the course (LeNet-5) see the input size they were
  designed for.
* :func:`load_image_folder` reads your own images, stored as one folder per class.
* :func:`make_dataset` turns arrays into a batched, shuffled, augmented
  ``tf.data.Dataset`` ready for ``model.fit``.

TensorFlow, scikit-learn, scikit-image and tqdm are imported inside the functions
that use them, so ``import course_utils.data`` stays quick: the synthetic scenes,
pure NumPy, import it.
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
"""The image files every loader of the course reads, by ending, compared case-insensitively (others are ignored)."""

_PROGRESS_MIN_FILES = 200  # fewer files than this: no progress bar


@dataclass(frozen=True, eq=False)
class Split:
    """A train/test split of images and integer labels.

    Images are float32 of shape (n, height, width, channels), labels int32 of
    shape (n,); ``class_names[k]`` names label ``k``. ``test_masks``, where the
    data has them (the synthetic scenes), marks each test image's object pixels
    (boolean, (n, height, width)). (``eq=False``: comparing two splits with
    ``==`` would mean comparing arrays, which is ambiguous.)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    test_masks: np.ndarray | None = None


def load_digits(size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Load scikit-learn's 1,797 handwritten digits as a stratified train/test split.

    The 8x8 images (values 0..16) are scaled to [0, 1] float32 and resized
    bilinearly to ``size`` x ``size``; the default 32 is the input size of LeNet-5
    in the 1998 paper, so the layer shapes in the course match it. ``size=8``
    keeps the original pixels. Images have shape (n, size, size, 1). The split is
    stratified (each digit in the same proportion in train and test) and the same
    for the same ``seed``.
    """
    # On use: see the module's docstring.
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    size = check_integer(size, "size")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")

    digits = sklearn_load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (n, 8, 8), values 0..16 -> 0..1
    if size != images.shape[1]:
        from skimage.transform import resize  # on use: see the module's docstring

        images = resize(
            images,
            (len(images), size, size),  # the first axis is unchanged, so images do not mix
            order=1,  # bilinear
            mode="edge",
            anti_aliasing=size < images.shape[1],  # only blur when shrinking
        )
        images = np.clip(images, 0.0, 1.0).astype(np.float32)
    images = images[..., np.newaxis]
    labels = digits.target.astype(np.int32)

    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    class_names = tuple(str(k) for k in range(10))
    return Split(x_train, y_train, x_test, y_test, class_names)


def load_image_folder(
    root,
    image_size: tuple[int, int] = (64, 64),
    class_names=None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load images stored as one sub-folder of ``root`` per class.

    ``root/<class name>/*.png`` (also .jpg, .jpeg, .bmp, .gif, any case); other
    files, sub-sub-folders and hidden entries (such as ``.ipynb_checkpoints``) are
    ignored. Every image is converted to RGB (transparent parts become white),
    turned upright from its EXIF orientation, and resized bilinearly to
    ``image_size`` = (height, width).

    ``class_names`` defaults to the sorted folder names; give it to fix the order
    of the labels or to load only some of the classes.

    Returns ``(images, labels, class_names)``: float32 images of shape
    (n, height, width, 3) in [0, 1], int32 labels indexing ``class_names``, and
    ``class_names`` as a tuple. Raises an error naming the folder or file at fault
    when the layout is wrong or an image cannot be read.
    """
    from course_utils.config import quiet_progress_bars

    quiet_progress_bars()  # without ipywidgets, a text bar and no "IProgress not found" warning
    from tqdm.auto import tqdm  # on use: see the module's docstring

    root = Path(root).expanduser()
    height, width = check_image_size(image_size)
    class_names = _class_folders(root, class_names)
    files, labels = _class_files(root, class_names)
    images = np.empty((len(files), height, width, 3), dtype=np.float32)
    progress = tqdm(files, desc="Loading images", unit="img", disable=len(files) < _PROGRESS_MIN_FILES)
    for i, path in enumerate(progress):
        images[i] = _read_image(path, height, width)
    return images, np.asarray(labels, dtype=np.int32), tuple(class_names)


def _class_folders(root: Path, class_names) -> list[str]:
    """The class names: ``class_names`` checked against the sub-folders of ``root``, or those sub-folders sorted."""
    if not root.exists():
        raise FileNotFoundError(f"Image folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"Expected a folder with one sub-folder per class, got a file: {root}")
    if class_names is None:
        class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_names:
            raise ValueError(
                f"No class folders in {root}: expected one sub-folder per class, "
                f"e.g. {root / 'cats'} and {root / 'dogs'}"
            )
        return class_names
    if isinstance(class_names, str):
        raise TypeError("class_names must be a list of folder names, not a single string")
    class_names = [str(name) for name in class_names]
    if not class_names:
        raise ValueError("class_names is empty")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names has duplicates: {class_names}")
    for name in class_names:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"No folder for class {name!r}: {root / name}")
    return class_names


def _class_files(root: Path, class_names) -> tuple[list[Path], list[int]]:
    """The image files of every class folder, sorted by name, and their labels; a folder without images is an error."""
    files, labels = [], []
    for label, name in enumerate(class_names):
        folder = root / name
        found = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise ValueError(f"Class folder has no images ({', '.join(IMAGE_EXTENSIONS)}): {folder}")
        files += found
        labels += [label] * len(found)
    return files, labels


TFDS_PREFIX = "tfds:"


def tfds_name(source) -> str | None:
    """The data set named by a ``"tfds:<name>"`` source (``"tfds:voc/2007"`` -> ``"voc/2007"``), else None.

    Every loader of the course reads its ``source`` the same way: synthetic scenes by
    name, a path, or this prefix for a TensorFlow Datasets set (downloaded, for Colab).
    """
    if not (isinstance(source, str) and source.startswith(TFDS_PREFIX)):
        return None
    name = source[len(TFDS_PREFIX) :]
    if not name:
        raise ValueError(f"{source!r} names no data set: write it after the prefix, e.g. 'tfds:tf_flowers'")
    return name


def check_image_size(image_size, name: str = "image_size") -> tuple[int, int]:
    """Return ``image_size`` (an int for a square, or ``(height, width)``) as (height, width).

    Raises a clear error, naming the argument ``name``, for anything but positive ints.
    """
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or (height, width), got {image_size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name} must be positive, got {image_size!r}")
    return height, width


def check_integer(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as a plain int, or raise a ValueError naming ``name`` unless it is an integer >= ``minimum``.

    Python and NumPy integers pass; ``True``/``False`` and floats (even ``4.0``) do not, so a wrong
    count or size fails here, with its name and value, instead of deep inside NumPy or Keras.
    """
    if minimum == 1:
        wanted = "a positive integer"
    elif minimum == 0:
        wanted = "a non-negative integer"
    else:
        wanted = f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def read_rgb(path):
    """Read one image file as an RGB PIL image, the way every loader of the course does.

    The file is checked whole (a corrupt or truncated file raises ``ValueError`` naming it, rather than
    turning into a silently wrong image), turned as its EXIF orientation says (as photo viewers and
    annotation tools show it), and made RGB: grayscale gives three equal channels, transparent pixels
    are put on white.
    """
    try:
        # verify() checks the file's structure (for PNG also the checksums) and
        # load() decodes every pixel.
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (255, 255, 255))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
                return rgb
            return image.convert("RGB")
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise ValueError(f"Cannot read image {path}: {type(error).__name__}: {error}") from error


def _read_image(path: Path, height: int, width: int) -> np.ndarray:
    """Read one image file as float32 RGB (height, width, 3) in [0, 1]."""
    image = read_rgb(path).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def _checked_examples(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """``images`` (4-D) and ``labels`` as arrays of the same, non-zero length; a clear error otherwise."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4:
        raise ValueError(
            f"images must be 4-D (n, height, width, channels), got shape {images.shape}; "
            "for grayscale images add a channel axis, e.g. images[..., None]"
        )
    if len(images) != len(labels):
        raise ValueError(f"images and labels have different lengths: {len(images)} images, {len(labels)} labels")
    if len(images) == 0:
        raise ValueError("images is empty")
    return images, labels


def make_dataset(
    images,
    labels,
    batch_size: int = 32,
    shuffle: bool = False,
    augment=None,
    seed: int = 0,
    cache: bool = True,
):
    """Build a ``tf.data.Dataset`` of ``(image batch, label batch)`` pairs for training.

    The steps, in order: slice the arrays into examples, ``cache`` them (kept in
    memory after the first epoch), ``shuffle`` them (the whole set, in a new order
    each epoch, the same orders for the same ``seed``), batch them, apply
    ``augment`` to each batch of images, and prefetch so the next batch is ready
    while the model trains on this one.

    ``augment`` is any callable taking a batch of images, typically a
    ``keras.Sequential`` of random layers such as ``RandomFlip``; it is called
    with ``training=True`` when it accepts that argument (Keras random layers do
    nothing otherwise). Augmenting after the cache gives new random changes every
    epoch. Use it on the training set only.
    """
    import tensorflow as tf  # on use: see the module's docstring

    images, labels = _checked_examples(images, labels)
    batch_size = check_integer(batch_size, "batch_size")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable (e.g. a keras.Sequential), got {type(augment).__name__}")

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment is not None:
        if _accepts_training(augment):

            def apply(x, y):
                return augment(x, training=True), y
        else:

            def apply(x, y):
                return augment(x), y

        dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _accepts_training(fn) -> bool:
    """True if ``fn`` can be called with a ``training=`` keyword (as Keras layers can)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)
