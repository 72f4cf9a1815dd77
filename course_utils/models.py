"""Model builders used by the chapters and exercises.

Each builder returns an uncompiled ``keras.Model`` so that a chapter can show the
architecture first and choose the optimiser and loss where it teaches them.
Output layers have ``dtype="float32"``: under the ``mixed_float16`` policy of the
gpu profile the softmax is then computed in float32, and under float32 nothing
changes.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import layers

from course_utils.config import distribute
from course_utils.data import check_integer


def lenet5(
    input_shape=(32, 32, 1),
    num_classes: int = 10,
    activation: str = "tanh",
    pooling: str = "average",
    dropout: float = 0.0,
) -> keras.Model:
    """LeNet-5 (LeCun et al., 1998) in its usual Keras form.

    Two 5x5 tanh convolutions (6 then 16 maps), each followed by 2x2 average
    pooling, then dense layers of 120 and 84 tanh units and a softmax output.
    On a 32x32x1 input it has 61,706 parameters. The paper's network differs
    (a sparse connection table between S2 and C3, a trainable coefficient and
    bias per map in S2 and S4, radial-basis-function output units) and has
    about 60,000 trainable parameters.

    The keywords change one ingredient at a time, for ablations against a modern
    small CNN: ``activation`` of every hidden layer (``"relu"``), ``pooling``
    (``"max"``), and ``dropout`` (a rate for a ``Dropout`` layer after the
    flattening, named ``"dropout"``). The defaults build the network above.
    """
    pools = {"average": layers.AveragePooling2D, "max": layers.MaxPooling2D}
    if pooling not in pools:
        raise ValueError(f"pooling must be 'average' or 'max', got {pooling!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a rate in [0, 1), got {dropout}")
    keras.activations.get(activation)  # an unknown name fails here, with Keras's message
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(6, 5, activation=activation, name="c1"),
            pools[pooling](2, name="s2"),
            layers.Conv2D(16, 5, activation=activation, name="c3"),
            pools[pooling](2, name="s4"),
            layers.Flatten(name="flatten"),
            *([layers.Dropout(dropout, name="dropout")] if dropout else []),
            layers.Dense(120, activation=activation, name="c5"),
            layers.Dense(84, activation=activation, name="f6"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="output"),
        ],
        name="lenet5",
    )


def dense_classifier(input_shape=(32, 32, 1), num_classes: int = 10, hidden: int = 84) -> keras.Model:
    """A dense network on raw pixels: the baseline a CNN is compared with.

    With one hidden layer of 84 units on 32x32 inputs it has 86,950 parameters,
    more than LeNet-5, yet it knows nothing of which pixels are neighbours.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(hidden, activation="tanh"),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="dense_classifier",
    )


def small_convnet(
    input_shape=(32, 32, 1), num_classes: int = 10, filters=(32, 64), dropout: float = 0.5
) -> keras.Model:
    """A modern small CNN for digits: two 3x3 ReLU convolutions, each followed by 2x2 max pooling, then dropout and
    one softmax layer (the recipe of Keras's "simple MNIST convnet" example).

    Against LeNet-5 it changes the activation (ReLU), the pooling (max), adds
    dropout, uses smaller 3x3 kernels but more of them, and has no hidden dense
    layers: on 32x32x1 inputs 41,866 parameters (23,050 of them in the output
    layer), against LeNet-5's 61,706.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(filters[0], 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(filters[1], 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dropout(dropout, name="dropout"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="output"),
        ],
        name="small_convnet",
    )


def alexnet(num_classes: int = 1000, towers: int = 2) -> keras.Model:
    """AlexNet (Krizhevsky et al., 2012): its layer sizes on a 227x227x3 input, built only to count its parameters.

    ``towers=2`` is the paper's network, split over two GPUs: the second, fourth
    and fifth convolutions only see the maps of their own GPU (``groups=2``),
    about 61.0 M parameters. ``towers=1`` connects every layer to all maps of the
    one below, as single-device re-implementations do (about 62.4 M). The
    normalisation layers (no weights) are left out.
    """
    if towers not in (1, 2):
        raise ValueError(f"towers must be 1 (one device) or 2 (the paper's two GPUs), got {towers}")
    return keras.Sequential(
        [
            keras.Input((227, 227, 3)),
            layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1"),
            layers.MaxPooling2D(3, 2, name="pool1"),
            layers.Conv2D(256, 5, padding="same", groups=towers, activation="relu", name="conv2"),
            layers.MaxPooling2D(3, 2, name="pool2"),
            layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3"),
            layers.Conv2D(384, 3, padding="same", groups=towers, activation="relu", name="conv4"),
            layers.Conv2D(256, 3, padding="same", groups=towers, activation="relu", name="conv5"),
            layers.MaxPooling2D(3, 2, name="pool5"),
            layers.Flatten(name="flatten"),
            layers.Dense(4096, activation="relu", name="fc6"),
            layers.Dropout(0.5),
            layers.Dense(4096, activation="relu", name="fc7"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="fc8"),
        ],
        name=f"alexnet_{towers}_tower{'s' if towers > 1 else ''}",
    )


def inception_module(
    x,
    n1x1: int,
    n3x3_reduce: int,
    n3x3: int,
    n5x5_reduce: int,
    n5x5: int,
    pool_proj: int,
    name: str = "inception",
    reduce: bool = True,
):
    """GoogLeNet's Inception module (Szegedy et al., 2015) on the tensor ``x``: four parallel branches, concatenated.

    1x1 convolution; 1x1 reduction then 3x3; 1x1 reduction then 5x5; 3x3 max
    pooling then a 1x1 projection. The arguments are the filter counts in the
    order of the paper's Table 1. ``reduce=False`` builds the naive module the
    paper starts from: no 1x1 reductions, and the pooling branch passes all its
    input maps through.
    """

    def conv(t, filters, kernel, suffix):
        return layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"{name}_{suffix}")(t)

    branches = [conv(x, n1x1, 1, "1x1")]
    if reduce:
        branches.append(conv(conv(x, n3x3_reduce, 1, "3x3_reduce"), n3x3, 3, "3x3"))
        branches.append(conv(conv(x, n5x5_reduce, 1, "5x5_reduce"), n5x5, 5, "5x5"))
        pooled = layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
        branches.append(conv(pooled, pool_proj, 1, "pool_proj"))
    else:
        branches.append(conv(x, n3x3, 3, "3x3"))
        branches.append(conv(x, n5x5, 5, "5x5"))
        branches.append(layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x))
    return layers.Concatenate(name=f"{name}_concat")(branches)


GOOGLENET_INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
"""The filter counts of GoogLeNet's nine Inception modules (Table 1 of Szegedy et al., 2015):
#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""


