"""bench/run.py's seed sweep: per-seed records, worst seed, mean and spread, broken claims, reruns."""

import importlib.util
import json

import nbformat
import pytest

from course_utils import claims


@pytest.fixture
def bench(root, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_run", root / "bench" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(
        run,
        "record",
        lambda name, value, unit, profile=None: {"name": name, "value": value, "unit": unit, "profile": profile},
    )
    return run


def fake_chapter(run, tmp_path, accuracy_by_seed, broken=()):
    """Stand in for executing a chapter: write the notebook its records would be read from."""

    def execute(name, profile="cpu", parameters=None, keep_as=None):
        seed = parameters["SEED"]
        outputs = [
            nbformat.v4.new_output(
                "display_data",
                data={claims.MIME: json.dumps(accuracy_by_seed[seed])},
                metadata={"scrapbook": {"name": "week9.accuracy"}},
            )
        ]
        if seed in broken:
            outputs.append(
                nbformat.v4.new_output(
                    "display_data",
                    data={claims.MIME: json.dumps("week9.accuracy = 0.5, but the text says ...")},
                    metadata={"scrapbook": {"name": claims.FAILED_PREFIX + "week9.accuracy"}},
                )
            )
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=outputs)])
        path = tmp_path / "_build" / "bench" / f"{keep_as}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
        return 1.0

    run.execute_chapter = execute


def test_sweep_records_every_seed_and_the_worst_mean_and_spread(bench, tmp_path):
    fake_chapter(bench, tmp_path, {0: 0.9, 1: 0.8, 2: 0.95}, broken={1})
    records = {
        r["name"]: r["value"]
        for r in bench.sweep("week9", "week9", {"week9.accuracy": "fraction"}, seeds=[0, 1, 2], log=lambda m: None)
    }
    assert [records[f"week9.accuracy.seed{k}"] for k in range(3)] == [0.9, 0.8, 0.95]
    assert records["week9.accuracy.worst_seed"] == 0.8
    assert records["week9.accuracy.mean"] == pytest.approx(0.8833, abs=1e-4)
    assert records["week9.accuracy.spread"] == pytest.approx(0.15)
    assert records["week9.claims_failed.seed1"] == ["week9.accuracy"] and records["week9.claims_failed.seed0"] == []
    assert records["week9.chapter.failed_seeds"] == []
    # Each seed was stored as soon as it finished.
    stored = {r["name"] for r in json.loads(bench.RESULTS.read_text())}
    assert {"week9.accuracy.seed0", "week9.accuracy.seed2"} <= stored


def test_rerunning_one_seed_keeps_the_others_in_the_summary(bench, tmp_path):
    fake_chapter(bench, tmp_path, {0: 0.9, 1: 0.8, 2: 0.95, 3: 0.9, 4: 0.9})
    bench.merge(
        bench.sweep("week9", "week9", {"week9.accuracy": "fraction"}, seeds=[0, 1, 2, 3, 4], log=lambda m: None)
    )
    fake_chapter(bench, tmp_path, {1: 0.97})
    records = {
        r["name"]: r["value"]
        for r in bench.sweep("week9", "week9", {"week9.accuracy": "fraction"}, seeds=[1], log=lambda m: None)
    }
    assert records["week9.accuracy.worst_seed"] == 0.9 and records["week9.accuracy.seed1"] == 0.97
