"""Keep a chapter's prose true to its outputs.

A chapter records every result its text talks about with :func:`record`, and
checks every number its text states with :func:`expect`, in a cell tagged
``remove-cell`` right after the claim. The text gives a range ("between 0.85
and 0.95"); if a run leaves it, the cell raises :class:`ClaimError`, the
chapter's execution fails and so does the book build: the text can never say
one thing while the page shows another. The prose describes the ``cpu``
profile, the book's; at other profiles the values are only recorded.

Recorded values are stored in the executed notebook as MyST-NB "glue" outputs
(a hidden ``display_data``), so the benchmarks read a chapter's own results
with :func:`read_records` instead of re-computing them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

REPORT_ONLY = "COURSE_CLAIMS_REPORT_ONLY"
"""Set to "1" (the benchmarks do), a claim that fails is recorded as ``failed claim: <name>`` instead of
raised, so that one run measures everything and lists every claim it broke."""
FAILED_PREFIX = "failed claim: "

MIME_PREFIX = "application/papermill.record/"
MIME = MIME_PREFIX + "text/plain"
_RECORDED: set[str] = set()  # names recorded in this kernel


class ClaimError(AssertionError):
    """A value the prose states a range for came out of that range in this run."""


def record(name: str, value) -> None:
    """Store ``value`` under ``name`` in the notebook's outputs, invisible on the page.

    It returns nothing, so that a cell ending with it shows no stray number.

    Numbers are stored as plain floats or ints, rounded to 6 significant digits
    (so they print as "0.5" and not "0.49999997").
    """
    value = _plain(value)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to store the value in
        return
    if get_ipython() is not None:
        # One output per name (a glue key must be unique on a page): recording a name again, as
        # expect() does, updates the first output in place.
        display({MIME: json.dumps(value)}, raw=True, display_id=name, update=name in _RECORDED,
                metadata={"scrapbook": {"name": name, "mime_prefix": MIME_PREFIX}})
        _RECORDED.add(name)


TEXT_PROFILE = "cpu"
"""The profile the prose describes: the book is built at it."""


def expect(name: str, value, low: float, high: float, profile=None) -> None:
    """Record ``value``, then fail unless ``low <= value <= high``, the range the text states for it.

    The text describes runs at profile ``cpu`` on the synthetic scenes; given the
    run's ``profile``, any other profile (``smoke`` in the tests, ``gpu`` on
    Colab) or data source (a reader's own images) only records the value.
    """
    value = _plain(value)
    record(name, value)
    if profile is not None and getattr(profile, "name", profile) != TEXT_PROFILE:
        return
    if getattr(profile, "data_source", "scenes") != "scenes":
        return
    if not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        message = (f"{name} = {value!r}, but the text says it lies between {low} and {high}: "
                   f"fix the recipe, or re-measure and correct the text")
        if os.environ.get(REPORT_ONLY) == "1":  # a benchmark run: note it and go on measuring
            record(f"{FAILED_PREFIX}{name}", message)
            return
        raise ClaimError(message)


def read_records(notebook) -> dict:
    """All values stored by :func:`record` in an executed notebook (a path or a notebook dict)."""
    cells = (json.loads(Path(notebook).read_text()) if not isinstance(notebook, dict) else notebook)["cells"]
    found = {}
    for cell in cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap and MIME in output.get("data", {}):
                found[scrap["name"]] = json.loads(output["data"][MIME])
    return found


def _plain(value):
    """``value`` as JSON-friendly Python: NumPy and TensorFlow scalars and arrays become floats, ints and lists."""
    if hasattr(value, "numpy"):  # a TensorFlow tensor
        value = value.numpy()
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
