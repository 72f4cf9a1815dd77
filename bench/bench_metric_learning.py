"""Week 5 benchmarks: kNN on the learned embedding against raw pixels, training time, chapter time.

Loaded by ``bench/run.py`` (``make bench``), which merges the records into
``bench/results.json``. The recipe is the chapter's (book/week5_metric_learning.py)
at profile cpu: 20 labelled images per class of three training classes, the
fourth class (diamond) held out of training, kNN with k = 5 and the cosine metric.
"""

from __future__ import annotations

from run import execute_chapter, record  # bench/run.py: bench/ is on sys.path when run as a script


def bench_week5():
    """kNN accuracies and training time with the chapter's recipe, then the chapter's execution time."""
    return bench_knn() + [record("week5.chapter.seconds", round(execute_chapter("week5_metric_learning"), 1), "s", "cpu")]


def bench_knn():
    import numpy as np

    from course_utils import config
    from course_utils import metric_learning as ml

    profile = config.setup("cpu", seed=5)
    epochs = profile.pick(smoke=1, cpu=30, gpu=60)
    split = ml.scenes_few_labels(size=32, per_class=20, test_per_class=150, held_out="diamond", seed=0)
    batches = ml.BalancedBatches(split.x_labelled, split.y_labelled, per_class=16, steps=10, seed=0)
    config.seed_everything(1)
    embedder = ml.embedding_model((32, 32, 3), embedding_dim=32)
    _, seconds = ml.fit_embedding(embedder, batches, ml.SimilaritySoftmaxLoss(0.1), epochs, learning_rate=3e-3)

    seen_ref, seen_test = split.y_reference != split.held_out, split.seen

    def knn_accuracy(reference, test, seen_only):
        if seen_only:
            predicted, _ = ml.knn_predict(reference[seen_ref], split.y_reference[seen_ref], test[seen_test], 5)
            return float(np.mean(predicted == split.y_test[seen_test]))
        predicted, _ = ml.knn_predict(reference, split.y_reference, test, 5)
        return float(np.mean(predicted == split.y_test))

    emb_ref, emb_test = ml.embed(embedder, split.x_reference), ml.embed(embedder, split.x_test)
    raw_ref, raw_test = (x.reshape(len(x), -1) for x in (split.x_reference, split.x_test))
    return [
        record("week5.embedding_knn.test_accuracy", round(knn_accuracy(emb_ref, emb_test, True), 4), "fraction", "cpu"),
        record("week5.raw_pixels_knn.test_accuracy", round(knn_accuracy(raw_ref, raw_test, True), 4), "fraction", "cpu"),
        record("week5.embedding_knn.test_accuracy_with_held_out_class", round(knn_accuracy(emb_ref, emb_test, False), 4),
               "fraction", "cpu"),
        record("week5.embedding.train_seconds", round(seconds, 1), "s", "cpu"),
    ]


BENCHMARKS = {"week5": bench_week5}
