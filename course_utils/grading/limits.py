"""The grader's size limits, in one place, and the one way it shortens what a student's code produced.

Imported by the student's kernel too (through :mod:`course_utils.grading.wire`): standard library only.
"""

from __future__ import annotations

MAX_SUBMISSION_BYTES = 20 << 20
"""The largest submission file read (a notebook with its figures is rarely above 5 MB)."""
MAX_CELL_CHARS = 250_000
"""The longest code cell parsed: parsing takes about 600 bytes of memory a character (a 20 MB cell took 12 GiB)."""
MAX_CODE_CHARS = 1_000_000
"""The most code, all cells together, parsed for one submission (a few seconds and a few hundred MB at most)."""
MAX_REPLY_BYTES = 1 << 30
"""The largest file of a reply the judge reads from the kernel."""
OUTPUT_CHARS = 200_000
"""Characters of output (text and figures) kept per cell, as it runs: all the stored notebook holds of it (a student
may print gigabytes)."""

DETAIL_CHARS = 300
"""A value quoted inside a message (an exception's text, what could not be passed)."""
MESSAGE_CHARS = 600
"""A check's failure message, as the student's feedback shows it."""
ERROR_CHARS = 2_000
"""An error raised in the kernel, as it crosses to the judge."""


def shorten(text, limit: int = DETAIL_CHARS) -> str:
    """``text`` as a string of at most ``limit`` characters, ending in "..." when it was cut."""
    text = str(text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
