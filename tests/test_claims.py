"""Prose checked against outputs: course_utils.claims, and every chapter's claims stated in its text."""

import re

import pytest

from course_utils import claims
from course_utils.build import read_source

EXPECT = re.compile(r"claims\.expect\(\s*\"([^\"]+)\"\s*,[^\n]*?,\s*([-\d.e]+)\s*,\s*([-\d.e]+)\s*[,)]")


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
    monkeypatch.setenv(claims.REPORT_ONLY, "1")
    claims.expect("x", 0.3, 0.4, 0.6)  # listed, not raised


def test_values_are_stored_as_plain_rounded_numbers():
    import numpy as np

    assert claims._plain(np.float32(0.406)) == 0.406
    assert claims._plain(np.array([1, 2])) == [1, 2]
    import tensorflow as tf

    assert claims._plain(tf.constant(0.25)) == 0.25


def chapter_expectations(path):
    """``(name, low, high, text of the markdown cell just before)`` for each claims.expect in a chapter."""
    notebook = read_source(path)
    found, markdown = [], ""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            markdown = cell.source
        for name, low, high in EXPECT.findall(cell.source if cell.cell_type == "code" else ""):
            found.append((name, low, high, markdown, cell.metadata.get("tags", [])))
    return found


@pytest.mark.parametrize("chapter", ["week1_cnn_basics", "week2_recognition", "week3_detection",
                                     "week4_segmentation", "week5_metric_learning"])
def test_every_checked_range_is_the_one_the_text_states(root, chapter):
    """A check cell is hidden from the page and follows the paragraph whose range it asserts, written as in the text."""
    for name, low, high, text, tags in chapter_expectations(root / "book" / f"{chapter}.py"):
        assert "remove-cell" in tags, f"{chapter}: the check of {name} should be hidden (tag remove-cell)"
        plain = text.replace("\u2013", "-")
        for bound in (low, high):
            as_percent = f"{float(bound) * 100:g}%"  # 0.75 may be written 75%
            assert bound in plain or as_percent in plain, (
                f"{chapter}: {name} is checked against {low}..{high}, but the text before says:\n{text}")


def claim_chapter(value):
    return ('# %% [markdown]\n# # Claims\n\n# %% tags=["parameters"]\nPROFILE = None\n\n'
            '# %%\nfrom course_utils import claims\nanswer = ' + repr(value) + '\nprint(answer)\n\n'
            '# %% [markdown]\n# The answer lies between 41 and 43.\n\n'
            '# %% tags=["remove-cell"]\nclaims.record("answer", answer)\nclaims.expect("answer", answer, 41, 43)\n')


@pytest.mark.notebooks
def test_a_claim_whose_number_drifts_fails_the_book_build(root, tmp_path):
    """The same page builds while its number matches the text, and fails the build once it drifts."""
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

    chapter.write_text(claim_chapter(45))  # the planted drift
    with pytest.raises(papermill.PapermillExecutionError, match="answer = 45, but the text says"):
        build_book(tmp_path, "smoke", build_dir=tmp_path / "_build2", log=lambda message: None)
