"""The exercises' checks name the usual mistakes: each mistaken answer below fails its check with that name.

Each case runs, in one namespace, the solution's set-up cells, its answer cells
(with the answer under test changed the way students get it wrong) and one check
cell, and asserts the message. (The grader's judge runs the same check source,
with the student's names fetched from their kernel; here everything is local.) That the same
checks pass on the right answers is tested by running the solutions
(tests/test_notebooks.py).
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from course_utils import build
from course_utils.grading import exercise

ROOT = Path(__file__).resolve().parents[1]
WEEKS = {}


def week(name):
    if name not in WEEKS:
        WEEKS[name] = exercise.load_week(ROOT, name)
    return WEEKS[name]


def solved(name, number):
    """Answer cell ``number`` (1-based) of the solution, as a student who solved it wrote it."""
    slot = next(
        c for c in week(name).cells if isinstance(c, exercise.Slot) and c.kind == "answer" and c.number == number
    )
    return "\n".join(
        line for line in slot.source.splitlines() if line.strip() not in (build.BEGIN_SOLUTION, build.END_SOLUTION)
    )


def changed(name, number, old, new):
    source = solved(name, number)
    assert old in source, f"the solution of {name} changed: {old!r} is not in answer {number} any more"
    return source.replace(old, new)


def run(name, *sources):
    """A namespace holding the solution's set-up (the fixed cells before its first answer), then ``sources``."""
    namespace = {}
    for cell in week(name).cells:
        if isinstance(cell, exercise.Slot) and cell.kind == "answer":
            break
        if isinstance(cell, exercise.Slot) and cell.kind == "fixed":
            exec(cell.source.replace("PROFILE = None", "PROFILE = 'smoke'"), namespace)
    for source in sources:
        exec(source, namespace)
    return namespace


def check_source(name, check_id):
    return next(c.source for c in week(name).checks if c.id == check_id)


def fails(name, check_id, namespace, *phrases):
    """Check ``check_id`` fails in ``namespace`` with a message holding every phrase."""
    with pytest.raises(AssertionError) as error:
        exec(check_source(name, check_id), namespace)
    message = str(error.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} is not in the message:\n{message}"
    return message


def passes(name, check_id, namespace):
    exec(check_source(name, check_id), namespace)


# --- week 1 --------------------------------------------------------------------------------------

W1 = "week1_exercise"
CORRELATE_CASES = {
    "flipped kernel": (
        ("np.tensordot(window, kernel, axes=3)", "np.tensordot(window, kernel[::-1, ::-1], axes=3)"),
        [
            "the worked example",
            "Expected [[19.0, 25.0], [37.0, 43.0]], got [[5.0, 11.0], [23.0, 29.0]].",
            "Likely cause: you computed a convolution, not a cross-correlation",
        ],
    ),
    "no padding": (
        ("x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))", "pass"),
        ["padding=1, stride=1: expected shape (9, 12, 4), got (7, 10, 4).", "you forgot the padding"],
    ),
    "padding twice": (
        (
            "((padding, padding), (padding, padding), (0, 0))",
            "((2 * padding, 2 * padding), (2 * padding, 2 * padding), (0, 0))",
        ),
        ["padding=1, stride=1", "you padded twice as much as asked"],
    ),
}


@pytest.mark.parametrize("case", sorted(CORRELATE_CASES))
def test_week1_correlate2d_mistakes_are_named(case):
    (old, new), phrases = CORRELATE_CASES[case]
    fails(W1, "correlate2d.1", run(W1, changed(W1, 1, old, new)), *phrases)


def test_week1_an_ignored_stride_is_named():
    source = changed(
        W1,
        1,
        "i * stride : i * stride + kh, j * stride : j * stride + kw, :",
        "i : i + kh, j : j + kw, :",
    ).replace("// stride + 1", "+ 1")
    fails(W1, "correlate2d.1", run(W1, source), "padding=2, stride=2", "you ignored the stride")


SIZES_CASES = {
    "forgot +1": (
        ("return (n + 2 * padding - kernel) // stride + 1", "return (n + 2 * padding - kernel) // stride"),
        ["output_size(32, 5, 1, 0): expected 28, got 27.", "you forgot the +1"],
    ),
    "padding once": (
        ("return (n + 2 * padding - kernel) // stride + 1", "return (n + padding - kernel) // stride + 1"),
        ["output_size(9, 3, 2, 1)", "you added the padding once"],
    ),
    "padding four times": (
        ("return (n + 2 * padding - kernel) // stride + 1", "return (n + 4 * padding - kernel) // stride + 1"),
        ["output_size(9, 3, 2, 1)", "four times"],
    ),
    "no biases": (
        ("kh * kw * in_channels * filters + filters", "kh * kw * in_channels * filters"),
        ["conv_params(5, 5, 3, 2): expected 152, got 150.", "you forgot the biases"],
    ),
    "bias per input channel and filter": (
        ("kh * kw * in_channels * filters + filters", "kh * kw * in_channels * filters + in_channels * filters"),
        ["expected 152, got 156", "a bias per input channel and filter"],
    ),
    "bias per input channel": (
        ("kh * kw * in_channels * filters + filters", "kh * kw * in_channels * filters + in_channels"),
        ["expected 152, got 153", "a bias per input channel"],
    ),
    "same padding": (("same_padding = 2", "same_padding = 0"), ["expected 28, got 24"]),
    "same padding off by one": (("same_padding = 2", "same_padding = 1"), ["expected 28, got 26", "(kernel - 1) / 2"]),
    "halving off by one": (("halving = (2, 1)", "halving = (2, 0)"), ["expected 32, got 31", "off by one"]),
    "halving too much padding": (("halving = (2, 1)", "halving = (2, 2)"), ["expected 32, got 33", "less padding"]),
    "halving stride 1": (("halving = (2, 1)", "halving = (1, 17)"), ["stride 1 never shrinks a map by half"]),
    "halving not a pair": (("halving = (2, 1)", "halving = 2"), ["halving must be a pair of whole numbers"]),
}


