"""The package's own versions of what a week's blanks ask for are withheld from the student's kernel.

A submission that hands a blank's work to the package (``return det.iou_matrix(a, b)``; the function captured in
a first cell or by a ``from`` import; the module reloaded; its source file read and executed) scores nothing on it
and is told why; its other answers keep their points; a perfect submission keeps full marks and a blank handout
scores nothing (course_utils.grading.withheld). Weeks 2 to 5 are graded here; week 1 in test_grading.py.
"""

import ast
import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from course_utils import build
from course_utils.checks import check_own_work
from course_utils.grading import cli, exercise, sandbox, withheld, workers
from course_utils.grading import submission as one_file

SETTINGS = workers.Settings(
    profile="smoke", cell_timeout=120, notebook_timeout=900, memory_gb=8, isolate=sandbox.unavailable() is None
)

# Per week: answers replaced (the answer cell holding the key is the value instead), answers left blank, a cell
# of the student's own put right after the set-up, the questions that lose their points to a withheld function
# (and the blank its message names), and the questions that keep theirs.
DELEGATES = {
    "week2_exercise": dict(
        replace={
            "def confusion(": (
                "from course_utils.segmentation import confusion as library_confusion\n\n\n"
                "def confusion(y_true, y_pred, num_classes):\n"
                "    return library_confusion(y_true, y_pred, num_classes)\n\n\n"
                "def precision_recall(matrix):\n"
                "    matrix = np.asarray(matrix, dtype=float)\n"
                "    correct, predicted, true = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)\n"
                "    return (np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0),\n"
                "            np.divide(correct, true, out=np.zeros_like(correct), where=true > 0))\n"
            ),
            "def accuracy_in_both_modes(": ("accuracy_in_both_modes = rec.accuracy_in_both_modes\n"),
        },
        blank=("fine_tuned = source_classifier()",),  # the fixed run left blank: quicker
        extra=None,
        withheld={"precision-and-recall": "confusion", "both-modes": "accuracy_in_both_modes"},
        full={"prediction", "frozen-base-with-a-new-head", "fine-tuning-set-up"},
        # A mistake only the model the student's function changed can show: the grader must hand it back.
        wrong=dict(
            replace={
                "def accuracy_in_both_modes(": (
                    "def accuracy_in_both_modes(model, images, labels):\n"
                    "    training = keras.ops.convert_to_numpy(model(images, training=True)).argmax(axis=1)\n"
                    "    inference = keras.ops.convert_to_numpy(model(images, training=False)).argmax(axis=1)\n"
                    "    labels = np.asarray(labels)\n"
                    "    return float(np.mean(training == labels)), float(np.mean(inference == labels))\n"
                )
            },
            question="both-modes",
            phrase="averages have moved",
        ),
    ),
    "week3_exercise": dict(
        replace={
            "def iou(": "def iou(boxes_a, boxes_b):\n    return captured_iou(boxes_a, boxes_b)\n",
            "def focal_loss(": (
                "def focal_loss(y_true, logits, gamma=2.0, alpha=0.25):\n"
                "    import inspect\n"
                "    import course_utils.detection.losses as losses\n"
                "    namespace = {}\n"
                "    exec(open(inspect.getsourcefile(losses)).read(), namespace)  # the source file, run afresh\n"
                "    return float(np.sum(namespace['binary_focal_loss'](y_true, logits, gamma, alpha)))\n"
            ),
            "def nms(": (  # its own IoU: the one of part 1 hands its work to the package
                "def own_iou(a, b):\n"
                "    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)\n"
                "    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])\n"
                "    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])\n"
                "    inter = np.clip(width, 0, None) * np.clip(height, 0, None)\n"
                "    area_a, area_b = ((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1]) for c in (a, b))\n"
                "    return inter / (area_a[:, None] + area_b[None, :] - inter)\n\n\n"
                "def nms(boxes, scores, iou_threshold=0.5):\n"
                "    order, keep = list(np.argsort(-np.asarray(scores), kind='stable')), []\n"
                "    while order:\n"
                "        keep.append(order.pop(0))\n"
                "        if order:\n"
                "            overlaps = own_iou(boxes[[keep[-1]]], boxes[order])[0]\n"
                "            order = [k for k, o in zip(order, overlaps) if o <= iou_threshold]\n"
                "    return np.array(keep, dtype=np.int64)\n"
            ),
            "def average_precision(": (
                "def average_precision(scores, is_true_positive, n_objects):\n"
                "    import importlib\n"
                "    import course_utils.detection.evaluation as evaluation\n"
                "    return importlib.reload(evaluation).average_precision(scores, is_true_positive, n_objects)[0]\n"
            ),
        },
        blank=(),
        # Captured before any cell of the grader's could change the module.
        extra="from course_utils.detection.boxes import iou_matrix as captured_iou",
        withheld={"iou": "iou", "focal": "focal_loss", "ap": "average_precision"},
        full={"prediction", "nms", "boxes", "matching_prediction"},
    ),
    "week4_exercise": dict(
        replace={
            "def dice(": (
                "def dice(truth, predicted):\n"
                "    return float(segmentation.dice_coefficient(truth[None].astype(np.float32),\n"
                "                 predicted[None, ..., None].astype(np.float32), smooth=0.0))\n\n\n"
                "def iou(truth, predicted):\n"
                "    return np.nan_to_num(segmentation.per_class_iou(truth, predicted, 2)[1], nan=1.0)\n"
            ),
            "def transposed_output_size(": "transposed_output_size = segmentation.transposed_conv_output_size\n",
            "def build_small_unet(": (
                "predicted_half_params = 121_899 / 4\n\n\n"
                "def build_small_unet(input_shape=(32, 32, 3), num_classes=3):\n"
                "    return segmentation.unet(input_shape, num_classes, depth=3, base_filters=4)\n"
            ),
            "def soft_dice_loss(": (
                "def soft_dice_loss(y_true, y_pred):\n    return segmentation.DiceLoss()(y_true, y_pred[..., 1:])\n"
            ),
        },
        blank=("unet_model.compile(", "found = {"),  # the trainings left blank: quicker
        extra=None,
        withheld={
            "dice-and-iou": "dice",
            "transposed-convolution-sizes": "transposed_output_size",
            "budget": "build_unet",
            "soft-dice-loss": "soft_dice_loss",
        },
        full={"u-net", "receptive-field"},
    ),
    "week5_exercise": dict(
        replace={
            "def cosine_similarity_matrix(": "cosine_similarity_matrix = ml.cosine_similarity_matrix\n",
            "def softmax_loss(": (
                "def softmax_loss(anchors, positives, temperature):\n"
                "    return float(np.mean(ml.similarity_softmax_loss(anchors, positives, temperature)))\n"
            ),
            "def knn_vote(": (
                "def knn_vote(reference, labels, queries, k):\n"
                "    return ml.knn_predict(reference, labels, queries, k)[0]\n"
            ),
            "def pair_errors(": "from course_utils.exercise_checks.week5 import pair_errors\n",
        },
        blank=("embedder = ml.embedding_model", "validation_accuracy = "),
        extra=None,
        withheld={
            "cosine-similarity-matrix": "cosine_similarity_matrix",
            "temperature-softmax-loss": "softmax_loss and class_softmax_loss",
            "knn-majority-vote": "knn_vote",
            "pair-errors": "pair_errors",
        },
        full={"prediction", "clustered-prediction"},
    ),
}


