"""The visible checks of week 4's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils import segmentation
from course_utils.checks import check, check_close, check_equal, check_own_work


def week4_transposed_convolution_sizes(transposed_output_size) -> None:
    """The visible check of week 4's transposed convolution sizes."""
    check_own_work(transposed_output_size, segmentation.transposed_conv_output_size, "transposed_output_size")
    for n, kernel, stride, padding in [
        (4, 3, 2, "valid"),
        (4, 2, 2, "same"),
        (7, 5, 3, "valid"),
        (5, 3, 1, "same"),
        (1, 4, 2, "valid"),
    ]:
        probe = keras.Sequential(
            [keras.Input((n, n, 1)), layers.Conv2DTranspose(1, kernel, strides=stride, padding=padding)]
        )
        if padding == "valid":
            mistakes = {
                "that is the size of a (forward) convolution; a transposed one grows the input.": (n - kernel) // stride
                + 1,
                "the input with zeros in between has (n - 1) * stride + 1 values, not n * stride.": n * stride
                + kernel
                - 1,
                "the kernel adds kernel - 1 values to the (n - 1) * stride + 1 of the spread-out input.": (n - 1)
                * stride
                + kernel
                + 1,
                "'same' gives stride * n; with 'valid' the kernel's overhang adds to it.": n * stride,
            }
        else:
            mistakes = {"with 'same' the output is exactly stride * n.": (n - 1) * stride + kernel}
        check_equal(
            transposed_output_size(n, kernel, stride, padding),
            probe.output_shape[1],
            f"transposed_output_size({n}, {kernel}, {stride}, {padding!r})",
            mistakes=mistakes,
        )


def week4_soft_dice_loss(soft_dice_loss, seed: int = 0, shape: tuple = (2, 6, 6)) -> None:
    """The check of week 4's ``soft_dice_loss``: its value on a random batch (``shape``: batch, height, width)
    against the formula, a gradient with respect to the probabilities, and a batch without objects."""
    check_own_work(soft_dice_loss, segmentation.dice_coefficient, "soft_dice_loss")
    check_own_work(soft_dice_loss, segmentation.DiceLoss, "soft_dice_loss")
    rng = np.random.default_rng(seed)
    truth = (rng.random(shape) < 0.15).astype(np.int64)
    logits = rng.normal(size=(*shape, 2))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    def dice_loss(t, p, smooth=1.0):  # the formula on a batch: sums over every pixel of every image
        return 1.0 - (2.0 * np.sum(t * p) + smooth) / (np.sum(t) + np.sum(p) + smooth)

    objects = probabilities[..., 1]
    one_hot = np.stack([1 - truth, truth], axis=-1)
    value = keras.ops.convert_to_numpy(soft_dice_loss(truth, probabilities.astype(np.float32)))
    check_close(
        value,
        dice_loss(truth, objects),
        "the soft Dice loss of a random batch",
        mistakes={
            "that is the Dice coefficient, which grows as the masks agree; training lowers the loss, so return "
            "1 - Dice.": 1.0 - dice_loss(truth, objects),
            "channel 0 is the background's probability; the objects are channel 1.": dice_loss(truth, 1 - objects),
            "you scored the background channel too: on scenes that are mostly background its Dice is high whatever "
            "happens to the objects, which is what this loss is meant to avoid. Score channel 1 only.": np.mean(
                [dice_loss(one_hot[..., c], probabilities[..., c]) for c in range(2)]
            ),
            "the sums run over the whole batch, not image by image.": np.mean(
                [dice_loss(t, p) for t, p in zip(truth, objects)]
            ),
            "Dice has a factor 2 on the overlap.": 1.0
            - (np.sum(truth * objects) + 1) / (truth.sum() + objects.sum() + 1),
            "the 1 goes into the numerator and the denominator; without it, a batch with no object pixels, true "
            "or predicted, divides 0 by 0: add 1 to both.": dice_loss(truth, objects, smooth=0.0),
            "return one number for the batch, not one per image or per pixel.": lambda v: np.size(v) > 1,
        },
    )
    # In the grader the function runs in the student's kernel and answers with arrays, which carry no gradient;
    # there the hidden test of the model trained with it stands in for this.
    if getattr(soft_dice_loss, "__code__", None) is not None:
        probabilities_variable = tf.Variable(probabilities.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = soft_dice_loss(tf.constant(truth), probabilities_variable)
        gradient = tape.gradient(loss, probabilities_variable) if tf.is_tensor(loss) else None
        check(
            gradient is not None and bool(np.any(gradient.numpy() != 0)),
            "the loss has no gradient with respect to the predicted probabilities, so training cannot lower it: "
            "compute it from the probabilities themselves, not from rounded or argmax predictions, with keras.ops.",
        )
    empty = float(
        keras.ops.convert_to_numpy(soft_dice_loss(np.zeros(shape, np.int64), probabilities.astype(np.float32)))
    )
    check(
        np.isfinite(empty),
        f"on a batch without objects the loss is {empty}: the 1 in the denominator keeps it defined.",
    )


def week4_loss_verdict(found, better_loss, beyond_noise) -> None:
    """The check of week 4's verdict on the three seeds per loss: which loss found more tiny objects on average,
    and whether the seeds' own spread could explain the difference (read from the student's own numbers)."""
    check(
        isinstance(found, dict) and set(found) == {"ce", "dice"},
        f"found must be a dictionary with the keys 'ce' and 'dice', got {found!r}",
    )
    shares = {name: np.asarray(values, dtype=float).ravel() for name, values in found.items()}
    for name, values in shares.items():
        check(values.size == 3, f"found[{name!r}] must hold three shares, one per seed; it holds {values.size}")
        check(
            bool(np.all((values >= 0) & (values <= 1))), f"found[{name!r}] holds shares between 0 and 1, got {values}"
        )
    means = {name: float(values.mean()) for name, values in shares.items()}
    check(better_loss in ("ce", "dice"), f"better_loss is 'ce' or 'dice', got {better_loss!r}")
    better = max(means, key=means.get)
    other = "ce" if better == "dice" else "dice"
    check(
        means["ce"] != means["dice"],
        "both losses found exactly the same share on average: rerun the trainings (did each use its own loss?)",
    )
    check(
        better_loss == better,
        f"better_loss: your own numbers say otherwise; compare the two means (the {better_loss} runs found fewer "
        "objects on average).",
    )
    check(isinstance(beyond_noise, (bool, np.bool_)), f"beyond_noise is True or False, got {beyond_noise!r}")
    clear = bool(shares[better].min() > shares[other].max())
    if bool(beyond_noise) != clear:
        reason = (
            f"a seed of {other} did as well as a seed of {better}: with three runs each, the seeds alone could "
            "have put the means in this order."
            if beyond_noise
            else f"even the worst seed of {better} found more objects than the best seed of {other}: changing the "
            "seed does not move the runs as far as changing the loss does."
        )
        raise AssertionError(f"beyond_noise: think again. Likely cause: {reason}")
    gap = 100 * (means[better] - means[other])
    spreads = ", ".join(f"{name} {100 * np.ptp(values):.1f}" for name, values in shares.items())
    print(
        f"✔ the verdict: {better} found {gap:.1f} points more of the objects on average; each loss's seeds spread "
        f"over ({spreads}) points. "
        + (
            "No seed of the other loss reaches the worst of these, so the seed does not explain the gap. Three runs "
            "still say nothing of other scenes or other object sizes."
            if clear
            else "The seeds overlap, so three runs cannot tell this gap from the seed's doing: more seeds, or a "
            "larger test set, would be needed before calling one loss better."
        )
    )
