"""The exercises' "predict, then verify" questions: each computes its answer and explains it only once the
student's prediction has been checked, so that a handout's check cell shows a call, not the answer.

One function per question, named after its week; it fails like every check (``AssertionError``), naming a
known mistake without the value, and prints the value and the reasoning when the prediction is right.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils.checks import check_prediction


def week1_lenet(predicted_flatten_input, predicted_dense_params) -> None:
    """LeNet-5 on 32x32 inputs: the shape entering its flatten, and the parameters of its first dense layer."""
    features = keras.Sequential(
        [keras.Input((32, 32, 1)), layers.Conv2D(6, 5), layers.AveragePooling2D(2)]
        + [layers.Conv2D(16, 5), layers.AveragePooling2D(2)]
    )
    flatten_input = tuple(features(np.zeros((1, 32, 32, 1), np.float32)).shape[1:])
    check_prediction(
        predicted_flatten_input,
        flatten_input,
        "the shape entering LeNet-5's flatten",
        "Each 5x5 convolution without padding takes 4 off each side (32 -> 28, 14 -> 10), each 2x2 pooling "
        "halves it (28 -> 14, 10 -> 5), and the second convolution has 16 filters: 5 x 5 x 16 = 400 numbers.",
        mistakes={
            "that shape would need convolutions that keep the size; without padding each 5x5 convolution "
            "takes 4 off the side.": (8, 8, 16),
            "the maps entering the flatten come from the second convolution, which has 16 filters.": (5, 5, 6),
        },
    )
    dense = keras.Sequential([keras.Input(flatten_input), layers.Flatten(), layers.Dense(120)]).count_params()
    check_prediction(
        predicted_dense_params,
        dense,
        "the parameters of LeNet-5's first dense layer",
        "Each of its 120 units has one weight per input (5 * 5 * 16 = 400) and one bias: 400 * 120 + 120.",
        mistakes={
            "you forgot the 120 biases.": 400 * 120,
            "the layer sees the maps of the second convolution, which has 16 filters, not 6.": 150 * 120 + 120,
        },
    )


def week1_reach(predicted_rows, predicted_columns) -> None:
    """Which pixels of a 6x6 input the output (1, 2) of a 3x3 cross-correlation with stride 2 and padding 1 depends
    on, found from TensorFlow's gradient of that one output."""
    x = tf.Variable(np.ones((1, 6, 6, 1), np.float32))
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, tf.ones((3, 3, 1, 1)), strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])
        output = y[0, 1, 2, 0]
    rows, columns = np.nonzero(tape.gradient(output, x).numpy()[0, :, :, 0])
    reached = (int(rows.min()), int(rows.max())), (int(columns.min()), int(columns.max()))
    check_prediction(
        (predicted_rows, predicted_columns),
        reached,
        "the input rows and columns that output (1, 2) depends on",
        "Output (i, j) is the window whose top left corner sits at (i * stride - padding, j * stride - padding) in "
        "the input: (1, 3), and the window is 3 wide: rows 1 to 3, columns 3 to 5. The backward pass sends "
        "grad_y[1, 2] to exactly these nine pixels, each times the kernel entry that met it.",
        mistakes={
            "the padding shifts every window: in the unpadded input, output (i, j) starts at i * stride - padding.": (
                (2, 4),
                (4, 6),
            ),
            "each step of the output moves the window by the stride, not by one pixel.": ((0, 2), (1, 3)),
        },
    )


def week2_frozen_head(predicted_trainable) -> None:
    """The trainable parameters of a frozen MobileNetV2 (alpha 0.35) with a pooled dense head for 5 classes."""
    base = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    channels = base.output.shape[-1]  # of its last feature map
    check_prediction(
        predicted_trainable,
        channels * 5 + 5,
        "trainable parameters of the frozen classifier",
        f"The frozen base trains nothing, dropout has no parameters, pooling over the positions leaves one value per "
        f"channel whatever the image size, and the dense layer has one weight per channel and class plus one bias "
        f"per class: {channels} x 5 + 5. MobileNetV2 ends with {channels} channels whatever alpha <= 1 (alpha thins "
        "the layers before the last one).",
        mistakes={
            "you forgot the biases of the dense layer.": channels * 5,
            "alpha = 0.35 does not thin MobileNetV2's last layer.": lambda p: p in (448 * 5 + 5, 448 * 5),
            "the frozen base's weights do not train: only the new head does.": lambda p: p > 100_000,
            "that is a dense layer on the flattened last map, whose size grows with the image: requirement 1 "
            "rules it out.": lambda p: p in (2 * 2 * channels * 5 + 5, 2 * 2 * channels * 5),
        },
    )