def handout(root, week):
    return nbformat.reads(build.generated_files(root)[Path("exercises") / f"{week}.ipynb"], as_version=4)


def delegating(root, week, replace, blank, extra):
    """The handout with the solution's answers, except those holding a key of ``replace`` (its value instead) or a
    text of ``blank`` (left blank); ``extra``, a cell of the student's own, right after the set-up."""
    solved = [
        build.solved_source(c.source)
        for c in build.read_source(root / "solutions" / f"{week}.py").cells
        if c.cell_type == "code" and build.BEGIN_SOLUTION in c.source
    ]
    notebook = handout(root, week)
    blanks = [c for c in notebook.cells if c.cell_type == "code" and build.PLACEHOLDER_START in c.source]
    assert len(blanks) == len(solved)
    for cell, source in zip(blanks, solved):
        if not any(text in source for text in blank):
            cell.source = next((new for key, new in replace.items() if key in source), source)
    if extra:
        setup = next(k for k, c in enumerate(notebook.cells) if "config.setup(" in c.source)
        notebook.cells.insert(setup + 1, nbformat.v4.new_code_cell(extra))
    return notebook


def sections(feedback: str) -> dict:
    """A feedback file's text per question (its ``## question: points`` heading to the next)."""
    found = {}
    for part in feedback.split("\n## ")[1:]:
        found[part.split(":", 1)[0]] = part
    return found


