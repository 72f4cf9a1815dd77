# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise, week 2: image recognition with MobileNetV2
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# 1. A frozen MobileNetV2 base with a new classification head
# 2. A fine-tuning run gone wrong: measure, diagnose, fix
# 3. Precision and recall from a confusion matrix, by hand
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Part 1 asks you to *predict* a
# number before the check computes it and to design a head; part 2 to find out
# why a training run failed, and to choose how to fine-tune instead.

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
from keras import layers

from course_utils import config, exercise_checks, plots, predictions
from course_utils import recognition as rec
from course_utils.checks import (
    check,
    check_close,
    check_equal,
    passed,
)

profile = config.setup(PROFILE, seed=0)

# %% [markdown]
# ## 1. A frozen base with a new head
#
# Write `build_frozen_classifier(num_classes, input_size, alpha, weights)`. It
# returns a Keras model for `input_size` x `input_size` RGB images with values
# in [0, 1]. Three of its parts are set:
#
# * it rescales the images to [-1, 1], the range MobileNetV2 was trained on
#   (the scale and the offset are yours to work out);
# * it passes them through `keras.applications.MobileNetV2` without its top
#   (`include_top=False`), with the given `alpha` and `weights`, and **frozen**
#   (`base.trainable = False`; in Keras 3 a frozen BatchNormalization layer
#   also runs in inference mode, using the statistics it learned on ImageNet).
#   Give the base the name `"base"` (`base.name = "base"`) so the checks can
#   find it;
# * its head has a dropout layer (rate 0.2) before its last layer, and the
#   model ends with `num_classes` softmax probabilities.
#
# **The head is your design decision.** Without its top, the base hands over a
# feature map: 1,280 channels at each of h x w positions, where h and w grow
# with the image (2 x 2 for 64-pixel images, 3 x 3 for 96). How the head turns
# that map into class probabilities is up to you, under two requirements that
# come from training it on a few hundred labelled images of any size:
#
# 1. its number of trainable parameters does not depend on `input_size`;
# 2. it is the smallest head that still lets every class use every one of the
#    1,280 channels.
#
# Layers worth comparing: `layers.Flatten`, `layers.GlobalAveragePooling2D`,
# `layers.Dense` (or the base's own `pooling` argument). The checks use
# `weights=None`, which works offline; on Colab you can try
# `weights="imagenet"` with `input_size=96`.
#
# **Predict, then verify.** Before running the checks, predict how many
# parameters of `build_frozen_classifier(5, input_size=64, alpha=0.35)` are
# trainable with the head that meets both requirements, and store the number
# in `predicted_trainable` (in the next cell, before you write the function).
# Hint: what does your head hand to its last layer, per image, whatever the
# image size?

# %%
# Your prediction: the trainable parameters of build_frozen_classifier(5,
# input_size=64, alpha=0.35).
### BEGIN SOLUTION
# only the dense head trains: 1280 features x 5 classes + 5 biases
predicted_trainable = 1280 * 5 + 5
### END SOLUTION

# %%
# CHECK prediction points=1
predictions.week2_frozen_head(predicted_trainable)
passed("prediction")


# %%
def build_frozen_classifier(
    num_classes, input_size=96, alpha=0.35, weights=None
):
    ### BEGIN SOLUTION
    base = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3),
        alpha=alpha,
        include_top=False,
        weights=weights,
    )
    base.name = "base"
    base.trainable = False
    inputs = keras.Input((input_size, input_size, 3))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = base(x)
    # The average over the positions: one value per channel whatever the image
    # size, so the dense layer below has 1280 x num_classes weights plus biases
    # at any input_size (Flatten would have h x w times more).
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
    ### END SOLUTION


# %%
# CHECK frozen-base-with-a-new-head points=2
frozen = exercise_checks.week2_frozen_classifier(build_frozen_classifier)
passed("frozen base with a new head")

# %%
### BEGIN HIDDEN TESTS
# CHECK frozen-base-with-a-new-head points=1
other = build_frozen_classifier(3, input_size=96, alpha=0.5, weights=None)
check_equal(
    sum(int(np.prod(w.shape)) for w in other.trainable_weights),
    1280 * 3 + 3,
    "hidden: 3 classes, alpha 0.5",
)
check(
    any(
        isinstance(layer, layers.Dropout) and np.isclose(layer.rate, 0.2)
        for layer in other.layers
    ),
    "hidden: the head has a dropout layer with rate 0.2",
)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. A fine-tuning run gone wrong
#
# Fine-tuning needs a base that has learned something. Ours is the chapter's:
# MobileNetV2 (alpha 0.35, 32x32 pixels) pretrained on the source task of
# other shapes, shipped with the package (`weights="source"`). A colleague
# fine-tuned it on 400 of our scenes in the chapter's two stages: a new head on
# the frozen base, then the whole base unfrozen, Adam at 1e-3 in batches of 16.
# Run the cell and look at the curves.

