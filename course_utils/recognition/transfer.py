"""Transfer learning offline: fine-tuning, pretraining on the source task, and the few-labels learning curve.

The source task is the synthetic scenes of four other shapes (:data:`SOURCE_CLASSES`);
:func:`pretrain_source` trains a MobileNetV2 base on it and saves the weights that
ship with the package, and :func:`transfer_learning_curve` compares three starts
(:data:`TRANSFER_METHODS`) on the target task with few labels per class.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from course_utils.config import seed_everything
from course_utils.data import check_integer
from course_utils.recognition.augmentation import RandomDihedral
from course_utils.recognition.data import SOURCE_CLASSES, load_classification
from course_utils.recognition.model import base_of, mobilenetv2_classifier
from course_utils.recognition.source_weights import SOURCE_RECIPE, SOURCE_WEIGHTS, file_sha256
from course_utils.recognition.training import WarmupExponentialDecay, compile_classifier, evaluate, fit_with_warmup

TRANSFER_METHODS = ("from scratch", "frozen base", "fine-tuned")
"""The three ways :func:`transfer_learning_curve` trains a classifier on few labels."""


def fine_tune(model: keras.Model, top_layers: int, learning_rate: float = 1e-4) -> int:
    """Unfreeze the top ``top_layers`` layers of the MobileNetV2 base and recompile with ``learning_rate``.

    Layers below stay frozen, and every BatchNormalization layer stays frozen
    (``trainable=False`` also runs it in inference mode in Keras 3), so the
    statistics learned on ImageNet are not overwritten by a few small batches.
    Returns the number of layers that became trainable (BatchNormalization layers
    not counted); ``top_layers`` may be at most the number of layers of the base.
    Use a learning rate about ten times lower than for the head: large steps
    would wreck the pretrained weights.
    """
    check_integer(top_layers, "top_layers", minimum=0)
    base = base_of(model)
    if top_layers > len(base.layers):
        raise ValueError(
            f"top_layers={top_layers} is more than the {len(base.layers)} layers of the base: "
            f"use at most {len(base.layers)} (that many unfreezes the whole base)"
        )
    base.trainable = True
    cut = len(base.layers) - int(top_layers)
    unfrozen = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        unfrozen += bool(layer.trainable and layer.weights)
    compile_classifier(model, learning_rate)
    return unfrozen


# --- pretraining on the source task ----------------------------------------------------------------


def pretrain_source(path=None, n_train=None, n_test=None, epochs=None, seed=None, verbose=True) -> dict:
    """Pretrain a MobileNetV2 base on the source task (:data:`SOURCE_CLASSES`) and save its weights.

    The recipe is :data:`SOURCE_RECIPE` (the arguments override it; keep them
    for the shipped file): ``n_train`` scenes of the four other shapes at
    32x32 pixels, alpha 0.35, random flips and quarter turns, zero-initialised
    skip blocks, :func:`fit_with_warmup` with a peak learning rate of 4e-3 decaying to a
    fifth. It is the chapter's from-scratch recipe on another task. Only the
    base is saved (a Keras ``.weights.h5`` file, about 2 MB); the head
    belongs to the source classes and is discarded.

    Every random step is seeded, so a rerun on the same machine and software
    gives the same weight values (not the same bytes: the HDF5 file records
    when its parts were written, so every file has its own SHA-256); another
    processor, TensorFlow build or thread count rounds differently and gives
    other weights. That is why the hash of the shipped file is stored and
    checked, not recomputed from a rerun.
    Returns ``{"path", "sha256", "source_test_accuracy", "seconds"}``. Run it
    with ``python -m course_utils.recognition pretrain-source`` (about five
    minutes on two CPU cores), then put the printed hash in :data:`SOURCE_SHA256`.
    """
    recipe = dict(SOURCE_RECIPE)
    recipe.update(
        {k: v for k, v in dict(n_train=n_train, n_test=n_test, epochs=epochs, seed=seed).items() if v is not None}
    )
    path = Path(SOURCE_WEIGHTS if path is None else path)
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"the weights file must end in .weights.h5 (Keras' format), got {path}")
    model, seconds, accuracy = _train_on_source_task(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    base_of(model).save_weights(path)
    result = {"path": path, "sha256": file_sha256(path), "source_test_accuracy": accuracy, "seconds": seconds}
    if verbose:
        print(
            f"pretrained on {recipe['n_train']} source scenes ({', '.join(SOURCE_CLASSES)}) in {seconds:.0f} s; "
            f"held-out source accuracy {accuracy:.3f}\nwrote {path} ({path.stat().st_size:,} bytes)\n"
            f"SHA-256 {result['sha256']}"
        )
    return result


def _train_on_source_task(recipe: dict):
    """Train a classifier of the source shapes by ``recipe``: ``(model, training seconds, held-out accuracy)``.

    The accuracy is NaN when the recipe holds out no test scenes.
    """
    source = load_classification(
        "scenes-source",
        image_size=recipe["input_size"],
        n_train=recipe["n_train"],
        n_test=recipe["n_test"],
        seed=recipe["seed"],
    )
    seed_everything(recipe["seed"] + 1)
    model = mobilenetv2_classifier(
        len(SOURCE_CLASSES),
        input_size=recipe["input_size"],
        alpha=recipe["alpha"],
        weights=None,
        augment=RandomDihedral(seed=recipe["seed"] + 2),
        zero_init_residual=True,
        verbose=False,
    )
    _, seconds = fit_with_warmup(
        model,
        source.x_train,
        source.y_train,
        epochs=recipe["epochs"],
        learning_rate=recipe["learning_rate"],
        final_fraction=recipe["final_fraction"],
    )
    accuracy = evaluate(model, source.x_test, source.y_test)[0] if recipe["n_test"] else float("nan")
    return model, seconds, accuracy


# --- the learning curve with few labels ------------------------------------------------------------


def labelled_subset(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` images of every class, drawn at random (seeded) from ``labels``.

    The result is shuffled. A class with fewer images raises a ``ValueError`` naming it.
    """
    labels = np.asarray(labels).ravel()
    check_integer(per_class, "per_class")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels):
        found = np.flatnonzero(labels == k)
        if len(found) < per_class:
            raise ValueError(f"class {int(k)} has only {len(found)} images, fewer than per_class={per_class}")
        chosen.append(rng.choice(found, per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def transfer_learning_curve(
    x_pool,
    y_pool,
    x_test,
    y_test,
    num_classes: int,
    per_class=(10, 30, 100),
    steps: int = 80,
    batch_size: int = 32,
    head_steps: int = 300,
    fine_tune_layers: int = 60,
    fine_tune_lr: float = 5e-4,
    include_all: bool = False,
    seed: int = 0,
) -> dict:
    """Held-out accuracy of three MobileNetV2 classifiers (alpha 0.35) trained on ``per_class`` labels per class.

    For each number ``k`` in ``per_class``, ``k`` images of every class are drawn
    from the pool (:func:`labelled_subset`, the same images for all three), and:

    * ``"from scratch"``: random weights, trained for ``steps`` batches with the
      chapter's from-scratch recipe (zero-initialised skip blocks, peak learning
      rate 4e-3 after a warm-up, decaying to a fifth);
    * ``"frozen base"``: the source-task base (``weights="source"``) as a fixed
      feature extractor; a new head (dropout 0.2, dense softmax) learns on the
      pooled features, which are computed once for the whole pool, for
      ``head_steps`` batches;
    * ``"fine-tuned"``: that head on that base, then the top ``fine_tune_layers``
      layers of the base unfrozen (BatchNormalization kept frozen, see
      :func:`fine_tune`) and trained for ``steps`` batches at a peak learning rate
      of ``fine_tune_lr``.

    Every run of a method takes the same number of batches of ``batch_size``
    images, whatever ``k`` (a small set is seen many times), and starts from the
    same weights: each model is built and traced once, and reset between runs.
    No augmentation: the methods differ only in where their weights start and
    what they train. ``include_all=True`` also trains the frozen and fine-tuned
    models on the whole pool (the from-scratch recipe for a large set is another
    one). Returns ``{"per_class": [...], method: [accuracy per k], "all": {method:
    accuracy}, "all_seconds": {method: training seconds of that run}, "seconds":
    {method: training seconds over all runs}, "step_seconds": {method: seconds per
    batch, the median over the runs after the first}, "features": seconds to compute
    the features}``. A run's seconds include tracing the first time a model is
    trained, which is why ``step_seconds`` leaves the first run out; the frozen
    base's batches train the head alone, on the computed features.
    """
    per_class = list(per_class)
    runs = _labelled_runs(y_pool, per_class, include_all, seed)
    result = _empty_curve(per_class)
    pool, test = (x_pool, y_pool), (x_test, y_test)
    result["from scratch"], scratch_seconds = _from_scratch_runs(runs, pool, test, num_classes, steps, batch_size, seed)
    run_seconds = {"from scratch": scratch_seconds, "frozen base": [], "fine-tuned": []}
    model, (pool_features, test_features), result["features"] = _source_model_and_features(
        num_classes, x_pool, x_test, seed
    )
    feature_pool, feature_test = (pool_features, y_pool), (test_features, y_test)
    head, head_start = _new_head(pool_features.shape[1:], num_classes, head_steps)
    model_start = _ready_to_fine_tune(model, fine_tune_layers, fine_tune_lr, steps)
    for i, (k, index) in enumerate(runs):
        frozen = _train_from(head, head_start, feature_pool, feature_test, index, head_steps, batch_size, seed + 20 + i)
        tuned = _train_from(model, model_start, pool, test, index, steps, batch_size, seed + 30 + i, head=head)
        _record_source_run(result, k, frozen, tuned)
        run_seconds["frozen base"].append(frozen[1])
        run_seconds["fine-tuned"].append(tuned[1])
    result["seconds"] = {method: float(sum(seconds)) for method, seconds in run_seconds.items()}
    # Fine-tuning starts from the trained head, so its time includes the head's.
    result["seconds"]["fine-tuned"] += result["seconds"]["frozen base"]
    batches = {"from scratch": steps, "frozen base": head_steps, "fine-tuned": steps}
    result["step_seconds"] = {
        method: float(np.median(seconds[1:] or seconds)) / batches[method] for method, seconds in run_seconds.items()
    }
    return result


def _empty_curve(per_class: list) -> dict:
    """What :func:`transfer_learning_curve` returns before its first run: no accuracy yet, no seconds."""
    return {
        "per_class": per_class,
        **{m: [] for m in TRANSFER_METHODS},
        "all": {},
    }


def _labelled_runs(y_pool, per_class: list, include_all: bool, seed: int) -> list:
    """``(k, indices)`` of every run: ``k`` labelled images per class from the pool, then ``("all", every index)``."""
    for i, k in enumerate(per_class):
        check_integer(k, f"per_class[{i}]")
    subsets = [labelled_subset(y_pool, k, seed=seed + i) for i, k in enumerate(per_class)]
    return list(zip(per_class, subsets)) + ([("all", np.arange(len(y_pool)))] if include_all else [])


def _schedule(total: int, peak: float, final: float) -> WarmupExponentialDecay:
    """The schedule of a run of ``total`` steps: a warm-up over a tenth of them, then decay to ``final * peak``."""
    warmup = max(1, total // 10)
    return WarmupExponentialDecay(peak, warmup, decay_steps=max(1, total - warmup), decay_rate=final)


def _compiled_start(model: keras.Model, schedule) -> list:
    """Compile ``model`` on ``schedule``, build its optimizer, and return the weights every run starts from."""
    compile_classifier(model, schedule)
    model.optimizer.build(model.trainable_variables)
    return model.get_weights()


def _from_scratch_runs(runs, pool, test, num_classes, steps, batch_size, seed) -> tuple[list, list]:
    """``(accuracy per k, seconds per k)`` of one model from random weights, reset to them before every run.

    The chapter's from-scratch recipe; it is not run on the whole pool (``"all"``).
    """
    seed_everything(seed)
    model = mobilenetv2_classifier(
        num_classes,
        input_size=pool[0].shape[1],
        alpha=SOURCE_RECIPE["alpha"],
        weights=None,
        zero_init_residual=True,
        verbose=False,
    )
    start = _compiled_start(model, _schedule(steps, 4e-3, 0.2))
    accuracy, seconds = [], []
    for i, (k, index) in enumerate(runs):
        if k == "all":
            continue
        run_accuracy, run_seconds = _train_from(model, start, pool, test, index, steps, batch_size, seed + 10 + i)
        seconds.append(run_seconds)
        accuracy.append(run_accuracy)
    return accuracy, seconds


def _source_model_and_features(num_classes, x_pool, x_test, seed):
    """The classifier on the frozen source-task base, the pooled features of the pool and of the test set, and the
    seconds they took (they are computed once: the frozen base gives the same features in every run)."""
    seed_everything(seed + 1)
    model = mobilenetv2_classifier(
        num_classes,
        input_size=x_pool.shape[1],
        alpha=SOURCE_RECIPE["alpha"],
        weights="source",
        trainable_base=False,
        verbose=False,
    )
    extractor = keras.Model(model.input, model.get_layer("features").output)
    start = time.perf_counter()
    pool_features = extractor.predict(x_pool, batch_size=256, verbose=0)
    test_features = extractor.predict(x_test, batch_size=256, verbose=0)
    return model, (pool_features, test_features), time.perf_counter() - start


def _new_head(feature_shape, num_classes: int, head_steps: int):
    """A new head for the pooled features (dropout 0.2, dense softmax), compiled: ``(head, its start weights)``."""
    head = keras.Sequential(
        [
            keras.Input(feature_shape),
            layers.Dropout(0.2),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="head",
    )
    return head, _compiled_start(head, _schedule(head_steps, 3e-3, 0.02))


def _ready_to_fine_tune(model, fine_tune_layers: int, fine_tune_lr: float, steps: int) -> list:
    """Unfreeze the top of the base (:func:`fine_tune`), compile on the fine-tuning schedule; the start weights."""
    fine_tune(model, top_layers=fine_tune_layers)
    return _compiled_start(model, _schedule(steps, fine_tune_lr, 0.2))


def _train_from(model, start, pool, test, index, steps, batch_size, seed, head=None) -> tuple[float, float]:
    """Reset ``model`` to ``start``, train it for ``steps`` batches of the ``index`` rows of ``pool``, an ``(x, y)``
    pair: ``(accuracy on test, seconds)``. With a trained ``head``, the model's ``"predictions"`` layer starts
    from the head's (fine-tuning).
    """
    _reset(model, start)
    if head is not None:
        model.get_layer("predictions").set_weights(head.get_layer("predictions").get_weights())
    seconds = _fit_steps(model, pool[0][index], pool[1][index], steps, batch_size, seed)
    return evaluate(model, *test)[0], seconds


def _record_source_run(result: dict, k, frozen: tuple, tuned: tuple) -> None:
    """Add a run's ``(accuracy, seconds)`` of the frozen and the fine-tuned model to ``result``."""
    (frozen_accuracy, head_seconds), (tuned_accuracy, tuning_seconds) = frozen, tuned
    if k == "all":
        result["all"] = {"frozen base": frozen_accuracy, "fine-tuned": tuned_accuracy}
        result["all_seconds"] = {"frozen base": head_seconds, "fine-tuned": head_seconds + tuning_seconds}
    else:
        result["frozen base"].append(frozen_accuracy)
        result["fine-tuned"].append(tuned_accuracy)


def _fit_steps(model, x, y, steps, batch_size, seed):
    """Train a compiled ``model`` for exactly ``steps`` full batches drawn from ``(x, y)``, reshuffled every pass.

    Every batch has ``batch_size`` images, even from a set smaller than that (its
    images then repeat within a batch), so a model trained again on other data of
    the same kind reuses its traced training step (no new tracing, which costs
    seconds for MobileNetV2). Returns the training seconds.
    """
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(2)
    )
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=int(steps), shuffle=False, verbose=0)  # it shuffles itself
    return time.perf_counter() - start


def _reset(model, weights):
    """Put ``weights`` back into ``model`` and zero its optimizer's state (step counter, moments)."""
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))


def plot_learning_curve(per_class, accuracy: dict, chance: float | None = None, title=None):
    """Held-out accuracy against labelled images per class, one line per method (``accuracy[method]`` a list).

    Log-scaled x axis with a tick at each measured size; a dotted line marks ``chance``.
    """
    # Imported where a figure is drawn: the figures are the only users of matplotlib (course_utils.plots too).
    import matplotlib.pyplot as plt

    from course_utils import plots

    fig, ax = plt.subplots(figsize=(min(6.4, plots.PAGE_WIDTH), 3.4))
    markers = dict(zip(TRANSFER_METHODS, "osD"))
    colours = dict(zip(TRANSFER_METHODS, ["#D55E00", "#0072B2", "#009E73"]))  # Okabe-Ito
    for method, values in accuracy.items():
        ax.plot(per_class, values, marker=markers.get(method, "o"), color=colours.get(method), label=method)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(list(per_class), [str(k) for k in per_class])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    ax.set_title(title or "learning curve: few labels, three starts", fontsize=10)
    fig.tight_layout()
    return fig
