"""Measure the course's speed and quality targets and merge them into bench/results.json.

Usage, from the repository root: ``python -m bench [--only PREFIX ...] [--seeds K ...]`` (or ``make bench``).
Every value is measured here; each record says on which machine, on which date and on which commit.

The benchmarks of the core and week 1 are below; a chapter adds its own in
``bench/bench_<topic>.py``, a module with a ``BENCHMARKS`` dict of
``name prefix -> function returning a list of records`` (made with :func:`record`).
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_utils.config import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"


def commit() -> str:
    """The commit being measured, with ``+changes`` when the work tree (``bench/results.json`` aside) differs from
    it, so that the record is not that commit's; ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(  # the results file itself changes as a run records: it does not count
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results.json"],
            cwd=ROOT,
            capture_output=True,
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def record(name, value, unit, profile=None):
    """One result; ``load`` is the 1-minute load average when it was taken (other work slows timings)."""
    load = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "profile": profile,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "commit": commit(),
        "load": load,
    }


def bench_week1(seeds=None):
    """The week 1 chapter at profile cpu over five run seeds: LeNet-5's test accuracy with augmentation (the
    headline, target >= 0.97 on the worst seed) and without, the chapter's time, the gradient checks of the
    NumPy backward passes (their worst is the largest error), the checks before training (initial loss, one batch,
    the learning rates the range test suggests), LeNet-5 trained with SGD beside Adam, and the ablation from
    LeNet-5 to a modern small CNN."""
    return sweep(
        "week1_cnn_basics",
        "week1",
        {
            "week1.lenet5_augmented.test_accuracy": "fraction",
            "week1.lenet5.test_accuracy": "fraction",
            "week1.lenet5.train_seconds": "s",
            "week1.gradcheck.max_relative_error": "ratio",
            "week1.gradcheck.tape_max_abs_error": "absolute",
            "week1.diagnostics.initial_loss": "cross-entropy",
            "week1.diagnostics.one_batch_last_loss": "cross-entropy",
            "week1.diagnostics.suggested_rate_adam": "learning rate",
            "week1.diagnostics.suggested_rate_sgd": "learning rate",
            "week1.diagnostics.sgd_over_adam_rate": "ratio",
            "week1.optimisers.sgd_adam_rate_over_adam_loss_epoch3": "ratio",
            "week1.optimisers.sgd_adam_rate_minus_adam_points": "points",
            "week1.optimisers.sgd_suggested_rate_minus_adam_points": "points",
            **{
                f"week1.optimisers.{run}.{what}": unit
                for run in ("adam", "sgd_adam_rate", "sgd_suggested_rate")
                for what, unit in (("loss_epoch3", "cross-entropy"), ("test_accuracy", "fraction"))
            },
            "week1.kernels.outline_ratio.laplacian4": "ratio (on the outline / off it)",
            "week1.kernels.outline_ratio.laplacian8": "ratio (on the outline / off it)",
            "week1.ablation.lenet5_relu": "fraction",
            "week1.ablation.lenet5_max_pooling": "fraction",
            "week1.ablation.lenet5_dropout": "fraction",
            "week1.ablation.lenet5_all_three": "fraction",
            "week1.ablation.small_convnet": "fraction",
            "week1.ablation.all_three_gain_points": "points",
            "week1.ablation.small_convnet_gain_points": "points",
            "week1.ablation.max_pooling_gain_points": "points",
            "week1.ablation.relu_gain_points": "points",
            "week1.ablation.dropout_gain_points": "points",
            "week1.residual.plain_accuracy": "fraction",
            "week1.residual.residual_accuracy": "fraction",
            "week1.residual.plain_he_accuracy": "fraction",
            "week1.residual.residual_lead": "accuracy (residual - plain)",
            "week1.residual.plain_gradient_ratio_init": "ratio",
            "week1.residual.residual_gradient_ratio_init": "ratio",
            "week1.residual.plain_he_gradient_ratio_init": "ratio",
            "week1.residual.plain_gradient_ratio_trained": "ratio",
            "week1.residual.residual_gradient_ratio_trained": "ratio",
            "week1.residual.plain_he_gradient_ratio_trained": "ratio",
            "week1.residual.train_seconds": "s",
        },
        seeds=seeds,
        worst={"week1.gradcheck.max_relative_error": "max", "week1.gradcheck.tape_max_abs_error": "max"},
    )