@pytest.mark.parametrize("case", sorted(SIZES_CASES))
def test_week1_size_and_count_mistakes_are_named(case):
    (old, new), phrases = SIZES_CASES[case]
    fails(W1, "sizes.1", run(W1, changed(W1, 2, old, new)), *phrases)


@pytest.mark.parametrize(
    "old, new, phrases",
    [
        (
            "predicted_flatten_input = (5, 5, 16)",
            "predicted_flatten_input = (8, 8, 16)",
            ["your prediction (8, 8, 16) is not it", "takes 4 off the side"],
        ),
        (
            "predicted_dense_params = 5 * 5 * 16 * 120 + 120",
            "predicted_dense_params = 48_000",
            ["your prediction 48000 is not it", "you forgot the 120 biases"],
        ),
        (
            "predicted_dense_params = 5 * 5 * 16 * 120 + 120",
            "predicted_dense_params = 1",
            ["your prediction 1 is not it", "think it through again"],
        ),
    ],
)
def test_week1_a_wrong_prediction_is_told_its_mistake_but_not_the_answer(old, new, phrases, capsys):
    namespace = run(W1, changed(W1, 2, old, new))
    message = fails(W1, "predictions.1", namespace, *phrases)
    assert "Likely cause" in message or new.endswith("= 1")
    assert "(5, 5, 16)" not in message and "48120" not in message and "400 * 120" not in message


def test_week1_right_predictions_print_the_explanation(capsys):
    passes(W1, "predictions.1", run(W1, solved(W1, 2)))
    out = capsys.readouterr().out
    assert "you predicted (5, 5, 16), and it is (5, 5, 16)" in out and "400 * 120 + 120" in out


FIRST = 'layers.Conv2D(6, 5, padding="same", activation="tanh")'
SECOND = 'layers.Conv2D(16, 5, activation="tanh")'
LENET_PADDINGS = {
    "none": ((FIRST, 'layers.Conv2D(6, 5, activation="tanh")'),),
    "both": ((SECOND, 'layers.Conv2D(16, 5, padding="same", activation="tanh")'),),
    "the second only": (
        (FIRST, 'layers.Conv2D(6, 5, activation="tanh")'),
        (SECOND, 'layers.Conv2D(16, 5, padding="same", activation="tanh")'),
    ),
}


@pytest.mark.parametrize(
    "case, expected, phrase",
    [
        ("none", "[(24, 24, 6), (8, 8, 16)]", "without padding the maps end at 4x4"),
        ("both", "[(28, 28, 6), (14, 14, 16)]", "with padding='same' on both the maps end at 7x7"),
        ("the second only", "[(24, 24, 6), (12, 12, 16)]", "the padding is on the wrong convolution"),
    ],
)
def test_week1_lenet_padding_decision_is_explained(case, expected, phrase):
    source = solved(W1, 3)
    for old, new in LENET_PADDINGS[case]:
        assert old in source
        source = source.replace(old, new)
    fails(W1, "lenet5.1", run(W1, source), f"got {expected}", phrase)


def test_week1_an_untrained_model_is_named():
    namespace = run(W1, solved(W1, 3), "lenet = build_lenet5()\ndigits = data.load_digits(size=28, seed=0)")
    fails(W1, "training.1", namespace, "at least 0.95 is needed", "log(10) = 2.30", "has not learned")


TTA_MISTAKES = {
    "original missing": (
        "def tta_predict(model, images, augment, copies=8):\n"
        "    return sum(model.predict(augment(images, training=True), verbose=0) for _ in range(copies)) / copies",
        "the original image is missing",
    ),
    "copies plus one": (
        "def tta_predict(model, images, augment, copies=8):\n"
        "    total = model.predict(images, verbose=0)\n"
        "    for _ in range(copies):\n"
        "        total = total + model.predict(augment(images, training=True), verbose=0)\n"
        "    return total / (copies + 1)",
        "`copies` counts the original too",
    ),
    "summed": (
        "def tta_predict(model, images, augment, copies=8):\n"
        "    total = model.predict(images, verbose=0)\n"
        "    for _ in range(copies - 1):\n"
        "        total = total + model.predict(augment(images, training=True), verbose=0)\n"
        "    return total",
        "you summed the probabilities",
    ),
}


@pytest.mark.parametrize("case", sorted(TTA_MISTAKES))
def test_week1_tta_mistakes_are_named(case):
    source, phrase = TTA_MISTAKES[case]
    namespace = run(W1, solved(W1, 3), "lenet = build_lenet5()\ndigits = data.load_digits(size=28, seed=0)", source)
    fails(W1, "tta.1", namespace, phrase)


@pytest.fixture(scope="module")
def trained_lenet():
    """The solution's LeNet-5, trained as the solution trains it at profile smoke (about 10 s)."""
    return run(
        W1,
        solved(W1, 3),
        "lenet = build_lenet5()",
        "digits = data.load_digits(size=28, seed=0)\nEPOCHS = 8",
        solved(W1, 4),
    )


@pytest.mark.parametrize("guess, phrase", [("higher", "does a mirrored 3 or 7?"), ("the same", "not ignored")])
def test_week1_mirror_prediction_mistakes_are_named(trained_lenet, guess, phrase):
    message = fails(W1, "mirror-prediction.1", {**trained_lenet, "predicted_effect": guess}, "is not it", phrase)
    assert "Alone LeNet-5 scores" not in message


@pytest.mark.parametrize(
    "augment, phrase",
    [
        ('keras.Sequential([layers.RandomFlip("horizontal")])', "a flipped digit is another shape"),
        ("keras.Sequential([layers.RandomRotation(0.5)])", "what a handwritten digit can undergo"),
        ("keras.Sequential([layers.Identity()])", "leaves the images (almost) as they are"),
        ("lambda images, training=False: images[:, :, ::-1]", "must be a keras.Sequential"),
    ],
)
def test_week1_augmentations_that_change_the_digit_or_nothing_are_named(trained_lenet, augment, phrase):
    namespace = dict(trained_lenet)
    exec(f"tta_augment = {augment}", namespace)
    fails(W1, "tta-augmentation.1", namespace, phrase)


