"""Started by the notebook kernels of tests/test_own_images.py (it is put on their PYTHONPATH): offline stand-ins
for the TensorFlow Datasets sets the chapters name, through ``tfds.testing.mock_data``.

The real sets' metadata (class names, features) ship with tensorflow-datasets; only the examples are made up.
They are plausible rather than random: boxes with a positive size inside the image, masks with the pets'
trimap values 1, 2 and 3, every class present, images of differing sizes. Active only when the variable
COURSE_TEST_TFDS_EXAMPLES (how many examples each set yields) is set.
"""

import os

if os.environ.get("COURSE_TEST_TFDS_EXAMPLES"):
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    EXAMPLES = int(os.environ["COURSE_TEST_TFDS_EXAMPLES"])

    def _image(rng, i):
        height, width = (48, 64) if i % 2 else (64, 40)
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    def _examples(name, num_classes, rng):
        for i in range(EXAMPLES):
            image = _image(rng, i)
            height, width = image.shape[:2]
            if name == "voc":
                top, left = rng.uniform(0, 0.5, 2)
                bbox = np.array([[top, left, top + rng.uniform(0.2, 0.5), left + rng.uniform(0.2, 0.5)]], np.float32)
                yield {"image": image, "objects": {"bbox": bbox, "label": np.array([i % num_classes], np.int64)}}
            elif name == "oxford_iiit_pet":
                mask = np.full((height, width, 1), 3, np.uint8)  # background
                mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 2  # outline
                mask[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 1  # pet
                yield {"image": image, "segmentation_mask": mask}
            else:
                yield {"image": image, "label": np.int64(i % num_classes)}

    def _as_dataset(self, *args, as_supervised=False, **kwargs):
        name = self.name
        features = self.info.features["objects"] if name == "voc" else self.info.features
        num_classes = features["label"].num_classes if "label" in features.keys() else 1
        rows = list(_examples(name, num_classes, np.random.default_rng(0)))
        # Any length along every axis: image sizes and the number of boxes differ from one example to the next.
        spec = tf.nest.map_structure(
            lambda v: tf.TensorSpec((None,) * np.ndim(v), tf.as_dtype(np.asarray(v).dtype)), rows[0]
        )
        dataset = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)
        if as_supervised:
            dataset = dataset.map(lambda example: (example["image"], example["label"]))
        return dataset

    # Kept in a global: a context manager that is garbage-collected exits, and its patches with it.
    MOCK = tfds.testing.mock_data(as_dataset_fn=_as_dataset)
    MOCK.__enter__()
