"""Week 3 benchmarks: the chapter executed at profile cpu over five run seeds.

Records (each per seed, worst seed, mean and spread; see ``run.sweep``):
``week3.retinanet.map50`` (target: worst seed >= 0.85), ``week3.retinanet.ap50_worst_class``
(target >= 0.7), the COCO figures from pycocotools, the training time and the
chapter's time; ``week3.focal_vs_ce.*``, the focal loss against alpha-balanced
cross-entropy at nine anchors per cell (section 10: mAP of each, their
difference, the background-to-object anchor ratio, background anchors scored
above the decoder's threshold); ``week3.errors.*``, the test detections of each kind and the objects missed
(section 9). Everything is read from what the chapter recorded: the recipe
lives in ``book/week3_detection.py`` only.
"""

from __future__ import annotations

from bench.run import sweep
from course_utils.detection.evaluation import ERROR_KINDS, error_slug


def bench_week3(seeds=None):
    return sweep(
        "week3_detection",
        "week3",
        {
            "week3.retinanet.map50": "mAP@0.5",
            "week3.retinanet.ap50_worst_class": "AP@0.5",
            "week3.retinanet.ap50.triangle": "AP@0.5",
            "week3.anchors.background_per_positive": "background anchors per object anchor",
            "week3.nms.detections_per_object_without": "detections per object",
            "week3.nms.detections_per_object_with": "detections per object",
            "week3.retinanet.map50_coco": "mAP@0.5 (COCOeval)",
            "week3.retinanet.map50_95": "mAP@[.5:.95] (COCOeval)",
            "week3.count.exact_share": "fraction",
            "week3.count.off_by_more_than_one_share": "fraction",
            "week3.retinanet.ap50_margin_over_triangle": "AP@0.5 (next hardest class - triangle)",
            "week3.found.large": "fraction",
            "week3.found.small": "fraction",
            "week3.found.large_minus_small_points": "points",
            **{f"week3.errors.{error_slug(kind)}": "detections" for kind in ERROR_KINDS},
            "week3.errors.wrong_class_share_of_mistakes": "fraction",
            "week3.errors.duplicate_share_of_mistakes": "fraction",
            "week3.retinanet.train_seconds": "s",
            "week3.focal_vs_ce.anchors_per_image": "anchors",
            "week3.focal_vs_ce.background_per_object": "background anchors per object anchor",
            "week3.focal_vs_ce.map50_focal": "mAP@0.5",
            "week3.focal_vs_ce.map50_ce": "mAP@0.5",
            "week3.focal_vs_ce.map50_ce_minus_focal": "mAP@0.5 (cross-entropy - focal)",
            "week3.focal_vs_ce.map50_95_focal": "mAP@[.5:.95] (COCOeval)",
            "week3.focal_vs_ce.map50_95_ce": "mAP@[.5:.95] (COCOeval)",
            "week3.focal_vs_ce.background_scored_focal": "share of background anchors scoring >= 0.05",
            "week3.focal_vs_ce.background_scored_ce": "share of background anchors scoring >= 0.05",
            "week3.focal_vs_ce.train_seconds": "s",
        },
        seeds=seeds,
    )


BENCHMARKS = {"week3": bench_week3}
