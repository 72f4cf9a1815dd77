"""Week 4 benchmarks: the chapter's U-Net recipes at profile cpu, and the chapter's execution time.

Records: ``week4.unet.mean_iou`` (multi-class, held-out scenes; target >= 0.85),
``week4.unet.binary_dice``, ``week4.unet.train_seconds``,
``week4.unet.train_images_per_second`` (both for the multi-class model) and
``week4.chapter.seconds`` (papermill, profile cpu; target <= 300 s on 2 cores).
The recipes are those of ``book/week4_segmentation.py`` (sections 5 and 6).
"""

from __future__ import annotations

from run import execute_chapter, record  # bench/run.py: bench/ is on sys.path when run as a script


def bench_week4():
    from course_utils import config, segmentation
    from course_utils.scenes import make_scenes

    profile = config.setup("cpu", seed=4)
    size = profile.pick(smoke=32, cpu=32, gpu=64)
    n_train = profile.pick(smoke=200, cpu=2000, gpu=4000)
    epochs = profile.pick(smoke=2, cpu=20, gpu=30)
    n_small = profile.pick(smoke=100, cpu=600, gpu=2000)
    epochs_small = profile.pick(smoke=1, cpu=6, gpu=15)
    base = profile.pick(smoke=8, cpu=8, gpu=16)
    objects = (1, 2)
    train = make_scenes(n_train, size=size, seed=1, objects=objects)
    valid = make_scenes(n_train // 10, size=size, seed=2, objects=objects)
    test = make_scenes(500, size=size, seed=3, objects=objects)
    classes = 1 + len(train.class_names)

    config.seed_everything(1)
    binary = segmentation.unet((size, size, 3), 1, depth=3, base_filters=base)
    small = train.subset(slice(0, n_small))
    segmentation.fit_segmenter(binary, small.images, small.binary_masks(), epochs=epochs_small, loss="ce+dice",
                               batch_size=16)
    guess = segmentation.predict_masks(binary, test.images)
    dice = float(segmentation.dice_coefficient(test.binary_masks(), guess[..., None].astype("float32"), smooth=0.0))

    config.seed_everything(2)
    model = segmentation.unet((size, size, 3), classes, depth=3, base_filters=base)
    _, seconds = segmentation.fit_segmenter(model, train.images, train.masks, epochs=epochs, loss="ce",
                                            validation=(valid.images, valid.masks))
    score = segmentation.mean_iou(test.masks, segmentation.predict_masks(model, test.images), classes)

    chapter = execute_chapter("week4_segmentation", "cpu")
    return [
        record("week4.unet.mean_iou", round(score, 4), "mean IoU (5 classes, held-out scenes)", "cpu"),
        record("week4.unet.binary_dice", round(dice, 4), "Dice (object vs background, held-out scenes)", "cpu"),
        record("week4.unet.train_seconds", round(seconds, 1), "s", "cpu"),
        record("week4.unet.train_images_per_second", round(epochs * len(train) / seconds, 1), "images/s", "cpu"),
        record("week4.chapter.seconds", round(chapter, 1), "s", "cpu"),
    ]


BENCHMARKS = {"week4": bench_week4}