@pytest.fixture(scope="module", params=sorted(DELEGATES))
def graded(request, root, tmp_path_factory):
    """One grading run per week: a perfect submission, one that hands blanks to the package, the blank handout."""
    week = request.param
    folder, out = tmp_path_factory.mktemp("submissions"), tmp_path_factory.mktemp("grades")
    case = DELEGATES[week]
    notebooks = {
        "perfect": one_file.model_submission(root, week),
        "delegates": delegating(root, week, case["replace"], case["blank"], case["extra"]),
        "blank": handout(root, week),
    }
    if "wrong" in case:
        notebooks["wrong"] = delegating(root, week, case["wrong"]["replace"], case["blank"], None)
    for name, notebook in notebooks.items():
        (folder / f"{name}.ipynb").write_text(nbformat.writes(notebook))
    cli.grade(week, folder, out, root=root, workers=1, settings=SETTINGS, progress=False)
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = {row["file"][: -len(".ipynb")]: row for row in csv.DictReader(handle)}
    feedback = {p.stem: p.read_text(encoding="utf-8") for p in (out / "feedback").glob("*.md")}
    return week, exercise.load_week(root, week), rows, feedback, out


def test_a_perfect_submission_keeps_full_marks(graded):
    week, loaded, rows, feedback, _ = graded
    assert float(rows["perfect"]["total"]) == loaded.max_points, feedback["perfect"]


def test_the_blank_handout_scores_nothing(graded):
    _, _, rows, feedback, _ = graded
    assert float(rows["blank"]["total"]) == 0, feedback["blank"]


def test_what_the_grader_catches_scores_nothing_and_says_why(graded):
    week, loaded, rows, feedback, _ = graded
    case, row, text = DELEGATES[week], rows["delegates"], sections(feedback["delegates"])
    for question, blank in case["withheld"].items():
        assert float(row[question]) == 0, text[question]
        assert withheld.PHRASE in text[question] and f"it does the work of {blank}, which {week}" in text[question]
    for question in case["full"]:
        assert float(row[question]) == loaded.questions[question], text[question]
    wrong = case.get("wrong")  # a week whose checks read a model the student changed: a mistake seen in it
    if wrong:
        text = sections(feedback["wrong"])[wrong["question"]]
        assert float(rows["wrong"][wrong["question"]]) == 0 and wrong["phrase"] in text, text
        assert float(rows["wrong"]["diagnosis"]) == loaded.questions["diagnosis"]


def test_the_run_makes_the_copy_once_and_removes_it():
    with cli._without_references(exercise.Week("week3_exercise", Path("."), "", [], {}), SETTINGS) as settings:
        copy = settings.package
        assert (copy / "detection" / "boxes.py").is_file() and copy.parent.name.startswith("grading-package-")
    assert not copy.parent.exists()
    with cli._without_references(exercise.Week("week9_exercise", Path("."), "", [], {}), SETTINGS) as settings:
        assert settings.package is None  # a week that withholds nothing: the package itself


# --- the list and the copy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("week", sorted(withheld.WITHHELD))
def test_each_withheld_function_exists_and_does_the_work_of_a_blank_of_its_week(root, week, tmp_path):
    answers = set().union(*(s.names for s in exercise.load_week(root, week).slots if s.kind == "answer"))
    assert {blank for blanks in withheld.WITHHELD[week].values() for blank in blanks.split(" and ")} <= answers
    copy = withheld.stripped_copy(week, tmp_path)  # raises for a name the package does not define
    for function, blank in withheld.WITHHELD[week].items():
        module, name = withheld.split_name(function)
        source = copy.joinpath(*module.split(".")[1:]).with_suffix(".py").read_text()
        body = ast.parse(source).body
        if "." in name:  # a method: Class.method
            owner, name = name.split(".")
            (body,) = [n.body for n in body if isinstance(n, ast.ClassDef) and n.name == owner]
        (node,) = [n for n in body if getattr(n, "name", None) == name]
        assert ast.unparse(node.body) == f"raise NotImplementedError({withheld.message(function, week, blank)!r})"


def test_a_stub_keeps_the_signature_and_raises_naming_the_blank():
    source = textwrap.dedent(
        '''
        import functools


        @functools.cache
        def area(
            width, height=1.0
        ):
            """The area."""
            return width * height


        def other():
            return area(2.0)
        '''
    )
    namespace = {}
    exec(withheld.stubbed(source, {"area": withheld.message("m.area", "week9_exercise", "area")}, "m"), namespace)
    with pytest.raises(NotImplementedError, match="m.area is withheld .* it does the work of area, which week9"):
        namespace["other"]()
    with pytest.raises(ValueError, match="missing, which m does not define"):
        withheld.stubbed(source, {"missing": "x"}, "m")


def test_a_method_is_stubbed_and_its_class_keeps_working():
    source = textwrap.dedent(
        """
        class Loss:
            def __init__(self, smooth=1.0):
                self.smooth = smooth

            def call(self, a):
                return a + self.smooth
        """
    )
    namespace = {}
    exec(
        withheld.stubbed(source, {"Loss.call": withheld.message("m.Loss.call", "week9_exercise", "loss")}, "m"),
        namespace,
    )
    loss = namespace["Loss"](smooth=2.0)
    assert loss.smooth == 2.0
    with pytest.raises(NotImplementedError, match="m.Loss.call is withheld .* it does the work of loss"):
        loss.call(1.0)
    assert withheld.split_name("course_utils.segmentation.losses.DiceLoss.call") == (
        "course_utils.segmentation.losses",
        "DiceLoss.call",
    )
    assert withheld.split_name("course_utils.segmentation.losses.dice_coefficient") == (
        "course_utils.segmentation.losses",
        "dice_coefficient",
    )


