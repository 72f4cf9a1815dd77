"""The exercises' visible checks whose expected values or explanations would give a blank's answer away: they live
here, not in the handout's check cell, which shows only the call. One function per check, named after its week;
it fails like every check (``AssertionError``, a known mistake named) and returns what the notebook keeps.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.neighbors import KNeighborsClassifier

from course_utils import metric_learning as ml
from course_utils.checks import check, check_close, check_equal, check_shape


def week1_lenet5(build_lenet5) -> keras.Model:
    """LeNet-5 for 28x28 digits as the blank builds it: its output, its two convolutions' shapes and its size.
    Returns the model, which the notebook trains next."""
    lenet = build_lenet5()
    check(
        isinstance(lenet, keras.Model),
        f"build_lenet5 must return a keras Model, got {type(lenet).__name__}",
    )
    check_shape(
        lenet.predict(np.zeros((2, 28, 28, 1)), verbose=0),
        (2, 10),
        "LeNet-5's predictions for 2 images of 28x28",
    )
    shapes = [tuple(layer.output.shape[1:]) for layer in lenet.layers if isinstance(layer, layers.Conv2D)]
    check_equal(
        shapes,
        [(28, 28, 6), (10, 10, 16)],
        "output shapes of the two convolutions",
        mistakes={
            "without padding the maps end at 4x4, not 5x5 (28 -> 24, pooled 12 -> 8, pooled 4): pad the first "
            "convolution, so that it gives 28x28 maps, as the original's did from 32x32 inputs.": [
                (24, 24, 6),
                (8, 8, 16),
            ],
            "with padding='same' on both the maps end at 7x7 (28, pooled 14, 14, pooled 7): the second convolution "
            "must shrink 14 to 10, as in the original.": [(28, 28, 6), (14, 14, 16)],
            "the padding is on the wrong convolution: padding the second gives 28 -> 24 -> 12 -> 12 -> 6. Pad the "
            "first instead, so that 28 stays 28 and the rest is the original's 14 -> 10 -> 5.": [
                (24, 24, 6),
                (12, 12, 16),
            ],
        },
    )
    check_equal(
        lenet.count_params(),
        61_706,
        "number of parameters of LeNet-5",
        mistakes={
            "the dense layers see 4 x 4 x 16 = 256 numbers instead of 400: no convolution keeps its side.": 44_426,
            "the dense layers see 7 x 7 x 16 = 784 numbers instead of 400: both convolutions keep their side.": 107_786,
            "the dense layers see 6 x 6 x 16 = 576 numbers instead of 400: the padding is on the second "
            "convolution, not the first.": 82_826,
        },
    )
    return lenet


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


def week3_iou(iou, random_boxes, rng) -> None:
    """The visible check of week 3's iou."""
    # Two 10x10 boxes overlapping on a 5x5 square: intersection 25, union 100 + 100 - 25 = 175.
    check_close(
        iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])),
        [[25 / 175]],
        "IoU of two shifted 10x10 boxes",
        mistakes={
            "you counted pixels inclusively (width x_max - x_min + 1); here x_max is exclusive, so the "
            "width is x_max - x_min.": [[36 / (121 + 121 - 36)]],
            "the union subtracts the intersection twice: it is area_a + area_b - intersection.": [[25 / 150]],
            "the union must subtract the intersection (counted in both areas).": [[25 / 200]],
            "you divided by the smaller box's area, not by the union.": [[25 / 100]],
        },
    )
    check_close(
        iou(np.array([[0, 0, 10, 10]]), np.array([[20, 20, 30, 30]])),
        [[0.0]],
        "IoU of two boxes far apart",
        mistakes={
            "boxes far apart have a negative overlap width AND height, whose product is positive: clip "
            "each of them at 0 before multiplying.": lambda value: np.asarray(value).item() > 0.5
        },
    )
    a, b = random_boxes(7, rng), random_boxes(5, rng)
    result = iou(a, b)
    check_shape(result, (7, 5), "iou of 7 boxes against 5")
    expected = keras.utils.bounding_boxes.compute_iou(a, b, "xyxy")
    check_close(result, np.asarray(expected), "iou against keras.utils.bounding_boxes.compute_iou on random boxes")


