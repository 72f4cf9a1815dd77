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
# <!-- Generated from solutions/week4_exercise.py by `make sync`: edit that file, not this one. -->
# # Exercise, week 4: image segmentation with U-Net
#
# Fill in every cell that says `raise NotImplementedError(...)`, then run the
# check cell below it: it prints "✔ ... all checks passed" or stops with a
# message saying what is wrong. Run the cells in order, from the top.
#
# 1. Dice and IoU
# 2. The output size of a transposed convolution
# 3. A three-level U-Net with an exact parameter count, then one on a parameter
#    budget, and how far its bottleneck sees
# 4. Soft Dice against cross-entropy on tiny objects, over three seeds
# 5. Training the U-Net to a mean IoU of at least 0.8
#
# When a check fails on an answer that a common mistake produces, its message
# names the mistake ("Likely cause: ..."). Parts 3 and 4 ask you to *predict*
# before you measure, to choose a smaller U-Net that still does the job, and to
# decide what three training runs per loss do and do not show.

# %% tags=["parameters"]
PROFILE = None

# %%
import keras
import numpy as np
from keras import layers

from course_utils import config, exercise_checks, predictions, segmentation
from course_utils.checks import (
    check,
    check_close,
    check_equal,
    check_reached,
    diagnose_classifier,
    passed,
)
from course_utils.scenes import make_scenes

