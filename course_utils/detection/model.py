"""The model: our RetinaNet assembled from KerasCV's parts and our layers, its decoder, and its outputs."""

from __future__ import annotations

import contextlib
import math
import warnings

import keras
import numpy as np
from keras import ops
from keras.utils import bounding_boxes

from course_utils.detection.anchors import AnchorConfig
from course_utils.detection.data import DetectionData
from course_utils.detection.layers import FeaturePyramid, Head, PerClassNMS
from course_utils.detection.losses import focal_loss

BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)  # KerasCV's RetinaNet scales its box targets by these


def build_backbone(image_size: int = 128, filters=(16, 32, 64, 128), blocks=(1, 1, 1, 1), block_type="block"):
    """A small ResNet (KerasCV ``ResNetBackbone``) built from its arguments: nothing is downloaded.

    A stride-4 stem (7x7 convolution with 64 filters, max pooling), then four
    stacks with strides 1, 2, 2, 2 give the outputs P2-P5 (strides 4 to 32);
    RetinaNet uses P3-P5. ``block_type="block"`` is the bottleneck block
    (1x1, 3x3, 1x1 convolutions; a stack outputs ``4 * filters`` channels);
    ``"basic_block"`` (two 3x3) needs ``filters[0] == 64`` to match the stem.
    """
    from course_utils.detection import kerascv  # on use: KerasCV loads some 800 modules

    if len(filters) != 4 or len(blocks) != 4:
        raise ValueError("the backbone needs four stacks (filters and blocks of length 4) to reach stride 32")
    return kerascv.resnet_backbone(image_size, filters, blocks, block_type)


def build_retinanet(
    num_classes: int,
    image_size: int = 128,
    backbone_filters=(16, 32, 64, 128),
    backbone_blocks=(1, 1, 1, 1),
    pyramid_channels: int = 64,
    head_width: int = 64,
    head_depth: int = 2,
    anchors: AnchorConfig | None = None,
    positive_threshold: float = 0.5,
    negative_threshold: float = 0.4,
    confidence_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 20,
    learning_rate: float = 1e-3,
    compile: bool = True,
    classification_loss=None,
    features_from=None,
):
    """KerasCV RetinaNet sized for a CPU, compiled with focal loss and smooth L1 (Adam, ``global_clipnorm=10``).

    The pyramid has as many levels as ``anchors.sizes`` (P3 upwards), each cell
    ``anchors.per_location`` anchors. The heads, shared across levels, are ``head_depth``
    convolutions of ``head_width`` channels; the classification head's bias starts every
    anchor at "object" with probability 0.01 (the focal-loss paper's prior). The decoder
    (:class:`PerClassNMS`) keeps detections with confidence >= ``confidence_threshold``
    (low, for mAP; :func:`predict` takes others) and applies per-class non-maximum
    suppression at ``iou_threshold``. ``classification_loss`` defaults to :func:`focal_loss`
    (the paper's ``gamma=2, alpha=0.25``); ``focal_loss(gamma=0, alpha=...)`` is
    (alpha-balanced) binary cross-entropy. Any loss given must sum over anchors and classes
    (``reduction="sum"``): RetinaNet divides the sum by the number of positive anchors itself.
    ``features_from``: a RetinaNet of the same backbone and pyramid sizes whose backbone and
    pyramid weights are copied in and frozen, so that only the two (fresh) heads train: a
    cheap way to compare losses or anchor layouts on the same features.

    The model is float32 even under the gpu profile's ``mixed_float16`` policy: KerasCV's box
    decoding and non-maximum suppression reject float16. Build it inside
    ``with strategy.scope():`` to train it with a ``tf.distribute`` strategy.
    """
    from course_utils.detection import kerascv  # on use: KerasCV loads some 800 modules

    anchors = anchors or AnchorConfig()
    classification_loss = _checked_classification_loss(classification_loss)
    with _float32_policy():
        encoder = kerascv.label_encoder(anchors.generator(), positive_threshold, negative_threshold, BOX_VARIANCE)
        model = kerascv.retinanet(
            backbone=build_backbone(image_size, backbone_filters, backbone_blocks),
            num_classes=num_classes,
            label_encoder=encoder,
            prediction_decoder=PerClassNMS(confidence_threshold, iou_threshold, max_detections),
            **_pyramid_and_heads(anchors, num_classes, pyramid_channels, head_width, head_depth),
        )
    if features_from is not None:
        _copy_frozen_features(features_from, model)
    if compile:
        optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=10.0)
        box_loss = kerascv.SmoothL1Loss(l1_cutoff=1.0, reduction="sum")
        model.compile(optimizer=optimizer, classification_loss=classification_loss, box_loss=box_loss)
    return model