@pytest.mark.parametrize(
    "week, code",
    ids=["week4", "week5"],
    argvalues=[
        (
            "week4_exercise",
            "import numpy as np\nfrom course_utils import segmentation as s\n"
            "t = np.array([[0, 1], [1, 1]]); p = np.array([[0, 1], [0, 1]])\n"
            "assert abs(s.mean_iou(t, p, 2) - (0.5 + 2 / 3) / 2) < 1e-9\n"
            "assert float(s.CrossEntropyDiceLoss()(t[None], np.eye(2)[p][None] * 0.8 + 0.1)) > 0\n"
            "for f in (s.per_class_iou, s.dice_coefficient, s.DiceLoss(smooth=0.0)):\n"
            "    try:\n        f(t, p, 2)\n    except NotImplementedError as e:\n        print(e)\n",
        ),
        (
            "week5_exercise",
            "import numpy as np\nfrom course_utils import metric_learning as ml\n"
            "e = np.random.default_rng(0).normal(size=(8, 4)).astype('float32')\n"
            "assert float(ml.SimilaritySoftmaxLoss(0.1)(np.array([0, 1, 2, 3] * 2), e)) > 0\n"
            "try:\n    ml.similarity_softmax_loss(e[:4], e[4:])\nexcept NotImplementedError as e:\n    print(e)\n",
        ),
    ],
)
def test_what_the_kernel_still_needs_works_in_the_copy(week, code, tmp_path):
    """Week 4's mean_iou (a check runs it in the kernel) and cross-entropy-plus-Dice loss, and week 5's
    SimilaritySoftmaxLoss (the student trains with it) call private twins of the withheld functions, which the copy
    keeps; week 4's DiceLoss, which does soft_dice_loss's work, is withheld (a method of a class)."""
    copy = withheld.stripped_copy(week, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert withheld.PHRASE in run.stdout and str(copy.parent) not in run.stdout


def test_the_sandbox_shows_the_copy_in_place_of_the_package(tmp_path):
    line = sandbox.command(["true"], tmp_path, hide=[], package=tmp_path / "course_utils")
    bind = ["--ro-bind", str((tmp_path / "course_utils").resolve()), str(sandbox.PACKAGE)]
    at = [k for k in range(len(line)) if line[k : k + 3] == bind]
    shown = [k for k in range(len(line)) if line[k : k + 3] == ["--ro-bind", *[str(sandbox.PACKAGE)] * 2]]
    assert len(at) == 1 and at[0] > max(shown, default=-1)  # mounted over the package, wherever it was shown


# --- what a notebook can say itself -----------------------------------------------------------------------------


def notebook_function(source: str, name: str):
    """A function defined as a notebook cell would define it (its globals are the notebook's)."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace[name]


@pytest.mark.parametrize(
    "source",
    [
        "from course_utils.detection import iou_matrix as iou",
        "from course_utils import detection as det\n\ndef iou(a, b):\n    return det.iou_matrix(a, b)",
        "import course_utils.detection\n\ndef iou(a, b):\n    return course_utils.detection.boxes.iou_matrix(a, b)",
        "from course_utils.detection.boxes import iou_matrix as f\n\ndef iou(a, b):\n    return f(a, b)",
        "def iou(a, b):\n    from course_utils.detection import iou_matrix\n    return iou_matrix(a, b)",
    ],
)
def test_the_visible_check_tells_a_student_who_calls_the_reference(source):
    from course_utils import detection

    with pytest.raises(AssertionError, match="iou hands its work to the package's own .*iou_matrix"):
        check_own_work(notebook_function(source, "iou"), detection.iou_matrix, "iou")


def test_the_visible_check_leaves_a_function_of_the_students_own_alone():
    from course_utils import detection

    own = notebook_function(
        "import numpy as np\nfrom course_utils import detection as det\n\n"
        "def iou_matrix(a, b):\n    return np.zeros((len(a), len(b)))\n\n"
        "def iou(a, b):\n    return iou_matrix(np.asarray(a), det.convert_boxes(b, 'xyxy', 'xyxy'))",
        "iou",
    )
    check_own_work(own, detection.iou_matrix, "iou")
    check_own_work(object(), detection.iou_matrix, "iou")  # the judge's stand-in for a function of the kernel