profile = config.setup(PROFILE, seed=0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Dice and IoU
#
# Write `dice(truth, predicted)` and `iou(truth, predicted)` for two binary
# masks of the same shape (arrays of 0 and 1, or of booleans):
#
# * Dice $= 2\,|T \cap P| \,/\, (|T| + |P|)$,
# * IoU $= |T \cap P| \,/\, |T \cup P|$,
#
# where $|\cdot|$ counts the pixels that are 1. When both masks are empty there
# is nothing to get wrong: return 1.0 (and never divide by zero). Use NumPy.


# %%
def dice(truth, predicted):
    raise NotImplementedError("Blank 1 of week4_exercise is not filled in yet")


def iou(truth, predicted):
    raise NotImplementedError("Blank 2 of week4_exercise is not filled in yet")


# %%
# CHECK dice-and-iou points=1
exercise_checks.week4_dice_and_iou(dice, iou, rng)
passed("Dice and IoU")

# %% [markdown]
# ## 2. The output size of a transposed convolution
#
# Write `transposed_output_size(n, kernel, stride, padding)`: the length along
# one axis of the output of Keras' `Conv2DTranspose` for an input of length `n`
# (`padding` is `"valid"` or `"same"`; assume `kernel >= stride`). Recall the
# chapter: with `"valid"`, the input with zeros in between has $(n-1)s + 1$
# values and the kernel adds $k - 1$ more; `"same"` is chosen so that the
# output is exactly `stride` times the input.


# %%
def transposed_output_size(n, kernel, stride, padding="valid"):
    raise NotImplementedError("Blank 3 of week4_exercise is not filled in yet")


# %%
# CHECK transposed-convolution-sizes points=2
exercise_checks.week4_transposed_convolution_sizes(transposed_output_size)
passed("transposed convolution sizes")

# %% [markdown]
# ## 3. A three-level U-Net
#
# Write `build_unet(input_shape, num_classes, filters)` with the Keras functional API:
#
# * a **block** is two 3×3 convolutions with `padding="same"`, each followed by
#   `BatchNormalization(momentum=0.9)` and a ReLU; a convolution followed by
#   batch normalisation needs no bias (`use_bias=False`). (The momentum sets how
#   fast the running averages that batch normalisation uses at prediction time
#   follow the training batches; Keras' default, 0.99, is too slow for the few
#   hundred steps we train for.)
# * **encoder**: three levels, each a block then a 2×2 `MaxPooling2D`, with
#   `filters[0]`, `filters[1]` and `filters[2]` filters (8, 16 and 32 by
#   default); keep each block's output for the skip connections;
# * **bottleneck**: a block with `filters[3]` filters (64 by default);
# * **decoder**: three levels, each a `Conv2DTranspose` with stride 2 and
#   `filters[2]`, `filters[1]`, then `filters[0]` filters, a `Concatenate` with
#   the encoder output of the same size, then a block with that many filters;
# * **head**: a 1×1 convolution with `num_classes` filters and a softmax.
#
# **The up-sampling is your design decision**: choose the kernel size and the
# padding of the transposed convolutions. Two requirements decide it:
#
# 1. the output is exactly twice the input, at every input size, or it cannot
#    be concatenated with the encoder's map (your `transposed_output_size` of
#    part 2 tells you which choices do that);
# 2. every output pixel is reached by exactly one position of the kernel: no
#    gaps (pixels that receive nothing but the bias) and no overlaps. Overlaps
#    cost weights, and with a kernel that is not a multiple of the stride they
#    are uneven: some pixels sum more kernel positions than their neighbours,
#    which shows as a checkerboard pattern in the maps.
#
# With the default filters, for 32×32×3 inputs and 3 classes, the right
# choice gives exactly 121,899 parameters.


# %%
def build_unet(input_shape=(32, 32, 3), num_classes=3, filters=(8, 16, 32, 64)):
    raise NotImplementedError("Blank 4 of week4_exercise is not filled in yet")


# %%
# CHECK u-net points=2
unet_model = exercise_checks.week4_unet(build_unet, rng)
passed("U-Net")

# %% [markdown]
# ### A U-Net on a parameter budget
#
# Suppose the U-Net must run on a small device that holds at most **40,000
# parameters**. Two answers in the cell below:
#
# 1. **Predict, then verify.** Before you build anything: how many parameters
#    has `build_unet((32, 32, 3), 3, filters=(4, 8, 16, 32))`, every layer with
#    half the filters? Store your estimate in `predicted_half_params` (within
#    10% is right). Hint: how does a convolution's weight count depend on its
#    input channels and its filters?
# 2. **Design.** Write `build_small_unet(input_shape, num_classes)`: a U-Net
#    that fits the budget and keeps what makes it a U-Net: three levels (three
#    2×2 poolings), the three skip connections (`Concatenate` layers), and one
#    softmax over the classes per pixel at the input's resolution. *How* you
#    save parameters is your decision (fewer filters, one convolution per
#    block, ...); the check measures the result, not the recipe.

# %%
# Your prediction, predicted_half_params, and your build_small_unet(input_shape,
# num_classes) (at most 40,000 parameters).
raise NotImplementedError("Blank 5 of week4_exercise is not filled in yet")

# %%
# CHECK budget points=2
predictions.week4_half_unet(predicted_half_params)
exercise_checks.week4_budget(build_small_unet, rng)
passed("U-Net on a budget")

# %% [markdown]
# ### How far one pixel of the bottleneck sees
#
# **Predict, then verify.** A pixel of the bottleneck's output depends on a
# square of input pixels, its *receptive field*. How many pixels across is it
# for your U-Net (three levels, the bottleneck block after the third pooling)?
# Store the number in `predicted_receptive_field`. Hint: a 3×3 convolution
# widens the field by 2 steps and a 2×2 pooling by 1 step, where a step is the
# distance between neighbouring pixels of the map it works on, in input
# pixels; each pooling doubles that distance.

# %%
# Your prediction: the receptive field, in input pixels across, of one pixel of
# the bottleneck.
raise NotImplementedError("Blank 6 of week4_exercise is not filled in yet")

# %%
# CHECK receptive-field points=1
predictions.week4_bottleneck_receptive_field(predicted_receptive_field)
passed("receptive-field prediction")

# %% [markdown]
# ## 4. The loss and tiny objects
#
# The scenes below hold three to six objects each, 4 to 7 pixels across: the
# objects cover about a tenth of the pixels. Cross-entropy averages over the
# pixels, so on such scenes most of it is about the background; the Dice loss
# compares the object pixels found with those there are, however few.
#
# Write `soft_dice_loss(y_true, y_pred)`, the Dice loss of a two-class U-Net,
# with `keras.ops` so that Keras can train with it:
#
# * `y_true`: the masks, shape (batch, height, width), 1 on the objects and 0
#   on the background (Keras may hand them over as floats);
# * `y_pred`: the U-Net's softmax output, shape (batch, height, width, 2),
#   whose channel 1 is the probability of "object";
# * it returns one number, $1 - (2\,\sum t\,p + 1) / (\sum t + \sum p + 1)$,
#   where $t$ is the truth, $p$ the object probability, and the sums run over
#   every pixel of the whole batch. The 1 in both places keeps the loss defined
#   when a batch has no object pixels, true or predicted (it is then 0).
#
# Then train your `build_unet((32, 32, 3), 2)` on `tiny_train` once with
# cross-entropy (`"sparse_categorical_crossentropy"`) and once with your loss,
# for each of the three seeds in `SEEDS` (call `config.seed_everything(seed)`
# before building each model), with `train_tiny` below. It returns the share
# of `tiny_test`'s objects the model found (at least half of an object's
# pixels predicted). Store the shares in a dictionary `found`: the key
# `"ce"` and the key `"dice"`, each with a list of three shares, in the
# order of `SEEDS`. (Six short trainings: under a minute on a laptop.)

# %%
tiny_args = dict(size=32, objects=(3, 6), object_size=(4, 7))
tiny_train = make_scenes(300, seed=11, **tiny_args)
tiny_test = make_scenes(200, seed=12, **tiny_args)
SEEDS = (0, 1, 2)


def train_tiny(model, loss, epochs=6):
    """Train ``model`` (softmax over 2 classes) on tiny_train with ``loss``;
    the share of tiny_test's objects found."""
    steps = epochs * int(np.ceil(len(tiny_train.images) / 16))
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(3e-3, steps)
        ),
        loss=loss,
    )
    model.fit(
        tiny_train.images,
        tiny_train.binary_masks(),
        batch_size=16,
        epochs=epochs,
        verbose=0,
    )
    # A direct call, not model.predict: six new models would make TensorFlow
    # warn about retracing.
    predicted = keras.ops.convert_to_numpy(
        model(tiny_test.images, training=False)
    ).argmax(axis=-1)
    return segmentation.objects_found(tiny_test, predicted)


