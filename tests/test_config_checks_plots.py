"""Profiles and seeding, exercise checks and the shared figures."""

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_utils import checks, config, plots  # noqa: E402


def test_profiles_resolve_and_unknown_ones_are_refused():
    assert config.resolve_profile("smoke") == "smoke"
    expected = "gpu" if config.gpu_available() else "cpu"
    assert config.resolve_profile(None) == expected
    with pytest.raises(ValueError, match="'fast'.*smoke, cpu, gpu"):
        config.resolve_profile("fast")


def test_profile_pick_chooses_by_name():
    assert config.Profile("smoke").pick(smoke=1, cpu=2, gpu=3) == 1
    assert config.Profile("gpu").pick(smoke=1, cpu=2, gpu=3) == 3


def test_seeding_makes_numpy_and_keras_repeat():
    def draw():
        config.seed_everything(7)
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        return np.random.rand(3), layer.kernel.numpy()

    (a1, k1), (a2, k2) = draw(), draw()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(k1, k2)


def test_checks_pass_silently_and_fail_with_a_message_naming_the_value():
    checks.check_close([1.0, 2.0], [1.0, 2.00001], "pair")
    checks.check_equal(3, 3, "three")
    with pytest.raises(AssertionError, match=r"pair: expected shape \(3,\), got \(2,\)"):
        checks.check_close([1.0, 2.0], [1.0, 2.0, 3.0], "pair")
    with pytest.raises(AssertionError, match="differ .* by up to 0.5"):
        checks.check_close([1.0, 2.5], [1.0, 2.0], "pair")
    with pytest.raises(AssertionError, match="count: expected 152, got 150"):
        checks.check_equal(150, 152, "count")


def test_known_mistakes_are_named_only_when_the_check_fails():
    flipped = {"you computed a convolution, not a cross-correlation": [[5, 11], [23, 29]]}
    checks.check_close([[19, 25], [37, 43]], [[19, 25], [37, 43]], "worked", mistakes=flipped)
    with pytest.raises(AssertionError, match=r"worked: values differ .* Likely cause: you computed a convolution"):
        checks.check_close([[5, 11], [23, 29]], [[19, 25], [37, 43]], "worked", mistakes=flipped)
    with pytest.raises(AssertionError) as error:  # wrong, but not a known mistake: no cause is guessed
        checks.check_close([[0, 0], [0, 0]], [[19, 25], [37, 43]], "worked", mistakes=flipped)
    assert "Likely cause" not in str(error.value)
    with pytest.raises(AssertionError, match=r"count: expected 152, got 150\. Likely cause: no bias"):
        checks.check_equal(150, 152, "count", mistakes={"no bias": 150, "skipped": None, "never": 7})
    with pytest.raises(AssertionError, match=r"expected shape \(5, 6\), got \(7, 8\)\. Likely cause: padded"):
        checks.check_shape(np.zeros((7, 8)), (5, 6), "grad", mistakes={"padded": (7, 8)})
    with pytest.raises(AssertionError, match=r"expected shape \(3,\), got \(2,\)\. Likely cause: short"):
        checks.check_close([1.0, 2.0], [1.0, 2.0, 3.0], "pair", mistakes={"short": lambda v: len(v) == 2})


def test_several_matching_mistakes_are_all_named_and_broken_predicates_do_not_match():
    mistakes = {"first": 10, "second": lambda v: v > 5, "broken": lambda v: v.no_such_attribute}
    with pytest.raises(AssertionError, match=r"Likely causes: first; or second$"):
        checks.check_equal(10, 9, "n", mistakes=mistakes)
    assert checks.likely_mistake("text", {"a list": [1, 2], "the word": "text"}) == "the word"
    assert checks.likely_mistake(3, None) is None
    with pytest.raises(TypeError, match="mistakes must be a dict"):
        checks.likely_mistake(3, [("a", 3)])


def test_nan_never_passes_check_close():
    with pytest.raises(AssertionError, match="Likely cause: 0/0"):
        checks.check_close(float("nan"), 1.0, "iou", mistakes={"0/0": lambda v: np.isnan(v)})