def week2_fine_tuning_diagnosis(diagnosis) -> None:
    """Why the exercise's fine-tuning of the whole source-pretrained base (BatchNormalization layers trainable,
    Adam at 1e-3, batches of 16) ends below the head alone: the student's diagnosis among three causes."""
    causes = ("overfitting", "learning_rate", "batchnorm")
    if diagnosis not in causes:
        raise AssertionError(f"diagnosis is one of {', '.join(map(repr, causes))}; got {diagnosis!r}.")
    check_prediction(
        diagnosis,
        "batchnorm",
        "the diagnosis",
        "In training mode the model still classifies well, even scenes it never saw; in inference mode it fails on "
        "the very scenes it trained on. The weights are fine; what differs between the two modes is where "
        "BatchNormalization takes its statistics: from the batch in training mode, from moving averages at "
        "prediction. Trainable, the layers normalised every batch of 16 with its own statistics while the weights "
        "changed fast; the moving averages, which follow at the pretrained momentum of 0.999 (a thousandth of the "
        "way per step), still describe the source task. Freezing them (trainable = False, which in Keras 3 also "
        "runs them in inference mode) keeps the statistics the base was trained with. The learning rate is not "
        "what breaks it: with the layers trainable, 1e-4 collapses too; with them frozen, neither rate does, though "
        "the lower one fine-tunes more steadily.",
        mistakes={
            "a network that memorised its training scenes would score high on them in inference mode; measure it "
            "there.": "overfitting",
            "wrecked weights would fail in training mode as well; compare the two modes on the same scenes.": (
                "learning_rate"
            ),
        },
    )


def week3_nms(predicted_kept) -> None:
    """How many of the boxes A, B, C (each 10 wide, 2 apart, scores 0.9, 0.8, 0.7) NMS at IoU 0.5 keeps."""
    row = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    kept = tf.image.non_max_suppression(row[:, [1, 0, 3, 2]], scores, 3, iou_threshold=0.5).numpy()
    check_prediction(
        predicted_kept,
        len(kept),
        "boxes kept by NMS among A, B, C",
        "A (the best) is kept; IoU(A, B) = 80 / 120 = 0.67 > 0.5 removes B; IoU(A, C) = 60 / 140 = 0.43 keeps C. "
        "C overlaps B by 0.67 too, but B was already removed: only kept boxes suppress others.",
        mistakes={
            "C overlaps B as much as B overlaps A, but B was removed first: a removed box suppresses nothing.": 1,
            "work out IoU(A, B) and compare it with the threshold.": 3,
        },
    )


def week3_matching(predicted_true_positive) -> None:
    """Which of two detections of one object is the true positive: D1 (score 0.9, IoU 0.625) or D2 (0.8, 0.91)."""
    from course_utils.detection.evaluation import match_detections  # on use: the other weeks do not need it

    truth = np.array([[0, 0, 10, 10]], np.float32)
    detections = np.array([[0, 0, 10, 16], [0, 0, 10, 11]], np.float32)
    flags = match_detections(detections, np.array([0.9, 0.8]), truth, 0.5)
    check_prediction(
        predicted_true_positive,
        int(np.argmax(flags)) + 1,
        "the true positive among D1 and D2",
        "Both overlap the object enough (IoU 100 / 160 = 0.625 for D1, 100 / 110 = 0.91 for D2), but D1 has the "
        "higher score and claims the object first; D2, though it fits better, finds an object already found: a "
        "duplicate, so a false positive. A detector that puts a loose box above a tight one pays for it in AP.",
        mistakes={"the better fit does not decide: the higher score claims the object first.": 2},
    )


def week4_half_unet(predicted_half_params) -> None:
    """The parameters of the chapter's U-Net (121,899 with 8 filters at the top) with half the filters everywhere."""
    from course_utils import segmentation  # on use: the other weeks' questions do not need it

    half = segmentation.unet((32, 32, 3), 3, depth=3, base_filters=4).count_params()
    check_prediction(
        predicted_half_params,
        half,
        "the parameters of the U-Net with half the filters",
        "A 3x3 convolution has 3 * 3 * in_channels * filters weights: halving the filters of every layer halves both "
        "factors and divides the weights by 4. Only the small linear terms (biases, batch normalisation) halve, so "
        f"the count, {half:,}, is a little above 121,899 / 4 = {121_899 / 4:,.0f}.",
        rtol=0.1,
        mistakes={
            "halving the filters does not halve the count: each convolution's weights depend on its input "
            "channels AND its filters, and both halve.": lambda p: abs(p - 121_899 / 2) < 0.1 * 121_899 / 2
        },
    )


