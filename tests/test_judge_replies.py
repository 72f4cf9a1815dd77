"""The judge against a kernel whose every reply is forged: generated replies never earn a wrong answer a point,
never rebind a name of the check, and never carry an expected value into the kernel or the feedback.

The kernel here is the judge's own :class:`course_utils.grading.kernel.Kernel` with its transport replaced: instead of
running ``wire.serve`` in a student's kernel, each request is answered by a reply drawn by hypothesis (extra and
duplicate names, names of the judge's helpers, handles to the kernel's own functions, wrong types, "changed"
claims on every argument, ``ok`` flags), written to the replies folder exactly as a hostile kernel would.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils.grading import judge, wire
from course_utils.grading.kernel import Kernel, StudentFunction

SETUP = "import numpy as np\nfrom course_utils.checks import check_close, check_equal, passed\n"
VISIBLE = """
def twice(x):
    return [2 * v for v in x]


check_close(double([1, 2]), twice([1, 2]), "double")
passed("double")
"""
SECRET = 0.123457  # the fraction every expected value of the hidden test carries; the kernel must never see it
HIDDEN = f"""
data = np.arange(12.0)
expected = 2 * data + {SECRET}
check_close(double(data), expected, "double (hidden)")
"""


def wrong_double(*args, **kwargs):
    return np.zeros(3)


def no_op(*args, **kwargs):
    return None


def leak(*args, **kwargs):
    raise ValueError(f"I was given {args!r} {kwargs!r}")


KERNEL_FUNCTIONS = [wrong_double, no_op, leak]
NAMES = st.one_of(
    st.sampled_from(
        ["double", "twice", "check_close", "check_equal", "check", "passed", "np", "data", "expected", "__builtins__"]
    ),
    st.text(max_size=6),
)
VALUES = st.one_of(
    st.sampled_from(KERNEL_FUNCTIONS),
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=5),
    st.lists(st.integers(5, 9), max_size=3),  # never [2, 4], the visible check's answer
    st.lists(st.integers(-9, 9), min_size=12, max_size=12).map(lambda v: np.array(v, dtype=float)),
)
CHANGED = st.lists(
    st.tuples(st.booleans(), st.one_of(st.integers(-2, 3), st.sampled_from(["x", "data", "padding"]))).map(list),
    max_size=3,
)


def forge(folder, reply: dict, values: dict, handles: list) -> None:
    """Write a reply as a kernel would, then set its fields to ``reply``'s (``unavailable`` included)."""
    wire.write(folder, "response", {}, values, handles=handles)
    written = json.loads((folder / "response.json").read_text())
    (folder / "response.json").write_text(json.dumps({**written, **reply}))


class ForgedKernel(Kernel):
    """The judge's kernel, whose transport answers each request with a reply drawn by ``draw``: where the judge
    waits for the kernel's answer, the reply is written as a hostile kernel's serve_loop would write it."""

    def __init__(self, folder, draw):
        inbox, replies = folder / "inbox", folder / "replies"
        inbox.mkdir()
        replies.mkdir()
        super().__init__(None, None, (inbox, str(inbox)), (replies, str(replies)), cell_timeout=10)
        self.draw, self.handles, self.received = draw, list(KERNEL_FUNCTIONS), []
        self.loop = "a serve_loop"  # running from the start: nothing to execute

    def _loop_ended(self, timeout: float) -> dict:
        return {}

    def _wait_for_answer(self) -> None:
        message, args = wire.read(self.inbox[0], "request", handles=self.handles)
        self.received.append(args)
        reply, values = {"ok": True}, {}
        if message["op"] == "call":
            try:
                values["result"] = self.handles[message["handle"]](*args["args"], **args["kwargs"])
            except Exception as error:  # noqa: BLE001 - the kernel's own error is a reply like any other
                reply = {"ok": False, "ename": type(error).__name__, "evalue": str(error)}
        elif "double" in message["names"]:
            values["double"] = self.draw(st.sampled_from(KERNEL_FUNCTIONS))
        values.update(self.draw(st.dictionaries(NAMES, VALUES, max_size=4)))  # the forgery
        if self.draw(st.booleans()):
            reply["changed"] = self.draw(CHANGED)
            values.update({f"changed{n}": self.draw(VALUES) for n in range(len(reply["changed"]))})
        if self.draw(st.booleans()):
            reply["ok"] = self.draw(st.booleans())
        if self.draw(st.booleans()):
            reply["unavailable"] = self.draw(st.dictionaries(NAMES, st.text(max_size=8), max_size=2))
        forge(self.replies[0], reply, values, self.handles)
        if self.draw(st.booleans()):  # the same name twice in the reply's JSON: the later one wins in json.loads
            path = self.replies[0] / "response.json"
            text = path.read_text()
            path.write_text(text[:-1] + ', "values": {"check_close": {"handle": 2, "name": "check_close"}}}')