def week3_focal(focal_loss, rng) -> None:
    """The visible check of week 3's focal."""
    y = (rng.random((6, 10)) < 0.2).astype(np.float32)
    logits = rng.normal(0, 3, size=(6, 10)).astype(np.float32)
    for gamma, alpha in [(2.0, 0.25), (0.0, 0.5), (1.0, 0.75)]:

        def library(alpha=alpha, gamma=gamma):
            """Keras' focal loss, summed over every entry (a trailing axis of 1: Keras averages over the last axis)."""
            loss = keras.losses.BinaryFocalCrossentropy(
                apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True, reduction="sum"
            )
            return float(loss(y[..., None], logits[..., None]))

        expected = library()
        check_close(
            focal_loss(y, logits, gamma, alpha),
            expected,
            f"focal_loss with gamma={gamma}, alpha={alpha}",
            atol=1e-3,
            mistakes={
                "alpha_t is swapped: alpha weighs the positives (y = 1), 1 - alpha the negatives.": library(
                    alpha=1 - alpha
                )
                if alpha != 0.5
                else None,
                "you averaged the entries; the loss asked for is their sum.": expected / y.size,
                "the modulating factor is (1 - p_t) ** gamma: you wrote p_t ** gamma (it must shrink "
                "for easy examples, where p_t is near 1).": None
                if gamma == 0
                else float(
                    np.sum(
                        np.where(y == 1, alpha, 1 - alpha)
                        * np.where(y == 1, 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits))) ** gamma
                        * (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))
                    )
                ),
            },
        )
    easy = focal_loss(np.zeros(1), np.array([-4.0]))
    hard = focal_loss(np.zeros(1), np.array([4.0]))
    check(hard > 1000 * easy, "an easy negative (logit -4) should cost far less than a hard one (logit +4)")


def week3_nms(nms, random_boxes, rng) -> None:
    """The visible check of week 3's nms."""
    two_close = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]], np.float32)
    check_equal(
        list(nms(two_close, np.array([0.9, 0.8, 0.7]))),
        [0, 2],
        "nms keeps the best of two overlapping boxes",
        mistakes={
            "you removed the boxes that overlap LITTLE: remove those whose IoU is greater than the "
            "threshold, keep the others.": [0, 1],
            "nothing was removed: drop every box whose IoU with the kept one is above the threshold.": [0, 1, 2],
        },
    )
    check_equal(
        list(nms(two_close, np.array([0.6, 0.8, 0.7]))),
        [1, 2],
        "nms keeps the higher score, whichever it is",
        mistakes={"you took the boxes in their input order: sort them by decreasing score first.": [0, 2]},
    )
    for threshold in (0.3, 0.5, 0.7):
        boxes = random_boxes(40, rng)
        scores = rng.random(40).astype(np.float32)
        # TensorFlow wants yxyx boxes; IoU does not care about the order of the axes.
        expected = tf.image.non_max_suppression(
            boxes[:, [1, 0, 3, 2]], scores, max_output_size=40, iou_threshold=threshold
        ).numpy()
        in_input_order = tf.image.non_max_suppression(
            boxes[:, [1, 0, 3, 2]],
            np.linspace(1, 0.5, 40, dtype=np.float32),
            max_output_size=40,
            iou_threshold=threshold,
        ).numpy()
        check_equal(
            list(nms(boxes, scores, threshold)),
            list(expected),
            f"nms against TensorFlow, threshold {threshold}",
            mistakes={
                "you took the boxes in their input order: sort them by decreasing score first.": list(in_input_order),
                "return the kept boxes best score first, not in index order.": sorted(expected),
            },
        )