def week4_bottleneck_receptive_field(predicted_receptive_field) -> None:
    """The receptive field of one bottleneck pixel of the exercise's three-level U-Net (blocks of two 3x3
    convolutions, 2x2 max pooling), in input pixels across."""
    from course_utils.models import receptive_field  # on use: the other weeks' questions do not need it

    level = [(3, 1), (3, 1), (2, 2)]
    field = receptive_field(level * 3 + [(3, 1), (3, 1)])[-1][0]
    without_pooling = 1 + 2 * 2 * (1 + 2 + 4 + 8)  # the poolings' own widening forgotten
    check_prediction(
        predicted_receptive_field,
        field,
        "the receptive field of one bottleneck pixel",
        "The steps are 1, 2, 4 and 8 input pixels at the four levels. The two 3x3 convolutions of each level add "
        "2 steps each, 4 x (1 + 2 + 4 + 8) = 60 in all, and each 2x2 pooling adds 1 step, 1 + 2 + 4 = 7: with the "
        f"pixel itself, 1 + 60 + 7 = {field}, more than the 32-pixel image. A bottleneck pixel sees the whole "
        "scene: the network does not lack context for the 4 to 7 pixel objects of part 4.",
        mistakes={
            "each 2x2 pooling widens the field too, by one step of the map it pools.": without_pooling,
            "after each pooling, neighbouring pixels lie 2, 4, then 8 input pixels apart: a 3x3 convolution there "
            "adds 2 of those steps, not 2 pixels.": lambda p: p in (1 + 8 * 2, 1 + 8 * 2 + 3),
            "the bottleneck block's two convolutions come after the third pooling, and they widen the field too.": (
                receptive_field(level * 3)[-1][0]
            ),
        },
    )


def week4_better_loss(predicted_better_loss, found) -> None:
    """Which loss found more of the tiny objects on average over the student's own runs (``found``: the shares per
    loss and seed), predicted before the runs."""
    if predicted_better_loss not in ("ce", "dice"):
        raise AssertionError(f"predicted_better_loss is 'ce' or 'dice', got {predicted_better_loss!r}.")
    means = {name: float(np.mean(found[name])) for name in ("ce", "dice")}
    better = max(means, key=means.get)
    argument = (
        "Cross-entropy is a mean over pixels, most of them background here: a model that calls a doubtful pixel "
        "background loses little, and the pixels of tiny objects are the doubtful ones. The Dice loss counts only "
        "object pixels, those there are and those predicted, so a missed object costs as much however much "
        "background surrounds it."
    )
    measured = (
        f"Your runs found {means['dice']:.1%} of the objects with Dice and {means['ce']:.1%} with cross-entropy, on "
        "average."
    )
    check_prediction(
        predicted_better_loss,
        better,
        "the loss that finds more of the tiny objects",
        f"{argument} {measured}"
        if better == "dice"
        else f"{measured} That is against the usual argument ({argument}) Look at the seeds' spread below before "
        "you trust either order.",
        mistakes={
            "cross-entropy averages over all pixels, most of them background here: which loss still notices a "
            "missed tiny object?": "ce"
        },
    )


def week5_collapsed_loss(predicted_collapsed_loss) -> None:
    """The similarity-softmax loss (temperature 0.1) of 48 pairs whose embeddings all collapsed to one point."""
    from course_utils import metric_learning  # on use: the other weeks' questions do not need it

    collapsed = np.ones((48, 32)) / np.sqrt(32)
    check_prediction(
        predicted_collapsed_loss,
        float(np.mean(metric_learning.similarity_softmax_loss(collapsed, collapsed, 0.1))),
        "the loss of collapsed embeddings, 48 pairs",
        "All 48 similarities of a row are equal (1, divided by any temperature), so the softmax gives each positive "
        "the same probability 1/48 and the loss is -log(1/48) = log(48), about 3.87: the temperature does not "
        "matter.",
        rtol=0.01,
        mistakes={
            "the softmax runs over the 48 positives of the batch, not over the 3 classes.": np.log(3),
            "that is a probability; the loss is minus its log.": 1 / 48,
            "collapsed embeddings are no better on the right positive than on the others: the loss is far from 0.": 0.0,
            "the temperature scales all similarities of a row alike, which a softmax ignores.": lambda p: (
                abs(p - 10 * np.log(48)) < 0.1 or abs(p - 0.1 * np.log(48)) < 0.01
            ),
        },
    )