def _checked_classification_loss(loss):
    """``loss``, or :func:`focal_loss` with the paper's settings when None; refuses a loss RetinaNet cannot use."""
    if loss is None:
        return focal_loss()
    if not isinstance(loss, keras.losses.Loss):
        raise TypeError(
            f"classification_loss must be a keras.losses.Loss such as det.focal_loss(gamma=0, alpha=0.75), "
            f"not {type(loss).__name__} {loss!r}"
        )
    if getattr(loss, "reduction", None) != "sum":
        raise ValueError(
            f"classification_loss must sum over anchors and classes (reduction='sum'): RetinaNet divides "
            f"by the number of positive anchors itself; got reduction={loss.reduction!r}"
        )
    return loss


@contextlib.contextmanager
def _float32_policy():
    """Build under the float32 policy, whatever the global one: float16 outputs break KerasCV's decoding."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _pyramid_and_heads(anchors: AnchorConfig, num_classes: int, channels: int, head_width: int, head_depth: int):
    """Our feature pyramid and the two shared heads, as keyword arguments of KerasCV's RetinaNet."""
    prior = -math.log((1 - 0.01) / 0.01)  # the classification bias: every anchor starts at probability 0.01
    per_location = anchors.per_location
    return {
        "feature_pyramid": FeaturePyramid(channels, len(anchors.sizes), name="feature_pyramid"),
        "classification_head": Head(
            per_location * num_classes, head_width, head_depth, prior, name="classification_head"
        ),
        "box_head": Head(per_location * 4, head_width, head_depth, 0.0, name="box_head"),
    }


def _copy_frozen_features(source_model, model) -> None:
    """Copy ``source_model``'s backbone and pyramid weights into ``model`` and freeze them; their sizes must agree."""
    for part in ("backbone", "feature_pyramid"):
        source, target = getattr(source_model, part, None), getattr(model, part)
        shapes = [tuple(w.shape) for w in source.weights] if source is not None else None
        if shapes != [tuple(w.shape) for w in target.weights]:
            raise ValueError(
                f"features_from must be a RetinaNet with the same {part.replace('_', ' ')} "
                f"(backbone_filters, backbone_blocks, pyramid_channels and pyramid levels) as this one"
            )
        target.set_weights(source.get_weights())
        target.trainable = False


