"""Metric learning and k-nearest neighbours (week 5).

Instead of mapping an image to class scores, an *embedding model* maps it to a
point on the unit sphere, trained so that images of the same class end up close
together and images of different classes far apart. Classes are then read off
with k-nearest neighbours (kNN) among a few labelled reference images.

* :func:`embedding_model` -- small CNN encoder, dense projection, unit normalisation.
* :class:`BalancedBatches` -- a ``keras.utils.PyDataset`` of class-balanced
  batches (``classes_per_batch`` classes x ``per_class`` images), ordered so that
  the first half of a batch are *anchors* and the second half their *positives*
  (same classes, same order, different images).
* Losses, written with ``keras.ops`` only (any Keras backend):
  :func:`cosine_similarity_matrix`, :func:`similarity_softmax_loss` (anchors
  against positives, with a temperature), :func:`triplet_loss` (batch-hard or
  semi-hard mining) and :func:`contrastive_loss` (pairs, with a margin), and
  their ``keras.losses.Loss`` forms :class:`SimilaritySoftmaxLoss`,
  :class:`TripletLoss` and :class:`ContrastiveLoss` for ``model.compile``;
  training is a plain ``model.fit`` on :class:`BalancedBatches` (:func:`fit_embedding`;
  under ``tf.distribute``, :class:`ReplicaBatches` gives each replica a whole batch).
* kNN on embeddings with scikit-learn (cosine metric): :func:`knn_fit`,
  :func:`knn_predict` (prediction and vote agreement as confidence),
  :func:`accuracy_vs_k`, :func:`retrieve` (top-k neighbours of a query) and
  :func:`coverage_curve` (accuracy of the confident predictions against the
  fraction of predictions kept); for verification (same class or not?),
  :func:`all_pairs` (the similarity and same-class flag of every pair, in the
  order of :func:`pair_indices`),
  :func:`verification_rates`, :func:`verification_auc` and
  :func:`equal_error_threshold`.
* :func:`few_label_split` -- the few-labels regime of the chapter (a small
  labelled set, a test set and a class held out of training), for the
  synthetic scenes or any ``(images, labels)`` arrays such as an image folder.
* :func:`denoising_autoencoder` -- learning from the images alone: a network
  trained to undo noise (:class:`NoisyBatches`, :func:`fit_autoencoder`),
  scored with :func:`psnr`.

The package
-----------
Every public name is importable from here (``from course_utils import metric_learning as ml; ml.embed(...)``).

* ``model`` -- the embedding model, its classifier twin, and :func:`embed`;
* ``batches`` -- :class:`BalancedBatches` and :func:`augment_batch`;
* ``losses`` -- the similarity softmax, the triplet loss and the contrastive loss;
* ``training`` -- :func:`fit_embedding` (and :class:`ReplicaBatches` for ``tf.distribute``);
* ``knn`` -- kNN predictions, retrieval and coverage;
* ``data`` -- the few-labels split;
* ``plots`` -- the similarity heatmaps and the verification ROC curves;
* ``autoencoder`` -- the denoising autoencoder and PSNR.
"""

from course_utils.metric_learning.autoencoder import (
    NoisyBatches,
    add_noise,
    denoising_autoencoder,
    fit_autoencoder,
    psnr,
)
from course_utils.metric_learning.batches import BalancedBatches, augment_batch
from course_utils.metric_learning.data import FewLabels, few_label_split, scenes_few_labels
from course_utils.metric_learning.knn import (
    accuracy_vs_k,
    all_pairs,
    coverage_curve,
    equal_error_threshold,
    knn_fit,
    knn_predict,
    pair_indices,
    retrieve,
    verification_auc,
    verification_rates,
)
from course_utils.metric_learning.losses import (
    ContrastiveLoss,
    SimilaritySoftmaxLoss,
    TripletLoss,
    contrastive_loss,
    cosine_similarity_matrix,
    similarity_softmax_loss,
    triplet_loss,
)
from course_utils.metric_learning.model import PerImageStandardization, classifier_from, embed, embedding_model
from course_utils.metric_learning.plots import plot_similarity_heatmaps, plot_verification_roc
from course_utils.metric_learning.training import ReplicaBatches, fit_embedding
