"""Keep a chapter's prose true to its outputs.

A chapter records every result its text talks about with :func:`record`, and
checks every number its text states with :func:`expect`, in a cell tagged
``remove-cell`` right after the claim. The text gives a range ("between 0.85
and 0.95"); if a run leaves it, the cell raises :class:`ClaimError`, the
chapter's execution fails and so does the strict book build (``make book STRICT=1``:
the benchmarks, CI and releases): the text can never say one thing while the page
shows another. A reader's build (:data:`REPORT_ONLY`) records the broken claim
instead, and :func:`course_utils.build.execute` shows it as a warning right below
the sentence. The prose describes the ``cpu``
profile, the book's; at other profiles the values are only recorded.
An exact fact the text prints rounded ("3.7 M parameters") is checked with
:func:`expect_rounded` instead of a range.

Where a paragraph also quotes the range the benchmark measured over its five
run seeds ("over five run seeds, 0.82 to 0.91"), the same hidden cell declares
it with :func:`quoted_from_bench`; the tests compare it with the per-seed
records in ``bench/results.json``, so that the quote cannot go stale.

Recorded values are stored in the executed notebook as MyST-NB "glue" outputs
(a hidden ``display_data``), so the benchmarks read a chapter's own results
with :func:`read_records` instead of re-computing them.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

REPORT_ONLY = "COURSE_CLAIMS_REPORT_ONLY"
"""Set to "1" (the benchmarks and a reader's book build do), a claim that fails is recorded as
``failed claim: <name>`` instead of raised, so that one run goes on and lists every claim it broke."""
FAILED_PREFIX = "failed claim: "

MIME_PREFIX = "application/papermill.record/"
MIME = MIME_PREFIX + "text/plain"
_RECORDED: set[str] = set()  # names recorded in this kernel


class ClaimError(AssertionError):
    """A value came out of the range the prose states for it, or does not round to the number it prints."""


def record(name: str, value) -> None:
    """Store ``value`` under ``name`` in the notebook's outputs, invisible on the page.

    It returns nothing, so that a cell ending with it shows no stray number.

    Numbers are stored as plain floats or ints, rounded to 6 significant digits
    (so they print as "0.5" and not "0.49999997").
    """
    value = _plain(value)
    try:  # on use: a script or a test that imports the claims needs no IPython
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to store the value in
        return
    if get_ipython() is not None:
        # One output per name (a glue key must be unique on a page): recording a name again, as
        # expect() does, updates the first output in place.
        display(
            {MIME: json.dumps(value)},
            raw=True,
            display_id=name,
            update=name in _RECORDED,
            metadata={"scrapbook": {"name": name, "mime_prefix": MIME_PREFIX}},
        )
        _RECORDED.add(name)


TEXT_PROFILE = "cpu"
"""The profile the prose describes: the book is built at it."""
BENCH_SEEDS = (0, 1, 2, 3, 4)
"""The run seeds every chapter's sweep measures (``python -m bench``), whose range a quote gives by default."""
RECORDED_SEEDS = tuple(range(10))
"""Those and the five more run to test the claims on seeds their ranges were not set from."""
TIMING_UNITS = ("s", "time share")
"""Units of records read off a clock (seconds, and one time as a share of another): no run repeats them exactly."""


def expect(name: str, value, low: float, high: float, profile=None) -> None:
    """Record ``value``, then fail unless ``low <= value <= high``, the range the text states for it.

    The text describes runs at profile ``cpu`` on the synthetic scenes; given the
    run's ``profile``, any other profile (``smoke`` in the tests, ``gpu`` on
    Colab) or data source (a reader's own images) only records the value.
    """
    value = _plain(value)
    record(name, value)
    if not _describes_text(profile):
        return
    if not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        _fail(
            name,
            f"{name} = {value!r}, but the text says it lies between {low} and {high}",
            "fix the recipe, or re-measure and correct the text",
        )


def expect_rounded(name: str, value, stated: float, digits: int = 0, profile=None) -> None:
    """Record ``value``, then fail unless ``round(value, digits) == stated``, the number as the text prints it.

    For exact facts such as parameter counts, which a range would only blur: the
    text says "3.7 M", the cell checks ``expect_rounded(name, conv / 1e6, 3.7, 1)``;
    "94%" is ``(name, 100 * share, 94, 0)``. ``profile`` works as in :func:`expect`.
    """
    plain = _plain(value)
    record(name, plain)
    if not _describes_text(profile):
        return
    rounded = round(float(value), digits) if isinstance(plain, (int, float)) else None  # the unrounded value
    if rounded is None or math.isnan(rounded) or rounded != stated:
        _fail(
            name,
            f"{name} = {plain!r}, which rounds to {rounded}, but the text says {stated}",
            "fix the code, or correct the text",
        )


def quoted_from_bench(
    name, low: float, high: float, scale: float = 1, minus: str | None = None, seeds: tuple = BENCH_SEEDS
) -> None:
    """Declare that the paragraph above quotes the benchmark's range ``low`` to ``high`` of record ``name``.

    It does nothing at run time but check its arguments: ``tests/test_claims.py``
    reads the declarations from the chapter's source and checks the quote against
    ``<name>.seed<s>`` in ``bench/results.json`` for each run seed ``s`` of ``seeds``
    (the sweep's five, 0 to 4, unless the text quotes others, written as a tuple).
    Write the bounds as the text writes them (``0.80``, not ``0.8``): their last
    digit is the precision the quote must be true to.

    * ``scale`` multiplies the recorded values: 100 when the text gives a
      fraction in percent or in points ("2.5 to 3.8 points").
    * ``name`` may be a list of records when one range covers all of them
      ("at every number of labels").
    * ``minus`` names a record subtracted seed by seed, for a quoted difference
      between two recorded values.
    """
    names = [name] if isinstance(name, str) else list(name) if isinstance(name, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"name must be a record name or a list of them, not {name!r}")
    numbers = (low, high, scale)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        raise ValueError(f"low, high and scale must be finite numbers, not {numbers!r}")
    if low > high or scale <= 0:
        raise ValueError(f"the range must have low <= high and a positive scale, not {low}..{high} at {scale}")
    if minus is not None and not (isinstance(minus, str) and minus):
        raise ValueError(f"minus must be a record name, not {minus!r}")
    if not (isinstance(seeds, tuple) and seeds and all(isinstance(x, int) and x >= 0 for x in seeds)):
        raise ValueError(f"seeds must be a tuple of run seeds, not {seeds!r}")


def _describes_text(profile) -> bool:
    """Whether a run at ``profile`` is the one the prose describes: profile ``cpu`` on the synthetic scenes."""
    if profile is not None and getattr(profile, "name", profile) != TEXT_PROFILE:
        return False
    return getattr(profile, "data_source", "scenes") == "scenes"


def _fail(name: str, found: str, remedy: str) -> None:
    """Raise :class:`ClaimError` (what was found, and the maintainer's remedy), or in a benchmark or a reader's
    build (:data:`REPORT_ONLY`) record what was found and go on."""
    if os.environ.get(REPORT_ONLY) == "1":
        record(f"{FAILED_PREFIX}{name}", found)
        return
    raise ClaimError(f"{found}: {remedy}")


def broken(notebook) -> list[tuple[int, str, str]]:
    """``(cell index, claim name, what was found)`` for each claim an executed notebook recorded as broken."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name", "")
            if name.startswith(FAILED_PREFIX) and MIME in output.get("data", {}):
                found.append((index, name[len(FAILED_PREFIX) :], json.loads(output["data"][MIME])))
    return found


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


def quoted_in(source: str) -> list[str]:
    """The records that the :func:`quoted_from_bench` declarations of one cell's ``source`` quote (``name`` and
    ``minus``), in order."""
    names = []
    if "quoted_from_bench(" not in source:
        return names
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "quoted_from_bench":
            given = dict(zip(("name", "low", "high", "scale", "minus"), node.args))
            given.update({k.arg: k.value for k in node.keywords})
            quoted = ast.literal_eval(given["name"])
            names += [quoted] if isinstance(quoted, str) else list(quoted)
            if given.get("minus") is not None and (minus := ast.literal_eval(given["minus"])):
                names.append(minus)
    return list(dict.fromkeys(names))


def quoted_records(notebook) -> set[str]:
    """The records that a notebook's :func:`quoted_from_bench` declarations quote (their ``name`` and ``minus``)."""
    return {name for cell in notebook["cells"] if cell["cell_type"] == "code" for name in quoted_in(_source(cell))}


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def quote_sources(notebook, records: list[dict], seeds=RECORDED_SEEDS, this_run: bool = True) -> list[tuple]:
    """Where the benchmark quotes of each declaring cell come from: ``(cell index, lines)``, a line per quoted
    record with its range over the run ``seeds`` recorded in ``records`` (bench/results.json), the machine, date
    and commit it was measured on and, with ``this_run``, the value this executed notebook got, so that a reader
    sees both."""
    kept = {r["name"]: r for r in records}
    built = read_records(notebook) if this_run else {}
    found = []
    for index, cell in enumerate(notebook["cells"]):
        lines = []
        for name in quoted_in(_source(cell)) if cell["cell_type"] == "code" else []:
            measured = [kept[f"{name}.seed{s}"] for s in seeds if f"{name}.seed{s}" in kept]
            if not measured:
                continue
            values = [r["value"] for r in measured]
            where = sorted(
                {
                    f"{r.get('machine', 'machine not recorded')}, {r.get('date')}, "
                    f"commit {r.get('commit', 'not recorded')}"
                    for r in measured
                }
            )
            line = (
                f"`{name}`: {min(values):.4g} to {max(values):.4g} over run seeds "
                + ", ".join(str(s) for s in seeds if f"{name}.seed{s}" in kept)
                + f" ({'; '.join(where)})"
            )
            if name in built:
                line += f"; this run: {built[name]:.4g}" if isinstance(built[name], (int, float)) else ""
            lines.append(line)
        if lines:
            found.append((index, lines))
    return found


