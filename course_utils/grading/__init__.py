"""Grade students' exercise notebooks against the solution's checks; write a gradebook and feedback.

Usage (from the repository root)::

    python -m course_utils.grading week1_exercise submissions/ --out grades/week1 [--workers 2] [--timeout 120]

For every file in ``submissions/`` the grader builds a *graded notebook*: the
solution's cells in order, where each answer cell (a cell of ``solutions/`` that
holds ``### BEGIN SOLUTION``) is replaced by the student's cell that matches it
and each check cell (marked ``# CHECK <question> points=<n>``) is the solution's,
hidden tests included. A worker process, the judge (:mod:`course_utils.grading.judge`,
one per ``--workers``, grading submissions in turn), runs the student's cells in
a kernel of their own, in an empty temporary folder, with a time limit per cell
and per notebook and a memory cap, and runs every check itself, in its own
process, calling the student's functions in that kernel and fetching their
values as data. A check
scores its points when the judge ran it to the end: the expected answers never
enter the student's process, and nothing printed or patched there decides a
verdict. Results are stored per submission in ``OUT/results/``, so a second run
only grades new or changed files; ``OUT/gradebook.csv`` and
``OUT/feedback/<student>.md`` are rewritten from them each time.

On Linux every submission runs confined by bubblewrap (:mod:`course_utils.grading.sandbox`):
no network, its own processes only, a read-only system in which the repository
(solutions and hidden tests included), the submissions, the output folder and
your home folder are hidden, and one writable scratch folder. Its ``course_utils``
is a copy made for the week, in which the package's own versions of what the
week's blanks ask for raise, naming the blank (:mod:`~course_utils.grading.withheld`):
the checks compare results, and ``return det.iou_matrix(a, b)`` would pass them.
Where confinement is impossible the grader refuses to start unless given
``--no-isolation``.

The package's rooms: :mod:`~course_utils.grading.exercise` (the week's solution, its
answer and check cells), :mod:`~course_utils.grading.matching` (a submission made into
the notebook the judge runs), :mod:`~course_utils.grading.workers` (the worker
processes), :mod:`~course_utils.grading.submission` (one file graded),
:mod:`~course_utils.grading.reports` (stored results, gradebook, feedback),
:mod:`~course_utils.grading.cli` (the run and its command line); inside the worker,
:mod:`~course_utils.grading.judge`, :mod:`~course_utils.grading.wire` (the judge's
exchanges with the student's kernel) and :mod:`~course_utils.grading.sandbox`;
:mod:`~course_utils.grading.source` (what a cell binds and reads) and
:mod:`~course_utils.grading.limits` are shared; :mod:`~course_utils.grading.withheld`
lists each week's withheld functions and makes the copy. This file imports nothing: the student's
kernel imports :mod:`~course_utils.grading.wire`, and only that.
"""