GRADIENT_CASES = {
    "flipped kernel in the input gradient": (
        (
            "grad_padded = correlate2d(around, kernel[::-1, ::-1].transpose(0, 1, 3, 2))",
            "grad_padded = correlate2d(around, kernel.transpose(0, 1, 3, 2))",
        ),
        ["grad_x against central differences (padding=0, stride=1): relative error", "the kernel flipped"],
    ),
    "padding not cropped": (
        (
            "padding : padding + x.shape[0], padding : padding + x.shape[1]",
            ":, :",
        ),
        ["(padding=1, stride=2): expected shape (5, 6, 2), got (7, 8, 2).", "gradient of the PADDED input"],
    ),
    "flipped kernel gradient": (
        (
            "[:kh, :kw]\n            for c in range(channels)",
            "[:kh, :kw][::-1, ::-1]\n            for c in range(channels)",
        ),
        ["grad_kernel against central differences", "your kernel gradient is flipped"],
    ),
    "grad_y not spread out for the stride": (
        ("    spread[::stride, ::stride] = grad_y\n", "    spread = grad_y\n"),
        ["(padding=1, stride=2)"],
    ),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_week1_gradient_check_catches_and_names_backward_mistakes(case):
    (old, new), phrases = GRADIENT_CASES[case]
    fails(W1, "gradient.1", run(W1, solved(W1, 1), changed(W1, 9, old, new)), *phrases)


def test_week1_gradient_checks_pass_on_the_solution(capsys):
    namespace = run(W1, solved(W1, 1), solved(W1, 9))
    passes(W1, "gradient.1", namespace)
    passes(W1, "gradient.2", namespace)
    assert "the backward pass: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "rows, columns, phrase",
    [
        ((2, 4), (4, 6), "the padding shifts every window"),
        ((0, 2), (1, 3), "moves the window by the stride"),
        ((1, 3), (3, 4), "think it through"),
    ],
)
def test_week1_reach_prediction_mistakes_are_named_without_the_answer(rows, columns, phrase, capsys):
    source = f"predicted_rows = {rows}\npredicted_columns = {columns}"
    message = fails(W1, "reach.1", run(W1, source), phrase)
    assert "columns 3 to 5" not in message + capsys.readouterr().out


# --- week 2 --------------------------------------------------------------------------------------

W2 = "week2_exercise"


@pytest.mark.parametrize(
    "prediction, phrases",
    [
        ("6400", ["your prediction 6400 is not it", "you forgot the biases"]),
        ("448 * 5 + 5", ["your prediction 2245 is not it", "does not thin MobileNetV2's last layer"]),
        ("2_300_000", ["only the new head does"]),
        ("25_605", ["flattened last map", "requirement 1 rules it out"]),
    ],
)
def test_week2_prediction_mistakes_are_named(prediction, phrases):
    message = fails(W2, "prediction.1", run(W2, f"predicted_trainable = {prediction}"), *phrases)
    assert "6405" not in message and "1280 x 5" not in message


@pytest.mark.parametrize(
    "old, new, phrases",
    [
        ("    base.trainable = False\n", "", ["the base still trains"]),
        (
            "layers.GlobalAveragePooling2D()(x)",
            "layers.Flatten()(x)",
            ["expected 6405, got 25605", "you flattened the 2 x 2 x 1280 feature map"],
        ),
        (
            "layers.GlobalAveragePooling2D()(x)",
            "layers.Dense(64, activation='relu')(layers.GlobalAveragePooling2D()(x))",
            ["expected 6405, got 82309", "your head has a hidden layer"],
        ),
        (
            "layers.Rescaling(2.0, offset=-1.0)",
            "layers.Rescaling(1 / 127.5, offset=-1.0)",
            ["scale 1/127.5 is for images in [0, 255]"],
        ),
        ("layers.Rescaling(2.0, offset=-1.0)", "layers.Rescaling(2.0)", ["x * 2 alone gives [0, 2]"]),
    ],
)
def test_week2_frozen_classifier_mistakes_are_named(old, new, phrases):
    fails(W2, "frozen-base-with-a-new-head.1", run(W2, changed(W2, 2, old, new)), *phrases)


@pytest.mark.parametrize(
    "pooling",
    [
        "layers.GlobalAveragePooling2D()(x)",
        "layers.GlobalMaxPooling2D()(x)",
        "layers.GlobalAveragePooling2D()(layers.Conv2D(num_classes, 1)(x))",
    ],
)
def test_week2_any_head_that_meets_the_requirements_is_accepted(pooling):
    """The head is the student's decision: average or max pooling, or a 1x1 convolution pooled, all qualify."""
    source = changed(W2, 2, "layers.GlobalAveragePooling2D()(x)", pooling)
    if "Conv2D" in pooling:  # the 1x1 convolution is the classifier: the last layer is then softmax only
        source = source.replace(
            'outputs = layers.Dense(num_classes, activation="softmax")(x)', "outputs = layers.Softmax()(x)"
        )
    namespace = run(W2, source)
    passes(W2, "frozen-base-with-a-new-head.1", namespace)


def test_week2_batch_normalisation_left_trainable_is_named():
    wrong = changed(
        W2,
        5,
        "    for layer in base.layers:\n        if isinstance(layer, layers.BatchNormalization):\n"
        "            layer.trainable = False\n",
        "",
    )
    namespace = run(W2, solved(W2, 2))
    passes(W2, "frozen-base-with-a-new-head.1", namespace)
    exec(wrong, namespace)
    fails(W2, "fine-tuning-set-up.1", namespace, "every BatchNormalization layer stays frozen")


