"""A handout never shows the answer under the question: its predictions, and the checks whose expected values or
explanations would give a blank away, are run by the package; the handout's cell shows only the call."""

import ast
import inspect
import re

import pytest

from course_utils import exercise_checks, predictions

WEEKS = {
    "week1_exercise": [
        predictions.week1_lenet,
        predictions.week1_reach,
        exercise_checks.week1_lenet5,
        exercise_checks.week1_correlate2d,
        exercise_checks.week1_sizes,
        exercise_checks.week1_tta,
        predictions.week1_mirror_tta,
        exercise_checks.week1_tta_augmentation,
        exercise_checks.week1_backward,
    ],
    "week2_exercise": [
        predictions.week2_frozen_head,
        exercise_checks.week2_frozen_classifier,
        exercise_checks.week2_accuracy_in_both_modes,
        predictions.week2_fine_tuning_diagnosis,
        exercise_checks.week2_unfreeze_top,
        exercise_checks.week2_fine_tuned,
        exercise_checks.week2_precision_recall,
    ],
    "week3_exercise": [
        predictions.week3_nms,
        exercise_checks.week3_iou,
        exercise_checks.week3_focal,
        exercise_checks.week3_nms,
        exercise_checks.week3_label_anchors,
        exercise_checks.week3_box_encoding,
        predictions.week3_matching,
        exercise_checks.week3_match_detections,
        exercise_checks.week3_ap,
    ],
    "week4_exercise": [
        exercise_checks.week4_dice_and_iou,
        exercise_checks.week4_unet,
        exercise_checks.week4_budget,
        predictions.week4_half_unet,
        exercise_checks.week4_transposed_convolution_sizes,
        predictions.week4_bottleneck_receptive_field,
        exercise_checks.week4_soft_dice_loss,
        predictions.week4_better_loss,
        exercise_checks.week4_loss_verdict,
    ],
    "week5_exercise": [
        predictions.week5_collapsed_loss,
        exercise_checks.week5_cosine_similarity_matrix,
        exercise_checks.week5_temperature_softmax_loss,
        predictions.week5_clustered_loss,
        exercise_checks.week5_class_softmax_loss,
        exercise_checks.week5_knn_majority_vote,
        exercise_checks.week5_pair_errors,
        predictions.week5_threshold_direction,
        exercise_checks.week5_threshold,
    ],
}


# These compute what a check compares with, or set one up; they explain nothing.
NOT_CHECKS = {exercise_checks.week2_mode_probe, exercise_checks.week5_test_rates}


def test_every_check_and_prediction_of_the_package_is_scanned():
    listed = set().union(*WEEKS.values()) | NOT_CHECKS
    for module in (predictions, exercise_checks):
        found = {value for name, value in vars(module).items() if re.fullmatch(r"week\d_\w+", name)}
        assert found - listed == set(), f"not scanned by this test: {sorted(f.__name__ for f in found - listed)}"


def kept_back(function) -> list[str]:
    """What a check tells only once it is run: the text of its explanations and named mistakes, its own and its
    private helpers' (``_week1_output_sizes`` for ``week1_sizes``)."""
    module = inspect.getmodule(function)
    definitions = [ast.parse(inspect.getsource(function)).body[0]]
    called = {n.func.id for n in ast.walk(definitions[0]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    definitions += [
        ast.parse(inspect.getsource(getattr(module, name))).body[0]
        for name in sorted(called)
        if name.startswith("_") and callable(getattr(module, name, None))
    ]
    texts = []
    for definition in definitions:
        docstring = ast.get_docstring(definition)
        for node in ast.walk(definition):
            if isinstance(node, ast.JoinedStr):
                texts.append("".join(v.value for v in node.values if isinstance(v, ast.Constant)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != docstring:
                texts.append(node.value)
    return [t for t in texts if len(t) >= 30]


def shown(texts, handout: str) -> list[str]:
    """The texts whose first 40 characters (spacing aside) stand in ``handout``."""
    plain = re.sub(r"\s+", " ", handout)
    return [t for t in texts if re.sub(r"\s+", " ", t)[:40] in plain]


@pytest.mark.parametrize("week", WEEKS)
def test_the_handout_calls_its_checks_and_holds_none_of_their_answers(root, week):
    for suffix in (".py", ".ipynb"):
        handout = (root / "exercises" / f"{week}{suffix}").read_text()
        assert "check_prediction(" not in handout, "a prediction checked in the handout shows its answer"
        for function in WEEKS[week]:
            assert len(kept_back(function)) >= 2, f"{function.__name__} explains too little"
            room = "predictions" if function.__module__ == predictions.__name__ else "exercise_checks"
            assert f"{room}.{function.__name__}(" in handout
            assert not shown(kept_back(function), handout), f"{week}{suffix} shows what {function.__name__} keeps"


def test_a_handout_that_shows_an_explanation_is_caught(root):
    texts = kept_back(predictions.week3_nms)
    handout = (root / "exercises" / "week3_exercise.py").read_text()
    explanation = max(texts, key=len)
    assert shown(texts, handout + f'\nprint("{explanation[:60]}"\n      "{explanation[60:]}")\n') == [explanation]
