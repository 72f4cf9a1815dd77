"""Week 2 benchmarks: MobileNetV2 from scratch on the scenes, training throughput, chapter time.

Loaded by ``bench/run.py`` (``BENCHMARKS``); it can also run alone:
``python bench/bench_recognition.py`` prints the records without writing them.
"""

from __future__ import annotations

import time

from run import execute_chapter, record  # bench/run.py: bench/ is on sys.path when run as a script


def _throughput(model, source, steps: int, batch_size: int) -> float:
    """Training images per second over ``steps`` batches, after one warm-up epoch (tracing excluded)."""
    import numpy as np

    if isinstance(source, tuple):
        x, y = source
        n = steps * batch_size
        model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0)
    else:
        model.fit(source, epochs=1, steps_per_epoch=steps, verbose=0)
        start = time.perf_counter()
        model.fit(source, epochs=1, steps_per_epoch=steps, verbose=0)
    return float(np.round(steps * batch_size / (time.perf_counter() - start), 1))


def bench_week2():
    """The chapter's MobileNetV2 (alpha 0.35) recipe at profile cpu, throughput both ways, chapter time."""

    from course_utils import config, data
    from course_utils import recognition as rec

    # The chapter's settings at profile cpu (book/week2_recognition.py, sections 2 and 4).
    config.setup("cpu", seed=2)
    size, n_train, n_test, mobilenet_train, epochs = 64, 4000, 800, 12000, 3
    scenes = rec.load_classification("scenes", image_size=size, n_train=n_train, n_test=n_test, seed=0)
    more = rec.load_classification("scenes", image_size=size, n_train=mobilenet_train, n_test=1, seed=5)
    config.seed_everything(3)
    model = rec.mobilenetv2_classifier(4, input_size=size, alpha=0.35, weights=None, verbose=False,
                                       augment=rec.RandomDihedral(seed=4))
    _, seconds = rec.train(model, more.x_train, more.y_train, epochs=epochs, peak_lr=3e-3, batch_size=32)
    accuracy, _ = rec.evaluate(model, scenes.x_test, scenes.y_test)
    records = [record("week2.mobilenetv2_scratch.test_accuracy", round(accuracy, 4), "fraction", "cpu"),
               record("week2.mobilenetv2_scratch.train_seconds", round(seconds, 1), "s", "cpu")]

    # Throughput: the same model trained from a tf.data pipeline and from arrays in memory.
    batch, steps = 64, 30
    pipeline = data.make_dataset(scenes.x_train, scenes.y_train, batch_size=batch, shuffle=True).repeat()
    fresh = rec.mobilenetv2_classifier(4, input_size=size, alpha=0.35, weights=None, verbose=False)
    rec.compile_classifier(fresh, 1e-3)
    with_pipeline = _throughput(fresh, pipeline, steps, batch)
    in_memory = _throughput(fresh, (scenes.x_train, scenes.y_train), steps, batch)
    records += [record("week2.train_images_per_second", with_pipeline, "images/s", "cpu"),
                record("week2.train_images_per_second_in_memory", in_memory, "images/s", "cpu"),
                record("week2.tf_data_vs_in_memory", round(with_pipeline / in_memory, 3), "ratio", "cpu")]

    records.append(record("week2.chapter.seconds", round(execute_chapter("week2_recognition"), 1), "s", "cpu"))
    return records


BENCHMARKS = {"week2": bench_week2}


if __name__ == "__main__":
    for r in bench_week2():
        print(f"{r['name']}: {r['value']} {r['unit']}")