def pyramid_shapes(model, image_size: int) -> dict:
    """Output shapes of the backbone stages (C3-C5) and of the pyramid levels (P3..) for one image."""
    x = np.zeros((1, image_size, image_size, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        backbone_out = model.feature_extractor(x)
        pyramid_out = model.feature_pyramid(backbone_out)
    shapes = {f"C{k[1:]}": tuple(backbone_out[k].shape[1:]) for k in ("P3", "P4", "P5")}
    for k, level in enumerate(pyramid_out):
        shapes[f"P{3 + k}"] = tuple(level.shape[1:])
    return shapes


def parameter_counts(model) -> dict:
    """Parameters of the backbone, the pyramid, the two heads and the whole model."""
    return {
        "backbone": model.backbone.count_params(),
        "feature pyramid": model.feature_pyramid.count_params(),
        "classification head": model.classification_head.count_params(),
        "box head": model.box_head.count_params(),
        "total": model.count_params(),
    }


def raw_outputs(model, images, batch_size: int = 64) -> dict:
    """The model's undecoded outputs ``{"box", "classification"}`` (one row per anchor), computed eagerly.

    Computing them once and decoding them with several thresholds (:func:`predict`
    with ``raw=``) avoids re-tracing ``model.predict`` for every setting.
    """
    images = np.asarray(images, np.float32)
    parts = {"box": [], "classification": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for start in range(0, len(images), batch_size):
            out = model(images[start : start + batch_size], training=False)
            for key in parts:
                parts[key].append(np.asarray(out[key]))
    return {key: np.concatenate(value) for key, value in parts.items()}


def predict(
    model,
    images,
    confidence_threshold: float | None = None,
    iou_threshold: float | None = None,
    max_detections: int | None = None,
    raw: dict | None = None,
    batch_size: int = 64,
) -> dict:
    """Decoded detections as NumPy: ``boxes`` (xyxy), ``classes``, ``confidence`` padded with -1, ``num_detections``.

    Without thresholds it uses the model's own decoder (see :func:`build_retinanet`);
    with them, a decoder with those settings (``iou_threshold=1.0`` switches
    non-maximum suppression off). ``raw`` reuses :func:`raw_outputs` of the same images.
    """
    images = np.asarray(images, np.float32)
    raw = raw if raw is not None else raw_outputs(model, images, batch_size)
    decoder = model.prediction_decoder
    if confidence_threshold is not None or iou_threshold is not None or max_detections is not None:
        decoder = PerClassNMS(
            decoder.confidence_threshold if confidence_threshold is None else confidence_threshold,
            decoder.iou_threshold if iou_threshold is None else iou_threshold,
            decoder.max_detections if max_detections is None else max_detections,
        )
    image_shape = tuple(images.shape[1:])
    anchors = model.anchor_generator(image_shape=image_shape)
    anchors = ops.concatenate(list(anchors.values()), axis=0)
    boxes = bounding_boxes.decode_deltas_to_boxes(
        anchors=anchors,
        boxes_delta=ops.convert_to_tensor(raw["box"]),
        anchor_format=model.anchor_generator.bounding_box_format,
        box_format=decoder.bounding_box_format,
        variance=BOX_VARIANCE,
        image_shape=image_shape,
    )
    out = decoder(boxes, ops.convert_to_tensor(raw["classification"]), image_shape=image_shape)
    result = {k: np.asarray(out[k]) for k in ("boxes", "classes", "confidence", "num_detections")}
    result["classes"] = result["classes"].astype(np.int32)
    return result


def anchor_targets(model, data: DetectionData, batch_size: int = 64) -> np.ndarray:
    """Every anchor's classification target under the model's own matching, ``(images, anchors)`` int32.

    A class id (``0 ..``) for a positive anchor, ``-1`` for background, ``-2`` for an
    ignored anchor: computed by the model's label encoder (KerasCV's
    ``RetinaNetLabelEncoder`` with the model's anchors and IoU thresholds), the
    very targets training sees, without augmentation. Same anchor order as
    :func:`raw_outputs`.
    """
    parts = []
    for start in range(0, len(data), batch_size):
        part = data.subset(slice(start, start + batch_size))
        _, classes = model.label_encoder(np.asarray(part.images, np.float32), part.targets())
        parts.append(np.asarray(classes))
    return np.rint(np.concatenate(parts)).astype(np.int32)


def anchor_scores(raw: dict, targets) -> dict:
    """The model's sigmoid scores split by what each anchor should say (``targets`` from :func:`anchor_targets`).

    ``"object"``: at every positive anchor, the probability given to its true class;
    ``"background"``: at every background anchor, the highest probability over the
    classes (the score a false detection there would get). Ignored anchors are left out.
    """
    logits = np.asarray(raw["classification"], np.float64)
    targets = np.asarray(targets)
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"raw outputs cover {logits.shape[:2]} (images, anchors) but the targets {targets.shape}: "
            "compute both on the same images with the same model"
        )
    probability = 1.0 / (1.0 + np.exp(-logits))
    positive = targets >= 0
    return {"object": probability[positive, targets[positive]], "background": probability[targets == -1].max(axis=-1)}
