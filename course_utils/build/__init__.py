"""Maintainer tools: generate exercises and Colab notebooks, execute chapters, build the book.

Sources are jupytext py:percent files. Everything else is generated from them:

* ``exercises/<name>.py`` from ``solutions/<name>.py`` (solution blocks become a
  placeholder that raises, hidden tests are removed);
* ``book/<chapter>.ipynb`` and ``exercises/<name>.ipynb``: what "Open in Colab"
  opens, with a badge and an install cell that only acts on Colab;
* ``_build/book_src/``: the book's Sphinx source, holding every chapter executed
  by papermill at the chosen profile; Jupyter Book renders it without re-running.

Usage (from the repository root)::

    python -m course_utils.build sync            # regenerate exercises/ and the .ipynb files
    python -m course_utils.build sync --check    # fail if any generated file is stale
    python -m course_utils.build book --profile cpu   # execute, then render _build/html
    python -m course_utils.build execute --profile gpu  # only execute (CI checks the outputs with nbval)
    python -m course_utils.build html                 # only render what was executed
    python -m course_utils.build release-check v0.1.0  # may this tree be released as that tag? (release workflow)
"""

from course_utils.build.book import (
    BOOK_FILES,
    BROKEN_CLAIM_TAG,
    BUILD_SOURCE,
    QUOTE_SOURCE_TAG,
    book_page,
    broken_claims,
    build_book,
    execute,
    hide_parameters,
    note_quote_sources,
    render_html,
    stage_book,
    toc_files,
    warn_broken_claims,
)
from course_utils.build.cli import main
from course_utils.build.notebooks import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    COLAB_BADGE,
    END_HIDDEN,
    END_SOLUTION,
    LOCAL_BADGE,
    PLACEHOLDER,
    PLACEHOLDER_START,
    SOURCE_FORMAT,
    MarkerError,
    colab_install_cell,
    colab_notebook,
    colab_url,
    exercise_from_solution,
    generated_files,
    published_notebooks,
    read_source,
    release_problems,
    release_tag,
    repository,
    revision,
    solved_source,
    source_of,
    strip_solutions,
    sync,
)