# %%
data = rec.load_classification(
    "scenes", image_size=32, n_train=400, n_test=400, seed=11
)


def source_classifier():
    """The chapter's MobileNetV2 (alpha 0.35, 32x32) with the source task's
    weights, its base frozen and named "base", and a new head for our five
    classes."""
    model = rec.mobilenetv2_classifier(
        len(data.class_names),
        input_size=32,
        weights="source",
        trainable_base=False,
        verbose=False,
    )
    rec.base_of(model).name = "base"
    return model


config.seed_everything(0)
colleague = source_classifier()
rec.compile_classifier(colleague, 1e-3)
colleague.fit(data.x_train, data.y_train, batch_size=32, epochs=3, verbose=0)
head_only, _ = rec.evaluate(colleague, data.x_test, data.y_test)
# where the fine-tuning started: your fix starts there again
with_new_head = colleague.get_weights()
for layer in colleague.get_layer("base").layers:
    layer.trainable = True
rec.compile_classifier(colleague, 1e-3)
history = colleague.fit(
    data.x_train,
    data.y_train,
    batch_size=16,
    epochs=3,
    verbose=0,
    validation_data=(data.x_test, data.y_test),
)
print(
    f"held-out accuracy with the new head alone: {head_only:.3f}; after the"
    f" colleague's fine-tuning: {history.history['val_accuracy'][-1]:.3f}"
)
fig = plots.training_curves(
    history, title="the colleague's fine-tuning", validation_label="held-out"
)

# %% [markdown]
# The training accuracy climbs; the held-out accuracy ends below what the head
# alone had reached. Three explanations fit curves like these:
#
# * `"overfitting"`: the network memorised its 400 training scenes;
# * `"learning_rate"`: steps of 1e-3 wrecked the pretrained weights;
# * `"batchnorm"`: the BatchNormalization layers, trainable now, misbehave
#   (they work one way in training and another at prediction).
#
# Each of them predicts something different about the model as it is now. Write
# `accuracy_in_both_modes(model, images, labels)`: the model's accuracy on the
# images called in training mode (`model(images, training=True)`), and called in
# inference mode, as `predict` does (`training=False`), as a pair. A call in
# training mode moves BatchNormalization's moving averages a little: keep
# `model.get_weights()` before it and put them back after. Then measure the
# colleague's model on its training scenes and on the held-out ones, decide
# which explanation your numbers support, and store it in `diagnosis`.


# %%
def accuracy_in_both_modes(model, images, labels):
    ### BEGIN SOLUTION
    kept = model.get_weights()
    training = keras.ops.convert_to_numpy(model(images, training=True)).argmax(
        axis=1
    )
    model.set_weights(kept)
    inference = keras.ops.convert_to_numpy(
        model(images, training=False)
    ).argmax(axis=1)
    labels = np.asarray(labels)
    return (
        float(np.mean(training == labels)),
        float(np.mean(inference == labels)),
    )
    ### END SOLUTION


# %%
# CHECK both-modes points=1
probe, probe_images, probe_labels = exercise_checks.week2_mode_probe()
answer = accuracy_in_both_modes(probe, probe_images, probe_labels)
exercise_checks.week2_accuracy_in_both_modes(
    accuracy_in_both_modes, answer, probe
)
passed("accuracy in both modes")

# %%
# Your measurements of the colleague's model, and your diagnosis: "overfitting",
# "learning_rate" or "batchnorm".
### BEGIN SOLUTION
for name, images, labels in [
    ("training scenes", data.x_train, data.y_train),
    ("held-out scenes", data.x_test, data.y_test),
]:
    training_mode, inference_mode = accuracy_in_both_modes(
        colleague, images, labels
    )
    print(
        f"{name}: {training_mode:.3f} in training mode, {inference_mode:.3f} in"
        " inference mode"
    )
# High in training mode, on new scenes too; low in inference mode, on the very
# scenes it trained on.
diagnosis = "batchnorm"
### END SOLUTION

# %%
# CHECK diagnosis points=1
predictions.week2_fine_tuning_diagnosis(diagnosis)
passed("diagnosis")

# %% [markdown]
# ### The fix
#
# Write `unfreeze_top(model, top_layers, learning_rate)` for a model whose
# MobileNetV2 base is the layer named `"base"` (part 1's, or the colleague's),
# so that what went wrong above cannot happen:
#
# * make the base trainable, then freeze again every layer of the base except
#   the last `top_layers` ones;
# * guard against the failure you diagnosed (in Keras 3, what holds during
#   `fit` is a layer's own `trainable` setting: an argument passed when the base
#   is called, as older tutorials do, is overridden, keras-team/keras#20285);
# * compile the model again with Adam at `learning_rate`, the sparse
#   categorical cross-entropy (as a string or a Keras loss object, matching the
#   softmax output) and the accuracy metric (the new `trainable` settings take
#   effect when the model is compiled).