def bench_scenes():
    """Synthetic scenes generated per second on one core, at 64x64 and 128x128."""
    code = (
        "import time; from course_utils.scenes import make_scenes\n"
        "make_scenes(64, size={size}, seed=0)\n"
        "start = time.perf_counter(); make_scenes({n}, size={size}, seed=1)\n"
        "print({n} / (time.perf_counter() - start))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    records = []
    for size, n in [(64, 4000), (128, 1000)]:
        # taskset pins the process to one core where the platform has it.
        prefix = ["taskset", "-c", "0"] if Path("/usr/bin/taskset").exists() else []
        out = subprocess.run(
            prefix + [sys.executable, "-c", code.format(size=size, n=n)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        records.append(
            record(f"data.scenes.images_per_second_{size}", round(float(out.strip().splitlines()[-1])), "images/s")
        )
    return records


# What a Colab runtime already ships (its TensorFlow stack and the scientific
# Python basics); everything else course_utils needs is downloaded on install.
COLAB_PREINSTALLED = {
    "tensorflow",
    "keras",
    "tensorboard",
    "tensorflow-datasets",
    "numpy",
    "scipy",
    "scikit-learn",
    "scikit-image",
    "matplotlib",
    "pillow",
    "tqdm",
    "pandas",
    "requests",
    "pyyaml",
}


def bench_colab():
    """Megabytes a Colab user downloads to install course_utils: its wheel plus the dependencies Colab lacks."""
    import re
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = [d for d in dependencies if re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() not in COLAB_PREINSTALLED]
    with tempfile.TemporaryDirectory() as folder:
        pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
        subprocess.run(pip + ["wheel", "--no-deps", "-w", folder, str(ROOT)], check=True, capture_output=True)
        if missing:
            subprocess.run(
                pip + ["download", "--no-deps", "--only-binary=:all:", "-d", folder, *missing],
                check=True,
                capture_output=True,
            )
        total = sum(f.stat().st_size for f in Path(folder).iterdir())
    return [record("colab.install_megabytes", round(total / 2**20, 2), "MB")]


def bench_tests():
    """Wall time of the README's test command once the environment exists (install excluded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT, check=True)
    return [record("tests.seconds", round(time.perf_counter() - start), "s", "smoke")]


BENCHMARKS = {"week1": bench_week1, "data.scenes": bench_scenes, "colab": bench_colab}


def all_benchmarks():
    """The benchmarks above, those of every ``bench/bench_*.py``, and the test suite's time last."""
    import importlib

    found = dict(BENCHMARKS)
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        found.update(importlib.import_module(f"bench.{path.stem}").BENCHMARKS)
    found["tests"] = bench_tests
    return found


def execute_chapter(
    name: str, profile: str = "cpu", parameters: dict | None = None, keep_as: str | None = None, strict: bool = True
):
    """Seconds of a papermill execution of ``book/<name>`` at ``profile``, as the book build runs it.

    ``parameters`` sets further variables of the chapter's parameters cell. The
    executed notebook is kept as ``_build/bench/<keep_as or name>.ipynb``, so the
    numbers behind a benchmark can be read afterwards. ``strict=False`` runs it as
    a reader's build: a claim the run breaks is listed on the page, not raised.
    """
    from course_utils.build import execute, generated_files

    notebook = ROOT / "_build" / "bench" / f"{keep_as or name}.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(generated_files(ROOT)[Path(f"book/{name}.ipynb")])
    return execute(notebook, profile, parameters=parameters, strict=strict)


SEEDS = (0, 1, 2, 3, 4)
"""The run seeds every chapter is benchmarked with (the ``SEED`` parameter; 0 is the book's); ``--seeds`` runs
others (seeds beyond these test the claims on runs their ranges were not set from)."""


def sweep(chapter: str, prefix: str, units: dict, seeds=None, worst=None, parameters: dict | None = None, log=print):
    """Execute ``book/<chapter>`` at profile cpu once per run seed and record what it recorded, per seed and overall.

    ``units`` maps the names the chapter stores with ``claims.record`` to their
    units. For each name: ``<name>.seed<k>`` per seed, then ``.worst_seed``,
    ``.mean`` and ``.spread`` (largest minus smallest) over the seeds. The worst
    of a time is its maximum, of anything else its minimum (``worst`` overrides,
    name -> "max"/"min"). Also ``<prefix>.chapter.seconds`` per seed and worst,
    ``<prefix>.claims_failed.seed<k>``: the claims of the text that run k broke
    (they are listed, not raised, so that every run measures everything), and
    ``<prefix>.chapter.failed_seeds``: seeds whose execution raised; what they
    recorded before failing counts.
    Rerunning some ``seeds`` keeps the other seeds' earlier records in the summary.
    """
    seeds = SEEDS if seeds is None else seeds
    units = {**units, f"{prefix}.chapter.seconds": "s"}
    values, failed, records = {name: {} for name in units}, [], []
    for seed in seeds:
        found, broken, raised = _run_seed(chapter, seed, parameters, log)
        failed += [seed] if raised else []
        values[f"{prefix}.chapter.seconds"][seed] = found.pop("seconds")
        for name in units:
            if name in found:
                values[name][seed] = found[name]
        log(
            f"  seed {seed}: {values[f'{prefix}.chapter.seconds'][seed]:.0f} s, "
            + ", ".join(f"{n} {values[n].get(seed)}" for n in units)
        )
        seed_records = [
            record(f"{name}.seed{seed}", values[name][seed], unit, "cpu")
            for name, unit in units.items()
            if seed in values[name]
        ]
        seed_records.append(record(f"{prefix}.claims_failed.seed{seed}", broken, "claims", "cpu"))
        merge(seed_records)  # stored at once, so that an interrupted sweep keeps the seeds it finished
        records += seed_records
    earlier = {r["name"]: r["value"] for r in json.loads(RESULTS.read_text())} if RESULTS.exists() else {}
    for name, unit in units.items():
        records += _summary(name, unit, values[name], earlier, worst or {})
    rerun_ok = set(seeds) - set(failed)
    failed = sorted(set(failed) | {s for s in earlier.get(f"{prefix}.chapter.failed_seeds", []) if s not in rerun_ok})
    records.append(record(f"{prefix}.chapter.failed_seeds", failed, "seeds", "cpu"))
    return records


def _run_seed(chapter: str, seed: int, parameters: dict | None, log) -> tuple[dict, list, bool]:
    """Execute the chapter at run seed ``seed``: (what it recorded, with its ``seconds``; the claims it broke;
    whether its execution raised)."""
    import papermill

    from course_utils import claims

    keep_as, raised = f"{chapter}_seed{seed}", False
    start = time.perf_counter()
    try:
        os.environ[claims.REPORT_ONLY] = "1"  # the kernel inherits it: a broken claim is listed, not raised
        execute_chapter(chapter, "cpu", parameters={**(parameters or {}), "SEED": seed}, keep_as=keep_as)
    except (papermill.PapermillExecutionError, RuntimeError) as error:
        raised = True
        log(
            f"  seed {seed}: the chapter failed: {getattr(error, 'ename', type(error).__name__)}: "
            f"{getattr(error, 'evalue', error)}"
        )
    finally:
        os.environ.pop(claims.REPORT_ONLY, None)
    seconds = round(time.perf_counter() - start, 1)
    found = claims.read_records(ROOT / "_build" / "bench" / f"{keep_as}.ipynb")
    broken = sorted(k[len(claims.FAILED_PREFIX) :] for k in found if k.startswith(claims.FAILED_PREFIX))
    for name in broken:
        log(f"  seed {seed}: {found[claims.FAILED_PREFIX + name]}")
    return {**found, "seconds": seconds}, broken, raised


def _summary(name: str, unit: str, per_seed: dict, earlier: dict, worst: dict) -> list[dict]:
    """The worst, mean and spread of one value over these seeds and every other seed recorded earlier (seeds
    beyond the benchmark's five included)."""
    import numpy as np

    per_seed = dict(per_seed)
    prefix = f"{name}.seed"  # a rerun of some seeds keeps every other seed's earlier value in the summary
    for key, value in earlier.items():
        if key.startswith(prefix) and key[len(prefix) :].isdigit() and int(key[len(prefix) :]) not in per_seed:
            per_seed[int(key[len(prefix) :])] = value
    if not per_seed:
        return []
    numbers = np.array(list(per_seed.values()), float)
    pick = worst.get(name, "max" if unit == "s" else "min")
    return [
        record(f"{name}.worst_seed", significant(getattr(numbers, pick)()), unit, "cpu"),
        record(f"{name}.mean", significant(numbers.mean()), unit, "cpu"),
        record(f"{name}.spread", significant(numbers.max() - numbers.min()), unit, "cpu"),
    ]


def significant(value, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits: a gradient check's 2.4e-11 stays 2.4e-11, not 0.0."""
    return float(f"{float(value):.{digits}g}")


def merge(new_records, path=None):
    """Replace the records of the same name in ``path`` (default: bench/results.json), keep the others, sort by name."""
    path = path or RESULTS
    old = json.loads(path.read_text()) if path.exists() else []
    names = {r["name"] for r in new_records}
    merged = sorted([r for r in old if r["name"] not in names] + new_records, key=lambda r: r["name"])
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="benchmark name prefixes to run (default: all)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=None,
        help=f"run seeds of the chapter sweeps (default: {' '.join(map(str, SEEDS))})",
    )
    args = parser.parse_args(argv)
    for name, bench in all_benchmarks().items():
        if args.only and not any(name.startswith(p) or p.startswith(name) for p in args.only):
            continue
        print(f"running {name} ...", flush=True)
        sweeps = "seeds" in inspect.signature(bench).parameters  # the chapter sweeps take the run seeds
        records = bench(seeds=args.seeds) if sweeps else bench()
        merge(records)
        for r in records:
            print(f"  {r['name']}: {r['value']} {r['unit']}", flush=True)
