"""The seams: artifacts prepared outside the measuring process, the executor interface with order as
dependencies, failures classified by type, and the harness's own storage failures."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from harness.cell import worker
from harness.execution.executor import Executor, Job, Outcome, StorageFailed
from harness.cell.limits import EXIT_RESULT_UNWRITABLE
from harness.execution.local import LocalExecutor, default_placement
from harness.measure.timing import Policy
from harness.records import read_records
from harness.sweep.planning import Cell, plan_cells
from harness.sweep.sweep import BenchSettings, Sweep, catalogue_subjects
from tests.helpers import ROOT, harness, run_cli

FAST = Policy(warmup_min_iters=1, warmup_min_s=0.0, warmup_stable_rel=None, min_samples=3, min_duration_s=0.0,
              max_samples=5, max_duration_s=5.0)


def _ort_record(capsys: pytest.CaptureFixture[str], tmp_path: Path, cache: Path, run_id: str) -> dict:
    """One ORT cell of squeezenet1_1 in a new interpreter (exec), the sweep driven from this process."""
    result = run_cli(capsys, "bench", "--runtime", "ort", "--models", "squeezenet1_1", "--batch-sizes", "1",
                     "--process-start", "exec", "--out", str(tmp_path), "--run-id", run_id, "--cache-dir", str(cache))
    assert result.returncode == 0, result.stdout + result.stderr
    [record] = read_records(tmp_path / run_id / "records.jsonl").records
    return record


def test_an_ort_cell_measures_ort_whether_or_not_its_file_was_cached(tmp_path, capsys):
    """Before: the first ORT cell of a model exported the file in its own process, and its RSS baseline
    (1,089 MB) held torch and the model; the next cell's was 75 MB."""
    cache = tmp_path / "cache"
    cold = _ort_record(capsys, tmp_path, cache, "cold")
    warm = _ort_record(capsys, tmp_path, cache, "warm")
    assert cold["prepared"]["artifact"]["cache_hit"] is False and warm["prepared"]["artifact"]["cache_hit"] is True
    baselines = [r["memory"]["host_rss"]["baseline_bytes"] for r in (cold, warm)]
    assert max(baselines) < 250e6, baselines  # onnxruntime and numpy, no torch
    assert abs(baselines[0] - baselines[1]) < 30e6, baselines


def test_an_ort_cell_never_imports_torch(tmp_path, capsys, monkeypatch):
    """Every measuring process of this run has torch blocked (tests/block_torch/sitecustomize.py, on the
    PYTHONPATH each new interpreter inherits); the prepare job, which builds the model, does not. An ORT cell
    that imported torch would fail."""
    block = str(ROOT / "tests" / "block_torch")
    monkeypatch.setenv("PYTHONPATH", f"{block}{os.pathsep}{ROOT}")
    record = _ort_record(capsys, tmp_path, tmp_path / "cache", "r")
    assert record["status"] == "ok" and record["cell"]["runtime"] == "ort"
    blocked = run_cli(capsys, "bench", "--runtime", "torch", "--models", "squeezenet1_1", "--batch-sizes", "1",
                      "--process-start", "exec", "--out", str(tmp_path), "--run-id", "t", "--cache-dir",
                      str(tmp_path / "cache"))
    assert blocked.returncode == 1  # the check can fail: a torch cell under the same block does
    [torch_record] = read_records(tmp_path / "t" / "records.jsonl").records
    # the worker finds torch missing before importing it, and says what to install
    assert torch_record["status"] == "error" and "runtime 'torch' needs PyTorch" in torch_record["error"]


