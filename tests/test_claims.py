"""Prose checked against outputs: course_utils.claims, and every chapter's claims stated in its text."""

import ast
import inspect
import json
import re
from decimal import Decimal

import pytest

from course_utils import claims
from course_utils.build import read_source

CHAPTERS = ["week1_cnn_basics", "week2_recognition", "week3_detection", "week4_segmentation", "week5_metric_learning"]


def test_expect_passes_inside_the_range_and_names_the_claim_outside():
    claims.expect("x", 0.5, 0.4, 0.6)  # inside: no error
    with pytest.raises(claims.ClaimError, match=r"week9\.map = 0\.3, but the text says it lies between 0\.4 and 0\.6"):
        claims.expect("week9.map", 0.3, 0.4, 0.6)
    with pytest.raises(claims.ClaimError):
        claims.expect("x", float("nan"), 0.0, 1.0)


def test_the_text_describes_profile_cpu_so_other_profiles_only_record():
    from course_utils.config import Profile

    claims.expect("x", 0.0, 0.4, 0.6, profile=Profile("smoke"))  # only recorded
    with pytest.raises(claims.ClaimError):
        claims.expect("x", 0.0, 0.4, 0.6, profile=Profile("cpu"))


def test_the_text_describes_the_scenes_so_a_readers_own_data_only_records():
    from course_utils.config import Profile

    claims.expect("x", 0.0, 0.4, 0.6, profile=Profile("cpu", data_source="my_photos/annotations.json"))
    with pytest.raises(claims.ClaimError):
        claims.expect("x", 0.0, 0.4, 0.6, profile=Profile("cpu", data_source="scenes"))


def test_benchmarks_can_list_broken_claims_instead_of_stopping(monkeypatch):
    recorded = {}
    monkeypatch.setattr(claims, "record", lambda name, value: recorded.update({name: value}))
    monkeypatch.setenv(claims.REPORT_ONLY, "1")
    claims.expect("x", 0.3, 0.4, 0.6)  # listed, not raised
    assert recorded == {"x": 0.3, "failed claim: x": "x = 0.3, but the text says it lies between 0.4 and 0.6"}
    monkeypatch.delenv(claims.REPORT_ONLY)
    with pytest.raises(claims.ClaimError, match="x = 0.3"):
        claims.expect("x", 0.3, 0.4, 0.6)


def test_values_are_stored_as_plain_rounded_numbers():
    import numpy as np

    assert claims._plain(np.float32(0.406)) == 0.406
    assert claims._plain(np.array([1, 2])) == [1, 2]
    import tensorflow as tf

    assert claims._plain(tf.constant(0.25)) == 0.25


def test_expect_rounded_passes_the_number_as_printed_and_names_the_claim_otherwise():
    claims.expect_rounded("x", 3747200 / 1e6, 3.7, 1)
    claims.expect_rounded("x", 93.99, 94, 0)
    with pytest.raises(claims.ClaimError, match=r"week9\.params = 3\.76, which rounds to 3\.8, but the text says 3\.7"):
        claims.expect_rounded("week9.params", 3.76, 3.7, 1)
    with pytest.raises(claims.ClaimError):
        claims.expect_rounded("x", float("nan"), 3.7, 1)
    from course_utils.config import Profile

    claims.expect_rounded("x", 3.76, 3.7, 1, profile=Profile("smoke"))  # only recorded


def test_a_benchmark_quote_declaration_checks_its_arguments():
    claims.quoted_from_bench("week9.map", 0.82, 0.91)
    claims.quoted_from_bench(["week9.a", "week9.b"], 2.5, 3.8, scale=100, minus="week9.c")
    for bad in [
        dict(name="", low=0, high=1),
        dict(name="x", low=1, high=0),
        dict(name="x", low=0, high=1, scale=0),
        dict(name="x", low="0", high=1),
        dict(name=["x", 3], low=0, high=1),
        dict(name="x", low=0, high=1, minus=""),
    ]:
        with pytest.raises(ValueError):
            claims.quoted_from_bench(**bad)


