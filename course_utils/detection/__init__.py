"""Object detection for week 3: data, a CPU-sized RetinaNet, anchors, losses and mAP.

Everything that depends on KerasCV lives in one module, :mod:`~course_utils.detection.kerascv`,
so that the course can move to keras-hub's RetinaNet by changing one file. Core Keras is
used where it has the tool: ``keras.utils.bounding_boxes`` for format
conversion and IoU, and the box-aware ``keras.layers.RandomFlip`` and
``keras.layers.RandomZoom`` for augmentation.

The package
-----------
Its modules follow the chapter; every public name is importable from here too
(``from course_utils import detection as det; det.build_retinanet(...)``).

* ``data`` -- :class:`DetectionData`, box checks and the loaders;
* ``boxes`` -- the box format, conversions and IoU;
* ``anchors`` -- anchor layout and RetinaNet's matching of anchors to objects;
* ``losses`` -- the focal loss, in NumPy and as a Keras loss;
* ``layers`` -- our Keras layers: feature pyramid, heads, per-class NMS;
* ``model`` -- the RetinaNet assembly, its decoder and outputs;
* ``training`` -- augmentation, the ``tf.data`` pipeline, the fit loop;
* ``evaluation`` -- AP, mAP (ours and COCO's), the mistakes by kind and counting;
* ``plots`` -- the figures;
* ``kerascv`` -- everything taken from KerasCV, imported only by the functions that use it.

The box format
--------------
A :class:`DetectionData` holds

* ``images`` -- ``(n, height, width, 3)`` float32 in ``[0, 1]``;
* ``boxes`` -- ``(n, max_boxes, 4)`` float32 **pixel** ``xyxy`` boxes
  ``[x_min, y_min, x_max, y_max]``, ``x_max``/``y_max`` exclusive (the outer
  pixel edges, Keras' ``"xyxy"`` format); rows after an image's last box are ``-1``;
* ``classes`` -- ``(n, max_boxes)`` int32 class ids in ``0 .. len(class_names) - 1``,
  ``-1`` for padding;
* ``class_names`` and ``names`` (one name per image, used in error messages).

:meth:`DetectionData.targets` gives the ``{"boxes", "classes"}`` dict that
KerasCV's RetinaNet trains on. Predictions (:func:`predict`) come back as a dict
of NumPy arrays ``boxes`` (``xyxy``), ``classes``, ``confidence`` (padded with
``-1``) and ``num_detections``.

Where the data come from (:func:`load_detection_data`)
-------------------------------------------------------
* ``"scenes"``: the synthetic scenes of :mod:`course_utils.scenes` (default, offline);
* a path to a COCO JSON file, with the image folder next to it or given as
  ``image_dir`` (:func:`load_coco`); bad annotations raise :class:`AnnotationError`
  naming the image and the box;
* ``"tfds:<name>"``, e.g. ``"tfds:voc/2007"``: a TensorFlow Datasets set, for
  Colab users (needs ``tensorflow-datasets`` and a download; :func:`load_tfds`).

Keras (and with it TensorFlow) is imported with the package, for the layers;
KerasCV and the other heavy imports happen inside the functions that need them.
"""

from course_utils.detection.anchors import (
    LEVEL_STRIDES,
    AnchorConfig,
    make_anchors,
    match_anchors,
    matching_statistics,
)
from course_utils.detection.boxes import BOX_FORMAT, convert_boxes, iou_matrix
from course_utils.detection.data import (
    AnnotationError,
    DetectionData,
    from_scenes,
    load_coco,
    load_detection_data,
    load_tfds,
    make_detection_scenes,
    validate_boxes,
    write_coco,
)
from course_utils.detection.evaluation import (
    ERROR_KINDS,
    average_precision,
    choose_count_threshold,
    class_matches,
    coco_metrics,
    count_objects,
    detection_errors,
    error_slug,
    match_detections,
    mean_average_precision,
    perfect_predictions,
    shuffled_predictions,
)
from course_utils.detection.layers import FeaturePyramid, Head, PerClassNMS
from course_utils.detection.losses import binary_focal_loss, focal_loss, focal_loss_values
from course_utils.detection.model import (
    BOX_VARIANCE,
    anchor_scores,
    anchor_targets,
    build_backbone,
    build_retinanet,
    parameter_counts,
    predict,
    pyramid_shapes,
    raw_outputs,
)
from course_utils.detection.plots import (
    plot_anchors,
    plot_counts,
    plot_detections,
    plot_error_kinds,
    plot_precision_recall,
    plot_score_distributions,
)
from course_utils.detection.training import augmenter, fit_detector, make_train_dataset
