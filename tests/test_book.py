"""The rendered book: every page written, the week 1 chapter with its figures and results."""

import re


def test_book_has_every_page_of_the_table_of_contents(built_book, root):
    from course_utils.build import toc_files

    html = built_book / "html"
    for doc in toc_files(root):
        assert (html / f"{doc}.html").exists(), f"{doc}.html was not written"
    assert (html / "index.html").exists()


def test_week1_page_shows_figures_printed_results_and_a_colab_link(built_book):
    page = (built_book / "html" / "book" / "week1_cnn_basics.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]*\.png\"", page)) >= 10
    assert "61,706" in page and "[[19. 25.]" in page
    assert "colab.research.google.com/github/" in page and "/blob/main/book/week1_cnn_basics.ipynb" in page
    assert "Traceback" not in page and "NotImplementedError" not in page


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