def chapter_expectations(path):
    """``(name, low, high, text of the markdown cell just before, tags)`` for each claims.expect in a chapter.

    Read from the syntax tree, so that a call written over several lines is found too.
    """
    return [
        (ast.literal_eval(arguments["name"]), arguments["low"], arguments["high"], text, tags)
        for arguments, text, tags in chapter_calls(path, "expect")
    ]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_checked_range_is_the_one_the_text_states(root, chapter):
    """A check cell is hidden from the page and follows the paragraph whose range it asserts, written as in the text."""
    for name, low, high, text, tags in chapter_expectations(root / "book" / f"{chapter}.py"):
        assert "remove-cell" in tags, f"{chapter}: the check of {name} should be hidden (tag remove-cell)"
        plain = text.replace("\u2013", "-")
        for bound in (low, high):
            as_percent = f"{float(bound) * 100:g}%"  # 0.75 may be written 75%
            assert bound in plain or as_percent in plain, (
                f"{chapter}: {name} is checked against {low}..{high}, but the text before says:\n{text}"
            )


def chapter_calls(path, function):
    """``(arguments, text of the markdown cell just before, tags)`` for each ``claims.<function>(...)`` in a chapter.

    ``arguments`` maps the function's parameter names to their source text, as
    written in the call: a bound's digits are the precision it states.
    """
    parameters = list(inspect.signature(getattr(claims, function)).parameters)
    found, markdown = [], ""
    for cell in read_source(path).cells:
        if cell.cell_type == "markdown":
            markdown = cell.source
        elif f"claims.{function}(" in cell.source:
            for node in ast.walk(ast.parse(cell.source)):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == function
                    and getattr(node.func.value, "id", None) == "claims"
                ):
                    written = dict(zip(parameters, node.args)) | {k.arg: k.value for k in node.keywords}
                    arguments = {k: ast.get_source_segment(cell.source, v) for k, v in written.items()}
                    found.append((arguments, markdown, cell.metadata.get("tags", [])))
    return found


def in_text(number: str, text: str) -> bool:
    """Whether ``number``, as written in code (``25_088`` for "25,088"), stands in ``text`` as a number of its own."""
    written = re.escape(number.replace("_", ","))
    return re.search(rf"(?<![\d.,]){written}(?!\.?\d|,\d)", text.replace("\u2013", "-")) is not None


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_rounded_claim_is_the_number_the_text_prints(root, chapter):
    for arguments, text, tags in chapter_calls(root / "book" / f"{chapter}.py", "expect_rounded"):
        name, stated = arguments["name"], arguments["stated"]
        assert "remove-cell" in tags, f"{chapter}: the check of {name} should be hidden (tag remove-cell)"
        assert in_text(stated, text), (
            f"{chapter}: {name} is checked to print as {stated}, but the text before says:\n{text}"
        )


def bench_records(root) -> dict:
    return {r["name"]: r["value"] for r in json.loads((root / "bench" / "results.json").read_text())}


def constant(text: str) -> float:
    """A number written as a literal or a quotient of literals (``scale=1 / 60`` for minutes from seconds)."""
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return ast.literal_eval(node.left) / ast.literal_eval(node.right)
    return ast.literal_eval(node)


