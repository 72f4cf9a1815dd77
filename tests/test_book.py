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