def week3_ap(average_precision) -> None:
    """The visible check of week 3's ap."""
    check_close(average_precision([0.9, 0.8, 0.7], [True, True, True], 3), 1.0, "AP of three correct detections")
    check_close(
        average_precision([0.9, 0.8, 0.7], [True, False, True], 3),
        1 / 3 + 1 / 3 * 2 / 3,
        "AP of correct, wrong, correct with 3 objects",
        mistakes={
            "recall divides by the number of objects (3), not by the number of true positives.": 1 / 2 + 1 / 2 * 2 / 3
        },
    )
    # Ranked by score: 0.9 wrong, 0.8 right, 0.7 right: precision 0, 1/2, 2/3, made monotone 2/3 everywhere.
    check_close(
        average_precision([0.7, 0.9, 0.8], [True, False, True], 3),
        2 / 3 * 2 / 3,
        "AP must sort by score first",
        mistakes={
            "you kept the detections in their input order: sort them by decreasing score first.": 1 / 3 + 1 / 3 * 2 / 3,
            "you sorted by increasing score: the best-scored detection comes first.": 2 / 3,
            "you did not make the precision monotone: replace each precision by the largest one at the "
            "same or a later rank.": 1 / 3 * 1 / 2 + 1 / 3 * 2 / 3,
        },
    )
    check_close(
        average_precision([0.9, 0.8], [True, True], 4),
        0.5,
        "AP when half of the objects are never found",
        mistakes={"recall divides by all the objects (4), found or not: missed objects cap the recall.": 1.0},
    )
    check_close(
        average_precision([0.9, 0.8, 0.5], [False, True, True], 2),
        2 / 3,
        "AP when the best-scored detection is wrong (precision 2/3 is kept back to recall 0)",
        mistakes={
            "you did not make the precision monotone: replace each precision by the largest one at the "
            "same or a later rank.": 1 / 2 * 1 / 2 + 1 / 2 * 2 / 3
        },
    )


def week5_cosine_similarity_matrix(cosine_similarity_matrix, rng) -> None:
    """The visible check of week 5's cosine similarity matrix."""
    a, b = rng.normal(size=(6, 8)), rng.normal(size=(4, 8))
    similarities = cosine_similarity_matrix(a, b)
    check_shape(similarities, (6, 4), "cosine_similarity_matrix of 6 and 4 vectors")

    def unit_rows(v, axis=1):
        return v / np.linalg.norm(v, axis=axis, keepdims=True)

    check_close(
        similarities,
        ml.cosine_similarity_matrix(a, b),
        "cosine_similarity_matrix against the course's",
        mistakes={
            "these are plain dot products: divide each row by its length first.": a @ b.T,
            "only the rows of a were normalised: normalise the rows of b too.": unit_rows(a) @ b.T,
            "only the rows of b were normalised: normalise the rows of a too.": a @ unit_rows(b).T,
            "you normalised the columns (axis=0): each ROW is a vector, normalise with axis=1.": unit_rows(a, 0)
            @ unit_rows(b, 0).T,
        },
    )
    check_close(
        np.diag(cosine_similarity_matrix(a, 3 * a)), np.ones(6), "the similarity of a vector with itself, scaled by 3"
    )
    check_close(
        cosine_similarity_matrix(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [-1.0, 0.0]])),
        [[0.0, -1.0]],
        "similarities of perpendicular and opposite vectors",
    )