@pytest.mark.parametrize(
    "loss",
    [
        "keras.losses.SparseCategoricalCrossentropy()",
        "keras.losses.sparse_categorical_crossentropy",
        "keras.losses.SparseCategoricalCrossentropy(from_logits=False)",
        "'SparseCategoricalCrossentropy'",
    ],
)
def test_week2_any_equivalent_loss_is_accepted(loss):
    namespace = run(W2, solved(W2, 2), changed(W2, 5, 'loss="sparse_categorical_crossentropy"', f"loss={loss}"))
    for check_id in ("frozen-base-with-a-new-head.1", "fine-tuning-set-up.1", "fine-tuning-set-up.2"):
        passes(W2, check_id, namespace)


@pytest.mark.parametrize(
    "loss, phrase",
    [
        ("keras.losses.SparseCategoricalCrossentropy(from_logits=True)", "from_logits=True tells the loss"),
        ("'categorical_crossentropy'", "categorical_crossentropy expects one-hot labels"),
        ("'no_such_loss'", "Keras knows no loss named 'no_such_loss'"),
    ],
)
def test_week2_a_wrong_loss_is_named(loss, phrase):
    namespace = run(W2, solved(W2, 2), changed(W2, 5, 'loss="sparse_categorical_crossentropy"', f"loss={loss}"))
    passes(W2, "frozen-base-with-a-new-head.1", namespace)
    fails(W2, "fine-tuning-set-up.1", namespace, "the loss: ", phrase)
    fails(W2, "fine-tuning-set-up.2", namespace, "hidden: the loss", phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            "(np.asarray(y_true), np.asarray(y_pred))",
            "(np.asarray(y_pred), np.asarray(y_true))",
            "rows and columns are swapped",
        ),
        (
            "matrix.sum(axis=0),\n        out=np.zeros_like(correct),\n        where=matrix.sum(axis=0) > 0,",
            "matrix.sum(axis=1),\n        out=np.zeros_like(correct),\n        where=matrix.sum(axis=1) > 0,",
            "you divided by the row sums (all images of the class): that is recall",
        ),
    ],
)
def test_week2_precision_recall_mistakes_are_named(old, new, phrase):
    fails(W2, "precision-and-recall.1", run(W2, changed(W2, 7, old, new)), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("    model.set_weights(kept)\n", "", "keep model.get_weights() before it"),
        (
            "float(np.mean(training == labels)),\n        float(np.mean(inference == labels)),",
            "float(np.mean(inference == labels)),\n        float(np.mean(training == labels)),",
            "the pair is the wrong way round",
        ),
        ("model(images, training=True)", "model(images, training=False)", "call the model with training=True"),
    ],
)
def test_week2_both_modes_mistakes_are_named(old, new, phrase):
    fails(W2, "both-modes.1", run(W2, changed(W2, 3, old, new)), phrase)


@pytest.mark.parametrize(
    "guess, phrase",
    [
        ("overfitting", "would score high on them in inference mode"),
        ("learning_rate", "would fail in training mode as well"),
        ("dropout", "diagnosis is one of"),
    ],
)
def test_week2_diagnosis_mistakes_are_named_without_the_answer(guess, phrase, capsys):
    message = fails(W2, "diagnosis.1", run(W2, f"diagnosis = {guess!r}"), phrase)
    assert "moving averages" not in message + capsys.readouterr().out


def test_week2_the_diagnosis_is_explained_once_right(capsys):
    passes(W2, "diagnosis.1", run(W2, "diagnosis = 'batchnorm'"))
    assert "moving averages" in capsys.readouterr().out


# --- week 3 --------------------------------------------------------------------------------------

W3 = "week3_exercise"
IOU_CASES = {
    "inclusive pixels": (
        [
            ("b[None, :, 2]) - np.maximum", "b[None, :, 2]) + 1 - np.maximum"),
            ("b[None, :, 3]) - np.maximum", "b[None, :, 3]) + 1 - np.maximum"),
            ("(a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])", "(a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)"),
            ("(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])", "(b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)"),
        ],
        "you counted pixels inclusively",
    ),
    "double subtraction": (
        [("area_b[None, :] - inter)", "area_b[None, :] - 2 * inter)")],
        "subtracts the intersection twice",
    ),
    "no subtraction": ([("area_b[None, :] - inter)", "area_b[None, :])")], "the union must subtract the intersection"),
    "no clipping": (
        [("np.clip(width, 0, None) * np.clip(height, 0, None)", "width * height")],
        "clip each of them at 0",
    ),
}


@pytest.mark.parametrize("case", sorted(IOU_CASES))
def test_week3_iou_mistakes_are_named(case):
    replacements, phrase = IOU_CASES[case]
    source = solved(W3, 1)
    for old, new in replacements:
        assert old in source
        source = source.replace(old, new)
    fails(W3, "iou.1", run(W3, source), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            "alpha_t = y * alpha + (1 - y) * (1 - alpha)",
            "alpha_t = y * (1 - alpha) + (1 - y) * alpha",
            "alpha_t is swapped",
        ),
        ("return float(np.sum(", "return float(np.mean(", "you averaged the entries"),
        ("(1 - p_t) ** gamma", "p_t ** gamma", "you wrote p_t ** gamma"),
    ],
)
def test_week3_focal_loss_mistakes_are_named(old, new, phrase):
    fails(W3, "focal.1", run(W3, changed(W3, 2, old, new)), phrase)


