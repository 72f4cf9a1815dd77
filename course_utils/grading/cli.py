"""The grader's command line and the run it drives: every new or changed submission of a folder, then the reports."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from tqdm import tqdm

from course_utils import grading
from course_utils.grading import judge, sandbox, withheld
from course_utils.grading.exercise import GradingError, Week, load_week
from course_utils.grading.reports import load_results, read_json, result_key, student_names, write_json, write_reports
from course_utils.grading.submission import Refused, failed_result, grade_file, read_submission, submission_files
from course_utils.grading.workers import Settings, WorkerPool, _kill_marked, _running, _running_lock

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def grade(
    week_name: str,
    submissions: Path,
    out: Path,
    *,
    root: Path | None = None,
    solutions: Path | None = None,
    workers: int = 1,
    force: bool = False,
    settings: Settings | None = None,
    progress: bool = True,
) -> Path:
    """Grade every new or changed submission of a folder, then rewrite the gradebook; return its path.

    ``solutions``: a folder with the week's solution file to grade from instead of the repository's
    ``solutions/`` (a private copy, whose hidden tests students have not seen)."""
    root = Path(root or Path.cwd())
    settings = settings or Settings()
    week = load_week(root, week_name, solutions)
    if settings.isolate and (reason := sandbox.unavailable()):
        raise GradingError(
            f"cannot confine the submissions: {reason}. The grader runs students' code; to run it "
            "unconfined, with your permissions, pass --no-isolation (only inside a throwaway "
            "virtual machine or container, or for code you trust)."
        )
    files = submission_files(submissions)
    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    private = (root, week.path.parent, PACKAGE_DIR.parent, submissions, out)
    settings = dataclasses.replace(settings, hide=tuple(settings.hide) + tuple(Path(p).resolve() for p in private))
    _refuse_other_weeks(out, week)
    # A student keeps the name given at their first grading, whatever files come later.
    known = {r["file"]: r["student"] for r in load_results(out, week) if r.get("student")}
    known.update(student_names([p.name for p in files if p.name not in known], set(known.values())))
    todo = [path for path in files if force or not _graded_already(path, week, settings, results_dir)]
    bar = tqdm(
        total=len(files),
        initial=len(files) - len(todo),
        desc=f"grading {week.name}",
        unit="notebook",
        disable=not progress,
    )
    try:
        with _without_references(week, settings) as settings:
            _grade_in_parallel(week, todo, settings, workers, known, results_dir, bar.update)
    finally:
        bar.close()
        write_reports(out, week)
    return out / "gradebook.csv"


@contextlib.contextmanager
def _without_references(week: Week, settings: Settings):
    """``settings`` whose kernels import the week's copy of the package without the references of its blanks
    (:mod:`course_utils.grading.withheld`), made once for the run and removed after it."""
    folder = Path(tempfile.mkdtemp(prefix="grading-package-"))
    try:
        yield dataclasses.replace(settings, package=withheld.stripped_copy(week.name, folder))
    finally:
        if problem := sandbox.remove_tree(folder):
            print(f"warning: the grader could not remove its copy of the package: {problem}", file=sys.stderr)


def _refuse_other_weeks(out: Path, week: Week) -> None:
    others = {r.get("week") for r in map(read_json, (out / "results").glob("*.json"))} - {week.name, None}
    if others:
        raise GradingError(
            f"{out} already holds grades of {', '.join(sorted(others))}; use one output folder per week."
        )


def _graded_already(path: Path, week: Week, settings: Settings, results_dir: Path) -> bool:
    """Whether the stored result is of this very file, solution and profile."""
    stored = read_json(results_dir / f"{result_key(path.name)}.json")
    try:
        digest = hashlib.sha256(read_submission(path)).hexdigest()
    except Refused:
        digest = None  # listed again as refused: nothing is run for it
    return (
        stored.get("sha256") == digest
        and stored.get("solution_sha256") == week.sha256
        and stored.get("profile") == settings.profile
    )


def _grade_in_parallel(week, todo, settings, workers, known, results_dir, done) -> None:
    """Grade ``todo`` on ``workers`` threads, each driving one worker process; store each result as it comes."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    # Each worker gets its share of the cores: threads of several workers fighting over every core are slower.
    workers_pool = WorkerPool(threads=max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0)
    try:
        futures = {pool.submit(grade_file, week, path, settings, workers_pool): path for path in todo}
        for future in concurrent.futures.as_completed(futures):
            try:
                result, executed = future.result()
            except GradingError:
                raise
            except Exception as error:  # noqa: BLE001 - the grader's failure on one file must not stop the others
                result, executed = failed_result(week, futures[future], settings, error), None
            result["student"] = known[result["file"]]
            key = result_key(result["file"])  # stored as soon as graded: an interrupted run resumes from here
            if executed is not None:
                nbformat.write(executed, results_dir / f"{key}.ipynb")
            write_json(results_dir / f"{key}.json", result)
            done(1)
        pool.shutdown()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with _running_lock:
            running = list(_running.values())
        workers_pool.close()  # interrupted: stop the workers, then the notebooks they were running
        for marker in running:
            _kill_marked(f"{judge.MARKER}={marker}")
        raise
    finally:
        workers_pool.close()


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m course_utils.grading``."""
    found = argparse.ArgumentParser(prog="python -m course_utils.grading", description=grading.__doc__.split("\n\n")[0])
    found.add_argument("week", help="the exercise: a file stem of solutions/ (week1_exercise) or a week number (1)")
    found.add_argument("submissions", type=Path, help="folder of the students' .ipynb files (one per student)")
    found.add_argument("--out", type=Path, required=True, help="output folder: gradebook.csv, feedback/, results/")
    found.add_argument("--workers", type=int, default=1, help="submissions graded in parallel (default 1)")
    found.add_argument(
        "--timeout", type=float, default=120, help="seconds one cell may run before it is interrupted (default 120)"
    )
    found.add_argument(
        "--notebook-timeout",
        type=float,
        default=None,
        help="seconds a whole submission may run before it is stopped (default 5 x --timeout)",
    )
    found.add_argument(
        "--memory", type=float, default=8, help="address-space cap per submission in GiB, 0 for none (default 8)"
    )
    found.add_argument(
        "--profile", default="cpu", choices=("smoke", "cpu", "gpu"), help="PROFILE injected into every notebook"
    )
    found.add_argument("--force", action="store_true", help="grade again the submissions already graded")
    found.add_argument(
        "--root", type=Path, default=Path.cwd(), help="repository root holding solutions/ (default: current folder)"
    )
    found.add_argument(
        "--solutions",
        type=Path,
        default=None,
        help="folder holding the solution files to grade from (a private copy; default: ROOT/solutions)",
    )
    found.add_argument(
        "--no-isolation",
        action="store_true",
        help="run submissions unconfined, with your permissions (where bubblewrap cannot run; "
        "only in a throwaway machine or container)",
    )
    return found


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(
        args.profile,
        args.timeout,
        args.notebook_timeout or 5 * args.timeout,
        args.memory,
        isolate=not args.no_isolation,
    )
    try:
        gradebook = grade(
            args.week,
            args.submissions,
            args.out,
            root=args.root.resolve(),
            solutions=args.solutions,
            workers=args.workers,
            force=args.force,
            settings=settings,
        )
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Gradebook written to {gradebook}; feedback in {args.out / 'feedback'}")
    return 0