def carries_the_secret(value) -> bool:
    """Whether a value the kernel received holds any number with the hidden test's fraction."""
    if isinstance(value, dict):
        return any(carries_the_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(carries_the_secret(v) for v in value)
    try:
        numbers = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return False
    return bool(np.any(np.abs(numbers % 1 - SECRET) < 1e-6))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_forged_reply_never_earns_a_point_rebinds_a_name_or_sees_an_expected_value(tmp_path_factory, data):
    kernel = ForgedKernel(tmp_path_factory.mktemp("wire"), data.draw)
    try:
        judged_with_forged_replies(kernel)
    finally:
        kernel.close()


def judged_with_forged_replies(kernel):
    referee = judge.Judge(kernel)
    referee.setup(SETUP)
    helpers = {name: referee.base[name] for name in ("np", "check_close", "check_equal", "passed")}
    for name, source in (("double", VISIBLE), ("double_hidden", HIDDEN)):
        passed, message, printed = referee.check(source, name, fetch=("double",))
        assert not passed, (name, message, printed)
        assert f"{SECRET}"[2:6] not in message + printed, (name, message, printed)
        assert all(kernel.namespace[k] is v for k, v in helpers.items()), "a reply rebound a helper of the judge"
    assert not any(carries_the_secret(args) for args in kernel.received), "an expected value reached the kernel"
    if "data" in kernel.namespace:  # bound before the call of double(data): no "changed" claim rebinds it
        np.testing.assert_array_equal(kernel.namespace["data"], np.arange(12.0))


def answer(kernel, reply: dict, values: dict) -> None:
    """Make ``kernel``'s next request be answered with ``reply`` and ``values``."""
    replies = iter([(reply, values)])

    def wait_for_answer():
        kernel.received.append(wire.read(kernel.inbox[0], "request", handles=kernel.handles))
        forged, forged_values = next(replies)
        forge(kernel.replies[0], forged, forged_values, kernel.handles)

    kernel._wait_for_answer = wait_for_answer


@pytest.fixture
def kernel(tmp_path):
    forged = ForgedKernel(tmp_path, draw=None)
    forged.namespace = {}
    yield forged
    forged.close()


def test_a_fetch_reply_with_names_that_were_not_asked_for_is_refused_whole(kernel):
    answer(kernel, {"ok": True}, {"double": wrong_double, "check_close": no_op})
    with pytest.raises(wire.WireError, match="check_close"):
        kernel.fetch({"double"})


def test_a_call_reply_may_not_claim_that_a_number_was_changed(kernel):
    padding = 1
    kernel.namespace = {"padding": padding, "one": 1}
    answer(kernel, {"ok": True, "changed": [[True, 0]]}, {"result": 3, "changed0": 0})
    with pytest.raises(wire.WireError, match="changed"):
        kernel.call(wire.Handle(0, "conv"), (padding,), {})
    assert kernel.namespace == {"padding": 1, "one": 1}


def test_a_call_reply_with_extra_values_is_refused(kernel):
    answer(kernel, {"ok": True}, {"result": 3, "digits": [1, 2, 3]})
    with pytest.raises(wire.WireError, match="digits"):
        kernel.call(wire.Handle(0, "conv"), (1,), {})


def test_an_honest_reply_still_crosses(kernel):
    answer(kernel, {"ok": True}, {"double": wrong_double, "k": 7})
    values, unavailable = kernel.fetch({"double", "k"})
    assert values["k"] == 7 and isinstance(values["double"], StudentFunction) and unavailable == {}
    answer(kernel, {"ok": True, "unavailable": {"k": "an array of Python objects"}}, {})
    values, unavailable = kernel.fetch({"k"})
    assert values == {} and unavailable == {"k": "an array of Python objects"}