def googlenet(num_classes: int = 1000, aux_classifiers: bool = False) -> keras.Model:
    """GoogLeNet (Szegedy et al., 2015) on 224x224x3, as its Table 1 lays it out, built only to count parameters.

    Stem (7x7/2 convolution, 1x1 and 3x3 convolutions, max pooling), nine
    Inception modules, global average pooling, dropout and one linear softmax
    layer. ``aux_classifiers=True`` adds the two side classifiers used during
    training only (on 4a and 4d: 5x5/3 average pooling, 1x1 convolution with 128
    filters, a dense layer of 1024, dropout, softmax). Local response
    normalisation (no weights) is left out.
    """
    inputs = keras.Input((224, 224, 3))
    x = layers.Conv2D(64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7")(inputs)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = layers.Conv2D(64, 1, activation="relu", name="conv2_reduce")(x)
    x = layers.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool2")(x)
    outputs = []
    for stage in GOOGLENET_INCEPTIONS:
        if stage in ("4a", "5a"):
            x = layers.MaxPooling2D(3, 2, padding="same", name=f"pool_before_{stage}")(x)
        x = inception_module(x, *GOOGLENET_INCEPTIONS[stage], name=f"inception_{stage}")
        if aux_classifiers and stage in ("4a", "4d"):
            side = layers.AveragePooling2D(5, 3, name=f"aux_{stage}_pool")(x)
            side = layers.Conv2D(128, 1, activation="relu", name=f"aux_{stage}_conv")(side)
            side = layers.Flatten(name=f"aux_{stage}_flatten")(side)
            side = layers.Dense(1024, activation="relu", name=f"aux_{stage}_fc")(side)
            side = layers.Dropout(0.7, name=f"aux_{stage}_dropout")(side)
            outputs.append(
                layers.Dense(num_classes, activation="softmax", dtype="float32", name=f"aux_{stage}_output")(side)
            )
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    main = layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")(x)
    return keras.Model(
        inputs, [main, *outputs] if outputs else main, name="googlenet_with_aux" if aux_classifiers else "googlenet"
    )


def fit_quietly(model: keras.Model, *data, **fit_arguments):
    """``model.fit(*data, verbose=0, **fit_arguments)``, timed: ``(history, seconds)``.

    Every training function of the course ends here, so that each returns the
    same pair, and the seconds are those of ``fit`` alone (not of compiling or
    of building the data). The optimizer's variables are made first: made
    during the first step instead, they make TensorFlow trace the training step
    a second time, which doubles the seconds before training starts (about 3 s
    for a small U-Net on two cores). The weights come out the same.
    """
    if model.optimizer is not None and not model.optimizer.built:
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    start = time.perf_counter()
    history = model.fit(*data, verbose=0, **fit_arguments)
    return history, time.perf_counter() - start


OPTIMIZERS = ("adam", "sgd")
"""The optimisers the chapters train with: Adam, and SGD with momentum 0.9 beside it."""


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    """Adam, or plain SGD with momentum 0.9 (one step size for every weight, which week 1 compares with Adam's
    per-weight steps), at ``learning_rate`` (a number or a schedule)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")


def fit_classifier(
    model: keras.Model,
    x,
    y,
    epochs: int,
    learning_rate: float = 3e-3,
    batch_size: int = 64,
    validation_split: float = 0.15,
    callbacks=(),
    decay: bool = True,
    strategy=None,
    optimizer: str = "adam",
):
    """Compile ``model`` for integer labels and fit it quietly; return ``(history, seconds)``.

    ``optimizer`` is a name of :func:`make_optimizer` ("adam" or "sgd"), its
    learning rate decaying along a cosine (when ``decay``): large steps first,
    small ones at the end, so the last epoch does not land on a noisy point.
    The last ``validation_split`` of the training data is held out for validation.
    ``strategy``: a ``tf.distribute`` strategy the model was built under (default:
    the model's own, see :func:`course_utils.config.distribute`); ``batch_size``
    is per replica.
    """
    strategy, batch_size = distribute(model, batch_size, strategy)
    steps = epochs * int(np.ceil(len(x) * (1 - validation_split) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps) if decay else learning_rate
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(optimizer, schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return fit_quietly(
        model, x, y, validation_split=validation_split, epochs=epochs, batch_size=batch_size, callbacks=list(callbacks)
    )


def feature_extractor(model: keras.Model, layer_name: str) -> keras.Model:
    """A model mapping the inputs of ``model`` to the output of one of its layers.

    Used to look at activation maps and at the latent space a classifier learned.
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        names = ", ".join(layer.name for layer in model.layers)
        raise ValueError(f"Model {model.name!r} has no layer {layer_name!r}; its layers are: {names}") from None
    return keras.Model(model.inputs, layer.output, name=f"{model.name}_to_{layer_name}")


def count_conv_params(kernel_h: int, kernel_w: int, in_channels: int, filters: int, bias: bool = True) -> int:
    """Parameters of a convolution layer: ``(h * w * d) * n_f + n_f`` (weights plus one bias per filter)."""
    return kernel_h * kernel_w * in_channels * filters + (filters if bias else 0)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``."""
    effective = dilation * (kernel - 1) + 1
    if size + 2 * padding < effective:
        raise ValueError(
            f"Kernel of effective size {effective} does not fit an input of {size} with padding {padding}."
        )
    return (size + 2 * padding - effective) // stride + 1


def receptive_field(layer_specs):
    """Receptive field and jump after each layer of a stack, from its ``(kernel, stride)`` pairs (or
    ``(kernel, stride, dilation)``).

    The jump is the distance, in input pixels, between two neighbouring outputs of
    a layer: the product of the strides so far. Each layer widens the field by
    ``(kernel - 1) * dilation`` of the previous layer's jumps:
    ``r_l = r_(l-1) + (k_l - 1) d_l j_(l-1)``, ``j_l = j_(l-1) s_l``, from
    ``r_0 = j_0 = 1``. Returns a list of ``(receptive_field, jump)``, one per layer.
    """
    field, jump, out = 1, 1, []
    for index, spec in enumerate(layer_specs):
        spec = tuple(spec)
        if len(spec) not in (2, 3):
            raise ValueError(
                f"layer {index}: expected (kernel, stride) or (kernel, stride, dilation) as positive "
                f"integers, got {spec!r}"
            )
        kernel, stride, dilation = (*spec, 1)[:3]
        kernel = check_integer(kernel, f"layer {index}: kernel")
        stride = check_integer(stride, f"layer {index}: stride")
        dilation = check_integer(dilation, f"layer {index}: dilation")
        field += (kernel - 1) * dilation * jump
        jump *= stride
        out.append((int(field), int(jump)))
    return out


def spatial_layers(model: keras.Model):
    """``(name, kernel, stride, dilation)`` of every layer of ``model`` that moves a window over the image
    (convolutions and pooling), in order, along the height axis: the input of :func:`receptive_field`.

    Only for a plain chain of layers (a branching model has one field per path).
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            found.append((layer.name, layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]))
        elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
            found.append((layer.name, layer.pool_size[0], layer.strides[0], 1))
    return found


def predict_with_tta(model: keras.Model, images, augment, copies: int = 8, batch_size: int = 256):
    """Test-time augmentation: average the predicted probabilities over ``copies`` random variants of each image.

    ``augment`` is a callable returning a randomly transformed batch (for example a
    ``keras.Sequential`` of random layers, called with ``training=True``). The
    untouched image is always one of the variants, so ``copies=1`` is plain prediction.
    """
    copies = check_integer(copies, "copies")
    total = model.predict(images, batch_size=batch_size, verbose=0)
    for _ in range(copies - 1):
        total = total + model.predict(augment(images, training=True), batch_size=batch_size, verbose=0)
    return total / copies
