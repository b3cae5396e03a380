"""Each cell runs in a fresh process (forked from a zygote, or a new interpreter); a raise, an abort, an
exit or a hang become records with a status, either way."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from harness.execution.zygote import PAGE_BYTES, _runs_of
from harness.measure.timing import Policy
from harness.records import env_file_for, read_records
from harness.sweep.planning import Cell
from harness.sweep.sweep import PROCESS_STARTS, BenchSettings, Sweep, catalogue_subjects, preload_for

FAST = Policy(warmup_min_iters=1, warmup_min_s=0.0, min_samples=5, min_duration_s=0.0, max_samples=50,
              max_duration_s=5.0)


@pytest.fixture(params=PROCESS_STARTS)
def start(request) -> str:
    return request.param


def _run(tmp_path, catalogue, runtime: str, start: str, timeout_s: float = 60.0) -> dict:
    settings = BenchSettings(policy=FAST, timeout_s=timeout_s, process_start=start)
    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), settings)
    [record] = sweep.run([Cell("resnet18", runtime, "fp32", 2, "cpu")])
    assert read_records(sweep.records_path).records == [record]
    assert record["process"]["start"] == start
    return record


def test_ok_cell(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "null", start)
    assert record["status"] == "ok" and record["error"] is None
    assert record["timing"]["host"]["samples"] == len(record["samples_ms"]["host"]) >= 5
    assert record["runtime"]["name"] == "null"
    assert record["cell"] == {"model": "resnet18", "runtime": "null", "precision": "fp32", "batch_size": 2,
                              "device": "cpu"}


def test_child_that_raises(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:RaisingRuntime", start)
    assert record["status"] == "error"
    assert "ValueError: this runtime always fails" in record["error"]
    assert "Traceback" in record["traceback"]


def test_child_that_aborts(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:AbortingRuntime", start)
    assert record["status"] == "crashed" and "SIGABRT" in record["error"]


def test_child_that_exits_without_a_result(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:ExitingRuntime", start)
    assert record["status"] == "crashed" and "exit code 3" in record["error"]


def test_child_that_hangs_is_ended(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:HangingRuntime", start, timeout_s=3.0)
    assert record["status"] == "timeout" and "3 s" in record["error"]
    assert record["wall_s"] < 30


def test_out_of_memory_is_its_own_status(tmp_path, catalogue, start):
    record = _run(tmp_path, catalogue, "tests.faulty_runtimes:OutOfMemoryRuntime", start)
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
    assert (tmp_path / "run" / env_file_for(socket.gethostname())).exists() and (tmp_path / "run" / "plan.json").exists()


def test_a_zygote_serves_the_cells_that_import_the_same_libraries(tmp_path, catalogue):
    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=FAST))
    records = sweep.run([Cell("resnet18", "null", "fp32", b, "cpu") for b in (1, 2)]
                        + [Cell("resnet18", "tests.faulty_runtimes:AbortingRuntime", "fp32", 1, "cpu"),
                           Cell("resnet18", "null", "fp32", 4, "cpu")])
    assert [r["status"] for r in records] == ["ok", "ok", "crashed", "ok"]
    # one zygote import for the null cells, before and after a child of another zygote crashed
    assert len({r["process"]["zygote_import_s"] for r in records if r["cell"]["runtime"] == "null"}) == 1
    assert "runtimes.null" in records[0]["process"]["preloaded"]


def test_what_a_zygote_preloads(catalogue):
    subjects = catalogue_subjects(catalogue.specs)
    modules, sources = preload_for(Cell("resnet18", "torch", "fp32", 1, "cpu"), subjects["resnet18"], "random")
    assert "torch" in modules and sources == ("torchvision",)
    modules, sources = preload_for(Cell("resnet18", "ort", "fp32", 1, "cpu"), subjects["resnet18"], "random")
    assert "onnxruntime" in modules and "torch" not in modules and sources == ()
    # pretrained weights: the worker imports the library itself, with the hub settings it needs
    assert preload_for(Cell("resnet18", "torch", "fp32", 1, "cpu"), subjects["resnet18"], "pretrained")[1] == ()


def test_runs_of_present_pages():
    present = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    base = 100 * PAGE_BYTES
    assert _runs_of(present, base) == [(base + PAGE_BYTES, 2 * PAGE_BYTES), (base + 5 * PAGE_BYTES, PAGE_BYTES),
                                       (base + 7 * PAGE_BYTES, 3 * PAGE_BYTES)]
    assert _runs_of(np.zeros(4, dtype=bool), base) == []


def test_a_zygote_whose_imports_start_threads_is_not_forked_from(tmp_path):
    """OpenVINO's import starts a thread pool; a fork while one of its threads holds an import lock left a cell
    waiting forever. Such a zygote is refused once, and its cells start a new interpreter."""
    from harness.execution.isolation import ZygotePool, ZygoteUnsafe

    with ZygotePool(tmp_path) as pool:
        with pytest.raises(ZygoteUnsafe, match=r"started threads \(started-on-import\)"):
            pool.get(("tests.threads_on_import",), ())
        started = (tmp_path / "zygotes.log").stat().st_mtime_ns if (tmp_path / "zygotes.log").exists() else None
        with pytest.raises(ZygoteUnsafe):
            pool.get(("tests.threads_on_import",), ())  # remembered: not started again
        assert list(pool.zygotes) == []
        if started is not None:
            assert (tmp_path / "zygotes.log").stat().st_mtime_ns == started
        assert pool.get(("json",), ()).alive  # a zygote without threads still forks


def _zygotes_of_this_process() -> set[int]:
    """The pids of this process's live children that run `harness.execution.zygote`."""
    import psutil

    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "harness.execution.zygote" in child.cmdline():
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_no_zygote_outlives_a_sweep_run_in_process(tmp_path):
    """An in-process caller of the CLI (a notebook, a test) gets its zygotes closed when the sweep ends: the
    local executor's close() was indented under a module function and never ran, so each call leaked them."""
    from harness.cli.main import main

    before = _zygotes_of_this_process()
    code = main(["bench", "--models", "resnet18", "--runtime", "null", "--device", "cpu", "--batch-sizes", "1",
                 "--out", str(tmp_path / "runs"), "--run-id", "z"])
    assert code in (0, 1)
    [record] = read_records(tmp_path / "runs" / "z" / "records.jsonl").records
    assert record["process"]["start"] == "fork"  # a zygote served the cell ...
    assert _zygotes_of_this_process() - before == set()  # ... and is gone once main() returns
