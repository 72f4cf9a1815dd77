"""Detection data: :class:`DetectionData`, its checks, and the loaders (synthetic scenes, COCO JSON, TFDS)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from course_utils.data import read_rgb, tfds_name
from course_utils.scenes import make_scenes


class AnnotationError(ValueError):
    """An annotation that cannot be used; the message names the image and the box."""


@dataclass(frozen=True, eq=False)
class DetectionData:
    """Images with boxes and classes; see the package docstring (:mod:`course_utils.detection`) for the format."""

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images."""
        return tuple(self.images.shape[1:3])

    def object_counts(self) -> np.ndarray:
        """Number of real (non-padding) boxes of each image."""
        return np.sum(self.classes >= 0, axis=1).astype(np.int32)

    def targets(self) -> dict:
        """The ``{"boxes", "classes"}`` dict KerasCV's RetinaNet trains on (float32, padded with -1)."""
        return {"boxes": self.boxes.astype(np.float32), "classes": self.classes.astype(np.float32)}

    def subset(self, index) -> DetectionData:
        """The images selected by ``index`` (slice, integer array or boolean mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        names = np.asarray(self.names, dtype=object)[index]
        return DetectionData(self.images[index], self.boxes[index], self.classes[index], self.class_names, tuple(names))


def from_scenes(scenes) -> DetectionData:
    """A :class:`~course_utils.scenes.Scenes` as detection data (its boxes are already ``xyxy`` pixels)."""
    return DetectionData(
        images=scenes.images,
        boxes=scenes.boxes.astype(np.float32),
        classes=scenes.box_classes.astype(np.int32),
        class_names=tuple(scenes.class_names),
        names=tuple(f"scene {i}" for i in range(len(scenes))),
    )


def make_detection_scenes(
    n: int, size: int = 128, seed: int = 0, objects=(1, 4), object_size=(12, 48), **kwargs
) -> DetectionData:
    """Synthetic scenes with several objects of varied sizes, as :class:`DetectionData`.

    The defaults (1-4 objects of 12-48 pixels on 128x128 images) spread the
    objects over the three finest pyramid levels of :func:`build_retinanet`.
    Extra keyword arguments go to :func:`course_utils.scenes.make_scenes`.
    """
    return from_scenes(make_scenes(n, size=size, seed=seed, objects=objects, object_size=object_size, **kwargs))


def validate_boxes(boxes, classes, image_size, num_classes: int, names=None) -> None:
    """Raise :class:`AnnotationError` for a box outside the image, of negative or zero size, or of an unknown class.

    ``boxes`` ``(n, m, 4)`` pixel ``xyxy`` and ``classes`` ``(n, m)`` padded with -1;
    ``image_size`` is ``(height, width)`` (or a list of them, one per image).
    """
    boxes, classes = np.asarray(boxes, dtype=np.float64), np.asarray(classes)
    for i in range(len(boxes)):
        height, width = image_size[i] if isinstance(image_size, list) else image_size
        name = names[i] if names is not None else f"image {i}"
        for j in np.flatnonzero(classes[i] >= 0) if classes.ndim == 2 else []:
            _check_box(boxes[i, j], int(classes[i, j]), width, height, num_classes, name, j)
        extra = np.flatnonzero(classes[i] < -1)
        if extra.size:
            raise AnnotationError(
                f"{name}, box {extra[0]}: class id {int(classes[i, extra[0]])} is negative "
                "(only -1 is allowed, for padding)"
            )


def _check_box(box, cls, width, height, num_classes, image_name, box_name, tolerance=1e-3):
    x0, y0, x1, y1 = (float(v) for v in box)
    where = f"{image_name}, box {box_name} {[round(v, 2) for v in (x0, y0, x1, y1)]} (xyxy)"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise AnnotationError(f"{where}: coordinates must be finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise AnnotationError(f"{where}: negative or zero size (width {x1 - x0:g}, height {y1 - y0:g})")
    if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
        raise AnnotationError(f"{where}: box outside the image of {width}x{height} pixels")
    if not 0 <= cls < num_classes:
        raise AnnotationError(f"{where}: unknown class id {cls} (expected 0 .. {num_classes - 1})")


def load_coco(annotation_file, image_dir=None, image_size: int = 128, max_boxes: int | None = None) -> DetectionData:
    """Read a COCO-format detection file and its images, resized to ``image_size`` squared.

    ``image_dir`` defaults to the folder of ``annotation_file``. COCO boxes are
    ``[x, y, width, height]`` in pixels of the original image; they are checked
    against the image's size *before* resizing (the error names the image file and
    the annotation id), converted to ``xyxy`` and scaled with the image. Category
    ids become class ids ``0 ..`` in the order of the file's ``categories``;
    ``class_names`` are their names. Crowd annotations (``iscrowd: 1``) are skipped.
    """
    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir) if image_dir is not None else annotation_file.parent
    coco = _read_coco_file(annotation_file)
    categories = list(coco["categories"])
    class_of = {c["id"]: k for k, c in enumerate(categories)}
    class_names = tuple(str(c.get("name", c["id"])) for c in categories)
    per_image = _annotations_by_image(coco)
    m = max_boxes or max([len(v) for v in per_image.values()] + [1])
    n = len(coco["images"])
    images = np.zeros((n, image_size, image_size, 3), np.float32)
    boxes = np.full((n, m, 4), -1.0, np.float32)
    classes = np.full((n, m), -1, np.int32)
    names = []
    for i, info in enumerate(coco["images"]):
        name = str(info["file_name"])
        names.append(name)
        images[i], original_size = _read_coco_image(image_dir, info, image_size)
        anns = per_image[info["id"]]
        if len(anns) > m:
            raise AnnotationError(f"image {name!r} has {len(anns)} boxes, more than max_boxes={m}")
        for j, ann in enumerate(anns):
            boxes[i, j], classes[i, j] = _coco_box(ann, j, name, class_of, len(categories), original_size, image_size)
    return DetectionData(images, boxes, classes, class_names, tuple(names))


def _read_coco_file(annotation_file: Path) -> dict:
    """The parsed COCO JSON file; it must hold the lists ``images``, ``annotations`` and ``categories``."""
    try:
        coco = json.loads(annotation_file.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{annotation_file} is not valid JSON: {error}") from None
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise AnnotationError(f"{annotation_file} has no {key!r} list: is it a COCO detection file?")
    return coco


def _annotations_by_image(coco: dict) -> dict:
    """``{image id: [its annotations]}`` for every image, crowd annotations left out; unknown image ids are errors."""
    per_image: dict = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if ann["image_id"] not in per_image:
            raise AnnotationError(
                f"annotation {ann.get('id')} refers to image id {ann['image_id']}, which is not in the file's 'images'"
            )
        per_image[ann["image_id"]].append(ann)
    return per_image


def _read_coco_image(image_dir: Path, info: dict, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The image of the COCO entry ``info`` resized to ``image_size`` squared, and its original ``(width, height)``."""
    name = str(info["file_name"])
    path = image_dir / name
    if not path.is_file():
        raise AnnotationError(f"image {name!r} (id {info['id']}): file not found at {path}")
    try:
        im = read_rgb(path)  # the course's one reader: EXIF orientation as annotation tools show it
    except ValueError as error:
        raise AnnotationError(f"image {name!r} (id {info['id']}): {error}") from error
    return np.asarray(im.resize((image_size, image_size), Image.BILINEAR), np.float32) / 255.0, im.size


