"""Everything the course code takes from KerasCV 0.9: the only module that imports ``keras_cv``.

The anchor generator, the ResNet backbone, RetinaNet with its label encoder, and
the two losses (subclassed to fix cross-entropy and to share the loss out under
``tf.distribute``) are made here and nowhere else, so that moving to keras-hub's
RetinaNet means rewriting this file (the tests check that no other module imports KerasCV).

``keras_cv`` is imported at the top, because the loss classes below subclass
KerasCV's. The rest of :mod:`course_utils.detection` imports this module only
inside the functions that use KerasCV (anchors, the model, its losses):
``import keras_cv`` loads some 800 more modules (TensorFlow Datasets and kagglehub
among them) that data, boxes, evaluation and figures do not need. This module
depends on none of the package's modules that import it (only on ``boxes``),
so that it can be replaced alone.
"""

from __future__ import annotations

import keras
import keras_cv
from keras import ops
from keras_cv.models.retinanet import LabelEncoder as RetinaNetLabelEncoder

from course_utils.config import replica_share
from course_utils.detection.boxes import BOX_FORMAT


def anchor_generator(config):
    """``keras_cv.layers.AnchorGenerator`` for an :class:`~course_utils.detection.anchors.AnchorConfig` (``xyxy``)."""
    return keras_cv.layers.AnchorGenerator(
        bounding_box_format=BOX_FORMAT,
        sizes=list(config.sizes),
        scales=list(config.scales),
        aspect_ratios=list(config.aspect_ratios),
        strides=list(config.strides),
        clip_boxes=True,
    )


def resnet_backbone(image_size, filters, blocks, block_type):
    """KerasCV's ``ResNetBackbone`` built from its arguments, no preset (see ``model.build_backbone``)."""
    return keras_cv.models.ResNetBackbone(
        stackwise_filters=list(filters),
        stackwise_blocks=list(blocks),
        stackwise_strides=[1, 2, 2, 2],
        include_rescaling=False,
        input_shape=(image_size, image_size, 3),
        block_type=block_type,
    )


def label_encoder(anchor_generator, positive_threshold, negative_threshold, box_variance):
    """KerasCV's RetinaNet label encoder: matches anchors to boxes and encodes the training targets."""
    return RetinaNetLabelEncoder(
        bounding_box_format=BOX_FORMAT,
        anchor_generator=anchor_generator,
        positive_threshold=positive_threshold,
        negative_threshold=negative_threshold,
        box_variance=box_variance,
    )


def retinanet(**parts):
    """KerasCV's ``RetinaNet`` on ``xyxy`` boxes; ``parts`` are its keyword arguments (backbone, heads ...)."""
    return keras_cv.models.RetinaNet(bounding_box_format=BOX_FORMAT, **parts)


class ReplicaShare:
    """Mixin for a Keras loss whose value passes through :func:`course_utils.config.replica_share`.

    RetinaNet's losses are sums over the anchors divided by the number of
    matched anchors, not means that Keras would divide by the number of
    replicas itself: under ``tf.distribute`` each replica must contribute its share.
    """

    def __call__(self, *args, **kwargs):
        return replica_share(super().__call__(*args, **kwargs))


@keras.saving.register_keras_serializable(package="course_utils")
class FocalLoss(ReplicaShare, keras_cv.losses.FocalLoss):
    """KerasCV's ``FocalLoss``, with ``gamma=0`` computed as a stable cross-entropy from the logits.

    KerasCV computes ``(1 - p_t) ** gamma`` even for ``gamma=0``; once a sigmoid
    saturates (``p_t`` exactly 1 in float32) the gradient of that power is
    ``0 * inf``, NaN, and training with cross-entropy diverges. For ``gamma > 0``
    the loss is KerasCV's own. Its value is shared out over replicas (:class:`ReplicaShare`).
    """

    def call(self, y_true, y_pred):
        if self.gamma != 0 or not self.from_logits or self.label_smoothing:
            return super().call(y_true, y_pred)
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        weight = ops.where(ops.equal(y_true, 1.0), self.alpha, 1.0 - self.alpha)
        # max(z, 0) - z y + log(1 + exp(-|z|)): sigmoid cross-entropy without computing the sigmoid
        cross_entropy = ops.relu(y_pred) - y_pred * y_true + ops.log1p(ops.exp(-ops.abs(y_pred)))
        return ops.sum(weight * cross_entropy, axis=-1)  # over the classes, as KerasCV's FocalLoss


@keras.saving.register_keras_serializable(package="course_utils")
class SmoothL1Loss(ReplicaShare, keras_cv.losses.SmoothL1Loss):
    """KerasCV's ``SmoothL1Loss`` (RetinaNet's box loss), its value shared out over replicas."""