@pytest.mark.parametrize(
    "guess, phrase", [(1, "a removed box suppresses nothing"), (3, "compare it with the threshold")]
)
def test_week3_nms_prediction_mistakes_are_named(guess, phrase):
    message = fails(
        W3, "prediction.1", run(W3, f"predicted_kept = {guess}"), f"your prediction {guess} is not it", phrase
    )
    assert "80 / 120" not in message and "keeps C" not in message


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            'order = list(np.argsort(-np.asarray(scores), kind="stable"))',
            "order = list(range(len(scores)))",
            "input order",
        ),
        ("if o <= iou_threshold]", "if o > iou_threshold]", "you removed the boxes that overlap LITTLE"),
        (
            "return np.array(keep, dtype=np.int64)",
            "return np.array(sorted(keep), dtype=np.int64)",
            "not in index order",
        ),
    ],
)
def test_week3_nms_mistakes_are_named(old, new, phrase):
    fails(W3, "nms.1", run(W3, solved(W3, 1), changed(W3, 4, old, new)), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            'np.argsort(-np.asarray(scores, np.float64), kind="stable")',
            "np.arange(len(scores))",
            "sort them by decreasing score",
        ),
        (
            'np.argsort(-np.asarray(scores, np.float64), kind="stable")',
            "np.argsort(scores)",
            "you sorted by increasing score",
        ),
        (
            "    precision = np.maximum.accumulate(precision[::-1])[::-1]\n",
            "",
            "you did not make the precision monotone",
        ),
        ("recall = true_so_far / n_objects", "recall = true_so_far / max(true_so_far[-1], 1)", "recall divides by"),
    ],
)
def test_week3_average_precision_mistakes_are_named(old, new, phrase):
    fails(W3, "ap.1", run(W3, changed(W3, 9, old, new)), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("labels[best < negative] = 0", "labels[best < positive] = 0", "ignored (-1), not background"),
        ("labels[best >= positive] = 1", "labels[best >= negative] = 1", "ignored (-1), not a positive"),
    ],
)
def test_week3_anchor_label_mistakes_are_named(old, new, phrase):
    fails(W3, "anchors.1", run(W3, solved(W3, 1), changed(W3, 5, old, new)), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("np.log(size / anchor_size)],", "size / anchor_size - 1],", "a logarithm of the size ratio"),
        (
            "(centre - anchor_centre) / anchor_size, np.log",
            "(centre - anchor_centre) / anchor_size[:, :1], np.log",
            "divide the vertical shift by the anchor's height",
        ),
        ("(centre - anchor_centre) / anchor_size, np.log", "(centre - anchor_centre), np.log", "in anchor sizes"),
        (
            "return np.concatenate(\n"
            "        [(centre - anchor_centre) / anchor_size, np.log(size / anchor_size)],\n"
            "        axis=1,\n"
            "    )",
            "return np.concatenate([(b[:, :2] - a[:, :2]) / anchor_size, (b[:, 2:] - a[:, 2:]) / anchor_size], 1)",
            "corner offsets do neither",
        ),
    ],
)
def test_week3_box_encoding_mistakes_are_named(old, new, phrase):
    fails(W3, "boxes.1", run(W3, changed(W3, 6, old, new)), phrase)


def test_week3_box_decoding_must_invert_the_encoding():
    wrong = changed(W3, 6, "size = anchor_size * np.exp(o[:, 2:])", "size = anchor_size * o[:, 2:]")
    fails(W3, "boxes.1", run(W3, wrong), "decoding the offsets encode_boxes gave")


@pytest.mark.parametrize("guess, phrase", [(2, "the higher score claims the object first"), (3, "think it through")])
def test_week3_matching_prediction_mistakes_are_named(guess, phrase):
    message = fails(W3, "matching_prediction.1", run(W3, f"predicted_true_positive = {guess}"), "is not it", phrase)
    assert "0.625" not in message and "duplicate" not in message


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ('order = np.argsort(-np.asarray(scores), kind="stable")', "order = np.arange(len(scores))", "input order"),
        ("            claimed[best] = True\n", "", "found at most once"),
        ("free = np.where(claimed, -1.0, overlaps[rank])", "free = overlaps[rank]", "the best of the objects still"),
    ],
)
def test_week3_matching_mistakes_are_named(old, new, phrase):
    if "free = overlaps[rank]" in new:  # a detection whose best object is taken gives up
        new = "free = overlaps[rank] if not claimed[np.argmax(overlaps[rank])] else np.zeros_like(overlaps[rank])"
    fails(W3, "matching.1", run(W3, solved(W3, 1), changed(W3, 8, old, new)), phrase)


# --- week 4 --------------------------------------------------------------------------------------

W4 = "week4_exercise"


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("2.0 * np.sum(truth & predicted) / total", "np.sum(truth & predicted) / total", "Dice has a factor 2"),
        (
            "return 1.0 if union == 0 else np.sum(truth & predicted) / union",
            "return np.sum(truth & predicted) / (truth.sum() + predicted.sum() - 2 * np.sum(truth & predicted))",
            "the union subtracts the intersection twice",
        ),
        (
            "return 1.0 if union == 0 else np.sum(truth & predicted) / union",
            "return 1.0 if union == 0 else np.sum(truth & predicted) / (truth.sum() + predicted.sum())",
            "you divided by |T| + |P|",
        ),
        ("return 1.0 if total == 0 else", "return 0.0 if total == 0 else", "two empty masks agree perfectly"),
    ],
)
def test_week4_dice_and_iou_mistakes_are_named(old, new, phrase):
    fails(W4, "dice-and-iou.1", run(W4, changed(W4, 1, old, new)), phrase)


def test_week4_a_division_by_zero_is_named():
    wrong = changed(
        W4,
        1,
        "return 1.0 if union == 0 else np.sum(truth & predicted) / union",
        "return np.float64(np.sum(truth & predicted)) / np.float64(union)",
    )
    with np.errstate(invalid="ignore"):
        fails(W4, "dice-and-iou.1", run(W4, wrong), "iou of two empty masks", "0 / 0 gives nan")


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("return (n - 1) * stride + kernel", "return (n - kernel) // stride + 1", "size of a (forward) convolution"),
        ("return (n - 1) * stride + kernel", "return n * stride + kernel - 1", "not n * stride"),
        ('    if padding == "same":\n        return n * stride\n', "", "with 'same' the output is exactly stride * n"),
    ],
)
def test_week4_transposed_size_mistakes_are_named(old, new, phrase):
    fails(W4, "transposed-convolution-sizes.1", run(W4, changed(W4, 2, old, new)), phrase)


UP = 'layers.Conv2DTranspose(level, 2, strides=2, padding="same")'


