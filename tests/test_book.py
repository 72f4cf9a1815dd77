"""The rendered book: every page written, the week 1 chapter with its figures and results."""

import re

import jupytext

# A line that makes a figure: `fig = ...` or `fig, axes = ...`.
FIGURE_LINE = re.compile(r"^\s*fig(, \w+)? = ", re.MULTILINE)
NUMREF = re.compile(r"\{numref\}`([^`]+)`")


def test_book_has_every_page_of_the_table_of_contents(built_book, root):
    from course_utils.build import toc_files

    html = built_book / "html"
    for doc in toc_files(root):
        assert (html / f"{doc}.html").exists(), f"{doc}.html was not written"
    assert (html / "index.html").exists()


def test_week1_page_shows_figures_and_printed_results(built_book):
    page = (built_book / "html" / "book" / "week1_cnn_basics.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]*\.png\"", page)) >= 10
    assert "61,706" in page and "[[19. 25.]" in page
    assert "Traceback" not in page and "NotImplementedError" not in page


def figure_options(root):
    """(chapter, cell source, MyST-NB figure options or None) of every code cell of the chapters, and every
    figure name their text cites with {numref}."""
    cells, cited = [], set()
    for path in sorted((root / "book").glob("week*.py")):
        for cell in jupytext.read(path).cells:
            if cell.cell_type == "markdown":
                cited |= set(NUMREF.findall(cell.source))
            else:
                cells.append((path.stem, cell.source, cell.metadata.get("mystnb", {}).get("figure")))
    return cells, cited


def test_every_figure_of_a_chapter_has_a_number_and_a_caption(root):
    """A cell that draws one figure carries MyST-NB's figure options: a name the text cites it by (its number on
    the page) and a caption. A cell that draws several cannot share one name among them, so it has none."""
    cells, cited = figure_options(root)
    names = []
    for chapter, source, figure in cells:
        drawn = len(FIGURE_LINE.findall(source))
        where = f"{chapter}, the cell starting {source[:60]!r}"
        if drawn == 1:
            assert figure and figure.get("caption"), f"{where}: a figure without a caption"
            assert str(figure.get("name", "")).startswith("fig-"), f"{where}: a figure without a fig- name"
            names.append(figure["name"])
        else:
            assert figure is None, f"{where} draws {drawn} figures: one name cannot label them all"
    assert len(names) == len(set(names)), "two figures share a name"
    assert cited <= set(names), f"the text cites figures no cell draws: {cited - set(names)}"
    assert len(cited) >= 10, "the text should refer to its figures by number"


def test_figures_are_numbered_and_cited_by_number_on_the_page(built_book):
    page = (built_book / "html" / "book" / "week4_segmentation.html").read_text()
    numbers = re.findall(r'<span class="caption-number">Fig\. (\d+) </span>', page)
    # Numbered through the book, in the order of the pages and of the figures on each.
    first = int(numbers[0]) if numbers else 0
    assert numbers and numbers == [str(n) for n in range(first, first + len(numbers))], numbers
    assert re.search(r'<a class="reference internal" href="#fig-w4-worst"><span class="std std-numref">Fig\. \d+', page)


def colab_links(page: str) -> set[str]:
    return set(re.findall(r'href="(https://colab\.research\.google\.com/github/[^"]+)"', page))


def test_the_badge_and_the_launch_button_of_every_notebook_page_open_one_url(built_book, root):
    """Both name _config.yml's repository.branch (main here): a Colab reader gets the notebook of the page."""
    from course_utils.build import colab_url, revision, toc_files

    assert revision(root) == "main"  # only a release's own commit names its tag (CONTRIBUTING, "Making a release")
    notebooks = [doc for doc in toc_files(root) if not (root / f"{doc}.md").exists()]
    assert len(notebooks) == 10
    for doc in notebooks:
        page = (built_book / "html" / f"{doc}.html").read_text()
        badge = re.findall(r'<a [^>]*href="([^"]+)"[^>]*><img [^>]*alt="Open In Colab"', page)
        launch = re.findall(r'<a href="(https://colab[^"]+)"[^>]*title="Launch on Colab"', page)
        assert badge and launch, f"{doc}: badge {badge}, launch button {launch}"
        assert colab_links(page) == {colab_url(root, f"{doc}.ipynb")}, f"{doc}: {colab_links(page)}"


def test_pages_offer_to_edit_their_source_and_to_open_an_issue(built_book):
    """The edit button opens what to edit: a chapter's book/X.py, an exercise's solutions/X.py, a page's .md."""
    repo = "https://github.com/cnn-images-course/cnn-course"
    for doc, source in [
        ("book/week1_cnn_basics", "book/week1_cnn_basics.py"),
        ("exercises/week1_exercise", "solutions/week1_exercise.py"),
        ("book/own_images", "book/own_images.md"),
    ]:
        page = (built_book / "html" / f"{doc}.html").read_text()
        assert f'href="{repo}/edit/main/{source}"' in page, doc
        assert f'href="{repo}/issues/new?title=Issue%20on%20page%20%2F{doc}.html' in page, doc


def test_exercise_page_is_published_without_solutions(built_book):
    page = (built_book / "html" / "exercises" / "week1_exercise.html").read_text()
    assert "not filled in yet" in page
    assert "BEGIN SOLUTION" not in page and "tensordot" not in page


def test_a_failing_cell_fails_the_build_and_names_the_error(root, tmp_path):
    import shutil

    import papermill
    import pytest

    from course_utils.build import build_book

    for name in ("_config.yml", "pyproject.toml", "references.bib"):
        shutil.copy2(root / name, tmp_path / name)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/broken\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "broken.py").write_text(
        '# %% [markdown]\n# # Broken\n\n# %% tags=["parameters"]\nPROFILE = None\n\n'
        '# %%\nraise RuntimeError("this chapter is broken")\n'
    )
    with pytest.raises(papermill.PapermillExecutionError, match="this chapter is broken"):
        build_book(tmp_path, "smoke", build_dir=tmp_path / "_build", log=lambda message: None)
    assert not (tmp_path / "_build" / "html").exists()


def test_the_glossary_fills_the_index_and_references_link_to_their_papers(built_book):
    index = (built_book / "html" / "genindex.html").read_text(encoding="utf-8")
    assert "Receptive field" in index and "Transposed convolution" in index
    references = (built_book / "html" / "book" / "references.html").read_text(encoding="utf-8")
    assert "https://doi.org/10.1109/CVPR.2016.90" in references and "https://arxiv.org/abs/1512.03385" in references
