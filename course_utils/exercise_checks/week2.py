"""The visible checks of week 2's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from course_utils import recognition, segmentation
from course_utils.checks import (
    check,
    check_close,
    check_equal,
    check_own_work,
    check_reached,
    check_shape,
    diagnose_classifier,
)


def week2_frozen_classifier(build_frozen_classifier) -> keras.Model:
    """The frozen MobileNetV2 with a new head: a frozen base, a pooled head of the right size, softmax outputs and
    the right input rescaling. Returns the model, which the next check fine-tunes."""
    frozen = build_frozen_classifier(5, input_size=64, alpha=0.35, weights=None)
    check(
        isinstance(frozen, keras.Model),
        f"build_frozen_classifier must return a keras Model, got {type(frozen).__name__}",
    )
    check_shape(frozen.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0), (2, 5), "predictions for 2 images")
    base = frozen.get_layer("base")
    check(len(base.layers) > 100, "the layer named 'base' should be the MobileNetV2 model")
    check_equal(base.output.shape[-1], 1280, "channels of the base's output")
    check(
        not base.trainable_weights,
        f"the base still trains ({len(base.trainable_weights)} trainable weight tensors): "
        "set base.trainable = False after building it.",
    )
    trainable = sum(int(np.prod(w.shape)) for w in frozen.trainable_weights)
    check_equal(
        trainable,
        1280 * 5 + 5,
        "trainable parameters of the head at input_size=64",
        mistakes={
            "you flattened the 2 x 2 x 1280 feature map: the head then has a weight per position, so its "
            "size grows with the image (3 x 3 x 1280 inputs at 96 pixels) and it has 4 times the weights "
            "to learn from the same labels. Pool over the positions instead (one value per channel).": 2 * 2 * 1280 * 5
            + 5,
            "your head has a hidden layer: a single dense layer on the pooled channels already lets every "
            "class use every channel, with far fewer weights to fit from a few hundred images.": lambda n: n
            > 1280 * 5 + 5
            and n != 2 * 2 * 1280 * 5 + 5,
            "the dense layer is missing or has no bias (use layers.Dense(num_classes, ...)).": lambda n: n
            in (0, 1280 * 5),
        },
    )
    probabilities = frozen.predict(np.random.default_rng(0).random((3, 64, 64, 3), np.float32), verbose=0)
    check_close(probabilities.sum(axis=1), np.ones(3), "the outputs are probabilities (softmax)")
    scaled = [layer for layer in frozen.layers if isinstance(layer, layers.Rescaling)]
    check_equal(len(scaled), 1, "Rescaling layers of the model (rescale [0, 1] to [-1, 1] with one)")
    check_close(
        [float(scaled[0].scale), float(scaled[0].offset)],
        [2.0, -1.0],
        "scale and offset of the Rescaling layer ([0, 1] to [-1, 1])",
        mistakes={
            "scale 1/127.5 is for images in [0, 255]; these are in [0, 1]: scale 2, offset -1.": [1 / 127.5, -1.0],
            "x * 2 alone gives [0, 2]: add the offset -1.": [2.0, 0.0],
            "x - 1 alone gives [-1, 0]: scale by 2 as well.": [1.0, -1.0],
        },
    )
    return frozen


def week2_mode_probe() -> tuple:
    """``(model, images, labels)`` for the check of ``accuracy_in_both_modes``: a small model whose
    BatchNormalization averages sit far from its data (as if it sat at 3 with a spread of 0.1), so that it is
    right in training mode and guesses in inference mode. The same every call."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((4,)), layers.BatchNormalization(), layers.Dense(2, activation="softmax")])
    model.layers[1].set_weights([np.array([[-4, 4], [0, 0], [0, 0], [0, 0]], np.float32), np.zeros(2, np.float32)])
    gamma, beta, _, _ = model.layers[0].get_weights()
    model.layers[0].set_weights([gamma, beta, np.full(4, 3.0, np.float32), np.full(4, 0.01, np.float32)])
    return model, x, y


def week2_accuracy_in_both_modes(accuracy_in_both_modes, answer, probe) -> None:
    """The check of week 2's ``accuracy_in_both_modes``: its ``answer`` on the model of :func:`week2_mode_probe`
    (``probe``, as the student's function left it) differs between the modes in the right order, and the model's
    weights are as they were (the check cell makes the call, so that the grader hands back the model it changed)."""
    check_own_work(accuracy_in_both_modes, recognition.accuracy_in_both_modes, "accuracy_in_both_modes")
    model, x, y = week2_mode_probe()
    expected = recognition.accuracy_in_both_modes(model, x, y)
    check(
        isinstance(answer, (tuple, list)) and len(answer) == 2,
        f"return a pair (training-mode accuracy, inference-mode accuracy), got {answer!r}",
    )
    check_close(
        answer,
        expected,
        "the accuracies of a small model with BatchNormalization, in training and in inference mode",
        mistakes={
            "the pair is the wrong way round: training mode first, inference mode second.": expected[::-1],
            "both numbers are the inference-mode accuracy: predict (and a call with training=False) runs in "
            "inference mode; call the model with training=True for the first.": (expected[1], expected[1]),
        },
    )
    moved = any(not np.allclose(a, b) for a, b in zip(probe.get_weights(), model.get_weights()))
    check(
        not moved,
        "after your function the model's BatchNormalization averages have moved: a call in training mode updates "
        "them; keep model.get_weights() before it and put them back with model.set_weights() after.",
    )