@pytest.mark.parametrize(
    "new, phrases",
    [
        (
            'layers.Conv2DTranspose(level, 3, strides=2, padding="same")',
            ["kernel 3 with stride 2 overlaps", "unevenly"],
        ),
        (
            'layers.Conv2DTranspose(level, 4, strides=2, padding="same")',
            ["kernel 4 with stride 2 overlaps: neighbouring kernel positions share output pixels. Requirement 2"],
        ),
        (
            'layers.Conv2DTranspose(level, 1, strides=2, padding="same")',
            ["kernel 1 with stride 2 leaves gaps: of every 2 x 2 output pixels only 1 receive"],
        ),
        (
            'layers.Conv2DTranspose(level, 3, strides=2, padding="valid")',
            ["build_unet((32, 32, 3), 3) failed", "does not exactly double the size", "transposed_output_size"],
        ),
    ],
)
def test_week4_upsampling_decision_is_explained(new, phrases):
    fails(W4, "u-net.1", run(W4, changed(W4, 3, UP, new)), *phrases)


def test_week4_either_padding_of_a_2x2_upsampling_is_accepted():
    """Kernel 2 and stride 2 double the size with 'valid' as with 'same': both meet the requirements."""
    passes(W4, "u-net.1", run(W4, changed(W4, 3, UP, UP.replace('"same"', '"valid"'))))


def test_week4_unet_biases_are_named():
    wrong = changed(W4, 3, 'padding="same", use_bias=False)', 'padding="same")')
    fails(W4, "u-net.1", run(W4, wrong), "expected 121899, got 122251", "use_bias=False")


@pytest.mark.parametrize(
    "answer, phrases",
    [
        (
            "predicted_half_params = 121_899 / 2",
            ["your prediction 60949.5 is not it", "its input channels AND its filters"],
        ),
        (
            "predicted_half_params = 30_000\n"
            "def build_small_unet(input_shape=(32, 32, 3), num_classes=3):\n"
            "    return build_unet(input_shape, num_classes, filters=(6, 12, 24, 48))",
            ["has 68,", "the budget is 40,000"],
        ),
        (
            "predicted_half_params = 30_000\n"
            "def build_small_unet(input_shape=(32, 32, 3), num_classes=3):\n"
            "    inputs = keras.Input(input_shape)\n"
            "    x = layers.Conv2D(8, 3, padding='same', activation='relu')(inputs)\n"
            "    for _ in range(3):\n"
            "        x = layers.MaxPooling2D(2)(x)\n"
            "    for _ in range(3):\n"
            "        x = layers.Conv2DTranspose(8, 2, strides=2, padding='same')(x)\n"
            "    return keras.Model(inputs, layers.Conv2D(num_classes, 1, activation='softmax')(x))",
            ["skip connections (Concatenate layers) of the small U-Net: expected 3, got 0", "keep all three"],
        ),
    ],
)
def test_week4_budget_mistakes_are_named(answer, phrases):
    fails(W4, "budget.1", run(W4, solved(W4, 3), answer), *phrases)


# --- week 5 --------------------------------------------------------------------------------------

W5 = "week5_exercise"


@pytest.mark.parametrize(
    "source, phrase",
    [
        ("def cosine_similarity_matrix(a, b):\n    return a @ b.T", "plain dot products"),
        (
            "def cosine_similarity_matrix(a, b):\n    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ b.T",
            "only the rows of a were normalised",
        ),
        (
            "def cosine_similarity_matrix(a, b):\n"
            "    return (a / np.linalg.norm(a, axis=0)) @ (b / np.linalg.norm(b, axis=0)).T",
            "you normalised the columns",
        ),
    ],
)
def test_week5_cosine_mistakes_are_named(source, phrase):
    fails(W5, "cosine-similarity-matrix.1", run(W5, source), phrase)


@pytest.mark.parametrize(
    "guess, phrase",
    [
        ("np.log(3)", "not over the 3 classes"),
        ("1 / 48", "minus its log"),
        ("0", "far from 0"),
        ("np.log(48) / 0.1", "a softmax ignores"),
    ],
)
def test_week5_prediction_mistakes_are_named(guess, phrase):
    message = fails(W5, "prediction.1", run(W5, f"predicted_collapsed_loss = {guess}"), "is not it", phrase)
    assert "3.87" not in message and "log(48)" not in message


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            "cosine_similarity_matrix(anchors, positives) / temperature",
            "cosine_similarity_matrix(anchors, positives)",
            "you did not divide the similarities by the temperature",
        ),
        (
            "cosine_similarity_matrix(anchors, positives) / temperature",
            "cosine_similarity_matrix(anchors, positives) * temperature",
            "you multiplied by the temperature",
        ),
        (
            "return float(-np.mean(np.diag(log_probabilities)))",
            "return float(-np.sum(np.diag(log_probabilities)))",
            "you summed over the rows",
        ),
        (
            "cosine_similarity_matrix(anchors, positives) / temperature",
            "cosine_similarity_matrix(positives, anchors) / temperature",
            "the softmax runs over each ROW",
        ),
    ],
)
def test_week5_softmax_loss_mistakes_are_named(old, new, phrase):
    fails(W5, "temperature-softmax-loss.1", run(W5, solved(W5, 1), changed(W5, 3, old, new)), phrase)


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        (
            'np.argsort(-similarities, axis=1, kind="stable")',
            'np.argsort(similarities, axis=1, kind="stable")',
            "the k LEAST similar references",
        ),
        (
            "similarities = cosine_similarity_matrix(queries, reference)",
            "similarities = -np.linalg.norm(queries[:, None] - reference[None], axis=-1)",
            "Euclidean distances",
        ),
    ],
)
def test_week5_knn_mistakes_are_named(old, new, phrase):
    fails(W5, "knn-majority-vote.1", run(W5, solved(W5, 1), changed(W5, 6, old, new)), phrase)