def quote_problems(chapter, arguments, text, tags, records) -> list[str]:
    """What is wrong with one ``claims.quoted_from_bench`` declaration (``arguments`` as written), given the
    bench records.

    The quote must stand in the paragraph before (as written), in a hidden cell,
    and match the five seeds: cover each seed's value within half a unit of the
    last digit written, and reach no further than one unit beyond the measured
    minimum and maximum (a loose quote is as stale as a wrong one).
    """
    names = ast.literal_eval(arguments["name"])
    names = [names] if isinstance(names, str) else names
    minus = ast.literal_eval(arguments.get("minus", "None"))
    scale = constant(arguments.get("scale", "1"))
    seeds = ast.literal_eval(arguments.get("seeds", repr(claims.BENCH_SEEDS)))
    low_text, high_text = arguments["low"], arguments["high"]
    what = " and ".join(names) + (f" minus {minus}" if minus else "") + (f" (x {scale})" if scale != 1 else "")
    quote = f"{chapter}: the text quotes {low_text} to {high_text} over seeds {seeds} for {what}"
    problems = []
    if "remove-cell" not in tags:
        problems.append(f"{quote}; its declaration should be hidden (tag remove-cell)")
    for bound in (low_text, high_text):
        if not in_text(bound, text):
            problems.append(f"{quote}, but {bound} is not in the paragraph before:\n{text}")
    needed = [f"{n}.seed{s}" for n in names + ([minus] if minus else []) for s in seeds]
    missing = [key for key in needed if key not in records]
    if missing:
        return problems + [f"{quote}, but bench/results.json has no {', '.join(missing)}"]
    values = [
        scale * (records[f"{n}.seed{s}"] - (records[f"{minus}.seed{s}"] if minus else 0)) for n in names for s in seeds
    ]
    low, high, smallest, largest = float(low_text), float(high_text), min(values), max(values)
    unit_low, unit_high = (10.0 ** Decimal(b.replace("_", "")).as_tuple().exponent for b in (low_text, high_text))
    tolerance = 1e-9 * max(1.0, abs(smallest), abs(largest))  # floating-point noise only
    fits = (
        low - unit_low / 2 - tolerance <= smallest
        and largest <= high + unit_high / 2 + tolerance
        and low >= smallest - unit_low - tolerance
        and high <= largest + unit_high + tolerance
    )
    if not fits:
        measured = ", ".join(f"{v:.4g}" for v in values)
        problems.append(
            f"{quote}, but the benchmark's seeds measured {measured} (min {smallest:.4g}, max {largest:.4g}): "
            f"correct the text to the measured range"
        )
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_quoted_benchmark_range_is_the_one_the_benchmark_measured(root, chapter):
    """Each range a paragraph quotes from the five-seed benchmark agrees with the per-seed records it names."""
    records = bench_records(root)
    problems = [
        problem
        for arguments, text, tags in chapter_calls(root / "book" / f"{chapter}.py", "quoted_from_bench")
        for problem in quote_problems(chapter, arguments, text, tags, records)
    ]
    assert not problems, "\n".join(problems)


def test_a_stale_benchmark_quote_fails_and_says_what_was_measured(tmp_path):
    """The check can fail: a quote the seeds no longer support, too loose, or missing from the text, is reported."""
    chapter = tmp_path / "claims.py"
    chapter.write_text(
        "# %% [markdown]\n# Over five seeds it reached 0.82 to 0.91, and 2.5 to 3.8 points more.\n\n"
        '# %% tags=["remove-cell"]\nclaims.quoted_from_bench("week9.acc", 0.82, 0.91)\n'
        'claims.quoted_from_bench("week9.acc", 2.5, 3.8, scale=100, minus="week9.base")\n'
    )
    measured = [0.908333, 0.841667, 0.878333, 0.821667, 0.88]
    records = {f"week9.acc.seed{s}": v for s, v in enumerate(measured)}
    records |= {
        f"week9.base.seed{s}": v - d for s, (v, d) in enumerate(zip(measured, [0.0325, 0.025, 0.038, 0.03, 0.03]))
    }
    declarations = chapter_calls(chapter, "quoted_from_bench")
    assert [quote_problems("week9", *d, records) for d in declarations] == [[], []]

    stale = dict(records, **{"week9.acc.seed3": 0.79})  # a seed now below the quote
    [problem] = quote_problems("week9", *declarations[0], stale)
    assert all(part in problem for part in ("week9:", "0.82 to 0.91", "week9.acc", "0.79", "0.9083"))
    loose = {
        k: (v if k.startswith("week9.base") else 0.85) for k, v in records.items()
    }  # all seeds 0.85: 0.82 is loose
    assert quote_problems("week9", *declarations[0], loose)
    assert quote_problems("week9", *declarations[0], {})  # records missing
    arguments, text, tags = declarations[0]
    assert quote_problems("week9", arguments, text.replace("0.91", "0.92"), tags, records)  # not in the text
    assert quote_problems("week9", arguments, text, [], records)  # not hidden
    later = {f"week9.acc.seed{s + 5}": v for s, v in enumerate(measured)}  # the same values at seeds 5 to 9
    arguments_later = dict(arguments, seeds="(5, 6, 7, 8, 9)")
    assert quote_problems("week9", arguments_later, text, tags, later) == []
    assert quote_problems("week9", arguments, text, tags, later)  # seeds 0 to 4 are not recorded