def week5_temperature_softmax_loss(softmax_loss, rng) -> None:
    """The visible check of week 5's temperature softmax loss."""
    anchors, positives = rng.normal(size=(8, 16)), rng.normal(size=(8, 16))
    for temperature in (0.05, 0.1, 1.0):

        def reference_loss(a=anchors, p=positives, t=temperature):
            return float(np.mean(ml.similarity_softmax_loss(a, p, t)))

        expected = reference_loss()
        check_close(
            softmax_loss(anchors, positives, temperature),
            expected,
            f"softmax_loss at temperature {temperature}",
            mistakes={
                "you did not divide the similarities by the temperature.": reference_loss(t=1.0)
                if temperature != 1
                else None,
                "you multiplied by the temperature; divide by it.": reference_loss(t=1 / temperature)
                if temperature != 1
                else None,
                "you summed over the rows; the loss is their mean.": len(anchors) * expected,
                "the softmax runs over each ROW (one anchor against all positives), not each column.": reference_loss(
                    a=positives, p=anchors
                ),
            },
        )
    check_close(softmax_loss(np.ones((5, 3)), np.ones((5, 3)), 0.1), np.log(5), "collapsed embeddings cost log(n)")
    check(
        softmax_loss(np.eye(4), np.eye(4), 0.01) < 1e-3,
        "perfectly matched embeddings at a low temperature cost almost 0",
    )
    check(np.isfinite(softmax_loss(anchors, positives, 1e-4)), "softmax_loss must not overflow at tiny temperatures")


def week5_knn_majority_vote(knn_vote, rng) -> None:
    """The visible check of week 5's knn majority vote."""
    reference = rng.normal(size=(60, 5))
    reference_labels = rng.integers(0, 4, 60)
    queries = rng.normal(size=(40, 5))
    for k in (1, 3, 5, 8):
        sklearn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(reference, reference_labels).predict(queries)
        farthest = (
            KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(-reference, reference_labels).predict(queries)
        )
        euclidean = KNeighborsClassifier(n_neighbors=k).fit(reference, reference_labels).predict(queries)
        check_equal(
            list(knn_vote(reference, reference_labels, queries, k)),
            list(sklearn),
            f"knn_vote with k={k}",
            mistakes={
                "you took the k LEAST similar references: sort by decreasing similarity "
                "(np.argsort(-similarities)).": list(farthest),
                "you used Euclidean distances between unnormalised vectors; the vote uses cosine similarity.": list(
                    euclidean
                ),
            },
        )


def week4_transposed_convolution_sizes(transposed_output_size) -> None:
    """The visible check of week 4's transposed convolution sizes."""
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


def week1_correlate2d(correlate2d, rng) -> None:
    """The visible check of week 1's correlate2d."""

    def reference(x, kernel, padding, stride):
        """TensorFlow's cross-correlation with ``padding`` zeros on each side."""
        pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        return tf.nn.conv2d(x[None], kernel, strides=stride, padding=pads)[0].numpy()

    worked = correlate2d(np.arange(9.0).reshape(3, 3, 1), np.arange(4.0).reshape(2, 2, 1, 1))
    check_close(
        worked[..., 0],
        [[19, 25], [37, 43]],
        "the worked example of the chapter",
        mistakes={
            "you computed a convolution, not a cross-correlation: your kernel is flipped (x[i + a, j + b] times "
            "kernel[kh - 1 - a, kw - 1 - b]). Multiply x[i + a, j + b] by kernel[a, b].": [[5, 11], [23, 29]]
        },
    )
    for padding, stride in [(0, 1), (1, 1), (2, 2), (0, 3)]:
        x = rng.normal(size=(9, 11, 3))
        kernel = rng.normal(size=(3, 2, 3, 4))
        check_close(
            correlate2d(x, kernel, padding, stride),
            reference(x, kernel, padding, stride),
            f"correlate2d with padding={padding}, stride={stride}",
            mistakes={
                "you computed a convolution, not a cross-correlation (the kernel is flipped).": reference(
                    x, kernel[::-1, ::-1], padding, stride
                ),
                "you forgot the padding (add `padding` zeros on each side with np.pad).": (
                    reference(x, kernel, 0, stride) if padding else None
                ),
                "you padded twice as much as asked (`padding` is the number of zeros on EACH side).": (
                    reference(x, kernel, 2 * padding, stride) if padding else None
                ),
                "you ignored the stride (windows start at row i * stride, column j * stride).": (
                    reference(x, kernel, padding, 1) if stride > 1 else None
                ),
            },
        )