def test_predictions_are_compared_and_explained(capsys):
    checks.check_prediction((5, 5, 16), (5, 5, 16), "shape", "because of the pooling")
    checks.check_prediction(np.int64(48_120), 48_120, "count", "weights and biases")
    checks.check_prediction([5, 5, 16], (5, 5, 16), "list for tuple", "sequences compare element by element")
    checks.check_prediction(3.9, 3.871, "loss", "log 48", rtol=0.01)
    out = capsys.readouterr().out
    assert "✔ shape: you predicted (5, 5, 16), and it is (5, 5, 16). because of the pooling" in out
    assert "count: you predicted 48120, and it is 48120" in out
    with pytest.raises(AssertionError) as wrong:
        checks.check_prediction(48_000, 48_120, "count", "weights and biases", mistakes={"no biases": 48_000})
    assert str(wrong.value) == "count: your prediction 48000 is not it. Likely cause: no biases"
    for prediction, actual, rtol in [(4.2, 3.871, 0.01), ((5, 5), (5, 5, 16), 0), (7, 3, 0)]:
        with pytest.raises(AssertionError) as wrong:  # neither the value nor the reasoning before a right answer
            checks.check_prediction(prediction, actual, "it", "the reasoning", rtol=rtol)
        assert str(actual) not in str(wrong.value) and "the reasoning" not in str(wrong.value)
        assert "is not it" in str(wrong.value) and "think it through again" in str(wrong.value)
    with pytest.raises(AssertionError, match="write your prediction first"):
        checks.check_prediction(None, 3, "count", "why")
    with pytest.raises(AssertionError, match="your prediction 'five' is not it"):
        checks.check_prediction("five", 5, "count", "why")


def test_gradient_check_measures_relative_error_and_names_mistakes():
    reference = np.array([[1.0, -2.0], [3.0, 0.5]])
    checks.check_gradient(reference + 1e-9, reference, "grad")
    with pytest.raises(AssertionError, match=r"grad: relative error 1 against the reference .* Likely cause: sign"):
        checks.check_gradient(-reference, reference, "grad", mistakes={"sign": -reference})
    with pytest.raises(AssertionError, match=r"grad: expected shape \(2, 2\), got \(4,\)\. Likely cause: flat"):
        checks.check_gradient(reference.ravel(), reference, "grad", mistakes={"flat": lambda g: np.ndim(g) == 1})
    checks.check_gradient(np.zeros(3), np.zeros(3), "zero gradients agree")


def test_passed_prints_a_confirmation(capsys):
    checks.passed("part 1")
    assert "part 1: all checks passed" in capsys.readouterr().out


class FakeHistory:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}


RNG = np.random.default_rng(0)
FIGURES = {
    "training_curves": (
        lambda: plots.training_curves(FakeHistory()),
        lambda fig: len(fig.axes) == 2 and len(fig.axes[0].lines) == 2,
    ),
    "image_grid": (
        lambda: plots.image_grid(RNG.random((5, 8, 8, 1)), titles=list("abcde"), ncols=4),
        lambda fig: [ax.get_title() for ax in fig.axes[:5]] == list("abcde"),
    ),
    "prediction_grid": (
        lambda: plots.prediction_grid(RNG.random((2, 8, 8, 3)), [0, 1], [0, 0], ["x", "y"], confidences=[0.9, 0.6]),
        lambda fig: fig.axes[1].get_title() == "x 0.60\n[y]",
    ),
    "confusion_matrix": (
        lambda: plots.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"]),
        lambda fig: fig.axes[0].images[0].get_array().sum() == 4,
    ),
    "conv_filters": (
        lambda: plots.conv_filters(RNG.random((5, 5, 3, 6))),
        lambda fig: sum(bool(ax.images) for ax in fig.axes) == 6,
    ),
    "activation_maps": (
        lambda: plots.activation_maps(RNG.random((10, 10, 4))),
        lambda fig: sum(bool(ax.images) for ax in fig.axes) == 4,
    ),
    "embedding_scatter": (
        lambda: plots.embedding_scatter(RNG.random((20, 2)), RNG.integers(0, 3, 20), ["a", "b", "c"]),
        lambda fig: fig.axes[0].get_legend() is not None,
    ),
    "compare_training": (
        lambda: plots.compare_training({"a": FakeHistory(), "b": FakeHistory.history}, colours=["red", "blue"]),
        lambda fig: len(fig.axes) == 2
        and [line.get_label() for line in fig.axes[0].lines]
        == ["a, training", "a, validation", "b, training", "b, validation"]
        and fig.axes[1].lines[2].get_color() == "blue",
    ),
    "training_checks": (
        lambda: plots.training_checks(
            [2.3, 1.0, 0.1], {"Adam": (np.geomspace(1e-4, 1, 5), [2.3, 2.0, 1.0, 0.5, 3.0], 0.01)}, 2.3, {"Adam": 0.005}
        ),
        lambda fig: len(fig.axes) == 2
        and fig.axes[0].get_yscale() == "log"
        and [line.get_xdata()[0] for line in fig.axes[1].lines if line.get_marker() in ("o", "x")] == [0.01, 0.005],
    ),
    "retrieval_grid": (
        lambda: plots.retrieval_grid(RNG.random((2, 8, 8)), RNG.random((2, 3, 8, 8))),
        lambda fig: len(fig.axes) == 8,
    ),
}


