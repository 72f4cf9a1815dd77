"""Week 5 benchmarks: the chapter executed at profile cpu over five run seeds.

Records (each per seed, worst seed, mean and spread; see ``run.sweep``):

* kNN accuracy on the learned embedding for the three training classes
  (``week5.embedding_knn.test_accuracy``, target: worst seed >= 0.95), with the held-out class, and on the
  held-out class alone; kNN on raw pixels and on the supervised CNN's features; the two classifiers' own
  softmax accuracies; the embedding's lead over raw pixels; the embedding's training time;
* kNN after training with the contrastive loss, at three temperatures and at two embedding sizes;
* the denoising autoencoder's PSNR (noisy input, its output, a blur; all against the clean images), kNN on its
  latent space and its training time; its code (the share of zeros, the dead channels) with the PSNR and kNN,
  and the same for the sparse (L1) autoencoder;
* verification on pairs of test images: the area under the ROC curve on the embedding and on raw pixels, the
  error rates at a threshold chosen on the other half, and those of the pairs with and without the held-out
  class;
* the chapter's time.

All are read from what the chapter recorded: the recipe lives in ``book/week5_metric_learning.py`` only.
"""

from __future__ import annotations

from bench.run import sweep


def bench_week5(seeds=None):
    return sweep(
        "week5_metric_learning",
        "week5",
        {
            "week5.embedding_knn.test_accuracy": "fraction",
            "week5.embedding_knn.test_accuracy_with_held_out_class": "fraction",
            "week5.raw_pixels_knn.test_accuracy": "fraction",
            "week5.embedding_knn.held_out_class_accuracy": "fraction",
            "week5.supervised_features_knn.test_accuracy_with_held_out_class": "fraction",
            "week5.supervised_softmax.test_accuracy": "fraction",
            "week5.mobilenetv2_softmax.test_accuracy": "fraction",
            "week5.embedding_minus_raw_pixels_knn.points": "points",
            "week5.embedding.train_seconds": "s",
            "week5.contrastive.knn_accuracy": "fraction",
            "week5.temperature.knn_accuracy_tau_0_03": "fraction",
            "week5.temperature.knn_accuracy_tau_0_1": "fraction",
            "week5.temperature.knn_accuracy_tau_1": "fraction",
            "week5.embedding_size.knn_accuracy_dim_2": "fraction",
            "week5.embedding_size.knn_accuracy_dim_32": "fraction",
            "week5.autoencoder.psnr_noisy": "dB",
            "week5.autoencoder.psnr_denoised": "dB",
            "week5.autoencoder.psnr_blurred": "dB",
            "week5.autoencoder.psnr_gain_db": "dB",
            "week5.autoencoder.blur_minus_autoencoder_db": "dB",
            "week5.embedding_minus_autoencoder_knn.points": "points",
            "week5.autoencoder.knn_accuracy": "fraction",
            "week5.autoencoder.knn_accuracy_pooled": "fraction",
            "week5.autoencoder.knn_accuracy_with_held_out_class": "fraction",
            "week5.autoencoder.train_seconds": "s",
            **{
                f"week5.{network}.code_{measure}": unit
                for network in ("autoencoder", "sparse_autoencoder")
                for measure, unit in (("zeros", "fraction"), ("dead", "channels"), ("psnr", "dB"), ("knn", "fraction"))
            },
            "week5.knn.k_spread_seen_points": "points",
            "week5.knn.k_spread_all_points": "points",
            "week5.verification.embedding_auc": "fraction",
            "week5.verification.raw_pixels_auc": "fraction",
            "week5.verification.embedding_false_accept_rate": "fraction",
            "week5.verification.embedding_false_reject_rate": "fraction",
            "week5.verification.rates_apart_points": "points",
            "week5.verification.seen_false_accept_rate": "fraction",
            "week5.verification.seen_false_reject_rate": "fraction",
            "week5.verification.held_out_false_accept_rate": "fraction",
            "week5.verification.held_out_false_reject_rate": "fraction",
            "week5.verification.held_out_minus_seen_false_accept_points": "points",
            "week5.verification.held_out_minus_seen_false_reject_points": "points",
        },
        seeds=seeds,
    )


BENCHMARKS = {"week5": bench_week5}
