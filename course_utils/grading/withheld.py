"""The package's own versions of what a week's blanks ask for, withheld from the student's kernel.

The checks compare results, not methods, so a student who writes ``return det.iou_matrix(a, b)`` for week 3's
``iou`` would pass them. So the grader gives the student's kernel a copy of ``course_utils``
(:func:`stripped_copy`, made once per week and grading run) in which each function of :data:`WITHHELD` raises,
saying which blank asks for it. Confined, :mod:`course_utils.grading.sandbox` shows that copy in place of the
package, so the real source is out of reach too (a function captured in a first cell, a ``from`` import,
``importlib.reload`` and the source file read with ``open`` all meet the copy); unconfined, the copy only comes
first on the kernel's ``PYTHONPATH``. The judge, which runs the checks and the hidden tests, keeps the real package.

Standard library only; imported by the grader, never by the student's kernel.
"""

from __future__ import annotations

import ast
import compileall
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
"""The ``course_utils`` folder the grader runs from (and the path where a confined kernel finds the copy)."""
PHRASE = "is withheld while your notebook is graded"
"""In the error every withheld function raises: the grader finds it in a student's cell outputs."""

# Week (the solution's file stem) -> {function, by the module that defines it: the blank(s) it does the work of,
# joined by " and "}.
# A function a fixed cell, a check run in the kernel (grading.exercise.plan_checks: ``in_kernel``) or a part of the
# exercise that may use "anything from the chapter" needs stays, and so do the package's own callers of a withheld
# function that those need: they call a private twin (segmentation's _per_class_iou and _dice_coefficient,
# metric_learning's _cosine_similarity_matrix and _similarity_softmax_loss), which stays in the copy.
WITHHELD = {
    "week1_exercise": {
        "course_utils.models.conv_output_size": "output_size",
        "course_utils.models.count_conv_params": "conv_params",
        "course_utils.models.predict_with_tta": "tta_predict",
        "course_utils.exercise_checks.week1.tape_gradients": "correlate2d_backward",
        # Kept: models.lenet5 builds the 32x32 original, which the check refuses for 28x28 digits.
    },
    "week2_exercise": {
        "course_utils.segmentation.metrics.confusion": "confusion",
        "course_utils.recognition.training.accuracy_in_both_modes": "accuracy_in_both_modes",
        # Kept: recognition.fine_tune, which does what unfreeze_top asks but finds the base by its own name, not
        # "base" (the colleague's base is renamed "base"): a student who calls it sees part 2's check fail.
    },
    "week3_exercise": {
        "course_utils.detection.boxes.iou_matrix": "iou",
        "course_utils.detection.losses.binary_focal_loss": "focal_loss",
        "course_utils.detection.losses.focal_loss": "focal_loss",
        "course_utils.detection.evaluation.average_precision": "average_precision",
        "course_utils.detection.anchors.match_anchors": "label_anchors",
        "course_utils.detection.evaluation.match_detections": "match_detections",
        # encode_boxes and decode_boxes have no reference in the package (KerasCV encodes the chapter's boxes).
    },
    "week4_exercise": {
        "course_utils.segmentation.losses.dice_coefficient": "dice",
        "course_utils.segmentation.metrics.per_class_iou": "iou",
        "course_utils.segmentation.model.transposed_conv_output_size": "transposed_output_size",
        "course_utils.segmentation.model.unet": "build_unet",
        "course_utils.segmentation.losses.DiceLoss.call": "soft_dice_loss",
    },
    "week5_exercise": {
        "course_utils.metric_learning.losses.cosine_similarity_matrix": "cosine_similarity_matrix",
        "course_utils.metric_learning.losses.similarity_softmax_loss": "softmax_loss and class_softmax_loss",
        "course_utils.metric_learning.knn.knn_fit": "knn_vote",
        "course_utils.metric_learning.knn.knn_predict": "knn_vote",
        "course_utils.metric_learning.knn.accuracy_vs_k": "validation_accuracy",
        "course_utils.exercise_checks.week5.pair_errors": "pair_errors",
        "course_utils.metric_learning.knn.verification_rates": "pair_errors",
        "course_utils.exercise_checks.week5.cheapest_threshold": "threshold",
        "course_utils.exercise_checks.week5.week5_test_rates": "test_false_accept_rate and test_false_reject_rate",
    },
}


def message(function: str, week: str, blank: str) -> str:
    """What a withheld function raises: which one, and which blank of which week asks the student to write it."""
    return f"{function} {PHRASE}: it does the work of {blank}, which {week} asks you to write yourself"


def stripped_copy(week: str, folder: Path) -> Path | None:
    """A copy of the package in ``folder/course_utils`` in which the week's withheld functions raise
    (:func:`message`), compiled; None if the week withholds nothing. Raises ``ValueError`` for an entry of
    :data:`WITHHELD` that names no function of the package."""
    withheld = WITHHELD.get(week)
    if not withheld:
        return None
    target = Path(folder) / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    by_module: dict[str, dict] = {}
    for function, blank in withheld.items():
        module, name = split_name(function)
        by_module.setdefault(module, {})[name] = message(function, week, blank)
    for module, stubs in by_module.items():
        path = _source_file(target, module)
        path.write_text(stubbed(path.read_text(encoding="utf-8"), stubs, module), encoding="utf-8")
    # Compiled here once, read-only in the sandbox: no kernel compiles the package again.
    compileall.compile_dir(target, quiet=1, ddir=str(PACKAGE))
    return target


def split_name(function: str) -> tuple[str, str]:
    """``(module, name)`` of a withheld function's dotted name: ``name`` is a top-level function (``"dice"``) or
    a method of a top-level class (``"DiceLoss.call"``), told apart by the package's files."""
    module, _, name = function.rpartition(".")
    outer, _, owner = module.rpartition(".")
    if _source_file(PACKAGE, module, missing_ok=True) is None and _source_file(PACKAGE, outer, missing_ok=True):
        return outer, f"{owner}.{name}"
    return module, name


def _source_file(copy: Path, module: str, missing_ok: bool = False) -> Path | None:
    """The file of ``module`` (``course_utils.x.y``) inside the copy."""
    path = copy.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.is_file():
        if missing_ok:
            return None
        raise ValueError(f"withheld functions name the module {module}, which the package does not have")
    return path


def stubbed(source: str, stubs: dict, module: str) -> str:
    """``source`` with the body of each function named in ``stubs`` (a top-level function, or a top-level class's
    method as ``"Class.method"``) replaced by a ``raise`` of its message (signature and decorators kept)."""
    lines = source.splitlines(keepends=True)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    defined = {}
    for node in ast.parse(source).body:
        if isinstance(node, functions):
            defined[node.name] = node
        elif isinstance(node, ast.ClassDef):
            defined.update({f"{node.name}.{n.name}": n for n in node.body if isinstance(n, functions)})
    found = {name: node for name, node in defined.items() if name in stubs}
    if missing := sorted(set(stubs) - set(found)):
        raise ValueError(f"withheld functions name {', '.join(missing)}, which {module} does not define")
    for name, node in sorted(found.items(), key=lambda item: item[1].lineno, reverse=True):  # bottom up
        first, last = node.body[0], node.body[-1]
        if first.lineno == node.lineno:
            raise ValueError(f"{module}.{name} is written on one line: it cannot be withheld")
        indent = " " * first.col_offset
        lines[first.lineno - 1 : last.end_lineno] = [f"{indent}raise NotImplementedError({stubs[name]!r})\n"]
    return "".join(lines)
