"""Week 4, image segmentation: U-Net, its losses and metrics, paired augmentation, mask loaders, figures.

* :func:`valid_unet_sizes` and :func:`valid_unet`: the original layout's sizes (unpadded convolutions,
  copy and crop, 572 -> 388), and :func:`border_weight_map` its weights for touching objects
  (:func:`touching_discs` makes some).
* :func:`unet` builds a U-Net (Ronneberger et al., 2015): an encoder of
  convolution blocks and max pooling, a bottleneck, a decoder of transposed
  convolutions, skip connections (concatenation, addition or none, for the
  ablation) and a 1x1 classification layer: sigmoid with one channel for
  binary masks, softmax over ``num_classes`` channels otherwise.
* Losses and metrics, written with ``keras.ops`` so they work in ``compile``
  and on plain NumPy arrays: :func:`dice_coefficient`, :class:`DiceLoss`,
  :class:`CrossEntropyDiceLoss` (binary or categorical cross-entropy plus Dice),
  :class:`MeanIoU`, :class:`ClassIoU`, :class:`DiceScore`; and the NumPy
  evaluation helpers :func:`per_class_iou`, :func:`mean_iou`, :func:`objects_found`,
  :func:`misread_objects` and :func:`edge_pixels`.
* :func:`augment_pair` / :func:`make_segmentation_dataset`: random flips,
  quarter turns and colour changes applied identically to an image and its mask
  (colour changes to the image only); :func:`elastic_pair`, the original U-Net's
  elastic deformation of both (NumPy).
* :func:`load_segmentation`: real data, either a folder of images with a folder
  of masks paired by file name, or a TensorFlow Datasets set
  (``"tfds:oxford_iiit_pet"``).
* :func:`plot_segmentation` and :func:`error_map`: figures (image, true mask,
  prediction, errors).

Mask conventions: an integer mask holds one class id per pixel, ``0`` for the
background. Models predict probabilities: shape ``(..., 1)`` (the foreground
probability) for binary masks, ``(..., num_classes)`` otherwise. Binary masks
count as two classes (background and foreground) for the IoU metrics.

The package
-----------
Every public name is importable from here (``from course_utils import segmentation as seg; seg.unet(...)``).

* ``model`` -- the U-Net and transposed convolutions;
* ``losses`` -- cross-entropy, Dice and their sum;
* ``metrics`` -- IoU and Dice of hard predictions, as Keras metrics and in NumPy;
* ``training`` -- compiling, fitting and predicting, and the paired augmentation;
* ``data`` -- :class:`SegmentationData`, splitting it and the loaders;
* ``plots`` -- the figures and the IoU table.

tensorflow_datasets and matplotlib are imported inside the functions that use them.
"""

from course_utils.segmentation.data import (
    TFDS_PRESETS,
    SegmentationData,
    load_segmentation,
    split_data,
    touching_discs,
)
from course_utils.segmentation.losses import CrossEntropyDiceLoss, DiceLoss, cross_entropy, dice_coefficient
from course_utils.segmentation.metrics import (
    ClassIoU,
    DiceScore,
    MeanIoU,
    border_weight_map,
    confusion,
    edge_pixels,
    mean_iou,
    misread_objects,
    objects_found,
    per_class_iou,
    predicted_labels,
)
from course_utils.segmentation.model import (
    SKIP_MODES,
    conv_block,
    level_shapes,
    transposed_conv_by_hand,
    transposed_conv_output_size,
    unet,
    valid_unet,
    valid_unet_input_sizes,
    valid_unet_sizes,
)
from course_utils.segmentation.plots import (
    ERROR_COLOURS,
    MASK_COLOURS,
    colour_mask,
    error_map,
    iou_table,
    plot_segmentation,
    plot_weight_map,
)
from course_utils.segmentation.training import (
    augment_pair,
    compile_segmenter,
    elastic_pair,
    fit_segmenter,
    make_segmentation_dataset,
    predict_masks,
)