NOT_YET_SWEPT: set[str] = set()
"""Checked names that their week's sweep lists but has not run since they were added: the next sweep records
them, and then they leave this set (the test below fails until they do). A name joins only with its sweep
listing it."""


def seed_problems(chapter, expectations, records) -> list[str]:
    """Each checked range that a recorded run seed of the benchmark lies outside, and each checked name the
    benchmark never recorded: a range is held to every seed the sweeps ran, not only the five it was set from."""
    problems = []
    for name, low, high, _, _ in expectations:
        seeds = {k: v for k, v in records.items() if re.fullmatch(re.escape(name) + r"\.seed\d+", k)}
        if not seeds and name not in NOT_YET_SWEPT:
            problems.append(f"{chapter}: {name} is checked, but no run seed of bench/results.json records it")
        outside = {k: v for k, v in seeds.items() if not constant(low) <= v <= constant(high)}
        if outside:
            problems.append(f"{chapter}: {name} is checked against {low}..{high}, but the benchmark measured {outside}")
        if seeds and name in NOT_YET_SWEPT:
            problems.append(f"{chapter}: {name} is recorded now; remove it from NOT_YET_SWEPT")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_checked_range_holds_on_every_seed_the_benchmark_ran(root, chapter):
    """A range rewritten after a sweep, or set from five seeds, still holds on every seed recorded (seeds 5 to 9
    included), so that no run the benchmark made would break the page."""
    expectations = chapter_expectations(root / "book" / f"{chapter}.py")
    problems = seed_problems(chapter, expectations, bench_records(root))
    assert not problems, "\n".join(problems)


def test_a_range_that_a_recorded_seed_leaves_is_named():
    expectations = [("week9.acc", "0.8", "0.95", "", ["remove-cell"])]
    records = {"week9.acc.seed0": 0.9, "week9.acc.seed7": 0.97}
    [problem] = seed_problems("week9", expectations, records)
    assert "week9.acc" in problem and "0.8..0.95" in problem and "seed7" in problem
    assert seed_problems("week9", expectations, {"week9.acc.seed0": 0.9}) == []
    [missing] = seed_problems("week9", expectations, {})
    assert "no run seed" in missing


def claim_chapter(value):
    return (
        '# %% [markdown]\n# # Claims\n\n# %% tags=["parameters"]\nPROFILE = None\n\n'
        "# %%\nfrom course_utils import claims\nanswer = " + repr(value) + "\nprint(answer)\n\n"
        "# %% [markdown]\n# The answer lies between 41 and 43.\n\n"
        '# %% tags=["remove-cell"]\nclaims.record("answer", answer)\nclaims.expect("answer", answer, 41, 43)\n'
    )