def test_the_cuda_path_of_a_runtime_needs_no_torch():
    """Device set-up and device memory of a non-torch runtime go through its own class: the default
    init_device takes the CUDA driver API (faked here), and nothing imports torch."""
    import subprocess
    import sys

    script = (
        "import sys, runtimes.cuda_driver as d\n"
        "calls = []\n"
        "d.retain_primary_context = lambda device: calls.append(device)\n"
        "from runtimes.null import NullRuntime\n"
        "from runtimes.base import RuntimeOptions, Runtime\n"
        "runtime = object.__new__(NullRuntime); Runtime.__init__(runtime, RuntimeOptions(device='cuda:1'))\n"
        "runtime.init_device(); memory = runtime.device_memory()\n"
        "from harness.measure import memory as m, validity\n"
        "m.NvmlProcess('cuda:1').reading(); validity.gpu_clocks('cuda:1')\n"
        "print(calls, 'missing' in memory, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["['cuda:1']", "True", "False"], result.stderr


class ShuffledExecutor(Executor):
    """Several jobs in flight; finished ones come back in a seeded random order (each still runs in a
    fresh local process)."""

    capacity = 3

    def __init__(self, run_dir: Path) -> None:
        self.local = LocalExecutor(default_placement(run_dir), "exec")
        self.queue: list[Job] = []
        self.rng = random.Random(7)

    def submit(self, job: Job) -> None:
        assert len(self.queue) < self.capacity
        self.queue.append(job)

    def wait(self) -> tuple[Job, Outcome]:
        job = self.queue.pop(self.rng.randrange(len(self.queue)))
        self.local.submit(job)
        return self.local.wait()

    def close(self) -> None:
        self.local.close()


def _statuses(records: list[dict]) -> dict[str, str]:
    return {r["cell_id"]: r["status"] for r in records}


def test_out_of_order_execution_gives_the_same_records(tmp_path, catalogue):
    """Skipping after an oom and waiting for the reference are dependencies, not sequence."""
    cells = plan_cells(["resnet18", "alexnet"], ["tests.faulty_runtimes:BatchProportionalRuntime", "null"], ["fp32"],
                       [1, 2, 4, 8], "cpu")
    settings = BenchSettings(policy=FAST, timeout_s=60, max_memory_bytes=350 * 10**6, process_start="exec")
    subjects = catalogue_subjects(catalogue.specs)
    in_order = Sweep(tmp_path, "seq", subjects, settings).run(cells)
    shuffled = Sweep(tmp_path, "shuf", subjects, settings, executor_factory=ShuffledExecutor).run(cells)
    assert _statuses(in_order) == _statuses(shuffled)
    statuses = _statuses(shuffled)
    heavy = "resnet18|tests.faulty_runtimes:BatchProportionalRuntime|fp32"
    assert statuses[f"{heavy}|bs4|cpu"] == "oom" and statuses[f"{heavy}|bs8|cpu"] == "skipped"
    assert [r["cell_id"] for r in shuffled] != [r["cell_id"] for r in in_order]  # it did run out of order


def test_a_memory_cap_that_trips_on_an_import_is_oom(tmp_path):
    """Before: 'error: ImportError ... failed to map segment' and the larger batches ran anyway."""
    result = harness("bench", "--runtime", "tests.faulty_runtimes:ImportUnderCapRuntime", "--models", "resnet18",
                     "--batch-sizes", "1,2", "--max-memory", "64GB", "--process-start", "exec", "--out", str(tmp_path),
                     "--run-id", "r")
    assert result.returncode == 1
    small, large = read_records(tmp_path / "r" / "records.jsonl").records
    assert small["status"] == "oom" and small["error_type"] in ("ImportError", "MemoryError"), small["error"]
    assert large["status"] == "skipped"


def test_an_import_error_under_a_cap_is_oom_only_when_the_module_loads_without_it():
    """Typed, not by message: the worker lifts the cap and imports the module again."""
    assert worker.classify(ImportError("failed to map segment", name="json"), None, memory_capped=True) == "oom"
    assert worker.classify(ImportError("no module", name="no_such_module_xyz"), None, memory_capped=True) == "error"
    assert worker.classify(ImportError("failed to map segment", name="json"), None, memory_capped=False) == "error"
    assert worker.classify(MemoryError(), None, memory_capped=False) == "oom"
    # a runtime names its own library's errors: torch's allocator, onnxruntime's exception types
    assert worker.classify(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"), "torch",
                           False) == "oom"
    assert worker.classify(RuntimeError("out of memory"), "null", False) == "error"  # no message matching


def test_a_result_that_cannot_be_written_stops_the_sweep_without_blaming_the_cell(tmp_path):
    request = {"mode": "bench", "cell": {"model": "m", "runtime": "null", "precision": "fp32", "batch_size": 1,
                                         "device": "cpu"},
               "model": {"name": "m", "onnx_path": "/x.onnx",
                         "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, 8, 8]}]},
               "reference": {"runtime": "torch", "precision": "fp32"}, "policy": FAST.as_dict()}
    envelope = tmp_path / "envelope.json"
    envelope.write_text(json.dumps({"request": request, "placement": {"cache_dir": str(tmp_path),
                                                                      "run_dir": str(tmp_path)}}))
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder that cannot be made: as on a full disk, the result cannot be written
    assert worker.main([str(envelope), str(blocker / "result.json")]) == EXIT_RESULT_UNWRITABLE


class FullDiskExecutor(Executor):
    def __init__(self, run_dir: Path) -> None:
        self.local, self.jobs = LocalExecutor(default_placement(run_dir), "exec"), 0

    def submit(self, job: Job) -> None:
        self.jobs += 1
        if self.jobs == 2:
            raise StorageFailed("cannot write in cells/: No space left on device")
        self.local.submit(job)

    def wait(self) -> tuple[Job, Outcome]:
        return self.local.wait()


def test_a_full_disk_records_no_crash_and_resume_runs_the_rest(tmp_path, catalogue):
    cells = [Cell("resnet18", "null", "fp32", b, "cpu") for b in (1, 2, 4)]
    settings = BenchSettings(policy=FAST, process_start="exec")
    subjects = catalogue_subjects(catalogue.specs)
    with pytest.raises(StorageFailed):
        Sweep(tmp_path, "r", subjects, settings, executor_factory=FullDiskExecutor).run(cells)
    records = read_records(tmp_path / "r" / "records.jsonl").records
    assert [r["status"] for r in records] == ["ok"]
    assert not list((tmp_path / "r").rglob("*.tmp"))
    resumed = Sweep(tmp_path, "r", subjects, settings).run(cells)
    assert [r["cell"]["batch_size"] for r in resumed] == [2, 4]


def test_a_chatty_cell_leaves_a_capped_log(tmp_path, catalogue):
    settings = BenchSettings(policy=FAST, process_start="exec")
    [record] = Sweep(tmp_path, "r", catalogue_subjects(catalogue.specs), settings).run(
        [Cell("resnet18", "tests.faulty_runtimes:ChattyRuntime", "fp32", 1, "cpu")])
    assert record["status"] == "ok"
    [log] = (tmp_path / "r" / "cells").glob("*Chatty*.log")
    text = log.read_text()
    assert log.stat().st_size < 600 * 1024 and "bytes of this log dropped by the harness" in text
    assert text.startswith("chatter") and text.rstrip().endswith("LAST LINE")


def test_requests_and_results_are_typed_both_ways():
    """One set of types for both sides of the process boundary: a round trip is lossless, and a field
    either side does not know, or an unknown status, fails naming it."""
    from harness.measure.timing import THOROUGH
    from harness.parts import Prepared
    from harness.protocol import BundledReference, CatalogueModel, CellRequest, CellResult, ExportSettings, Reference
    from runtimes.base import EngineShapes

    request = CellRequest(mode="bench", cell=Cell("resnet18", "ort", "fp32", 4, "cpu"),
                          model=CatalogueModel(name="resnet18", source="torchvision", builder="resnet18",
                                               input_size=224),
                          reference=Reference("torch", "fp32"),
                          prepared=Prepared(artifact={"path": "onnx/x/model.onnx"}), policy=THOROUGH,
                          export=ExportSettings(opset=17, simplify=True), shapes=EngineShapes.dynamic([1, 8]),
                          reference_outputs=BundledReference("refs.npz", "bs8", "ab12", 0, "torch fp32"))
    assert CellRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    assert request.to_json()["policy"]["min_samples"] == 100 and request.to_json()["shapes"]["kind"] == "dynamic"
    with pytest.raises(ValueError, match="unknown field.*cache_dir"):
        CellRequest.from_json({**request.to_json(), "cache_dir": "/home/me/.cache"})
    with pytest.raises(ValueError, match="mode must be one of"):
        CellRequest.from_json({**request.to_json(), "mode": "export"})
    assert CellResult.from_json({"status": "oom", "error_type": "MemoryError"}).status == "oom"
    with pytest.raises(ValueError, match="status must be one of"):
        CellResult.from_json({"status": "fine"})
    with pytest.raises(ValueError, match="unknown field.*timings"):
        CellResult.from_json({"status": "ok", "timings": {}})
