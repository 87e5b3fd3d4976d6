"""Benchmark v3's cache: finished runs are never rerun, a killed parallel run's parts are folded in, and runs
distilled from another teacher are refused. Nothing here trains: the run function is replaced by a recorder."""

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def v3():
    spec = importlib.util.spec_from_file_location("benchmark_v3_under_test", os.path.join(ROOT, "benchmarks", "benchmark_v3.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the committed teacher must be there: its hash keys the cache
    return module


def finished_run(name: str, seed: int, sha: str, test: float = 0.6) -> dict:
    return {"row": name, "seed": seed, "val_final": test, "val_best": test, "test": test, "mca": test - 0.1,
            "corrupted_clean": test, "per_corruption": {"contrast": test - 0.1}, "train_seconds": 60.0, "seconds": 66.0,
            "teacher_sha": sha}


def arguments(tmp_path, results, *extra):
    return ["--dataset", str(tmp_path / "unused"), "--results", str(results), "--report_dir", str(tmp_path / "report"),
            "--work_dir", str(tmp_path / "work"), *extra]


def test_only_unfinished_runs_are_run_and_each_is_cached(v3, tmp_path, monkeypatch):
    sha = v3.teacher_sha(v3.COMMITTED_TEACHER)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({v3.config_key("KD", 0, sha): finished_run("KD", 0, sha)}))
    ran = []

    def record(args, pending, sha_, cache, path):  # stands in for the training: records what would run
        ran.extend(pending)
        for seed, name in pending:
            cache[v3.config_key(name, seed, sha_)] = finished_run(name, seed, sha_, test=0.7)
            v3.write_results(cache, path)

    monkeypatch.setattr(v3, "run_pending", record)
    assert v3.main(arguments(tmp_path, results, "--rows", "KD", "R2KD", "--seeds", "0", "1")) == 0
    assert ran == [(0, "R2KD"), (1, "KD"), (1, "R2KD")]  # KD seed 0 was finished; seed-major
    cached = json.loads(results.read_text())
    assert {(r["row"], r["seed"]) for r in cached.values()} == {("KD", 0), ("KD", 1), ("R2KD", 0), ("R2KD", 1)}
    assert cached[v3.config_key("KD", 0, sha)]["test"] == 0.6  # the finished run was kept, not replaced
    summary = json.loads((tmp_path / "report" / "benchmark_v3.json").read_text())
    (paired,) = [d for d in summary["paired_differences"] if d["a"] == "R2KD" and d["b"] == "KD" and d["metric"] == "test"]
    assert paired["seeds"] == [0, 1] and paired["positive"] == 1 and paired["mean"] == pytest.approx(0.05)
    assert "| R2KD − KD | +0.0500" in (tmp_path / "report" / "benchmark_v3.md").read_text()

    ran.clear()
    assert v3.main(arguments(tmp_path, results, "--rows", "KD", "R2KD", "--seeds", "0", "1")) == 0
    assert ran == []  # a second run trains nothing


def test_a_killed_parallel_runs_parts_are_folded_into_the_cache(v3, tmp_path):
    sha = v3.teacher_sha(v3.COMMITTED_TEACHER)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({v3.config_key("CE", 0, sha): finished_run("CE", 0, sha)}))
    part = tmp_path / "results.json.part1"
    part.write_text(json.dumps({v3.config_key("KD", 0, sha): finished_run("KD", 0, sha)}))
    assert v3.main(arguments(tmp_path, results, "--rows", "CE", "KD", "--seeds", "0", "--report_only")) == 0
    assert not part.exists()
    assert {r["row"] for r in json.loads(results.read_text()).values()} == {"CE", "KD"}


def test_runs_from_another_teacher_are_refused(v3, tmp_path, capsys):
    results = tmp_path / "results.json"
    other = finished_run("CE", 0, "0123456789abcdef")
    results.write_text(json.dumps({"CE|0|deadbeef": other}))
    with pytest.raises(SystemExit) as stopped:
        v3.main(arguments(tmp_path, results, "--report_only"))
    assert stopped.value.code == 2
    assert "another teacher (['0123456789abcdef'])" in capsys.readouterr().err
    assert json.loads(results.read_text()) == {"CE|0|deadbeef": other}  # nothing was overwritten


def test_loading_the_script_does_not_put_its_folder_on_sys_path(v3):
    # a script named like a package (scripts/evaluate.py once was) would shadow it for everything imported afterwards
    scripts = os.path.join(ROOT, "benchmarks")
    assert all(os.path.abspath(entry or ".") != scripts for entry in sys.path)
    assert v3.v2.ROWS["R2KD full"] == v3.ROWS["R2KD full"]
