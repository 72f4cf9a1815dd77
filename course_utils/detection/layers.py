"""Our Keras layers of RetinaNet: the feature pyramid, the shared heads and the per-class NMS decoder.

Module-level classes registered with Keras, so that a saved model's config names
them (``course_utils>FeaturePyramid`` ...); KerasCV's RetinaNet takes them as its parts.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from course_utils.detection.boxes import BOX_FORMAT


@keras.saving.register_keras_serializable(package="course_utils")
class FeaturePyramid(keras.layers.Layer):
    """Top-down pyramid with lateral 1x1 connections, ``channels`` wide, levels P3.. (stride 8 up).

    Takes the backbone's ``{"P3", "P4", "P5"}`` outputs (called C3-C5 in the
    paper) and returns ``levels`` maps: P3-P5 from the top-down path, then
    P6, P7 ... from stride-2 convolutions on top, as in RetinaNet.
    """

    def __init__(self, channels=64, levels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.levels = channels, levels
        conv = keras.layers.Conv2D
        self.lateral = [conv(channels, 1, padding="same", name=f"lateral_c{k}") for k in (3, 4, 5)]
        self.smooth = [conv(channels, 3, padding="same", name=f"output_p{k}") for k in (3, 4, 5)]
        self.extra = [
            conv(channels, 3, strides=2, padding="same", name=f"output_p{6 + k}") for k in range(max(0, levels - 3))
        ]
        self.upsample = keras.layers.UpSampling2D(2)

    def build(self, input_shape):
        for layer, key in zip(self.lateral, ("P3", "P4", "P5")):
            layer.build(input_shape[key])
        for layer in self.smooth:
            layer.build((None, None, None, self.channels))
        for k, layer in enumerate(self.extra):
            layer.build(input_shape["P5"] if k == 0 else (None, None, None, self.channels))
        self.built = True

    def call(self, inputs):
        c3, c4, c5 = inputs["P3"], inputs["P4"], inputs["P5"]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + self.upsample(p5)
        p3 = self.lateral[0](c3) + self.upsample(p4)
        outputs = [self.smooth[0](p3), self.smooth[1](p4), self.smooth[2](p5)][: self.levels]
        x = c5
        for k, layer in enumerate(self.extra):
            x = layer(x if k == 0 else keras.ops.relu(x))
            outputs.append(x)
        return tuple(outputs)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(input_shape[k][:-1]) + (self.channels,) for k in ("P3", "P4", "P5")]
        return tuple(shapes[: self.levels] + [(None, None, None, self.channels)] * max(0, self.levels - 3))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "levels": self.levels}


@keras.saving.register_keras_serializable(package="course_utils")
class Head(keras.layers.Layer):
    """``depth`` 3x3 convolutions of ``width`` channels with ReLU, then a 3x3 output convolution.

    One head is shared by every pyramid level, as in RetinaNet.
    """

    def __init__(self, outputs, width=64, depth=2, bias=0.0, **kwargs):
        super().__init__(**kwargs)
        self.outputs, self.width, self.depth, self.bias = outputs, width, depth, bias
        self.convs = [
            keras.layers.Conv2D(
                width,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            )
            for _ in range(depth)
        ]
        self.out = keras.layers.Conv2D(
            outputs,
            3,
            padding="same",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            bias_initializer=keras.initializers.Constant(bias),
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = shape[:-1] + (self.width,)
        self.out.build(shape)
        self.built = True

    def call(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.out(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.outputs,)

    def get_config(self):
        return {
            **super().get_config(),
            "outputs": self.outputs,
            "width": self.width,
            "depth": self.depth,
            "bias": self.bias,
        }


@keras.saving.register_keras_serializable(package="course_utils")
class PerClassNMS(keras.layers.Layer):
    """Score threshold, then non-maximum suppression **within each class**, as the RetinaNet paper does.

    KerasCV's ``NonMaxSuppression`` keeps only each anchor's best class and
    suppresses across classes: a square would then remove a circle it
    overlaps. Here every (anchor, class) pair whose sigmoid score is at least
    ``confidence_threshold`` is a candidate, duplicates are removed class by
    class (``tf.image.combined_non_max_suppression``), and the best
    ``max_detections`` of all classes are kept. Takes and returns ``xyxy``
    pixel boxes; padding is -1, as everywhere in this package.
    """

    def __init__(self, confidence_threshold=0.05, iou_threshold=0.5, max_detections=20, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.confidence_threshold = float(confidence_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.bounding_box_format = BOX_FORMAT
        self.built = True

    def call(self, box_prediction, class_prediction, images=None, image_shape=None):
        scores = tf.sigmoid(tf.cast(class_prediction, tf.float32))
        boxes = tf.cast(box_prediction, tf.float32)[:, :, None, :]
        # IoU does not care whether x or y comes first, so xyxy boxes go in as they are.
        out = tf.image.combined_non_max_suppression(
            boxes,
            scores,
            max_output_size_per_class=self.max_detections,
            max_total_size=self.max_detections,
            iou_threshold=self.iou_threshold,
            score_threshold=self.confidence_threshold,
            clip_boxes=False,
        )
        valid = tf.range(self.max_detections)[None, :] < out.valid_detections[:, None]
        return {
            "boxes": tf.where(valid[..., None], out.nmsed_boxes, -1.0),
            "confidence": tf.where(valid, out.nmsed_scores, -1.0),
            "classes": tf.where(valid, out.nmsed_classes, -1.0),
            "num_detections": out.valid_detections,
        }
