"""Week 2 benchmarks: MobileNetV2 from scratch on the scenes, transfer from the source task and what a frozen
step costs, mixup, the attribution maps' hits on the shape, calibration before and after temperature scaling,
throughput, chapter time.

Loaded by ``python -m bench`` (``BENCHMARKS``); it can also run alone:
``python -m bench.bench_recognition`` prints the records without writing them.

The MobileNetV2 numbers are the chapter's own: the chapter is executed at
profile ``cpu`` with five run seeds and what it recorded is read back, so the
recipe lives in one place. A second execution with ``ZERO_INIT_RESIDUAL=False`` measures what the
zero-initialised skip blocks contribute.
"""

from __future__ import annotations

import time

from bench.run import ROOT, execute_chapter, record, sweep
from course_utils import claims

CHAPTER = "week2_recognition"


def _images_per_second(model, dataset, steps: int, batch_size: int) -> float:
    """Training images per second over ``steps`` batches of ``dataset`` (already traced by the caller)."""
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def _throughput(size: int = 32, batch: int = 64, steps: int = 100, rounds: int = 3):
    """MobileNetV2 (alpha 0.35) training speed fed by the course's tf.data pipeline and by one resident batch.

    The pipeline (``data.make_dataset``: slice, cache, shuffle, batch, prefetch)
    against the same model trained on one batch already in memory as tensors,
    repeated, which costs no input work at all. The two are measured in turn,
    ``rounds`` times, and the best of each is kept, so that a moment of load on
    the machine does not decide the comparison.
    """
    import tensorflow as tf

    from course_utils import config, data
    from course_utils import recognition as rec

    config.setup("cpu", seed=2)
    scenes = rec.load_classification("scenes", image_size=size, n_train=4000, n_test=0, seed=0)
    pipeline = data.make_dataset(scenes.x_train, scenes.y_train, batch_size=batch, shuffle=True).repeat()
    resident = tf.data.Dataset.from_tensors(
        (tf.constant(scenes.x_train[:batch]), tf.constant(scenes.y_train[:batch]))
    ).repeat()
    model = rec.mobilenetv2_classifier(4, input_size=size, alpha=0.35, weights=None, verbose=False)
    rec.compile_classifier(model, 1e-3)
    for dataset in (pipeline, resident):  # trace the training step and fill the cache first
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    speeds = {"pipeline": [], "resident": []}
    for _ in range(rounds):
        speeds["pipeline"].append(_images_per_second(model, pipeline, steps, batch))
        speeds["resident"].append(_images_per_second(model, resident, steps, batch))
    return round(max(speeds["pipeline"]), 1), round(max(speeds["resident"]), 1)


def bench_seeds(seeds=None):
    """The chapter at profile cpu over five run seeds: every result its text quotes a range for."""
    transfer = {
        f"week2.transfer.{method}_{k}_per_class": "fraction"
        for method in ("scratch", "frozen", "fine_tuned")
        for k in (10, 30, 100)
    }
    points = {
        f"week2.{name}_points": "points"
        for name in (
            "transfer.fine_tuning_lead_most_labels",
            "imbalance.balanced_accuracy_gain",
            "imbalance.accuracy_loss",
            "augmentation.gain_in_model",
            "augmentation.gain_in_tf_data",
            "augmentation.placement_difference",
            "tta.gain_without_augmentation",
            "tta.gain_with_augmentation",
            "tta.gain_difference",
            "mobilenetv2_minus_small_cnn",
        )
    }
    return sweep(
        CHAPTER,
        "week2",
        {
            "week2.small_cnn.test_accuracy": "fraction",
            "week2.mobilenetv2_scratch.test_accuracy": "fraction",
            "week2.mobilenetv2_scratch.train_seconds": "s",
            "week2.transfer.frozen_all_labels": "fraction",
            "week2.transfer.fine_tuned_all_labels": "fraction",
            "week2.transfer.scratch_best": "fraction",
            "week2.transfer.frozen_fewest_labels": "fraction",
            **transfer,
            "week2.batchnorm.largest_difference": "absolute",
            "week2.batchnorm.frozen_difference": "absolute",
            "week2.imbalance.accuracy_without_weights": "fraction",
            "week2.imbalance.balanced_accuracy_without_weights": "fraction",
            **points,
            **{
                f"week2.attribution.{name}": "fraction"
                for name in ("small_cnn.saliency", "small_cnn.grad_cam", "small_cnn.occlusion")
                + ("mobilenetv2.saliency", "mobilenetv2.occlusion", "random_pixel")
                + ("weakest_minus_random_pixel", "saliency_small_cnn_minus_mobilenetv2")
            },
            "week2.calibration.small_cnn.ece_drop": "ECE",
            "week2.freezing.fine_tuned_time_share": "time share",
            "week2.freezing.cached_time_share": "time share",
            **{
                f"week2.mixup.{key}": "points"
                for key in ("alpha_0_2.gain_points", "alpha_1.gain_points")
                + tuple(f"{m}.confidence_minus_accuracy_points" for m in ("alpha_0_2", "alpha_1", "plain"))
            },
            **{
                f"week2.calibration.{model}.{what}": unit
                for model in ("small_cnn", "mobilenetv2_scratch")
                for what, unit in (("temperature", "T"), ("ece_as_trained", "ECE"), ("ece_with_temperature", "ECE"))
            },
        },
        seeds=seeds,
    )


def bench_zero_init():
    """The chapter once more (run seed 0) without zero-initialised skip blocks: what they contribute. The text
    describes the chapter with them, so this run breaks its claims about MobileNetV2 by design: it runs as a
    reader's build, which lists them instead of stopping."""
    keep_as = f"{CHAPTER}_no_zero_init"
    execute_chapter(CHAPTER, parameters={"ZERO_INIT_RESIDUAL": False}, keep_as=keep_as, strict=False)
    accuracy = claims.read_records(ROOT / "_build" / "bench" / f"{keep_as}.ipynb")[
        "week2.mobilenetv2_scratch.test_accuracy"
    ]
    return [record("week2.mobilenetv2_scratch.test_accuracy_without_zero_init", accuracy, "fraction", "cpu")]


def bench_throughput():
    """Training images per second fed by the tf.data pipeline and by a resident batch."""
    with_pipeline, resident = _throughput()
    return [
        record("week2.train_images_per_second", with_pipeline, "images/s", "cpu"),
        record("week2.train_images_per_second_in_memory", resident, "images/s", "cpu"),
        record("week2.tf_data_vs_in_memory", round(with_pipeline / resident, 3), "ratio", "cpu"),
    ]


BENCHMARKS = {"week2.seeds": bench_seeds, "week2.zero_init": bench_zero_init, "week2.throughput": bench_throughput}


if __name__ == "__main__":
    for r in bench_seeds() + bench_zero_init() + bench_throughput():
        print(f"{r['name']}: {r['value']} {r['unit']}")