def week2_fine_tuned(model, data, head_only: float) -> None:
    """The check of week 2's fixed fine-tuning: at least 0.8 on the held-out scenes, and as accurate on its own
    training scenes in inference mode as in training mode (the diagnosed failure gone)."""
    _, accuracy = recognition.accuracy_in_both_modes(model, data.x_test, data.y_test)
    print(f"held-out accuracy: {accuracy:.3f} (the new head alone: {head_only:.3f})")
    check_reached(
        accuracy,
        0.8,
        "the fine-tuned model's held-out accuracy",
        lambda: diagnose_classifier(model, data.x_train, data.y_train, data.x_test, data.y_test),
    )
    training_mode, inference_mode = recognition.accuracy_in_both_modes(model, data.x_train, data.y_train)
    check(
        inference_mode >= training_mode - 0.05,
        f"on its own training scenes the model scores {training_mode:.3f} in training mode and {inference_mode:.3f} "
        "in inference mode: the failure you diagnosed is still there.",
    )


def _loss_problem(model) -> str | None:
    """What is wrong with the compiled loss for integer labels, or None if it is the sparse cross-entropy."""
    softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    loss = model.loss
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return f"Keras knows no loss named {model.loss!r}"
    if loss is keras.losses.sparse_categorical_crossentropy:
        from_logits = False
    elif isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or (
        isinstance(loss, keras.losses.Loss)
        and getattr(loss, "fn", None) is keras.losses.sparse_categorical_crossentropy
    ):
        from_logits = bool(loss.get_config().get("from_logits", False))
    else:
        return (
            f"the loss is {model.loss!r}; integer class labels need the sparse categorical cross-entropy "
            "(categorical_crossentropy expects one-hot labels)"
        )
    if from_logits == softmax:
        return (
            "from_logits=True tells the loss that the outputs are raw scores, but the model ends with a softmax"
            if softmax
            else "the model outputs raw scores (no softmax): use from_logits=True"
        )
    return None


def week2_unfreeze_top(model, top_layers: int, learning_rate: float, hidden: bool = False) -> None:
    """The check of week 2's ``unfreeze_top`` on ``model`` (base named "base"), which the check cell has just
    unfrozen with it: the layers below the top frozen, every BatchNormalization layer frozen, the trainable count,
    and the compiled loss and learning rate. ``hidden`` marks the messages of the grader's hidden run."""
    prefix = "hidden: " if hidden else ""
    base = model.get_layer("base")
    top = base.layers[-top_layers:]
    check(
        all(not layer.trainable for layer in base.layers[:-top_layers]),
        f"{prefix}the layers below the top {top_layers} stay frozen",
    )
    check(
        all(not layer.trainable for layer in base.layers if isinstance(layer, layers.BatchNormalization)),
        f"{prefix}every BatchNormalization layer stays frozen",
    )
    head = sum(layer.count_params() for layer in model.layers if layer is not base)
    expected = head + sum(layer.count_params() for layer in top if not isinstance(layer, layers.BatchNormalization))
    check_equal(
        sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        expected,
        f"{prefix}trainable parameters after unfreezing the top {top_layers} layers",
        mistakes={
            "nothing of the base was unfrozen: set base.trainable = True first, then freeze the layers below the "
            "top ones.": head,
            "the whole base trains: freeze every layer of the base except the last `top_layers`.": lambda n: (
                n > 10 * expected
            ),
        },
    )
    check(model.optimizer is not None, f"{prefix}compile the model again")
    problem = _loss_problem(model)
    check(problem is None, f"{prefix}the loss: {problem}.")
    check_close(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        learning_rate,
        f"{prefix}the learning rate",
        atol=1e-12,
    )


def week2_precision_recall(confusion, precision_recall) -> None:
    """The check of week 2's ``confusion`` and ``precision_recall``: a worked example whose swaps are named, then
    random labels against scikit-learn."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # on use: only this check

    check_own_work(confusion, segmentation.confusion, "confusion")
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y_pred = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 3])
    matrix = confusion(y_true, y_pred, 4)
    right = confusion_matrix(y_true, y_pred, labels=range(4))
    check_equal(
        np.asarray(matrix).tolist(),
        right.tolist(),
        "confusion matrix",
        mistakes={"rows and columns are swapped: entry [i, j] counts true class i predicted as j.": right.T.tolist()},
    )
    precision, recall = precision_recall(matrix)
    check_close(
        precision,
        [2 / 3, 2 / 4, 1.0, 1.0],
        "precision per class",
        mistakes={
            "you divided by the row sums (all images of the class): that is recall. Precision divides by the column "
            "sums (all predictions of the class).": [2 / 3, 1.0, 2 / 4, 1.0]
        },
    )
    check_close(
        recall,
        [2 / 3, 1.0, 2 / 4, 1.0],
        "recall per class",
        mistakes={
            "you divided by the column sums (all predictions of the class): that is precision. Recall divides by "
            "the row sums (all images of the class).": [2 / 3, 2 / 4, 1.0, 1.0]
        },
    )
    rng = np.random.default_rng(1)
    truth, guess = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    expected_p, expected_r, _, _ = precision_recall_fscore_support(truth, guess, labels=range(5), zero_division=0)
    check_close(precision_recall(confusion(truth, guess, 5))[0], expected_p, "precision against scikit-learn")
    check_close(precision_recall(confusion(truth, guess, 5))[1], expected_r, "recall against scikit-learn")