def _coco_box(ann: dict, j: int, image_name: str, class_of: dict, num_classes: int, original_size, image_size: int):
    """Annotation ``ann`` (box ``j`` of its image) checked, as ``(xyxy box scaled to image_size, class id)``."""
    width, height = original_size
    x, y, w, h = (float(v) for v in ann["bbox"])
    cat = ann.get("category_id")
    box_name = f"{j} (annotation id {ann.get('id')})"
    if cat not in class_of:
        raise AnnotationError(
            f"image {image_name!r}, box {box_name}: unknown class id {cat!r} (categories: {sorted(class_of)})"
        )
    _check_box((x, y, x + w, y + h), class_of[cat], width, height, num_classes, f"image {image_name!r}", box_name)
    sx, sy = image_size / width, image_size / height
    return (x * sx, y * sy, (x + w) * sx, (y + h) * sy), class_of[cat]


def load_tfds(
    name: str = "voc/2007",
    split: str = "train",
    image_size: int = 128,
    max_images: int = 2000,
    max_boxes: int = 20,
    data_dir=None,
) -> DetectionData:
    """A named TensorFlow Datasets detection set (e.g. ``voc/2007``, ``coco/2017``) as :class:`DetectionData`.

    For Colab users: the first call downloads the set. Images are resized to
    ``image_size`` squared; tfds' normalised ``[y_min, x_min, y_max, x_max]``
    boxes become pixel ``xyxy``. Only the first ``max_images`` images and
    ``max_boxes`` boxes per image are kept.
    """
    import tensorflow_datasets as tfds  # on use: an optional package (for Colab users), slow to import

    dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
    objects = info.features["objects"]
    class_names = tuple(objects["label"].names)
    rows = []
    for example in dataset.take(max_images):
        image = tf.image.resize(tf.cast(example["image"], tf.float32) / 255.0, (image_size, image_size)).numpy()
        bbox = example["objects"]["bbox"].numpy()[:max_boxes] * image_size
        labels = example["objects"]["label"].numpy()[:max_boxes].astype(np.int32)
        bbox, labels = bbox[: len(labels)], labels[: len(bbox)]
        rows.append((image, bbox[:, [1, 0, 3, 2]], labels))
    n = len(rows)
    images = np.zeros((n, image_size, image_size, 3), np.float32)
    boxes = np.full((n, max_boxes, 4), -1.0, np.float32)
    classes = np.full((n, max_boxes), -1, np.int32)
    for i, (image, bbox, labels) in enumerate(rows):
        images[i], boxes[i, : len(labels)], classes[i, : len(labels)] = np.clip(image, 0, 1), bbox, labels
    data = DetectionData(images, boxes, classes, class_names, tuple(f"{name} {split} {i}" for i in range(n)))
    validate_boxes(data.boxes, data.classes, data.image_size, len(class_names), data.names)
    return data