def week5_clustered_loss(predicted_clustered_loss) -> None:
    """The diagonal-target loss (temperature 0.1) of a perfect clustering: 48 pairs, 16 per class, 3 class points."""
    from course_utils import metric_learning  # on use: the other weeks' questions do not need it

    points = np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])[np.repeat(np.arange(3), 16)]
    check_prediction(
        predicted_clustered_loss,
        float(np.mean(metric_learning.similarity_softmax_loss(points, points, 0.1))),
        "the diagonal target's loss on perfectly clustered embeddings",
        "Row i holds 16 positives of the anchor's class, all at cosine 1 (logit 10), and 32 of the other classes "
        "at cosine -1/2 (logit -5), which get almost no probability. The 16 share it: P_ii is about 1/16 and the "
        "loss about log(16) = 2.77, however perfect the clustering: the target calls 15 images of the anchor's own "
        "class wrong.",
        rtol=0.01,
        mistakes={
            "a perfect clustering does not bring this loss to 0: positive i is no more similar to anchor i than the "
            "other positives of its class are.": 0.0,
            "that would be collapsed embeddings, every image on one point; here the classes are apart.": np.log(48),
            "the softmax runs over the 48 positives of the batch, not over the 3 classes.": np.log(3),
        },
    )


def week5_threshold_direction(predicted_direction, embedder, validation) -> None:
    """Whether the threshold of lowest cost, a false accept costing five false rejects, lies above, below or at the
    threshold of fewest errors, on the pairs of the ``validation`` scenes embedded by ``embedder``."""
    from course_utils import metric_learning  # on use: the other weeks' questions do not need it
    from course_utils.exercise_checks import week5

    _check_direction("predicted_direction", predicted_direction)
    similarities, same = metric_learning.all_pairs(
        metric_learning.embed(embedder, validation.images), validation.labels
    )
    by_cost = week5.cheapest_threshold(similarities, same, week5.FALSE_ACCEPT_COST)
    by_errors = week5.cheapest_threshold(similarities, same, 1)
    actual = _direction(by_cost - by_errors, tolerance=0)
    check_prediction(
        predicted_direction,
        actual,
        "the threshold of lowest cost, against the one of fewest errors",
        f"On your validation pairs the fewest errors come at {by_errors:.3f} and the lowest cost at {by_cost:.3f}. "
        "Raising the threshold trades false accepts for false rejects; when a false accept costs five, the trade "
        "pays for longer, so the cheapest threshold can only be as high or higher (the same only when no pair "
        "lies between the two).",
        mistakes={
            "a lower threshold accepts MORE pairs, so more false accepts, the expensive error.": "lower",
            "the cost counts a false accept five times, so the best trade between the two errors moves.": "the same",
        },
    )


def week1_mirror_tta(predicted_effect, lenet, digits) -> None:
    """Whether averaging LeNet-5's predictions over horizontally mirrored copies (8 copies) raises, lowers or leaves
    its test accuracy on the digits (within a point), measured on the trained ``lenet``."""
    from course_utils.exercise_checks import week1  # on use: the other weeks' questions do not need it

    _check_direction("predicted_effect", predicted_effect)
    mirror = keras.Sequential([layers.RandomFlip("horizontal", seed=0)])
    plain, averaged = week1.tta_accuracies(lenet, mirror, digits)
    change = averaged - plain
    actual = _direction(change, tolerance=0.01)
    check_prediction(
        predicted_effect,
        actual,
        "the test accuracy with mirrored copies averaged in",
        f"Alone LeNet-5 scores {plain:.3f}; averaged with mirrored copies, {averaged:.3f}. A mirrored 3 or 7 is "
        "no digit at all: those copies show the network shapes it never learnt, "
        "and their votes pull the average away from the right class. Test-time augmentation helps only with "
        "transformations that keep the class.",
        mistakes={
            "more copies help only when each copy still shows the same digit: does a mirrored 3 or 7?": "higher",
            "the mirrored copies are not ignored: they carry as much weight in the average as the image itself.": (
                "the same"
            ),
        },
    )


_DIRECTIONS = ("higher", "lower", "the same")


def _check_direction(name: str, predicted) -> None:
    """A direction prediction is one of three words; anything else is refused before the answer is computed."""
    if predicted not in _DIRECTIONS:
        raise AssertionError(f"{name} is 'higher', 'lower' or 'the same', got {predicted!r}.")


def _direction(change: float, tolerance: float) -> str:
    """The word for a change: "the same" within ``tolerance`` of zero."""
    return "higher" if change > tolerance else "lower" if change < -tolerance else "the same"
