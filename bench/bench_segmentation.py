"""Week 4 benchmarks: the chapter executed at profile cpu over five run seeds.

Records (each per seed, worst seed, mean and spread; see ``run.sweep``):
``week4.unet.mean_iou`` (multi-class, held-out scenes; target: worst seed >= 0.90),
``week4.unet.worst_class_iou``, ``week4.unet.binary_dice``, the training time
and the chapter's time, the skip ablation (``week4.skips.<mode>.*``, each the mean of the page's three
trainings; ``week4.skips.cost_points``, their average cost of removing the skips, and
``week4.skips.smallest_cost_points``, the smallest of the three) and the
small objects found with each loss (``week4.small_objects.<loss>.found``) and
Dice's lead over cross-entropy (``week4.small_objects.dice_lead_points``),
all read from what the chapter recorded: the recipes live in
``book/week4_segmentation.py`` only.
"""

from __future__ import annotations

from bench.run import sweep


def bench_week4(seeds=None):
    return sweep(
        "week4_segmentation",
        "week4",
        {
            "week4.unet.mean_iou": "mean IoU",
            "week4.unet.worst_class_iou": "IoU",
            "week4.unet.binary_dice": "Dice",
            "week4.unet.train_seconds": "s",
            **{
                f"week4.skips.{skip}.{what}": unit
                for skip in ("concat", "add", "none")
                for what, unit in (("object_iou", "IoU"), ("edge_accuracy", "fraction"))
            },
            "week4.skips.cost_points": "points",
            "week4.skips.smallest_cost_points": "points",
            **{f"week4.small_objects.{loss}.found": "fraction" for loss in ("ce", "dice")},
            "week4.small_objects.dice_lead_points": "points",
        },
        seeds=seeds,
    )


BENCHMARKS = {"week4": bench_week4}