def week1_sizes(c3_params, conv_params, first_layer_side, halving, output_size, same_padding, vgg_block_params) -> None:
    """The visible check of week 1's sizes."""
    for n, kernel, stride, padding in [
        (32, 5, 1, 0),
        (28, 2, 2, 0),
        (9, 3, 2, 1),
        (10, 4, 3, 2),
    ]:
        x = np.zeros((1, n, n, 1), np.float32)
        expected = tf.nn.conv2d(
            x,
            np.zeros((kernel, kernel, 1, 1), np.float32),
            strides=stride,
            padding=[[0, 0], [padding, padding], [padding, padding], [0, 0]],
        ).shape[1]
        total = n + 2 * padding - kernel
        check_equal(
            output_size(n, kernel, stride, padding),
            expected,
            f"output_size({n}, {kernel}, {stride}, {padding})",
            mistakes={
                "you forgot the +1 (the first window position counts too).": total // stride,
                "you added the padding once; it goes on both sides (2 * padding).": (total - padding) // stride + 1,
                "you added the padding four times (2 * padding is already both sides).": (total + 2 * padding) // stride
                + 1,
            },
        )

    def count_mistakes(kh, kw, in_channels, filters):
        """What the usual wrong formulas give for a convolution layer."""
        weights = kh * kw * in_channels * filters
        return {
            "you forgot the biases (one per filter).": weights,
            "you counted a bias per input channel and filter; a filter has ONE bias.": weights + in_channels * filters,
            "you counted a bias per input channel; there is one per filter.": weights + in_channels,
            "each filter spans all the input channels: kh * kw * in_channels weights per filter.": kh * kw * filters
            + filters,
        }

    check_equal(conv_params(5, 5, 3, 2), 152, "conv_params(5, 5, 3, 2)", mistakes=count_mistakes(5, 5, 3, 2))
    check_equal(first_layer_side, 112, "first_layer_side")
    check_equal(
        c3_params,
        keras.Sequential([keras.Input((14, 14, 6)), layers.Conv2D(16, 5)]).count_params(),
        "c3_params",
        mistakes=count_mistakes(5, 5, 6, 16),
    )
    check_equal(vgg_block_params, 73_856, "vgg_block_params", mistakes=count_mistakes(3, 3, 64, 128))

    def side_after(n, kernel, stride, padding):
        """The output side TensorFlow computes for an n x n input."""
        pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        probe = tf.nn.conv2d(
            np.zeros((1, n, n, 1), np.float32),
            np.zeros((kernel, kernel, 1, 1), np.float32),
            strides=stride,
            padding=pads,
        )
        return int(probe.shape[1])

    check(
        isinstance(same_padding, (int, np.integer)) and same_padding >= 0,
        f"same_padding must be a whole number of zeros, got {same_padding!r}",
    )
    check_equal(
        side_after(28, 5, 1, int(same_padding)),
        28,
        f"the side of 28x28 after a 5x5 kernel with padding {same_padding}",
        mistakes={"each side needs (kernel - 1) / 2 zeros: the 5x5 window loses 4 positions, 2 per side.": 26},
    )
    check(
        isinstance(halving, (tuple, list))
        and len(halving) == 2
        and all(isinstance(v, (int, np.integer)) for v in halving)
        and halving[0] >= 1
        and halving[1] >= 0,
        f"halving must be a pair of whole numbers (stride, padding), got {halving!r}",
    )
    check_equal(
        side_after(64, 3, *map(int, halving)),
        32,
        f"the side of 64x64 after a 3x3 kernel with (stride, padding) = {halving}",
        mistakes={
            "off by one: without padding the 3x3 window fits (64 - 3) // 2 + 1 = 31 times; one zero "
            "on each side gives the 32nd position.": 31,
            "one position too many: use less padding.": 33,
            "stride 1 never shrinks a map by half: choose stride 2.": lambda side: int(halving[0]) == 1,
        },
    )
