"""A Sphinx extension for the book: author-year labels in the bibliography, and no duplicated <script> tags.

Author-year labels. sphinxcontrib-bibtex cites in the text by author and year
(``bibtex_reference_style: author_year``), but labels the bibliography with
the style named by ``bibtex_default_style``, "alpha" by default, whose labels
("LGG+17") match nothing in the text and break on LaTeX accents. This module
registers a pybtex formatting style, ``author_year`` (pybtex's "unsrt"
entries, sorted by authors and year, labelled "Lin et al., 2017a"), and a
referencing style, ``author_year_suffix``, that cites with the same labels, so
two papers by the same authors in the same year get "2017a" and "2017b" in the
text as in the bibliography. ``_config.yml`` selects both.

Phone-width pages. A long inline code name (a record such as
``week1.ablation.small_convnet_gain_points``, a file path) cannot break, so at
400 px it made the whole page scroll sideways; :data:`PAGE_STYLE` lets it wrap.

Duplicated scripts. sphinx-thebe adds its inline configuration script each time
Sphinx reads the documents, and sphinxcontrib-bibtex makes Sphinx read them
twice, so pages got the script twice and browsers raised "THEBE_JS_URL has
already been declared".
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from sphinxcontrib.bibtex.plugin import register_plugin as register_referencing_plugin
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
from sphinxcontrib.bibtex.style.template import join, join2, node, post_text, pre_text, reference

# ---------------------------------------------------------------- the bibliography


def _last_names(entry) -> list[str]:
    """The authors' (or editors') last names, with their "van der" parts, as plain text."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    return [
        " ".join(str(Text.from_latex(part)) for part in person.prelast_names + person.last_names) for person in persons
    ]


def author_year_label(entry) -> str:
    """ "LeCun et al., 1998", "Dalal and Triggs, 2005", "Sohn, 2016": names as the in-text citations write them."""
    names = _last_names(entry)
    if not names:
        authors = str(Text.from_latex(entry.fields.get("title", entry.key)))
    elif len(names) == 1:
        authors = names[0]
    elif len(names) == 2:
        authors = f"{names[0]} and {names[1]}"
    else:
        authors = f"{names[0]} et al."
    return f"{authors}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Author-year labels; labels that would be equal get "a", "b", ... in the order of the entries."""

    def format_labels(self, sorted_entries):
        labels = [author_year_label(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + string.ascii_lowercase[seen[label]]
                seen[label] += 1


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sort by the label ("Lin et al., 2017"), then by citation key, whatever order the pages cite them in.

    The citation key decides which of two equal labels gets "a": lin2017focal before lin2017fpn.
    """

    def sorting_key(self, entry):
        authors, _, year = author_year_label(entry).rpartition(", ")
        return authors.casefold(), year, entry.key


class AuthorYearStyle(UnsrtStyle):
    """pybtex's "unsrt" entries, sorted by authors and year, with author-year labels."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = AuthorYearSortingStyle


# ------------------------------------------------------------- the citations in the text


@node
def label_year(children, data):
    """The year part of the entry's bibliography label: "2017a" of "Lin et al., 2017a"."""
    assert not children
    return Text(data["formatted_entry"].label.rpartition(", ")[2])


@dataclasses.dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name):
        author = self.person.author_or_editor_or_title(full="s" in role_name)
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text, reference[join(sep=self.author_year_sep)[author, label_year]], post_text
        ]


@dataclasses.dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[pre_text, reference[label_year], post_text],
                self.bracket.right,
            ],
        ]


@dataclasses.dataclass
class _Year(ExtraYearReferenceStyle):
    def inner(self, role_name):
        return reference[label_year]


_WITH_SUFFIX = {
    BasicAuthorYearParentheticalReferenceStyle: _Parenthetical,
    BasicAuthorYearTextualReferenceStyle: _Textual,
    ExtraYearReferenceStyle: _Year,
}


@dataclasses.dataclass
class AuthorYearSuffixReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author-year citations, with the year (and its "a"/"b") taken from the label."""

    def __post_init__(self):
        super().__post_init__()
        for role, style in self.role_style.items():
            swap = _WITH_SUFFIX.get(type(style))
            if swap is not None:
                self.role_style[role] = swap(
                    **{f.name: getattr(style, f.name) for f in dataclasses.fields(style) if f.init}
                )


# ------------------------------------------------------------------- duplicated scripts


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # The two copies differ only in an empty file name: None in one, "" in the other.
        filename = getattr(script, "filename", script) or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


# ---------------------------------------------------------------------- page style

PAGE_STYLE = (
    "<style>.bd-article code.literal span.pre { white-space: pre-wrap; overflow-wrap: anywhere; }"
    " .bd-article img { height: auto !important; }"
    " .bd-article div.cell pre { font-size: 0.8125rem; }"
    " .bd-article div.cell_output pre { white-space: pre-wrap; overflow-wrap: anywhere; }"
    " @media (max-width: 600px) { .bd-article div.cell_output { overflow-x: auto; }"
    " .bd-article div.cell_output img { max-width: none !important; } }</style>"
)
"""Inline code in the text may break anywhere rather than widen a narrow page. Code cells and their outputs
are set at 13 px, where the page's code column holds the 80 columns the sources are formatted to (at the
theme's 14 px it holds 77); a printed line longer than that wraps, as in Jupyter (tables are printed to fit).
On a phone a cell's figure keeps its display size and scrolls sideways inside its cell: shrunk to 400 px, its
9-pt labels would read as 5 pt. Any other image narrowed to the page keeps its proportions (the 2x figures
carry their display width and height)."""


def _add_page_style(app, pagename, templatename, context, doctree):
    context["metatags"] = context.get("metatags", "") + PAGE_STYLE


def setup(app):
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle, force=True)
    register_referencing_plugin(
        "sphinxcontrib.bibtex.style.referencing", "author_year_suffix", AuthorYearSuffixReferenceStyle, force=True
    )
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.connect("html-page-context", _add_page_style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
