"""Each cell runs in a fresh process; a raise, an abort, an exit or a hang become records with a status."""

from __future__ import annotations

from harness.bench import BenchSettings, Sweep, catalogue_subjects
from harness.planning import Cell
from harness.records import read_records
from harness.timing import Policy

FAST = Policy(warmup_min_iters=1, warmup_min_s=0.0, min_samples=5, min_duration_s=0.0, max_samples=50,
              max_duration_s=5.0)


def _run(tmp_path, catalogue, runtime: str, timeout_s: float = 60.0) -> dict:
    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=FAST, timeout_s=timeout_s))
    [record] = sweep.run([Cell("resnet18", runtime, "fp32", 2, "cpu")])
    assert read_records(sweep.records_path).records == [record]
    return record


def test_ok_cell(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "null")
    assert record["status"] == "ok" and record["error"] is None
    assert record["timing"]["host"]["samples"] == len(record["samples_ms"]["host"]) >= 5
    assert record["runtime"]["name"] == "null"
    assert record["cell"] == {"model": "resnet18", "runtime": "null", "precision": "fp32", "batch_size": 2,
                              "device": "cpu"}


def test_child_that_raises(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:RaisingRuntime")
    assert record["status"] == "error"
    assert "ValueError: this runtime always fails" in record["error"]
    assert "Traceback" in record["traceback"]


def test_child_that_aborts(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:AbortingRuntime")
    assert record["status"] == "crashed" and "SIGABRT" in record["error"]


def test_child_that_exits_without_a_result(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:ExitingRuntime")
    assert record["status"] == "crashed" and "exit code 3" in record["error"]


def test_child_that_hangs_is_ended(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:HangingRuntime", timeout_s=3.0)
    assert record["status"] == "timeout" and "3 s" in record["error"]
    assert record["wall_s"] < 30


def test_out_of_memory_is_its_own_status(tmp_path, catalogue):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:OutOfMemoryRuntime")
    assert record["status"] == "oom"


def test_unsupported_configuration(tmp_path, catalogue):
    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=FAST))
    [record] = sweep.run([Cell("resnet18", "torch", "fp16", 1, "cpu")])
    assert record["status"] == "unsupported" and "fp16" in record["error"]


def test_sweep_goes_on_after_a_failure(tmp_path, catalogue):
    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=FAST, timeout_s=60))
    cells = [Cell("resnet18", "tests.faulty_runtimes:AbortingRuntime", "fp32", 1, "cpu"),
             Cell("resnet18", "null", "fp32", 1, "cpu")]
    records = sweep.run(cells)
    assert [r["status"] for r in records] == ["crashed", "ok"]
    assert (tmp_path / "run" / "env.json").exists() and (tmp_path / "run" / "plan.json").exists()