ANOTHER_PROCESSOR = "measured on another processor than this build's"
"""Said of a stale quote whose record a different processor measured: the difference may be the machine's."""


def stale_quotes(notebook, records: list[dict], seed: int = 0, processor: str | None = None) -> list[str]:
    """The quoted records whose value in this executed notebook, run at run seed ``seed``, is not the one the
    benchmark recorded for that seed (``<name>.seed<seed>`` in ``records``, the list of bench/results.json):
    each with both values and where the record was measured. On the benchmark's machine, a mismatch means the
    record is older than the code; elsewhere it may be the machine. Timings (:data:`TIMING_UNITS`, such as the
    chapter's running time, which the benchmark measures from outside) never repeat exactly and are not compared.
    Given this build's ``processor``, a record that names another says so (:data:`ANOTHER_PROCESSOR`)."""
    kept = {r["name"]: r for r in records}
    built = read_records(notebook)
    problems = []
    for name in sorted(quoted_records(notebook)):
        record_ = kept.get(f"{name}.seed{seed}")
        if record_ is not None and record_.get("unit") in TIMING_UNITS:
            continue
        if name not in built or record_ is None:
            problems.append(f"{name}: {'not recorded by this build' if name not in built else 'no seed record'}")
        elif not math.isclose(float(built[name]), float(record_["value"]), rel_tol=1e-5, abs_tol=1e-9):
            where = f"{record_.get('commit', 'commit not recorded')}, {record_.get('machine')}, {record_.get('date')}"
            elsewhere = processor and not str(record_.get("machine", "")).startswith(processor + ",")
            problems.append(
                f"{name} = {built[name]} in this build, {record_['value']} in the seed-{seed} record ({where})"
                + (f": {ANOTHER_PROCESSOR}" if elsewhere else "")
            )
    return problems


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