@pytest.mark.notebooks
def test_a_claim_whose_number_drifts_warns_on_a_readers_page_and_fails_the_strict_build(root, tmp_path):
    """The same page builds while its number matches the text; once it drifts, a reader's build shows a warning
    at the sentence and completes, and the strict build fails."""
    import shutil

    import papermill

    from course_utils.build import build_book

    for name in ("_config.yml", "pyproject.toml", "references.bib"):
        shutil.copy2(root / name, tmp_path / name)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/claims\n")
    shutil.copytree(root / "book" / "images", tmp_path / "book" / "images")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    chapter = tmp_path / "book" / "claims.py"
    chapter.write_text(claim_chapter(42))
    assert [e[:3] for e in chapter_expectations(chapter)] == [("answer", "41", "43")]
    index = build_book(tmp_path, "smoke", build_dir=tmp_path / "_build", log=lambda message: None)
    page = (index.parent / "book" / "claims.html").read_text()
    assert "between 41 and 43" in page and "claims.expect" not in page
    recorded = claims.read_records(tmp_path / "_build" / "book_src" / "book" / "claims.ipynb")
    assert recorded == {"answer": 42}

    assert "This run differs" not in page

    chapter.write_text(claim_chapter(45))  # the planted drift
    said = []
    index = build_book(tmp_path, "smoke", build_dir=tmp_path / "_build2", log=said.append)
    page = (index.parent / "book" / "claims.html").read_text()
    sentence, warning = page.index("between 41 and 43"), page.index("This run differs from the text above")
    assert sentence < warning and "answer = 45, but the text says it lies between 41 and 43" in page
    assert "admonition warning" in page[sentence : warning + 100] and ":::" not in page
    assert "1 claim(s) of the text broken" in said[-1] and "answer = 45" in said[-1]
    with pytest.raises(papermill.PapermillExecutionError, match="answer = 45, but the text says"):
        build_book(tmp_path, "smoke", build_dir=tmp_path / "_build3", log=lambda message: None, strict=True)


SEED_WORDS = re.compile(
    r"run\s+seeds|benchmark's\s+(?:five\s+)?(?:run\s+)?seeds|(?:benchmark's|the)\s+five\s+runs", re.IGNORECASE
)
A_RANGE = re.compile(r"between\s+-?\d[\d.,]*\s+and\s+-?\d|-?\d[\d.,]*\s+to\s+-?\d")


def undeclared_seed_quotes(path) -> list[str]:
    """The paragraphs of a chapter that quote a range and speak of the benchmark's seeds with no
    ``claims.quoted_from_bench`` in the cells between them and the next paragraph: a measurement quoted without
    the records it comes from (a page's own check range presented as the benchmark's, say)."""
    cells, problems = read_source(path).cells, []
    for k, cell in enumerate(cells):
        if cell.cell_type != "markdown" or not (SEED_WORDS.search(cell.source) and A_RANGE.search(cell.source)):
            continue
        following = []
        for later in cells[k + 1 :]:
            if later.cell_type == "markdown":
                break
            following.append(later.source)
        if not any("claims.quoted_from_bench(" in source for source in following):
            problems.append(f"{path.stem}: {SEED_WORDS.search(cell.source).group(0)!r} in:\n{cell.source[:400]}")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_paragraph_that_quotes_the_benchmarks_seeds_declares_the_records(root, chapter):
    assert not (problems := undeclared_seed_quotes(root / "book" / f"{chapter}.py")), "\n\n".join(problems)


def test_an_undeclared_seed_quote_is_found(tmp_path):
    chapter = tmp_path / "claims.py"
    chapter.write_text(
        "# %% [markdown]\n# Over the benchmark's five run seeds it reached 0.82 to 0.91.\n\n# %%\nx = 1\n\n"
        "# %% [markdown]\n# Over five run seeds, 0.5 to 0.6.\n\n"
        '# %% tags=["remove-cell"]\nclaims.quoted_from_bench("week9.acc", 0.5, 0.6)\n'
    )
    [problem] = undeclared_seed_quotes(chapter)
    assert "0.82 to 0.91" in problem


