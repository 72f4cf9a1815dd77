"""What crosses between a student's kernel and the judge: data only, read without pickle or links."""

import json
import os

import numpy as np
import pytest

from course_utils import data
from course_utils.grading import wire


def round_trip(tmp_path, values, handles=None):
    wire.write(tmp_path, "m", {"op": "test"}, values, handles=handles)
    return wire.read(tmp_path, "m", call=lambda handle: ("called", handle.name), handles=None)


def test_numbers_arrays_and_containers_cross_unchanged(tmp_path):
    values = {
        "n": 3,
        "x": 2.5,
        "nan": float("nan"),
        "flag": True,
        "text": "é",
        "none": None,
        "array": np.arange(6.0).reshape(2, 3),
        "scalar": np.float32(1.5),
        "nested": {"a": [1, (2, 3)], 4: {5, 6}},
    }
    message, got = round_trip(tmp_path, values)
    assert message["op"] == "test" and message["unavailable"] == {}
    assert got["n"] == 3 and got["x"] == 2.5 and np.isnan(got["nan"]) and got["flag"] is True
    assert got["text"] == "é" and got["none"] is None and got["scalar"] == 1.5
    np.testing.assert_array_equal(got["array"], values["array"])
    assert got["nested"] == {"a": [1, (2, 3)], 4: {5, 6}}


def test_the_course_dataclasses_are_rebuilt_field_by_field(tmp_path):
    digits = data.Split(
        x_train=np.zeros((2, 4, 4, 1)),
        y_train=np.array([0, 1]),
        x_test=np.ones((1, 4, 4, 1)),
        y_test=np.array([1]),
        class_names=("a", "b"),
    )
    _, got = round_trip(tmp_path, {"digits": digits})
    assert type(got["digits"]) is data.Split and got["digits"].class_names == ("a", "b")
    np.testing.assert_array_equal(got["digits"].x_test, digits.x_test)


@pytest.mark.parametrize(
    "home",
    [
        "course_utils.grading.__main__:Settings",  # importing it would run the grader's command line in the judge
        "course_utils.build.__main__:X",
        "course_utils.grading.cli:Settings",
        "course_utils.grading.workers:Settings",
        "course_utils.build:X",
        "course_utils:X",
        "os:X",
    ],
)
def test_a_reply_cannot_make_the_judge_import_a_module_outside_the_teaching_code(tmp_path, home, monkeypatch):
    """A dataclass in a reply names its module: only the teaching modules, which define the course's data and
    run nothing on import, may be named; anything else (the grader's own modules, a package's ``__main__``)
    is refused before it is imported."""
    import sys

    (tmp_path / "m.json").write_text(json.dumps({"values": {"x": {"dataclass": home, "fields": {}}}}))
    imported = []
    real_import = wire.importlib.import_module
    monkeypatch.setattr(wire.importlib, "import_module", lambda name: imported.append(name) or real_import(name))
    before = set(sys.modules)
    with pytest.raises(wire.WireError, match="malformed reply"):
        wire.read(tmp_path, "m")
    assert imported == [] and not any(m.endswith("__main__") for m in set(sys.modules) - before)


def test_a_value_that_cannot_cross_is_named_and_the_others_still_cross(tmp_path):
    class Anything:
        def __eq__(self, other):
            return True

    message, got = round_trip(tmp_path, {"fine": 1, "forged": Anything(), "objects": np.array([None, 1])})
    assert got == {"fine": 1}
    assert "cannot be passed" in message["unavailable"]["forged"]
    assert "dtype=object" in message["unavailable"]["objects"]


def test_functions_cross_as_handles_that_call_back(tmp_path):
    table = []
    _, got = round_trip(tmp_path, {"f": len}, handles=table)
    assert table == [len] and got["f"] == ("called", "len")


def test_a_keras_model_crosses_in_safe_mode_and_a_lambda_layer_does_not(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    _, got = round_trip(tmp_path, {"model": model})
    np.testing.assert_allclose(
        got["model"].predict(np.ones((1, 3)), verbose=0), model.predict(np.ones((1, 3)), verbose=0)
    )
    sneaky = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    with pytest.raises(wire.WireError, match="Lambda layers"):
        round_trip(tmp_path, {"model": sneaky})


def test_links_and_pickles_are_refused(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"values": {}}))
    (tmp_path / "box").mkdir()
    os.symlink(secret, tmp_path / "box" / "m.json")
    with pytest.raises(wire.WireError, match="link"):
        wire.read(tmp_path / "box", "m")
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "box" / "m.json").unlink()
    (tmp_path / "box" / "m.json").write_text(json.dumps({"values": {"x": {"array": "a0"}}}))
    np.savez(tmp_path / "box" / "m-arrays.npz", a0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        wire.read(tmp_path / "box", "m")


def test_serve_answers_gets_and_calls_from_a_namespace(tmp_path):
    requests, responses = tmp_path / "in", tmp_path / "out"
    requests.mkdir()
    responses.mkdir()
    namespace = {"double": lambda x: 2 * np.asarray(x), "k": 7}
    wire.write(requests, "request", {"op": "get", "names": ["double", "k", "missing"]}, {})
    wire.serve(namespace, str(requests), str(responses))
    reply, values = wire.read(responses, "response", call=lambda handle: handle)
    assert reply["ok"] and values["k"] == 7 and "missing" not in values
    wire.write(requests, "request", {"op": "call", "handle": values["double"].id}, {"args": [[1, 2]], "kwargs": {}})
    wire.serve(namespace, str(requests), str(responses))
    reply, values = wire.read(responses, "response")
    np.testing.assert_array_equal(values["result"], [2, 4])
    wire.write(requests, "request", {"op": "call", "handle": 0}, {"args": [None], "kwargs": {}})
    wire.serve(namespace, str(requests), str(responses))
    reply, _ = wire.read(responses, "response")
    assert not reply["ok"] and reply["ename"] == "TypeError"


def test_a_model_the_kernel_sent_crosses_back_as_a_reference_while_neither_copy_changed(tmp_path):
    import keras

    requests, responses = tmp_path / "in", tmp_path / "out"
    requests.mkdir()
    responses.mkdir()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    namespace = {"model": model, "same": lambda m: m is model}
    ledger = wire.ModelLedger()

    def ask(message, values=None):
        wire.write(requests, "request", message, values or {}, ledger=ledger)
        wire.serve(namespace, str(requests), str(responses))
        return wire.read(responses, "response", call=lambda handle: handle, ledger=ledger)

    _, fetched = ask({"op": "get", "names": ["model", "same"]})
    copy, same = fetched["model"], fetched["same"]
    assert copy is not model and ask({"op": "get", "names": ["model"]})[1]["model"] is copy  # loaded once
    reply, values = ask({"op": "call", "handle": same.id}, {"args": [copy], "kwargs": {}})
    assert reply["ok"] and values["result"] is True  # the kernel's own model, not a copy of the copy
    model.layers[0].kernel.assign(np.zeros((3, 2)))  # the kernel's model changes after it crossed
    reply, _ = ask({"op": "call", "handle": same.id}, {"args": [copy], "kwargs": {}})
    assert not reply["ok"] and reply["ename"] == "StaleModel"
    ledger.enabled = False  # what the judge does then: the model itself crosses
    reply, values = ask({"op": "call", "handle": same.id}, {"args": [copy], "kwargs": {}})
    assert reply["ok"] and values["result"] is False
    ledger.enabled = True
    copy.layers[0].kernel.assign(np.ones((3, 2)))  # the judge's copy changes: never sent as a reference
    assert ledger.reference(copy) is None