@pytest.mark.parametrize(
    "guess, phrase",
    [(0, "does not bring this loss to 0"), (float(np.log(48)), "collapsed embeddings"), (1.0, "think it through")],
)
def test_week5_clustered_prediction_mistakes_are_named(guess, phrase):
    message = fails(W5, "clustered-prediction.1", run(W5, f"predicted_clustered_loss = {guess}"), "is not it", phrase)
    assert "2.77" not in message and "log(16)" not in message


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("    target = same / same.sum(axis=1, keepdims=True)\n", "    target = same\n", "must sum to 1"),
        (
            "return float(-np.mean(np.sum(target * log_probabilities, axis=1)))",
            "return float(-np.mean(np.log(np.sum(target * np.exp(log_probabilities), axis=1) * same.sum(1))))",
            "TOTAL probability",
        ),
        (
            "    target = same / same.sum(axis=1, keepdims=True)\n",
            "    target = np.eye(len(same))\n",
            "that is part 2's target",
        ),
    ],
)
def test_week5_class_softmax_loss_mistakes_are_named(old, new, phrase):
    namespace = run(W5, solved(W5, 1), solved(W5, 3), changed(W5, 5, old, new))
    fails(W5, "class-softmax-loss.1", namespace, phrase)


def split(rng, n, noise):
    """Noisy embeddings of three classes (unit rows), with their labels."""
    labels = np.arange(n) % 3
    vectors = np.eye(8)[labels] + rng.normal(0, noise, (n, 8))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit, SimpleNamespace(labels=labels, images=unit)


def identity_embedder(dim=8):
    """A network whose embedding of an "image" is the image itself (the check embeds the sets with `embedder`)."""
    import keras

    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Activation("linear")(inputs))


def test_week5_k_chosen_on_the_test_set_is_named():
    namespace = run(W5, solved(W5, 1), solved(W5, 6))
    knn_vote, candidates = namespace["knn_vote"], [1, 3, 5, 7, 9, 15]
    for seed in range(200):  # a draw where the test set prefers another k than the validation set
        rng = np.random.default_rng(seed)
        (train_e, train), (val_e, val), (test_e, test) = split(rng, 60, 0.9), split(rng, 45, 0.9), split(rng, 45, 0.9)
        score = {k: np.mean(knn_vote(train_e, train.labels, val_e, k) == val.labels) for k in candidates}
        on_test = {k: np.mean(knn_vote(train_e, train.labels, test_e, k) == test.labels) for k in candidates}
        right, wrong = (max(candidates, key=lambda k: (s[k], -k)) for s in (score, on_test))
        if right != wrong:
            break
    else:
        pytest.fail("no draw separates the validation and test choices of k")
    namespace.update(
        embedder=identity_embedder(),
        train=train,
        validation=val,
        test=test,
        CANDIDATES=candidates,
        best_k=wrong,
        test_accuracy=on_test[wrong],
    )
    fails(
        W5,
        "choosing-k-and-test-accuracy.1",
        namespace,
        "best_k (highest validation accuracy)",
        "you chose k on the TEST set",
    )


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("similarities >= threshold", "similarities > threshold", "(>=, not >)"),
        (
            "return int(np.sum(accepted & ~same)), int(np.sum(~accepted & same))",
            "return int(np.sum(~accepted & same)), int(np.sum(accepted & ~same))",
            "are swapped",
        ),
        (
            "return int(np.sum(accepted & ~same)), int(np.sum(~accepted & same))",
            "return int(np.sum(accepted & same)), int(np.sum(~accepted & ~same))",
            "count the right decisions",
        ),
    ],
)
def test_week5_pair_error_mistakes_are_named(old, new, phrase):
    fails(W5, "pair-errors.1", run(W5, changed(W5, 9, old, new)), phrase)


def overlapping_sets(seed=0, n=150):
    """A validation and a test set of ``n`` noisy three-class embeddings each, whose pairs overlap in similarity."""
    rng = np.random.default_rng(seed)
    (validation_e, validation), (test_e, test) = split(rng, n, 0.5), split(rng, n, 0.5)
    return validation_e, validation, test_e, test


@pytest.mark.parametrize(
    "guess, phrase", [("lower", "accepts MORE pairs"), ("the same", "the best trade"), ("up", "'higher', 'lower'")]
)
def test_week5_threshold_direction_mistakes_are_named(guess, phrase):
    validation_e, validation, _, _ = overlapping_sets()
    namespace = run(W5, f"predicted_direction = {guess!r}")
    namespace.update(embedder=identity_embedder(), validation=validation)
    message = fails(W5, "threshold-prediction.1", namespace, phrase)
    assert "come at" not in message  # the thresholds are shown only after a right prediction


def threshold_namespace(old=None, new=None, sets=None):
    """Part 7 answered on ``sets`` (by default the overlapping sets), with ``old`` replaced by ``new`` in the
    threshold's answer."""
    from course_utils import metric_learning as ml

    validation_e, validation, test_e, test = sets or overlapping_sets()
    namespace = run(W5, solved(W5, 9))
    namespace.update(embedder=identity_embedder(), validation=validation, test=test)
    namespace["validation_similarities"], namespace["validation_same"] = ml.all_pairs(validation_e, validation.labels)
    namespace["test_similarities"], namespace["test_same"] = ml.all_pairs(test_e, test.labels)
    exec(solved(W5, 11) if old is None else changed(W5, 11, old, new), namespace)
    return namespace


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("5 * accepts + rejects", "accepts + rejects", "minimises the NUMBER of errors"),
        ("5 * accepts + rejects", "accepts + 5 * rejects", "the weights are swapped"),
    ],
)
def test_week5_threshold_mistakes_are_named(old, new, phrase):
    fails(W5, "threshold.1", threshold_namespace(old, new), "a better threshold costs", phrase)


@pytest.mark.parametrize("threshold", ["'0.8'", "None", "float('nan')", "True", "[0.8]"])
def test_week5_a_threshold_that_is_no_number_is_named(threshold):
    namespace = threshold_namespace()
    exec(f"threshold = {threshold}", namespace)
    fails(W5, "threshold.1", namespace, "threshold must be a finite number")