@pytest.mark.parametrize("name", FIGURES)
def test_each_figure_is_drawn_with_the_expected_panels(name):
    draw, expected = FIGURES[name]
    fig = draw()
    try:
        assert expected(fig), name
    finally:
        plt.close(fig)


def test_figures_refuse_wrong_shapes_with_the_shape_in_the_message():
    with pytest.raises(ValueError, match=r"\(5, 5, 3\)"):
        plots.conv_filters(np.zeros((5, 5, 3)))
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        plots.embedding_scatter(np.zeros((4, 3)), [0] * 4, ["a"])
    with pytest.raises(ValueError, match="accuracy"):
        plots.training_curves({"loss": [1.0]}, metrics=("accuracy",))


def test_metric_names_become_readable_axis_labels():
    assert plots.metric_label("mean_iou") == "mean IoU"
    assert plots.metric_label("top_5_accuracy") == "top 5 accuracy"
    fig = plots.training_curves({"loss": [1.0, 0.5], "mean_iou": [0.2, 0.6]}, metrics=("loss", "mean_iou"))
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "mean IoU"]
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())  # epochs: no 1.5
    plt.close("all")


def test_wide_grids_fit_the_page_so_their_titles_are_not_scaled_down():
    rng = np.random.default_rng(0)
    figures = [
        plots.image_grid(rng.random((24, 8, 8)), titles=["positive triangle"] * 24, ncols=12, title="t"),
        plots.prediction_grid(rng.random((16, 8, 8)), [0] * 16, [1] * 16, ["a", "b"], confidences=[0.5] * 16),
        plots.conv_filters(rng.random((5, 5, 1, 32)), ncols=16),
        plots.retrieval_grid(rng.random((3, 8, 8)), rng.random((3, 9, 8, 8)), neighbour_titles=[["x 0.9"] * 9] * 3),
        plots.training_curves({"loss": [1.0], "accuracy": [0.5], "auc": [0.5]}, metrics=("loss", "accuracy", "auc")),
    ]
    for fig in figures:
        assert fig.get_size_inches()[0] <= plots.PAGE_WIDTH + 1e-9
    grid = figures[0]
    assert sum(bool(ax.images) for ax in grid.axes) == 24 and len(grid.axes) == 24  # 3 rows of 8
    assert grid.axes[0].get_title() == "positive\ntriangle"  # wrapped to the narrower panel
    assert grid.axes[0].title.get_fontsize() >= 9
    plt.close("all")


def test_tsne_places_few_points_and_refuses_too_few():
    import numpy as np
    import pytest

    from course_utils import plots

    points = plots.tsne_2d(np.random.default_rng(0).normal(size=(10, 5)))
    assert points.shape == (10, 2)
    with pytest.raises(ValueError, match="at least 3 points"):
        plots.tsne_2d(np.zeros((2, 5)))


