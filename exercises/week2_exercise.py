# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# <!-- Generated from solutions/week2_exercise.py by `make sync`: edit that file, not this one. -->
# # Exercise, week 2: image recognition with MobileNetV2
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# 1. A frozen MobileNetV2 base with a new classification head
# 2. Fine-tuning the top layers with a lower learning rate
# 3. Precision and recall from a confusion matrix, by hand
# 4. A classifier with at least 90% held-out accuracy on the scenes
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Part 1 also asks you to *predict* a
# number before the check computes it.

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
from keras import layers
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from course_utils import config, exercise_checks, predictions
from course_utils import recognition as rec
from course_utils.checks import (
    check,
    check_close,
    check_equal,
    check_reached,
    diagnose_classifier,
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
# Your prediction: the trainable parameters of build_frozen_classifier(5, input_size=64, alpha=0.35).
raise NotImplementedError("Blank 1 of week2_exercise is not filled in yet: replace this line with your code.")

# %%
# CHECK prediction points=1
predictions.week2_frozen_head(predicted_trainable)
passed("prediction")

# %%
def build_frozen_classifier(num_classes, input_size=96, alpha=0.35, weights=None):
    raise NotImplementedError("Blank 2 of week2_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK frozen-base-with-a-new-head points=2
frozen = exercise_checks.week2_frozen_classifier(build_frozen_classifier)
passed("frozen base with a new head")


# %% [markdown]
# ## 2. Fine-tuning the top layers
#
# Write `unfreeze_top(model, top_layers, learning_rate)` for a model from part 1:
#
# * make the base trainable, then freeze again every layer of the base except
#   the last `top_layers` ones;
# * keep **every** BatchNormalization layer of the base frozen, even among
#   the top layers (a few small batches would overwrite its statistics). Older
#   tutorials call the base with `training=False` for this; in Keras 3 that
#   argument is overridden when `fit` trains the model (keras-team/keras#20285),
#   and only `trainable = False` on the layer keeps it in inference mode;
# * compile the model again with Adam at `learning_rate`, the sparse
#   categorical cross-entropy (as a string or a Keras loss object, matching the
#   softmax output) and the accuracy metric (the new `trainable` settings take
#   effect when the model is compiled).

# %%
def unfreeze_top(model, top_layers, learning_rate=1e-4):
    raise NotImplementedError("Blank 3 of week2_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK fine-tuning-set-up points=2
def loss_problem(model):
    """What is wrong with the compiled loss for integer labels, or None if it is the sparse cross-entropy."""
    softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    loss = model.loss
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return f"Keras knows no loss named {model.loss!r}"
    if loss is keras.losses.sparse_categorical_crossentropy:
        from_logits = False
    elif isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or (
            isinstance(loss, keras.losses.Loss)
            and getattr(loss, "fn", None) is keras.losses.sparse_categorical_crossentropy):
        from_logits = bool(loss.get_config().get("from_logits", False))
    else:
        return (f"the loss is {model.loss!r}; integer class labels need the sparse categorical cross-entropy "
                "(categorical_crossentropy expects one-hot labels)")
    if from_logits == softmax:
        return ("from_logits=True tells the loss that the outputs are raw scores, but the model ends with a softmax"
                if softmax else "the model outputs raw scores (no softmax): use from_logits=True")
    return None


unfreeze_top(frozen, 20, learning_rate=1e-5)
base = frozen.get_layer("base")
top = base.layers[-20:]
check(all(not layer.trainable for layer in base.layers[:-20]), "the layers below the top 20 stay frozen")
check(all(not layer.trainable for layer in base.layers if isinstance(layer, layers.BatchNormalization)),
      "every BatchNormalization layer stays frozen")
expected = 1280 * 5 + 5 + sum(layer.count_params() for layer in top if not isinstance(layer, layers.BatchNormalization))
trainable = sum(int(np.prod(w.shape)) for w in frozen.trainable_weights)
check_equal(trainable, expected, "trainable parameters after unfreezing the top 20 layers",
            mistakes={"nothing of the base was unfrozen: set base.trainable = True first, then freeze the layers "
                      "below the top ones.": 1280 * 5 + 5,
                      "the whole base trains: freeze every layer of the base except the last `top_layers`.":
                          lambda n: n > 10 * expected})
check(frozen.optimizer is not None, "compile the model again")
problem = loss_problem(frozen)
check(problem is None, f"the loss: {problem}.")
check_close(float(keras.ops.convert_to_numpy(frozen.optimizer.learning_rate)), 1e-5, "the learning rate", atol=1e-12)
passed("fine-tuning set-up")


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
    raise NotImplementedError("Blank 4 of week2_exercise is not filled in yet: replace this line with your code.")


def precision_recall(matrix):
    raise NotImplementedError("Blank 5 of week2_exercise is not filled in yet: replace this line with your code.")


# %%
# CHECK precision-and-recall points=2
y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
y_pred = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 3])
matrix = confusion(y_true, y_pred, 4)
right = confusion_matrix(y_true, y_pred, labels=range(4))
check_equal(np.asarray(matrix).tolist(), right.tolist(), "confusion matrix",
            mistakes={"rows and columns are swapped: entry [i, j] counts true class i predicted as j.":
                          right.T.tolist()})
precision, recall = precision_recall(matrix)
check_close(precision, [2 / 3, 2 / 4, 1.0, 1.0], "precision per class",
            mistakes={"you divided by the row sums (all images of the class): that is recall. Precision divides by "
                      "the column sums (all predictions of the class).": [2 / 3, 1.0, 2 / 4, 1.0]})
check_close(recall, [2 / 3, 1.0, 2 / 4, 1.0], "recall per class",
            mistakes={"you divided by the column sums (all predictions of the class): that is precision. Recall "
                      "divides by the row sums (all images of the class).": [2 / 3, 2 / 4, 1.0, 1.0]})
rng = np.random.default_rng(1)
truth, guess = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
expected_p, expected_r, _, _ = precision_recall_fscore_support(truth, guess, labels=range(5), zero_division=0)
check_close(precision_recall(confusion(truth, guess, 5))[0], expected_p, "precision against scikit-learn")
check_close(precision_recall(confusion(truth, guess, 5))[1], expected_r, "recall against scikit-learn")
passed("precision and recall")

# %% [markdown]
# ## 4. At least 90% on the held-out scenes
#
# Build and train a classifier on `scenes.x_train`, `scenes.y_train` so that
# it classifies at least 90% of `scenes.x_test` correctly; store it in
# `classifier`. Anything from the chapter is allowed: a small CNN
# (`rec.small_cnn`, or your own layers), MobileNetV2, `rec.fit_with_warmup` with its
# warm-up schedule. Keep it quick: with `EPOCHS` epochs a small CNN gets there
# on a laptop CPU in well under a minute.

# %%
SIZE = 32  # as in the chapter
scenes = rec.load_classification("scenes", image_size=SIZE, n_train=5000,
                                  n_test=500, seed=11)
EPOCHS = 6

# %%
config.seed_everything(0)
raise NotImplementedError("Blank 6 of week2_exercise is not filled in yet: replace this line with your code.")

# %%
# CHECK training points=2
predicted = classifier.predict(scenes.x_test, verbose=0).argmax(axis=1)
test_accuracy = float(np.mean(predicted == scenes.y_test))
print(f"held-out accuracy: {test_accuracy:.3f}")
check_reached(
    test_accuracy,
    0.9,
    "the classifier's held-out accuracy",
    lambda: diagnose_classifier(classifier, scenes.x_train, scenes.y_train, scenes.x_test, scenes.y_test),
)
precision, recall = precision_recall(confusion(scenes.y_test, predicted, len(scenes.class_names)))
for name, p, r in zip(scenes.class_names, precision, recall):
    print(f"{name:<10} precision {p:.3f}  recall {r:.3f}")
passed("training")

# %% [markdown]
# Done: every check above passed.
