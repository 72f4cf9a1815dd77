"""The exercises' visible checks whose expected values or explanations would give a blank's answer away: they live
here, not in the handout's check cell, which shows only the call. One function per check, named after its week;
it fails like every check (``AssertionError``, a known mistake named) and returns what the notebook keeps.

One module per week; their functions are re-exported here, so a handout calls ``exercise_checks.week3_iou(...)``.
"""

from course_utils.exercise_checks.week1 import (
    week1_backward,
    week1_correlate2d,
    week1_lenet5,
    week1_sizes,
    week1_tta,
    week1_tta_augmentation,
)
from course_utils.exercise_checks.week2 import (
    week2_accuracy_in_both_modes,
    week2_fine_tuned,
    week2_frozen_classifier,
    week2_mode_probe,
    week2_precision_recall,
    week2_unfreeze_top,
)
from course_utils.exercise_checks.week3 import (
    week3_ap,
    week3_box_encoding,
    week3_focal,
    week3_iou,
    week3_label_anchors,
    week3_match_detections,
    week3_nms,
)
from course_utils.exercise_checks.week4 import (
    week4_budget,
    week4_dice_and_iou,
    week4_loss_verdict,
    week4_soft_dice_loss,
    week4_transposed_convolution_sizes,
    week4_unet,
)
from course_utils.exercise_checks.week5 import (
    week5_class_softmax_loss,
    week5_cosine_similarity_matrix,
    week5_knn_majority_vote,
    week5_pair_errors,
    week5_temperature_softmax_loss,
    week5_test_rates,
    week5_threshold,
)
