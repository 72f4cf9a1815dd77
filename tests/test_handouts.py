"""A handout never shows the answer under the question: the predictions are checked and explained by the package."""

import ast
import inspect
import re

import pytest

from course_utils import predictions

WEEKS = {
    "week1_exercise": "week1_lenet",
    "week2_exercise": "week2_frozen_head",
    "week3_exercise": "week3_nms",
    "week5_exercise": "week5_collapsed_loss",
}


def kept_back(function) -> list[str]:
    """What a prediction question tells only once it is answered: the text of its explanation and its mistakes."""
    definition = ast.parse(inspect.getsource(function)).body[0]
    docstring = ast.get_docstring(definition)
    texts = []
    for node in ast.walk(definition):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value for v in node.values if isinstance(v, ast.Constant)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != docstring:
            texts.append(node.value)
    return [t for t in texts if len(t) >= 30]


def shown(texts, handout: str) -> list[str]:
    """The texts whose first 40 characters (spacing aside) stand in ``handout``."""
    plain = re.sub(r"\s+", " ", handout)
    return [t for t in texts if re.sub(r"\s+", " ", t)[:40] in plain]


@pytest.mark.parametrize("week", WEEKS)
def test_the_handout_asks_for_a_prediction_and_holds_none_of_its_answer(root, week):
    function = getattr(predictions, WEEKS[week])
    assert len(kept_back(function)) >= 3, f"{function.__name__} explains too little"
    for suffix in (".py", ".ipynb"):
        handout = (root / "exercises" / f"{week}{suffix}").read_text()
        assert f"predictions.{function.__name__}(" in handout
        assert "check_prediction(" not in handout, "a prediction checked in the handout shows its answer"
        assert not shown(kept_back(function), handout), f"{week}{suffix} shows the reasoning of its prediction"


def test_a_handout_that_shows_an_explanation_is_caught(root):
    texts = kept_back(predictions.week3_nms)
    handout = (root / "exercises" / "week3_exercise.py").read_text()
    explanation = max(texts, key=len)
    assert shown(texts, handout + f'\nprint("{explanation[:60]}"\n      "{explanation[60:]}")\n') == [explanation]