def load_detection_data(
    source: str = "scenes", n: int = 1000, image_size: int = 128, seed: int = 0, image_dir=None, **kwargs
) -> DetectionData:
    """The one entry point for detection data: ``"scenes"``, a COCO JSON path, or ``"tfds:<name>"``.

    * ``"scenes"``: ``n`` synthetic scenes of ``image_size`` pixels (``seed``;
      ``kwargs`` go to :func:`make_detection_scenes`);
    * a path ending in ``.json``: :func:`load_coco` (``image_dir`` defaults to the JSON's folder);
    * ``"tfds:voc/2007"`` and the like: :func:`load_tfds` with ``max_images=n`` (``kwargs`` go to it).
    """
    source = str(source)
    if source == "scenes":
        return make_detection_scenes(n, size=image_size, seed=seed, **kwargs)
    if (name := tfds_name(source)) is not None:
        return load_tfds(name, image_size=image_size, max_images=n, **kwargs)
    if source.endswith(".json"):
        return load_coco(source, image_dir=image_dir, image_size=image_size, **kwargs)
    raise ValueError(f"unknown detection data source {source!r}: use 'scenes', a COCO .json path or 'tfds:<name>'")


def write_coco(data: DetectionData, folder, annotation_name: str = "annotations.json") -> Path:
    """Write ``data`` as PNG images plus a COCO JSON file in ``folder``; returns the JSON path.

    Handy to try :func:`load_coco` (the tests build their fixtures with it).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(data.class_names)],
    }
    height, width = data.image_size
    for i in range(len(data)):
        file_name = f"image_{i:04d}.png"
        Image.fromarray(np.round(data.images[i] * 255).astype(np.uint8)).save(folder / file_name)
        coco["images"].append({"id": i + 1, "file_name": file_name, "width": width, "height": height})
        for j in np.flatnonzero(data.classes[i] >= 0):
            x0, y0, x1, y1 = (float(v) for v in data.boxes[i, j])
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(data.classes[i, j]) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    path = folder / annotation_name
    path.write_text(json.dumps(coco))
    return path
