"""Week 3 benchmarks: RetinaNet on the synthetic scenes with the chapter's recipe, and the chapter's run time.

Records: ``week3.retinanet.map50``, ``week3.retinanet.map50_95`` (held-out scenes,
profile cpu), ``week3.retinanet.train_seconds``,
``week3.retinanet.train_images_per_second``,
``week3.retinanet.predict_images_per_second`` and ``week3.chapter.seconds``.
"""

from __future__ import annotations

import time

from run import execute_chapter, record  # bench/run.py: bench/ is on sys.path when run as a script


def bench_retinanet():
    """The chapter's model, data and training at profile cpu (book/week3_detection.py, sections 1-8)."""
    from course_utils import config
    from course_utils import detection as det

    profile = config.setup("cpu", seed=42)
    size = 128
    n_train, n_test, epochs, batch = 2000, 300, 6, 16
    object_size = (size * 12 // 128, size * 48 // 128)
    train_data = det.make_detection_scenes(n_train, size=size, seed=1, object_size=object_size)
    test_data = det.make_detection_scenes(n_test, size=size, seed=2, object_size=object_size)
    anchors = det.AnchorConfig(sizes=(size / 8, size / 4, size / 2))
    config.seed_everything(0)
    model = det.build_retinanet(len(train_data.class_names), image_size=size, anchors=anchors, learning_rate=1e-3)
    config.seed_everything(1)
    _, seconds = det.train(model, train_data, epochs=epochs, batch_size=batch, augment=True, seed=1)
    det.predict(model, test_data.images[:batch])  # warm-up
    start = time.perf_counter()
    predictions = det.predict(model, test_data.images)
    predict_seconds = time.perf_counter() - start
    ours = det.evaluate(predictions, test_data)
    coco = det.coco_metrics(predictions, test_data)
    images = epochs * (n_train // batch) * batch
    name = profile.name
    return [
        record("week3.retinanet.map50", round(ours["map"][0.5], 4), "mAP@0.5", name),
        record("week3.retinanet.map50_95", round(coco["MaP"], 4), "mAP@[.5:.95]", name),
        record("week3.retinanet.train_seconds", round(seconds, 1), "s", name),
        record("week3.retinanet.train_images_per_second", round(images / seconds, 1), "images/s", name),
        record("week3.retinanet.predict_images_per_second", round(n_test / predict_seconds, 1), "images/s", name),
    ]


def bench_chapter():
    """Papermill execution of the week 3 chapter at profile cpu."""
    return [record("week3.chapter.seconds", round(execute_chapter("week3_detection"), 1), "s", "cpu")]


def bench_week3():
    """All week 3 records: the model, then the chapter."""
    return bench_retinanet() + bench_chapter()


BENCHMARKS = {"week3": bench_week3}
