"""Checks for the exercise notebooks: each passes with a short confirmation or fails saying what is wrong.

A failed check raises ``AssertionError`` with a message written for the student
(what was expected, what was found), so the notebook stops where the problem is.

Known wrong answers get named. ``check_close``, ``check_equal``, ``check_shape``
and ``check_prediction`` take ``mistakes``: a dict from an explanation to the
value that mistake produces (or to a function of the student's value that says
whether it is that mistake). When a check fails and the student's value matches
one of them, the message ends with ``Likely cause: <explanation>`` (several causes, when
several mistakes give that value)::

    check_close(worked, [[19, 25], [37, 43]], "the worked example",
                mistakes={"you flipped the kernel: that is a convolution": [[5, 11], [23, 29]]})

A mistake's value is compared only after the check failed, so a mistake that
happens to give the right answer on some input is never reported there.

This module imports nothing else from ``course_utils``. The grader runs the checks in
its own process (:mod:`course_utils.grading.judge`), so what a submission patches in its
kernel does not reach them.
"""

from __future__ import annotations

import dis
import sys
import types

import numpy as np


def check(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def _matches(actual, wrong, atol: float) -> bool:
    """Whether ``actual`` is the wrong answer ``wrong`` (a value, or a predicate of the student's value)."""
    if callable(wrong):
        try:
            return bool(wrong(actual))
        except Exception:  # a predicate that cannot handle the student's value does not match it
            return False
    try:
        a, w = np.asarray(actual, dtype=float), np.asarray(wrong, dtype=float)
    except (TypeError, ValueError):
        try:
            return bool(actual == wrong)
        except Exception:
            return False
    return a.shape == w.shape and bool(np.all(np.abs(a - w) <= atol))


def likely_mistake(actual, mistakes: dict | None, atol: float = 1e-4) -> str | None:
    """The explanations of the known mistakes that ``actual`` matches, joined with "; or ", or None.

    A mistake whose value is None is skipped (it cannot happen on this input, e.g. forgetting a padding of 0).
    """
    if mistakes is None:
        return None
    if not isinstance(mistakes, dict):
        raise TypeError(f"mistakes must be a dict from explanation to wrong value, got {type(mistakes).__name__}")
    causes = [
        explanation for explanation, wrong in mistakes.items() if wrong is not None and _matches(actual, wrong, atol)
    ]
    return "; or ".join(causes) if causes else None


def _fail(message: str, actual, mistakes: dict | None, atol: float = 1e-4) -> None:
    cause = likely_mistake(actual, mistakes, atol)
    if cause is None:
        raise AssertionError(message)
    raise AssertionError(f"{message} Likely cause{'s' if '; or ' in cause else ''}: {cause}")


def check_shape(array, expected: tuple, what: str, mistakes: dict | None = None) -> None:
    """``array`` has exactly the shape ``expected``; ``mistakes`` maps explanations to wrong shapes."""
    shape = tuple(np.shape(array))
    if shape != tuple(expected):
        _fail(f"{what}: expected shape {tuple(expected)}, got {shape}.", shape, mistakes, atol=0)


def check_close(actual, expected, what: str, atol: float = 1e-4, mistakes: dict | None = None) -> None:
    """``actual`` has the shape of ``expected`` and every value within ``atol`` of it.

    ``mistakes`` maps explanations to the (wrong) values known mistakes give, compared with the same ``atol``.
    """
    raw = actual
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        _fail(f"{what}: expected shape {expected.shape}, got {actual.shape}.", raw, mistakes, atol)
    error = np.abs(actual - expected).max() if actual.size else 0.0
    if not error <= atol:  # also fails on NaN
        shown = ""
        if expected.size <= 8:  # small enough to show both
            shown = f" Expected {_rounded(expected)}, got {_rounded(actual)}."
        _fail(
            f"{what}: values differ from the expected ones by up to {error:.3g} (tolerance {atol}).{shown}",
            raw,
            mistakes,
            atol,
        )


def _rounded(array: np.ndarray):
    """A small array as a plain (nested) list of numbers rounded to 4 decimals, for messages."""
    return np.round(array, 4).tolist() if array.ndim else round(float(array), 4)


def check_equal(actual, expected, what: str, mistakes: dict | None = None) -> None:
    """``actual == expected`` (for numbers, shapes, strings); ``mistakes`` maps explanations to wrong answers."""
    if not actual == expected:
        _fail(f"{what}: expected {expected!r}, got {actual!r}.", actual, mistakes, atol=0)


def _plain(value):
    """Shapes and sequences as tuples of plain numbers, NumPy scalars as Python numbers (for messages)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "TensorShape":
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_prediction(
    prediction, actual, what: str, explanation: str, rtol: float = 0.0, mistakes: dict | None = None
) -> None:
    """A "predict, then verify" question: the student's ``prediction`` against the ``actual`` computed value.

    Numbers match within the relative tolerance ``rtol`` (0: exactly); shapes and other sequences match
    element by element. A wrong prediction is told so, with the mistake named when it is a known one, but
    neither the value nor the ``explanation``: the student thinks again. A right one prints both.
    """
    prediction, actual = _plain(prediction), _plain(actual)
    if prediction is None or prediction is Ellipsis:
        raise AssertionError(f"{what}: write your prediction first (it is {prediction!r}).")
    try:
        p, a = np.asarray(prediction, dtype=float), np.asarray(actual, dtype=float)
        right = p.shape == a.shape and bool(np.all(np.abs(p - a) <= rtol * np.abs(a)))
    except (TypeError, ValueError):
        right = prediction == actual
    if not right:
        atol = rtol * float(np.max(np.abs(np.asarray(actual, dtype=float)))) if rtol else 0
        cause = likely_mistake(prediction, mistakes, atol)
        raise AssertionError(
            f"{what}: your prediction {prediction!r} is not it. "
            + (f"Likely cause: {cause}" if cause else "Work it out step by step and think it through again.")
        )
    print(f"✔ {what}: you predicted {prediction!r}, and it is {actual!r}. {explanation}")


def check_gradient(gradient, reference, what: str, max_error: float = 1e-6, mistakes: dict | None = None) -> None:
    """A gradient check: ``gradient`` has the shape of ``reference`` and is within ``max_error`` of it.

    The distance is the relative error ``|g - r| / (|g| + |r|)`` (Euclidean norms over all elements, as in
    ``course_utils.gradients.relative_error``, repeated here so that this module stands alone): about 1e-8
    between a right float64 backward pass and central differences, of order 1 for a wrong one.
    """
    raw = gradient
    g, r = np.asarray(gradient, dtype=float), np.asarray(reference, dtype=float)
    if g.shape != r.shape:
        _fail(f"{what}: expected shape {r.shape}, got {g.shape}.", raw, mistakes)
    scale = np.linalg.norm(g) + np.linalg.norm(r)
    error = 0.0 if scale == 0 else float(np.linalg.norm(g - r) / scale)
    if not error <= max_error:
        _fail(
            f"{what}: relative error {error:.2g} against the reference (at most {max_error:g} is allowed).",
            raw,
            mistakes,
            atol=1e-6 * max(1.0, float(np.abs(r).max()) if r.size else 1.0),
        )


def check_own_work(function, reference, blank: str) -> None:
    """Fail when ``function``, which the student writes for ``blank``, is the package's own ``reference`` or calls it.

    The checks compare results, so a blank that hands its work to the package's version passes them in the
    student's notebook; the grader runs the notebook without those versions (``course_utils.grading.withheld``),
    where it fails. This says so at once, for what a notebook can see: the reference itself or its code, or the
    reference read through a name (``det.iou_matrix(a, b)``, ``from ... import iou_matrix as f``). In the grader the
    student's function lives in their kernel, and this finds nothing: the withheld copy answers there.
    """
    code = getattr(function, "__code__", None)
    reads = _reads(code, getattr(function, "__globals__", {})) if code is not None else []
    own_code = code is not None and code is getattr(reference, "__code__", None)
    check(
        function is not reference and not own_code and not any(value is reference for value in reads),
        f"{blank} hands its work to the package's own {reference.__module__}.{reference.__name__}: this part asks "
        f"you to write it yourself. The grader runs your notebook without the package's version, and there {blank} "
        "would fail.",
    )


def _reads(code, scope: dict) -> list:
    """What ``code``, and the functions and comprehensions in it, read through a global name and its attributes
    (``det.iou_matrix``, ``f``) or import (``from course_utils.detection import iou_matrix`` inside it)."""
    found, current = [], None
    for instruction in dis.get_instructions(code):
        operation, name = instruction.opname, instruction.argval
        if operation in ("LOAD_GLOBAL", "LOAD_NAME"):
            current = scope.get(name)
        elif operation == "IMPORT_NAME":
            current = sys.modules.get(name)
        elif operation in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM") and current is not None:
            current = getattr(current, name, None)
        else:
            current = None
        found.append(current)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found += _reads(constant, scope)
    return found


def passed(what: str) -> None:
    """Say that a group of checks passed."""
    print(f"✔ {what}: all checks passed")


# --- why a training did not reach its target ---------------------------------------------------


def check_reached(value: float, target: float, what: str, diagnose=None) -> None:
    """Fail unless ``value`` reaches ``target``, saying what it reached and, from ``diagnose()`` (called only
    then, e.g. ``lambda: diagnose_classifier(...)``), which known failure the training shows."""
    if value >= target:
        return
    cause = diagnose() if diagnose is not None else None
    raise AssertionError(
        f"{what} reaches {value:.3f}; at least {target:.2f} is needed." + (f" Likely cause: {cause}" if cause else "")
    )


def training_failure(train_probabilities, y_train, test_probabilities, y_test, training_mode=None) -> str | None:
    """Which known way of failing a classifier's training shows in its outputs, and what to try; None if none.

    Probabilities have the classes on their last axis (a segmenter's pixels are examples too);
    ``training_mode``, if given, is ``(probabilities in inference mode, in training mode, labels)`` on some
    training examples (training mode: BatchNorm with each batch's statistics). The failures, in the order they
    are tested: weights gone NaN; the loss near log C with chance accuracy; every prediction one
    class; the training set learned and the test set not; inference far below training mode.
    """
    train_p, test_p = np.asarray(train_probabilities, float), np.asarray(test_probabilities, float)
    classes = train_p.shape[-1]
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    train_p, test_p = train_p.reshape(-1, classes), test_p.reshape(-1, classes)
    if not (np.isfinite(train_p).all() and np.isfinite(test_p).all()):
        return (
            "the model outputs NaN: the loss exploded during training and the weights became NaN. Lower the "
            "learning rate (by 10x), and check that the inputs are scaled to a small range such as [0, 1]."
        )
    loss = float(-np.mean(np.log(np.clip(train_p[np.arange(len(y_train)), y_train], 1e-12, 1))))
    train_accuracy = float(np.mean(train_p.argmax(-1) == y_train))
    if abs(loss - np.log(classes)) < 0.1 * np.log(classes) and train_accuracy < 2 / classes:
        return (
            f"the training loss is {loss:.2f}, near the log({classes}) = {np.log(classes):.2f} of a model that "
            f"answers every class with the same probability, and it gets {train_accuracy:.0%} of its own training "
            "examples right: it has not learned. Check that this is the model you "
            "trained, that fit ran for its epochs, that the learning rate is not tiny, and that the labels match "
            "the images."
        )
    predicted = test_p.argmax(-1)
    if np.unique(predicted).size == 1:
        share = float(np.mean(y_test == predicted[0]))
        return (
            f"every prediction is class {predicted[0]}, whose share of the test set ({share:.0%}) is all the "
            "accuracy it gets: the model collapsed to one class. Lower the learning rate, and check the labels "
            "and the class weights."
        )
    test_accuracy = float(np.mean(predicted == y_test))
    if train_accuracy >= 0.9 and train_accuracy - test_accuracy >= 0.15:
        return (
            f"it fits the training set ({train_accuracy:.0%}) far better than the test set ({test_accuracy:.0%}): "
            "it overfits. Use augmentation, dropout or weight decay, fewer epochs, or more training data."
        )
    if training_mode is not None:
        inference, training, labels = training_mode
        inference = np.asarray(inference, float).reshape(-1, classes)
        training = np.asarray(training, float).reshape(-1, classes)
        labels = np.asarray(labels).reshape(-1)
        inference_accuracy = float(np.mean(inference.argmax(-1) == labels))
        training_accuracy = float(np.mean(training.argmax(-1) == labels))
        if training_accuracy - inference_accuracy >= 0.15:
            return (
                f"on its own training images it scores {training_accuracy:.0%} in training mode but "
                f"{inference_accuracy:.0%} as it is used for prediction: BatchNormalization's moving averages "
                "do not match the batch statistics it trained with. Train for more steps (the averages lag behind "
                "the weights), or keep a pretrained base's BatchNormalization frozen (trainable = False, which in "
                "Keras 3 also runs it in inference mode; calling it with training=False is overridden by fit)."
            )
    return None


def diagnose_classifier(model, x_train, y_train, x_test, y_test, batch_size: int = 256) -> str | None:
    """:func:`training_failure` of a Keras classifier (or segmenter) on its training and test data (training mode
    is compared with inference on one batch of the training data)."""
    train_p = model.predict(x_train, batch_size=batch_size, verbose=0)
    test_p = model.predict(x_test, batch_size=batch_size, verbose=0)
    batch = slice(0, min(len(x_train), batch_size))
    kept = model.get_weights()  # a call in training mode moves BatchNormalization's averages: put them back
    training = np.asarray(model(np.asarray(x_train[batch]), training=True))
    model.set_weights(kept)
    return training_failure(train_p, y_train, test_p, y_test, (train_p[batch], training, np.asarray(y_train)[batch]))
