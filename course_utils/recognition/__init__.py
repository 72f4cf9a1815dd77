"""Image recognition with MobileNetV2 (week 2): model builder, training, schedule, class weights, data, transfer.

Its modules follow the chapter; every public name is importable from here too
(``from course_utils import recognition as rec; rec.mobilenetv2_classifier(...)``).

* ``model`` -- :func:`mobilenetv2_classifier` builds a classifier on a MobileNetV2 base,
  from scratch (``weights=None``), from ImageNet weights or from the shipped
  source-task weights, with a frozen or trainable base and a small head. When the
  ImageNet weights cannot be fetched (no network), it says so in one line and
  continues from scratch; the choice it made is printed and kept
  (:func:`weights_used`). Also the plain CNN baseline :func:`small_cnn`;
* ``training`` -- :func:`fit_with_warmup`, the fit loop, on :class:`WarmupExponentialDecay`
  (a linear warm-up followed by exponential decay, as a serialisable Keras
  schedule); :func:`class_weights` turns label counts into the weights
  ``model.fit`` takes; :func:`evaluate` and :func:`images_per_second`;
* ``data`` -- :func:`load_classification`, the one entry point for classification
  data: the synthetic scenes (balanced, deliberately imbalanced, or of the source
  task's shapes), a folder of images per class, or a named TensorFlow Datasets set
  (for Colab users);
* ``augmentation`` -- :class:`RandomDihedral`, the flips and quarter turns that keep a shape's class, and
  :func:`mixup_batches`, which blends pairs of images and their labels;
* ``calibration`` -- :func:`reliability_bins`, :func:`expected_calibration_error` and
  :func:`plot_reliability` (is a probability of 0.9 right 90% of the time?), and temperature scaling
  (:func:`fit_temperature`, :func:`with_temperature`);
* ``attribution`` -- which pixels a decision rests on: :func:`saliency_maps`, :func:`grad_cam` and
  :func:`occlusion_maps`, :func:`peak_on_object` (whether a map's strongest pixel lies on the object) and
  :func:`plot_attribution`;
* ``blocks`` -- :func:`conv_cost` and :func:`separable_conv_cost` count the
  parameters and multiply-adds of a standard and a depthwise-separable
  convolution, :func:`training_multiply_adds` those of a training step of a model
  frozen or not; :func:`block_layers` and :func:`plot_block` show an
  inverted-residual block of a built MobileNetV2; :func:`batch_norm` and
  :func:`batch_statistics` write batch normalisation out;
* ``transfer`` -- :func:`fine_tune` unfreezes the top layers of the base, keeps
  every BatchNormalization layer frozen (in inference mode) and recompiles with a
  lower learning rate; :func:`pretrain_source` and :func:`transfer_learning_curve`;
* ``source_weights`` -- the shipped source-task weights and the check of their SHA-256;
* ``__main__`` -- ``python -m course_utils.recognition pretrain-source`` regenerates them.

TensorFlow Datasets is imported only by the ``"tfds:..."`` source: it takes
seconds to import, and nothing else needs it. matplotlib is imported only by the figures.
"""

from course_utils.recognition.attribution import (
    grad_cam,
    occlusion_maps,
    peak_on_object,
    plot_attribution,
    saliency_maps,
)
from course_utils.recognition.augmentation import RandomDihedral, mixup_batches
from course_utils.recognition.blocks import (
    batch_norm,
    batch_statistics,
    block_layers,
    conv_cost,
    describe_block,
    layer_multiply_adds,
    plot_block,
    residual_blocks,
    separable_conv_cost,
    training_multiply_adds,
)
from course_utils.recognition.calibration import (
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability_bins,
    with_temperature,
)
from course_utils.recognition.data import (
    SCENE_SOURCES,
    SOURCE_CLASSES,
    classification_object_size,
    imbalanced_counts,
    load_classification,
)
from course_utils.recognition.model import (
    ALPHAS,
    BASE_NAME,
    DOWNLOAD_TIMEOUT,
    IMAGENET_SIZES,
    MIN_SIZE,
    OFFLINE_MESSAGE,
    WIDE_ALPHAS,
    base_of,
    check_alpha,
    check_input_size,
    mobilenetv2_classifier,
    small_cnn,
    trainable_counts,
    weights_used,
)
from course_utils.recognition.source_weights import (
    PRETRAIN_COMMAND,
    SOURCE_RECIPE,
    SOURCE_SHA256,
    SOURCE_WEIGHTS,
    check_source_weights,
    file_sha256,
)
from course_utils.recognition.training import (
    WarmupExponentialDecay,
    accuracy_in_both_modes,
    class_weights,
    compile_classifier,
    evaluate,
    fit_with_warmup,
    images_per_second,
)
from course_utils.recognition.transfer import (
    TRANSFER_METHODS,
    fine_tune,
    labelled_subset,
    plot_learning_curve,
    pretrain_source,
    transfer_learning_curve,
)
