"""Grading speed: week 1 submissions graded per minute with 2 workers, at profile smoke and at the grader's
default, cpu (``grading.cpu``: fewer submissions, each trains for the exercise's full epochs).

Beside the smoke measurement, the same submissions run by papermill alone, two at a time, with no
grader, no sandbox and no judge: what executing the students' notebooks costs by
itself on this machine, the ceiling for any grader that executes them.

Run by ``python -m bench``; alone, ``python -m bench.bench_grading [--n 3]`` prints the records.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import tempfile
import time
from pathlib import Path

import nbformat

from bench.run import record

ROOT = Path(__file__).resolve().parents[1]


def bench_grading(n: int = 20, workers: int = 2, profile: str = "smoke"):
    """Grade ``n`` copies of a fully correct week 1 submission (each trains LeNet-5) from an empty output folder,
    at ``profile`` with the grader's default time limits."""
    from course_utils.grading import cli, submission
    from course_utils.grading.workers import Settings

    with tempfile.TemporaryDirectory() as folder:
        submissions, out = Path(folder) / "submissions", Path(folder) / "out"
        submissions.mkdir()
        text = nbformat.writes(submission.model_submission(ROOT, "week1_exercise"))
        for i in range(n):
            (submissions / f"student {i:02d}.ipynb").write_text(text)
        settings = Settings(profile=profile)
        start = time.perf_counter()
        cli.grade("week1_exercise", submissions, out, root=ROOT, workers=workers, settings=settings)
        minutes = (time.perf_counter() - start) / 60
        with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    wrong = [r for r in rows if r["total"] != r["max"]]
    if len(rows) != n or wrong:
        raise RuntimeError(f"the benchmark's correct submissions were not all given full marks: {wrong}")
    name = "grading.submissions_per_minute" if profile == "smoke" else f"grading.{profile}.submissions_per_minute"
    return [record(name, round(n / minutes, 2), "submissions/min", profile)]


def bench_notebooks_alone(n: int = 20, workers: int = 2):
    """The correct week 1 submission executed ``n`` times by papermill at profile smoke, ``workers`` at a time."""
    import papermill

    from course_utils.grading import submission

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "submission.ipynb"
        nbformat.write(submission.model_submission(ROOT, "week1_exercise"), source)

        def execute(i):
            work = Path(folder) / f"run{i:02d}"
            work.mkdir()
            papermill.execute_notebook(
                str(source),
                str(work / "executed.ipynb"),
                parameters={"PROFILE": "smoke"},
                cwd=str(work),
                kernel_name="python3",
                progress_bar=False,
            )

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(execute, range(n)))
        minutes = (time.perf_counter() - start) / 60
    return [record("grading.notebooks_alone_per_minute", round(n / minutes, 2), "notebooks/min", "smoke")]


def bench_grading_against_papermill(n: int = 20, workers: int = 2):
    """Both measurements in one run, papermill alone first, and the grader's share of papermill's rate (the
    target: at least 0.9)."""
    alone = bench_notebooks_alone(n, workers)
    graded = bench_grading(n, workers)
    ratio = round(graded[0]["value"] / alone[0]["value"], 3)
    return alone + graded + [record("grading.ratio_to_notebooks_alone", ratio, "ratio", "smoke")]


def bench_grading_at_cpu(n: int = 4, workers: int = 2):
    """What an instructor's default run costs: ``n`` correct week 1 submissions graded at profile cpu."""
    return bench_grading(n, workers, profile="cpu")


BENCHMARKS = {"grading": bench_grading_against_papermill, "grading.cpu": bench_grading_at_cpu}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(bench_grading_against_papermill(args.n, args.workers))
