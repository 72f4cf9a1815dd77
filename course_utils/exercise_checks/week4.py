"""The visible checks of week 4's exercise that would give a blank away (see :mod:`course_utils.exercise_checks`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils import segmentation
from course_utils.checks import check, check_close, check_equal, check_own_work, check_shape


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


def week4_dice_and_iou(dice, iou, rng) -> None:
    """The check of week 4's ``dice`` and ``iou``: a worked pair of squares whose usual slips are named, two empty
    masks, then random masks against the package's metrics (``rng`` draws them)."""
    check_own_work(dice, segmentation.dice_coefficient, "dice")
    check_own_work(iou, segmentation.per_class_iou, "iou")
    square = np.zeros((6, 6), int)
    square[1:4, 1:4] = 1  # 9 pixels
    shifted = np.roll(square, 1, axis=1)  # 6 of them overlap: |T| = |P| = 9, |T and P| = 6, |T or P| = 12
    check_close(
        dice(square, shifted),
        2 * 6 / 18,
        "dice of a 3x3 square and its copy moved one pixel",
        mistakes={
            "Dice has a factor 2: 2 |T and P| / (|T| + |P|).": 6 / 18,
            "that is the IoU (intersection over union); Dice divides 2 |T and P| by |T| + |P|.": 6 / 12,
        },
    )
    check_close(
        iou(square, shifted),
        6 / 12,
        "iou of a 3x3 square and its copy moved one pixel",
        mistakes={
            "the union subtracts the intersection twice: |T or P| = |T| + |P| - |T and P|.": 6 / 6,
            "you divided by |T| + |P|, which counts the overlap twice: divide by the union.": 6 / 18,
            "that is the Dice coefficient; IoU divides |T and P| by the union |T or P|.": 2 * 6 / 18,
        },
    )
    check_close(dice(square, square), 1.0, "dice of a mask with itself")
    empty = np.zeros((5, 5), int)
    nothing_to_get_wrong = {
        "two empty masks agree perfectly: return 1.0 when the denominator is 0.": 0.0,
        "0 / 0 gives nan: test for two empty masks first and return 1.0.": lambda v: np.isnan(v),
    }
    check_close(dice(empty, empty), 1.0, "dice of two empty masks", mistakes=nothing_to_get_wrong)
    check_close(iou(empty, empty), 1.0, "iou of two empty masks", mistakes=nothing_to_get_wrong)
    check_close(iou(square, np.zeros_like(square)), 0.0, "iou of a mask and an empty prediction")
    for _ in range(5):
        truth, predicted = rng.random((2, 16, 16)) < rng.uniform(0.05, 0.6, size=(2, 1, 1))
        check_close(
            iou(truth, predicted),
            segmentation.per_class_iou(truth, predicted, 2)[1],
            "iou against course_utils.segmentation.per_class_iou on random masks",
        )
        reference = segmentation.dice_coefficient(
            truth[None].astype(np.float32), predicted[None, ..., None].astype(np.float32), smooth=0.0
        )
        check_close(
            dice(truth, predicted),
            float(reference),
            "dice against course_utils.segmentation.dice_coefficient on random masks",
        )


def week4_unet(build_unet, rng) -> keras.Model:
    """The check of week 4's ``build_unet``: it builds, its up-sampling reaches every pixel exactly once (the
    part's design decision), it has the exact parameter count, and it gives per-pixel probabilities. Returns the
    model, which the student trains next."""
    try:
        model = build_unet((32, 32, 3), 3)
    except Exception as error:  # a Concatenate of maps of different sizes fails while the model is built
        raise AssertionError(
            f"build_unet((32, 32, 3), 3) failed: {error}. If the Concatenate layer complains about its input shapes, "
            "an up-sampling does not exactly double the size of its input: compute its output with "
            "transposed_output_size for your kernel, stride and padding."
        ) from None
    check(isinstance(model, keras.Model), f"build_unet must return a keras Model, got {type(model).__name__}")
    for up in [layer for layer in model.layers if isinstance(layer, layers.Conv2DTranspose)]:
        kernel, stride = up.kernel_size[0], up.strides[0]
        check(
            kernel >= stride,
            f"{up.name}: kernel {kernel} with stride {stride} leaves gaps: of every {stride} x {stride} output "
            f"pixels only {kernel * kernel} receive an input, the others only the bias. Requirement 2 needs every "
            "pixel reached.",
        )
        uneven = ", unevenly: some pixels sum more of them than others" if kernel % stride else ""
        check(
            kernel == stride,
            f"{up.name}: kernel {kernel} with stride {stride} overlaps: neighbouring kernel positions share output "
            f"pixels{uneven}. Requirement 2 needs exactly one position per pixel: a kernel as large as the stride.",
        )
    check_equal(
        model.count_params(),
        121_899,
        "number of parameters of the U-Net",
        mistakes={
            "the convolutions followed by batch normalisation have biases: use_bias=False (the normalisation's beta "
            "replaces them).": 121_899 + 2 * (8 + 16 + 32) * 2 + 2 * 64,
            "batch normalisation is missing after some convolutions (or has no scale and offset).": lambda n: (
                100_000 < n < 121_899
            ),
        },
    )
    check_shape(model.predict(np.zeros((2, 32, 32, 3)), verbose=0), (2, 32, 32, 3), "predictions for 2 images")
    pools = [layer for layer in model.layers if isinstance(layer, layers.MaxPooling2D)]
    check_equal(len(pools), 3, "number of max-pooling layers")
    check_close(
        model.predict(rng.random((1, 32, 32, 3)), verbose=0).sum(axis=-1),
        np.ones((1, 32, 32)),
        "the class probabilities of every pixel sum to 1",
    )
    return model


def week4_budget(build_small_unet, rng) -> None:
    """The check of week 4's U-Net on a budget: at most 40,000 parameters, three levels, three skip connections,
    per-pixel probabilities at the input's size. It measures the result, not the recipe."""
    small = build_small_unet((32, 32, 3), 3)
    check(isinstance(small, keras.Model), f"build_small_unet must return a keras Model, got {type(small).__name__}")
    parameters = small.count_params()
    print(f"your small U-Net: {parameters:,} parameters")
    check(parameters <= 40_000, f"the small U-Net has {parameters:,} parameters; the budget is 40,000.")
    check_equal(
        len([layer for layer in small.layers if isinstance(layer, layers.MaxPooling2D)]),
        3,
        "2x2 poolings of the small U-Net (three levels)",
        mistakes={
            "removing a level saves parameters but shrinks the receptive field; keep three levels and save "
            "elsewhere (fewer filters).": lambda n: n < 3
        },
    )
    check_equal(
        len([layer for layer in small.layers if isinstance(layer, layers.Concatenate)]),
        3,
        "skip connections (Concatenate layers) of the small U-Net",
        mistakes={
            "the skip connections cost few parameters and carry the fine detail of the encoder to the decoder: "
            "keep all three.": lambda n: n < 3
        },
    )
    check_shape(small.predict(np.zeros((2, 32, 32, 3)), verbose=0), (2, 32, 32, 3), "the small U-Net's predictions")
    check_close(
        small.predict(rng.random((1, 32, 32, 3)), verbose=0).sum(axis=-1),
        np.ones((1, 32, 32)),
        "the class probabilities of every pixel sum to 1 (small U-Net)",
    )
