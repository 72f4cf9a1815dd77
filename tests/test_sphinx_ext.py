"""course_utils.sphinx_ext: author-year labels for the bibliography, the same in the text."""

from pathlib import Path

import pytest

pytest.importorskip("sphinxcontrib.bibtex", reason="the book extra (jupyter-book) is not installed")

from pybtex.database import parse_file  # noqa: E402  (installed with sphinxcontrib-bibtex)

from course_utils.sphinx_ext import AuthorYearStyle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def labels_of_the_book():
    style = AuthorYearStyle()
    entries = style.sort(parse_file(ROOT / "references.bib").entries.values())
    return {entry.key: label for entry, label in zip(entries, style.format_labels(entries))}


def test_labels_are_author_year_and_unique():
    labels = labels_of_the_book()
    assert labels["goyal2017"] == "Goyal et al., 2017"
    assert labels["dalal2005"] == "Dalal and Triggs, 2005"
    assert labels["sohn2016"] == "Sohn, 2016"
    assert labels["vandermaaten2008"] == "van der Maaten and Hinton, 2008"
    assert (labels["lin2017focal"], labels["lin2017fpn"]) == ("Lin et al., 2017a", "Lin et al., 2017b")
    assert len(set(labels.values())) == len(labels)
    assert not any(c in label for label in labels.values() for c in "\\{}")


def test_accented_names_render_as_letters():
    style = AuthorYearStyle()
    entries = parse_file(ROOT / "references.bib").entries
    text = style.format_entry("", entries["goyal2017"]).text.render_as("text")
    assert "Dollár" in text and "\\" not in text


def test_the_bibliography_is_sorted_by_label_whatever_the_order_of_citation():
    style = AuthorYearStyle()
    entries = list(parse_file(ROOT / "references.bib").entries.values())
    forward = [e.key for e in style.sort(entries)]
    assert forward == [e.key for e in style.sort(entries[::-1])]
    assert forward.index("lin2017focal") + 1 == forward.index("lin2017fpn")


# Published where no DOI or arXiv number exists (NeurIPS, JMLR and AISTATS proceedings).
WITHOUT_IDENTIFIER = {"krizhevsky2012", "vandermaaten2008", "bromley1993", "sohn2016", "glorot2010"}


def test_every_reference_links_to_its_paper_where_it_can():
    entries = parse_file(ROOT / "references.bib").entries
    missing = {key for key, entry in entries.items() if not {"doi", "eprint"} & set(entry.fields)}
    assert missing == WITHOUT_IDENTIFIER