# %%
def unfreeze_top(model, top_layers, learning_rate=1e-4):
    ### BEGIN SOLUTION
    base = model.get_layer("base")
    base.trainable = True
    for layer in base.layers[:-top_layers] if top_layers else base.layers:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    ### END SOLUTION


# %%
# CHECK fine-tuning-set-up points=2
unfreeze_top(frozen, 20, learning_rate=1e-5)
exercise_checks.week2_unfreeze_top(frozen, top_layers=20, learning_rate=1e-5)
passed("fine-tuning set-up")

# %%
### BEGIN HIDDEN TESTS
# CHECK fine-tuning-set-up points=1
fresh = build_frozen_classifier(4, input_size=64)
unfreeze_top(fresh, 40, learning_rate=3e-5)
exercise_checks.week2_unfreeze_top(
    fresh, top_layers=40, learning_rate=3e-5, hidden=True
)
### END HIDDEN TESTS

# %% [markdown]
# Now start again where the colleague did: a model `fine_tuned` with the
# colleague's new head (`fine_tuned = source_classifier()`, then
# `fine_tuned.set_weights(with_new_head)`). Unfreeze it with your
# `unfreeze_top`, with as many top layers and the learning rate you choose, and
# train it as the colleague did: batches of 16, 3 epochs. Store the `History`
# that `fit` returns in `fixed_history`. The check wants at least 0.8 on the
# held-out scenes, with the model as accurate in inference mode as in training
# mode.

# %%
config.seed_everything(0)
### BEGIN SOLUTION
fine_tuned = source_classifier()
fine_tuned.set_weights(with_new_head)
unfreeze_top(fine_tuned, 40, learning_rate=1e-4)
fixed_history = fine_tuned.fit(
    data.x_train,
    data.y_train,
    batch_size=16,
    epochs=3,
    verbose=0,
    validation_data=(data.x_test, data.y_test),
)
### END SOLUTION

# %%
fig = plots.training_curves(
    fixed_history, title="your fine-tuning", validation_label="held-out"
)

# %%
# CHECK fine-tuning points=2
exercise_checks.week2_fine_tuned(fine_tuned, data, head_only)
passed("fine-tuning")

# %%
### BEGIN HIDDEN TESTS
# CHECK fine-tuning points=1
# From the weights, which is what reaches the grader of a model. The head's
# training leaves the frozen base as the source task left it, so the fine-tuning
# started from the source weights: BatchNormalization's averages still there
# (the layers frozen), and some of the base's convolution kernels moved (the
# base fine-tuned).
start = {
    weight.path: keras.ops.convert_to_numpy(weight)
    for weight in source_classifier().get_layer("base").weights
}
now = {
    weight.path: keras.ops.convert_to_numpy(weight)
    for weight in fine_tuned.get_layer("base").weights
}
check(now.keys() == start.keys(), "hidden: the base is the source MobileNetV2")
check(
    all(
        np.allclose(now[path], start[path])
        for path in start
        if "moving_" in path
    ),
    "hidden: the base's BatchNormalization averages stay where the fine-tuning"
    " started (the layers frozen)",
)
check(
    any(
        not np.allclose(now[path], start[path])
        for path in start
        if path.endswith("kernel")
    ),
    "hidden: part of the base trains (top_layers > 0): with the whole base"
    " frozen, nothing is fine-tuned",
)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Precision and recall by hand
#
# Write `confusion(y_true, y_pred, num_classes)`, the matrix whose entry
# `[i, j]` counts the images of true class `i` predicted as class `j`, and
# `precision_recall(matrix)`, which returns two arrays with one value per
# class: precision (correct predictions of the class over all predictions of
# the class) and recall (correct predictions of the class over all images of
# the class). When a class is never predicted, its precision is 0. NumPy only.


# %%
def confusion(y_true, y_pred, num_classes):
    ### BEGIN SOLUTION
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix
    ### END SOLUTION


def precision_recall(matrix):
    ### BEGIN SOLUTION
    matrix = np.asarray(matrix, dtype=float)
    correct = np.diag(matrix)
    precision = np.divide(
        correct,
        matrix.sum(axis=0),
        out=np.zeros_like(correct),
        where=matrix.sum(axis=0) > 0,
    )
    recall = np.divide(
        correct,
        matrix.sum(axis=1),
        out=np.zeros_like(correct),
        where=matrix.sum(axis=1) > 0,
    )
    return precision, recall
    ### END SOLUTION


# %%
# CHECK precision-and-recall points=2
exercise_checks.week2_precision_recall(confusion, precision_recall)
passed("precision and recall")

# %%
### BEGIN HIDDEN TESTS
# CHECK precision-and-recall points=1
never = precision_recall(confusion([0, 1, 2], [0, 0, 0], 3))
check_close(
    never[0], [1 / 3, 0, 0], "hidden: a class never predicted has precision 0"
)
check_close(never[1], [1, 0, 0], "hidden: recall")
### END HIDDEN TESTS

# %% [markdown]
# Done: every check above passed.