# %%
def soft_dice_loss(y_true, y_pred):
    raise NotImplementedError("Blank 7 of week4_exercise is not filled in yet")


# %%
# CHECK soft-dice-loss points=1
exercise_checks.week4_soft_dice_loss(soft_dice_loss)
passed("soft Dice loss")

# %% [markdown]
# **Predict, then verify.** Before you train: with which loss will the U-Net
# find more of the tiny objects, on average over the three seeds? Store `"ce"`
# or `"dice"` in `predicted_better_loss`. Then run the six trainings.

# %%
# Your prediction ("ce" or "dice"), then found = {"ce": [...], "dice": [...]}.
raise NotImplementedError("Blank 8 of week4_exercise is not filled in yet")

# %%
# CHECK loss-prediction points=1
predictions.week4_better_loss(predicted_better_loss, found)
passed("loss prediction")

# %% [markdown]
# **What do three runs show?** Print the mean and the spread (largest minus
# smallest) of each loss's three shares. Then decide, from your numbers:
#
# * `better_loss`: the loss with the higher mean (`"ce"` or `"dice"`);
# * `beyond_noise`: `True` if the difference is larger than what changing the
#   seed does, by the strictest reading three runs allow: the worst seed of the
#   better loss finds more objects than the best seed of the other; `False`
#   otherwise, when a difference of means might come from the seeds alone.

# %%
# Print the means and spreads, then set better_loss and beyond_noise.
raise NotImplementedError("Blank 9 of week4_exercise is not filled in yet")

# %%
# CHECK loss-verdict points=2
exercise_checks.week4_loss_verdict(found, better_loss, beyond_noise)
passed("the verdict of three seeds")

# %% [markdown]
# ## 5. Training
#
# The scenes below hold one circle or one square each; the masks are 0 for the
# background, 1 for the circle and 2 for the square. Compile `unet_model` and
# train it on `train.images`, `train.masks` so that its **mean IoU over the
# three classes on the test scenes is at least 0.8**. Use `EPOCHS` epochs (it
# depends on the profile). Adam with a learning rate of about 3e-3, batches of
# 8, and a loss for integer class ids work well; a learning rate that decays
# during training (`keras.optimizers.schedules.CosineDecay`) helps.

# %%
scene_args = dict(
    size=32, objects=1, object_size=(10, 16), classes=("circle", "square")
)
train = make_scenes(480, seed=1, **scene_args)
test = make_scenes(200, seed=2, **scene_args)
EPOCHS = profile.pick(smoke=12, cpu=12, gpu=12)

# %%
config.seed_everything(0)
raise NotImplementedError("Blank 10 of week4_exercise is not filled in yet")

# %%
# CHECK training points=2
predicted = unet_model.predict(test.images, verbose=0).argmax(axis=-1)
score = segmentation.mean_iou(test.masks, predicted, 3)
print(f"mean IoU on the test scenes: {score:.3f}")
check_reached(  # every pixel is an example for the diagnosis
    score,
    0.8,
    "the U-Net's mean IoU",
    lambda: diagnose_classifier(
        unet_model,
        train.images,
        train.masks,
        test.images,
        test.masks,
        batch_size=32,
    ),
)
passed("training")

# %%
fig = segmentation.plot_segmentation(
    test.images,
    test.masks,
    predicted,
    class_names=("background", "circle", "square"),
    n=8,
    title="your U-Net on test scenes",
)

# %% [markdown]
# Done: every check above passed.
