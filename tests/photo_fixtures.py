"""Small real-photograph data sets for the "use your own images" tests, written to a folder.

They are made from photographs that ship with scikit-image and scikit-learn
(nothing is downloaded): crops, flips, colour changes and rescaling give enough
images of varied sizes and aspect ratios, with a grayscale and an RGBA file
among them, in the layouts the chapters read (see the "Use your own images" page).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_images

CLASS_PHOTOS = {"cat": "chelsea", "astronaut": "astronaut", "coffee": "coffee", "rocket": "rocket"}
TEXTURES = ("grass", "gravel", "brick")


def photo(name: str) -> np.ndarray:
    """A bundled photograph as an RGB uint8 array: a scikit-image sample name, or "china"/"flower" (scikit-learn)."""
    if name in ("china", "flower"):
        return load_sample_images().images[("china", "flower").index(name)]
    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3].astype(np.uint8)


def variant(image: np.ndarray, rng: np.random.Generator, size_range=(48, 160)) -> np.ndarray:
    """A random crop (half to all of each side, any aspect ratio), maybe flipped, colour-shifted and rescaled."""
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = image[top : top + ch, left : left + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.clip(crop * rng.uniform(0.7, 1.3, size=3), 0, 255).astype(np.uint8)
    side = rng.integers(*size_range)
    scale = side / max(ch, cw)
    return np.asarray(Image.fromarray(crop).resize((max(8, int(cw * scale)), max(8, int(ch * scale)))))


def classification_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """``root/<class>/<k>.jpg`` for the classes of :data:`CLASS_PHOTOS`; one grayscale and one RGBA file among them."""
    rng = np.random.default_rng(seed)
    for name, source in CLASS_PHOTOS.items():
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        image = photo(source)
        for k in range(per_class):
            picture = Image.fromarray(variant(image, rng))
            if name == "cat" and k == 0:
                picture.convert("L").save(folder / f"{k:02d}_gray.png")
            elif name == "rocket" and k == 0:
                picture.convert("RGBA").save(folder / f"{k:02d}_rgba.png")
            else:
                picture.save(folder / f"{k:02d}.jpg", quality=90)
    return Path(root)


def _background(rng, height, width):
    texture = photo(str(rng.choice(TEXTURES + ("china",))))
    return np.asarray(
        Image.fromarray(variant(texture, rng, (max(height, width), max(height, width) + 1))).resize((width, height))
    )


def coco_file(root: Path, n_images: int = 28, seed: int = 0) -> Path:
    """Photographs of cats' heads and coins pasted on textures, with a COCO JSON file; returns the JSON's path."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    objects = {"cat": photo("chelsea")[30:230, 120:330], "coin": photo("coins")[15:75, 20:80]}
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "coin"}]}
    for i in range(n_images):
        height, width = int(rng.integers(120, 260)), int(rng.integers(140, 320))
        canvas = _background(rng, height, width).copy()
        for _ in range(int(rng.integers(1, 4))):
            category = int(rng.integers(1, 3))
            thing = objects[coco["categories"][category - 1]["name"]]
            side = int(rng.integers(24, min(height, width) // 2))
            piece = np.asarray(Image.fromarray(thing).resize((side, side)))
            y, x = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            canvas[y : y + side, x : x + side] = piece
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": category,
                    "bbox": [x, y, side, side],
                    "area": side * side,
                    "iscrowd": 0,
                }
            )
        Image.fromarray(canvas).save(root / f"photo_{i:02d}.jpg", quality=90)
        coco["images"].append({"id": i + 1, "file_name": f"photo_{i:02d}.jpg", "height": height, "width": width})
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def segmentation_folders(root: Path, n: int = 16, seed: int = 0) -> Path:
    """``root/images/*.jpg`` and ``root/masks/*.png``: a horse's silhouette filled with a photograph (class 1) and
    coins (class 2) on textures; mask value 0 is the background; ``classes.txt`` names the classes."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    horse = ~np.asarray(skimage.data.horse(), bool)  # the sample is a black horse on white
    fill = photo("chelsea")
    for i in range(n):
        height, width = int(rng.integers(96, 200)), int(rng.integers(96, 240))
        image = _background(rng, height, width).copy()
        mask = np.zeros((height, width), np.uint8)
        side = int(rng.integers(40, min(height, width)))
        shape = np.asarray(Image.fromarray(horse).resize((side, side), Image.NEAREST))
        y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        texture = np.asarray(Image.fromarray(fill).resize((side, side)))
        image[y : y + side, x : x + side][shape] = texture[shape]
        mask[y : y + side, x : x + side][shape] = 1
        radius = int(rng.integers(6, 16))
        cy, cx = int(rng.integers(radius, height - radius)), int(rng.integers(radius, width - radius))
        yy, xx = np.ogrid[:height, :width]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        image[disc] = (200, 170, 60)
        mask[disc] = 2
        Image.fromarray(image).save(root / "images" / f"scene_{i:02d}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"scene_{i:02d}.png")
    (root / "classes.txt").write_text("background\nhorse\ncoin\n")
    return root
