"""Measure the course's speed and quality targets and merge them into bench/results.json.

Usage: ``python bench/run.py [--only PREFIX ...]`` (or ``make bench``). Every value is
measured here; each record says on which machine and on which date.

The benchmarks of the core and week 1 are below; a chapter adds its own in
``bench/bench_<topic>.py``, a module with a ``BENCHMARKS`` dict of
``name prefix -> function returning a list of records`` (made with :func:`record`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def record(name, value, unit, profile=None):
    """One result; ``load`` is the 1-minute load average when it was taken (other work slows timings)."""
    load = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    return {"name": name, "value": value, "unit": unit, "profile": profile,
            "date": datetime.date.today().isoformat(), "machine": machine(), "load": load}


def bench_lenet5():
    """LeNet-5 trained on the digits with the chapter's recipe at profile cpu."""
    import numpy as np

    from course_utils import config, data, models

    profile = config.setup("cpu", seed=42)
    digits = data.load_digits(size=32, seed=0)
    config.seed_everything(1)
    model = models.lenet5()
    # The chapter's recipe (book/week1_cnn_basics.py, section 6).
    import keras

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    _, seconds = models.fit_classifier(model, digits.x_train, digits.y_train, epochs=profile.pick(smoke=2, cpu=30, gpu=60),
                                       learning_rate=5e-3, batch_size=32, callbacks=[stop])
    accuracy = float(np.mean(model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))
    return [record("week1.lenet5.test_accuracy", round(accuracy, 4), "fraction", "cpu"),
            record("week1.lenet5.train_seconds", round(seconds, 1), "s", "cpu")]


def bench_chapter1():
    """Papermill execution of the week 1 chapter at profile cpu."""
    return [record("week1.chapter.seconds", round(execute_chapter("week1_cnn_basics"), 1), "s", "cpu")]


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
        out = subprocess.run(prefix + [sys.executable, "-c", code.format(size=size, n=n)], env=env, check=True,
                             capture_output=True, text=True).stdout
        records.append(record(f"data.scenes.images_per_second_{size}", round(float(out.strip().splitlines()[-1])), "images/s"))
    return records


# What a Colab runtime already ships (its TensorFlow stack and the scientific
# Python basics); everything else course_utils needs is downloaded on install.
COLAB_PREINSTALLED = {"tensorflow", "keras", "tensorboard", "tensorflow-datasets", "numpy", "scipy", "scikit-learn",
                      "scikit-image", "matplotlib", "pillow", "tqdm", "pandas", "requests", "pyyaml"}


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
            subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "-d", folder, *missing], check=True,
                           capture_output=True)
        total = sum(f.stat().st_size for f in Path(folder).iterdir())
    return [record("colab.install_megabytes", round(total / 2**20, 2), "MB")]


def bench_tests():
    """Wall time of the README's test command once the environment exists (install excluded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT, check=True)
    return [record("tests.seconds", round(time.perf_counter() - start), "s", "smoke")]


BENCHMARKS = {"week1.lenet5": bench_lenet5, "week1.chapter": bench_chapter1, "data.scenes": bench_scenes,
              "colab": bench_colab}


def all_benchmarks():
    """The benchmarks above, those of every ``bench/bench_*.py``, and the test suite's time last."""
    import importlib.util

    found = dict(BENCHMARKS)
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update(module.BENCHMARKS)
    found["tests"] = bench_tests
    return found


def execute_chapter(name: str, profile: str = "cpu", parameters: dict | None = None, keep_as: str | None = None):
    """Seconds of a papermill execution of ``book/<name>`` at ``profile``, as the book build runs it.

    ``parameters`` sets further variables of the chapter's parameters cell. The
    executed notebook is kept as ``_build/bench/<keep_as or name>.ipynb``, so the
    numbers behind a benchmark can be read afterwards.
    """
    from course_utils.build import execute, generated_files

    notebook = ROOT / "_build" / "bench" / f"{keep_as or name}.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(generated_files(ROOT)[Path(f"book/{name}.ipynb")])
    return execute(notebook, profile, parameters=parameters)


def printed_output(notebook, pattern: str):
    """The groups of the first match of the regular expression ``pattern`` in the printed output of ``notebook``.

    Benchmarks read a chapter's own measurements this way, so their settings live
    in the chapter only.
    """
    import re

    for cell in json.loads(Path(notebook).read_text())["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and (match := re.search(pattern, "".join(output["text"]))):
                return match.groups()
    raise ValueError(f"{notebook}: no printed output matches {pattern!r}")


def merge(new_records, path=RESULTS):
    """Replace the records of the same name, keep the others, write sorted by name."""
    old = json.loads(path.read_text()) if path.exists() else []
    names = {r["name"] for r in new_records}
    merged = sorted([r for r in old if r["name"] not in names] + new_records, key=lambda r: r["name"])
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="benchmark name prefixes to run (default: all)")
    args = parser.parse_args(argv)
    for name, bench in all_benchmarks().items():
        if args.only and not any(name.startswith(p) or p.startswith(name) for p in args.only):
            continue
        print(f"running {name} ...", flush=True)
        records = bench()
        merge(records)
        for r in records:
            print(f"  {r['name']}: {r['value']} {r['unit']}", flush=True)


if __name__ == "__main__":
    main()