def test_week5_a_threshold_chosen_on_the_test_pairs_is_named():
    on_test = (
        "candidates = np.unique(validation_similarities)",
        "candidates = np.unique(test_similarities)\n"
        "validation_similarities, validation_same = test_similarities, test_same",
    )
    for seed in range(50):  # small sets, so that the test pairs' cheapest threshold costs more on validation
        namespace = threshold_namespace(*on_test, sets=overlapping_sets(seed, n=45))
        try:
            passes(W5, "threshold.1", namespace)
        except AssertionError as error:
            assert "you chose it on the TEST pairs" in str(error), error
            return
    pytest.fail("no draw makes the test pairs' threshold costly on the validation pairs")


def test_week5_a_threshold_found_on_a_grid_passes_and_swapped_rates_are_named():
    grid = "candidates = np.linspace(-1, 1, 201)"
    passes(W5, "threshold.1", threshold_namespace("candidates = np.unique(validation_similarities)", grid))
    swapped = threshold_namespace(
        "test_false_accept_rate = false_accepts / np.sum(~test_same)",
        "test_false_accept_rate = false_rejects / np.sum(test_same)",
    )
    swapped["test_false_reject_rate"] = swapped["false_accepts"] / np.sum(~swapped["test_same"])
    fails(W5, "threshold.1", swapped, "the two rates are swapped")


@pytest.mark.parametrize(
    "guess, phrase",
    [
        (61, "each 2x2 pooling widens the field too"),
        (17, "2, 4, then 8 input pixels apart"),
        (36, "the bottleneck block's two convolutions"),
        (33, "think it through"),
    ],
)
def test_week4_receptive_field_mistakes_are_named(guess, phrase, capsys):
    message = fails(W4, "receptive-field.1", run(W4, f"predicted_receptive_field = {guess}"), phrase)
    assert "68" not in message + capsys.readouterr().out


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("return 1.0 - (2.0 * overlap + 1.0)", "return (2.0 * overlap + 1.0)", "that is the Dice coefficient"),
        ("y_pred[..., 1]", "y_pred[..., 0]", "channel 0 is the background's probability"),
        ("(2.0 * overlap + 1.0)", "(overlap + 1.0)", "Dice has a factor 2"),
        (
            "(2.0 * overlap + 1.0) / (\n        keras.ops.sum(truth) + keras.ops.sum(objects) + 1.0\n    )",
            "(2.0 * overlap) / (keras.ops.sum(truth) + keras.ops.sum(objects))",
            "add 1 to both",
        ),
        (
            "objects = keras.ops.reshape(y_pred[..., 1], (-1,))",
            "objects = keras.ops.cast(keras.ops.reshape(keras.ops.argmax(y_pred, axis=-1), (-1,)), 'float32')",
            "the soft Dice loss of a random batch",
        ),
    ],
)
def test_week4_soft_dice_mistakes_are_named(old, new, phrase):
    fails(W4, "soft-dice-loss.1", run(W4, changed(W4, 6, old, new)), phrase)


def test_week4_a_loss_without_a_gradient_is_named():
    """Hard predictions with the right value on the check's batch still cannot train."""
    source = "import tensorflow as tf\n" + solved(W4, 6).replace(
        "objects = keras.ops.reshape(y_pred[..., 1], (-1,))",
        "objects = tf.stop_gradient(keras.ops.reshape(y_pred[..., 1], (-1,)))",
    )
    fails(W4, "soft-dice-loss.1", run(W4, source), "no gradient with respect to the predicted probabilities")


FOUND = {
    "clear": {"ce": [0.75, 0.9, 0.82], "dice": [0.99, 0.98, 0.97]},
    "overlap": {"ce": [0.75, 0.9, 0.82], "dice": [0.99, 0.85, 0.97]},
}


@pytest.mark.parametrize(
    "found, better, beyond, phrase",
    [
        ("clear", "ce", True, "your own numbers say otherwise"),
        ("clear", "dice", False, "even the worst seed of dice found more objects than the best seed of ce"),
        ("overlap", "dice", True, "a seed of ce did as well as a seed of dice"),
        ("overlap", "dice", "yes", "beyond_noise is True or False"),
    ],
)
def test_week4_verdict_mistakes_are_named(found, better, beyond, phrase):
    source = f"found = {FOUND[found]!r}\nbetter_loss = {better!r}\nbeyond_noise = {beyond!r}"
    fails(W4, "loss-verdict.1", run(W4, source), phrase)


def test_week4_verdicts_that_read_the_numbers_right_pass(capsys):
    passes(W4, "loss-verdict.1", run(W4, f"found = {FOUND['overlap']!r}\nbetter_loss = 'dice'\nbeyond_noise = False"))
    assert "the seeds overlap" in capsys.readouterr().out.lower()
    passes(W4, "loss-verdict.1", run(W4, f"found = {FOUND['clear']!r}\nbetter_loss = 'dice'\nbeyond_noise = True"))


@pytest.mark.parametrize(
    "found, phrase",
    [
        ({"ce": [0.8, 0.9], "dice": [0.9, 0.9, 0.9]}, "must hold three shares"),
        ({"ce": [0.8, 0.9, 0.7]}, "with the keys 'ce' and 'dice'"),
        ({"ce": [80, 90, 70], "dice": [90, 95, 99]}, "shares between 0 and 1"),
    ],
)
def test_week4_malformed_results_are_named(found, phrase):
    source = f"found = {found!r}\nbetter_loss = 'dice'\nbeyond_noise = True"
    fails(W4, "loss-verdict.1", run(W4, source), phrase)


def test_week4_a_prediction_against_the_measured_order_is_told_so():
    source = "predicted_better_loss = 'ce'\nfound = {'ce': [0.8, 0.85, 0.9], 'dice': [0.95, 0.97, 0.99]}"
    fails(W4, "loss-prediction.1", run(W4, source), "which loss still notices a missed tiny object")