def test_a_quoted_seed_record_that_differs_from_the_build_is_named():
    """make book at profile cpu runs SEED = 0: each record a declaration quotes is compared with its seed-0 record."""

    def recorded(name, value):
        return {
            "output_type": "display_data",
            "data": {claims.MIME: json.dumps(value)},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": claims.MIME_PREFIX}},
        }

    notebook = {
        "cells": [
            {"cell_type": "code", "source": "x = 1", "outputs": [recorded("week9.acc", 0.99375)]},
            {"cell_type": "code", "source": "y = 2", "outputs": [recorded("week9.base", 0.5)]},
            {
                "cell_type": "code",
                "source": 'claims.quoted_from_bench("week9.acc", 0.8, 0.9, minus="week9.base")',
                "outputs": [],
            },
        ]
    }
    records = [
        {"name": "week9.acc.seed0", "value": 0.97875, "commit": "abc123", "machine": "AMD EPYC", "date": "2026-12-05"},
        {"name": "week9.base.seed0", "value": 0.5, "commit": "abc123", "machine": "AMD EPYC", "date": "2026-12-05"},
    ]
    assert claims.quoted_records(notebook) == {"week9.acc", "week9.base"}
    [problem] = claims.stale_quotes(notebook, records)
    assert "week9.acc = 0.99375 in this build, 0.97875 in the seed-0 record (abc123, AMD EPYC" in problem
    records[0]["value"] = 0.99375
    assert claims.stale_quotes(notebook, records) == []
    assert claims.stale_quotes(notebook, records[1:]) == ["week9.acc: no seed record"]
    timed = {"cell_type": "code", "source": 'claims.quoted_from_bench("week9.chapter.seconds", 4, 6)', "outputs": []}
    notebook["cells"].append(timed)  # measured by the benchmark from outside, never recorded by the chapter
    records.append({"name": "week9.chapter.seconds.seed0", "value": 301.5, "unit": "s"})
    assert claims.stale_quotes(notebook, records) == []
    shared = {"cell_type": "code", "source": 'claims.quoted_from_bench("week9.step_share", 0.2, 0.6)', "outputs": []}
    notebook["cells"] += [shared, {"cell_type": "code", "source": "", "outputs": [recorded("week9.step_share", 0.3)]}]
    records.append({"name": "week9.step_share.seed0", "value": 0.5, "unit": "time share"})  # another clock reading
    assert claims.stale_quotes(notebook, records) == []
    records[-1]["unit"] = "ratio"  # not read off a clock: compared
    [problem] = claims.stale_quotes(notebook, records)
    assert "week9.step_share = 0.3 in this build, 0.5" in problem
    assert claims.ANOTHER_PROCESSOR not in problem  # no processor given: nothing said about it
    [problem] = claims.stale_quotes(notebook, records, processor="AMD EPYC")  # the record names none
    assert problem.endswith(claims.ANOTHER_PROCESSOR)
    records[-1]["machine"] = "AMD EPYC, 2 cores, 24 GiB, Linux 6.18, Python 3.11.7"
    [problem] = claims.stale_quotes(notebook, records, processor="AMD EPYC")
    assert claims.ANOTHER_PROCESSOR not in problem  # the same processor: a stale record, not the machine
    [problem] = claims.stale_quotes(notebook, records, processor="AMD EPYC 9B14")  # a prefix is another model
    assert problem.endswith(claims.ANOTHER_PROCESSOR)


