"""Grading speed: week 1 submissions graded per minute at profile smoke with 2 workers.

Run by ``bench/run.py``; alone, ``python bench/bench_grading.py [--n 3]`` prints the record.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import nbformat
from run import record  # bench/run.py: bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]



def bench_grading(n: int = 20, workers: int = 2):
    """Grade ``n`` copies of a fully correct week 1 submission (each trains LeNet-5) from an empty output folder."""
    from course_utils import grading

    with tempfile.TemporaryDirectory() as folder:
        submissions, out = Path(folder) / "submissions", Path(folder) / "out"
        submissions.mkdir()
        text = nbformat.writes(grading.model_submission(ROOT, "week1_exercise"))
        for i in range(n):
            (submissions / f"student {i:02d}.ipynb").write_text(text)
        settings = grading.Settings(profile="smoke", cell_timeout=120, notebook_timeout=600)
        start = time.perf_counter()
        grading.grade("week1_exercise", submissions, out, root=ROOT, workers=workers, settings=settings)
        minutes = (time.perf_counter() - start) / 60
        with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    wrong = [r for r in rows if r["total"] != r["max"]]
    if len(rows) != n or wrong:
        raise RuntimeError(f"the benchmark's correct submissions were not all given full marks: {wrong}")
    return [record("grading.submissions_per_minute", round(n / minutes, 2), "submissions/min", "smoke")]


BENCHMARKS = {"grading": bench_grading}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(bench_grading(args.n, args.workers))