def _one_hot(labels, classes, confidence=0.9):
    probabilities = np.full((len(labels), classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


TRAINING_FAILURES = {
    # name: (train probabilities, test probabilities, training mode or None, words the message must hold)
    "nan": (lambda y, t: _one_hot(y, 4) * np.nan, lambda y, t: _one_hot(t, 4), None, ["NaN", "learning rate"]),
    "uniform": (
        lambda y, t: np.full((len(y), 4), 0.25),
        lambda y, t: np.full((len(t), 4), 0.25),
        None,
        ["log(4) = 1.39", "has not learned"],
    ),
    "one class": (
        lambda y, t: _one_hot(y, 4),
        lambda y, t: _one_hot(np.full(len(t), 2), 4),
        None,
        ["every prediction is class 2", "collapsed", "learning rate"],
    ),
    "overfitting": (
        lambda y, t: _one_hot(y, 4),
        lambda y, t: _one_hot((t + 1) % 4, 4),
        None,
        ["overfits", "augmentation"],
    ),
    "batchnorm": (
        lambda y, t: _one_hot((y + 1) % 4, 4),
        lambda y, t: _one_hot((t + 1) % 4, 4),
        "batchnorm",
        ["training mode", "BatchNormalization", "trainable = False"],
    ),
}


@pytest.mark.parametrize("failure", TRAINING_FAILURES)
def test_a_training_that_failed_is_told_which_failure_it_is(failure):
    """Each known way a training fails, as its outputs show it, gets its own diagnosis and what to try."""
    y, t = np.arange(40) % 4, np.arange(20) % 4
    train, test, mode, words = TRAINING_FAILURES[failure]
    training_mode = (train(y, t), _one_hot(y, 4), y) if mode else None
    message = checks.training_failure(train(y, t), y, test(y, t), t, training_mode)
    assert message is not None and all(word in message for word in words), message


def test_a_training_that_worked_gets_no_diagnosis_and_a_real_model_is_read():
    y, t = np.arange(40) % 4, np.arange(20) % 4
    assert checks.training_failure(_one_hot(y, 4), y, _one_hot(t, 4), t, (_one_hot(y, 4), _one_hot(y, 4), y)) is None
    import keras

    untrained = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(4, "softmax", kernel_initializer="zeros"),
        ]
    )
    x = np.random.default_rng(0).random((40, 3)).astype("float32")
    before = [w.copy() for w in untrained.get_weights()]
    assert "has not learned" in checks.diagnose_classifier(untrained, x, y, x[:20], t)
    assert all(np.array_equal(a, b) for a, b in zip(before, untrained.get_weights())), "the diagnosis changed the model"


def test_a_target_missed_says_what_was_reached_and_asks_for_the_diagnosis_only_then():
    asked = []
    checks.check_reached(0.95, 0.95, "accuracy", lambda: asked.append(1) or "never")
    assert asked == []
    with pytest.raises(AssertionError) as missed:
        checks.check_reached(0.5, 0.9, "the accuracy", lambda: "the model collapsed to one class.")
    assert str(missed.value) == (
        "the accuracy reaches 0.500; at least 0.90 is needed. Likely cause: the model collapsed to one class."
    )
    with pytest.raises(AssertionError, match=r"reaches 0\.500; at least 0\.90 is needed\.$"):
        checks.check_reached(0.5, 0.9, "the accuracy", lambda: None)


def test_sharp_figures_needs_a_kernel():
    assert config.sharp_figures() is False  # plain Python: nothing to set, nothing raised


def test_text_sizes_are_measured_as_the_page_shows_them():
    narrow, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("title", fontsize=10)
    ax.legend(handles=ax.plot([0, 1], label="line"), fontsize=7)
    wide, wide_ax = plt.subplots(figsize=(2 * plots.PAGE_WIDTH, 3))
    wide_ax.set_title("title", fontsize=10)
    try:
        sizes = dict(plots.shown_text_sizes(narrow))
        assert sizes["title"] == 10 and sizes["line"] == 7  # as set: the figure fits the page
        assert plots.shown_text_sizes(narrow)[0] == ("line", 7)  # smallest first
        saved_width = wide.get_tightbbox(wide.canvas.get_renderer()).width  # the figure as saved, margins trimmed
        shown = dict(plots.shown_text_sizes(wide))["title"]
        assert shown == round(10 * plots.PAGE_WIDTH / saved_width, 2) < 7  # the page scales it down to fit
    finally:
        plt.close(narrow)
        plt.close(wide)


def test_the_audit_hook_writes_each_drawn_figures_smallest_text(tmp_path, monkeypatch):
    import json

    from course_utils import config

    audit = tmp_path / "figures.jsonl"
    monkeypatch.setenv(config.FIGURE_AUDIT, str(audit))
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("a title", fontsize=11)
    ax.set_xlabel("small", fontsize=6)
    plots.audit_text_on_draw(fig)
    try:
        fig.canvas.draw()
    finally:
        plt.close(fig)
    assert [json.loads(line) for line in audit.read_text().splitlines()] == [
        {"figure": "a title", "smallest": ["small", 6.0]}
    ]