def test_a_readers_page_says_where_each_quoted_range_was_measured_and_what_this_run_got():
    """Under a paragraph that quotes the benchmark, a folded note gives the records' range, machine, date and
    commit, and this run's value; it goes after the warning of a claim the run broke, which stays at the text."""
    import nbformat

    from course_utils.build import BROKEN_CLAIM_TAG, note_quote_sources

    declaring = nbformat.v4.new_code_cell('claims.quoted_from_bench("week9.acc", 0.97, 0.98)')
    declaring.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={claims.MIME: "0.99375"},
            metadata={"scrapbook": {"name": "week9.acc", "mime_prefix": claims.MIME_PREFIX}},
        )
    ]
    warning = nbformat.v4.new_markdown_cell(":::{warning}\nbroken\n:::", metadata={"tags": [BROKEN_CLAIM_TAG]})
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("Over five run seeds, 0.97 to 0.98."), declaring, warning]
    )
    records = [
        {"name": f"week9.acc.seed{s}", "value": v, "commit": "abc123", "machine": "AMD EPYC", "date": "2026-12-05"}
        for s, v in enumerate([0.97875, 0.975, 0.98, 0.9725, 0.977])
    ]
    assert note_quote_sources(notebook, records, this_run=True) == 1
    note = notebook.cells[3].source
    assert notebook.cells[2] is warning and notebook.cells[3].metadata["tags"] == ["quote-source"]
    assert "`week9.acc`: 0.9725 to 0.98 over run seeds 0, 1, 2, 3, 4" in note
    assert "(AMD EPYC, 2026-12-05, commit abc123); this run: 0.9938" in note and ":class: dropdown" in note

    notebook.cells = notebook.cells[:3]  # at another profile the run's value is not the text's: not shown
    assert note_quote_sources(notebook, records[1:], this_run=False) == 1
    assert "over run seeds 1, 2, 3, 4" in notebook.cells[3].source and "this run" not in notebook.cells[3].source
    assert note_quote_sources(nbformat.v4.new_notebook(cells=[declaring]), [], this_run=True) == 0


def visible_bookkeeping(path) -> list[str]:
    """The ``claims.`` calls in the code cells a reader sees (every cell not tagged ``remove-cell``)."""
    found = []
    for cell in read_source(path).cells:
        if cell.cell_type != "code" or "remove-cell" in cell.metadata.get("tags", []):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "claims":
                found.append(f"{path.name}: claims.{node.attr} in the visible cell\n{cell.source}")
    return found


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_bookkeeping_in_sight(root, chapter):
    """A chapter records and checks its claims in hidden cells: the code a reader sees is the experiment only."""
    found = visible_bookkeeping(root / "book" / f"{chapter}.py")
    assert not found, "move these into a cell tagged remove-cell:\n" + "\n\n".join(found)


def test_visible_bookkeeping_is_found(tmp_path):
    """The check can fail: a record call inside a visible loop is found, one in a hidden cell is not."""
    chapter = tmp_path / "week9.py"
    chapter.write_text(
        "# %%\nfor k in range(2):\n    x = k\n    claims.record('week9.x', x)\n\n"
        '# %% tags=["remove-cell"]\nclaims.record("week9.y", 1)\n'
    )
    [problem] = visible_bookkeeping(chapter)
    assert "claims.record" in problem and "week9.x" in problem


def test_the_instructors_page_quotes_the_graders_speed_as_recorded(root):
    """The grading rates on the instructors' page are the records' values, with the commit they were measured at."""
    page = (root / "book" / "instructors.md").read_text()
    records = {r["name"]: r for r in json.loads((root / "bench" / "results.json").read_text())}
    for name in (
        "grading.cpu.submissions_per_minute",
        "grading.submissions_per_minute",
        "grading.notebooks_alone_per_minute",
    ):
        assert f"`{name}`" in page, f"the instructors' page does not name {name}"
        record = records[name]
        value = f"{record['value']:g}"
        quoted = re.search(rf"(?<![\d.]){re.escape(value)}\s", page)
        assert quoted, f"{name} is {record['value']} in bench/results.json"
        assert record["date"] in page, f"{name} was measured on {record['date']}"
    assert records["grading.cpu.submissions_per_minute"]["commit"][:12] in page
