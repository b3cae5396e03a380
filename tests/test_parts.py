"""The measured parts (harness.parts) are one type each from the cell's result to the record and the reports:
each reads the JSON every harness version wrote and writes it back key for key, a part of the wrong shape
fails naming it, and the typed accessors answer what the reports ask."""

from __future__ import annotations

import json

import pytest

from harness.parts import (AccuracyFigures, Energy, EnergyFigures, Memory, MemoryReading, Missing, ParityVerdict,
                           Prepared, ScenarioFigures, StageTimes)
from harness.protocol import CellResult
from harness.records import Record, append_record, read_records

MEMORY = {"host_rss": {"baseline_bytes": 711360512, "peak_bytes": 764960768, "source": "VmHWM"},
          "cuda_nvml": {"baseline_bytes": 0, "context_bytes": 500_000_000, "peak_bytes": 900_000_000, "source": "NVML"},
          "torch_allocator": {"peak_allocated_bytes": 100, "peak_reserved_bytes": 200, "source": "torch.cuda"},
          "tensorrt_engine": {"context_device_memory_bytes": 5, "plan_file_bytes": 7, "source": "TensorRT"},
          "jetson_unified": {"missing": "no NvMapMemUsed in /proc/meminfo (not a Jetson)"},
          "memory_pass_runs": 3}
ENERGY = {"sources": {"nvml": {"joules_per_image": 0.25, "gross_joules_per_image": 0.5, "average_watts": 300.0,
                               "idle_watts": 70.0, "what": "the GPU board"},
                      "rapl": {"joules_per_image": None, "gross_joules_per_image": 1.0, "average_watts": 20.0,
                               "idle_watts": 21.0, "what": "CPU packages", "note": "busy power is not above idle"},
                      "jetson_rails": {"missing": "not a Jetson"}},
          "pass": {"idle_s": 1.0, "busy_s": 2.0, "calls": 40, "images": 320, "loop_includes": "run()"}}
PARITY_COMPARED = {"rows": 8, "max_abs_err": 0.01, "reference_max_abs": 9.0, "max_rel_err": 0.001, "rel_l2_err": 0.002,
                   "min_cosine": 0.9999, "top1_agreement": 1.0, "top5_overlap": 0.975, "is_reference": False,
                   "reference": "torch fp32, same weights and inputs", "tolerance": {"max_rel_err": 0.05}}
PARITY_REFERENCE = {"is_reference": True, "outputs_file": "outputs/resnet18-bs8-reference.npy"}
ACCURACY = {"top1": 75.0, "top5": 92.5, "images": 40, "top1_correct": 30, "top5_correct": 37, "images_per_s": 80.0,
            "is_reference": False, "agreement_top1": 0.975, "reference_top1": 77.5, "loop_s": 0.5, "load_s": 0.2,
            "predictions_file": "predictions/x.npy", "data": {"layout": "class-folders"}, "preprocessing": {"from": "x"}}
SCENARIO = {"name": "server", "percentile": 0.99, "latency_ms": 40.0, "queries": 2300, "queries_needed": 459,
            "bound_ms": 50.0, "bound_from": "--p99-bound", "capacity_qps": 100.0, "rate_qps": 60.0, "images_per_s": 60.0,
            "trials": [{"rate_qps": 50.0, "queries": 459, "p99_ms": 30.0, "empirical_p99_ms": 28.0, "held": True,
                        "wall_s": 9.5}]}
STAGES = {"medians_ms": {"preprocess": 5.0, "host_to_device": 0.1, "compute": 20.0, "device_to_host": 0.05},
          "source": "harness", "repeats": 10, "includes": {"compute": "run() + synchronize"}, "missing": {}}
PREPARED = {"weights": {"kind": "random", "seed": 0, "path": "weights/x/weights.pt"},
            "complexity": {"params": 10, "macs": 20}, "artifact": {"kind": "onnx", "opset": 18, "path": "onnx/x.onnx"},
            "library_import_s": 0.5, "an_older_part": {"kept": True}}


@pytest.mark.parametrize("cls, data", [(Memory, MEMORY), (Energy, ENERGY), (ParityVerdict, PARITY_COMPARED),
                                       (ParityVerdict, PARITY_REFERENCE), (AccuracyFigures, ACCURACY),
                                       (Prepared, PREPARED), (ScenarioFigures, SCENARIO), (StageTimes, STAGES)])
def test_each_part_reads_and_writes_the_records_json_unchanged(cls, data):
    part = cls.from_json(json.loads(json.dumps(data)))
    assert part.to_json() == data
    assert cls.from_json(part.to_json()) == part


def test_the_typed_accessors_answer_what_the_reports_ask():
    memory = Memory.from_json(MEMORY)
    assert memory.peak_bytes("cuda_nvml") == 900_000_000 and memory.peak_bytes("torch_allocator") == 200
    assert memory.peak_bytes("tensorrt_engine") is None  # sizes, not a peak
    assert memory.readable_sources() == ["host_rss", "cuda_nvml", "torch_allocator"]
    assert isinstance(memory.readings["jetson_unified"], Missing) and memory.pass_runs == 3
    assert memory.why_missing("jetson_unified").startswith("no NvMapMemUsed")
    assert memory.why_missing("cuda_nvml") == "not recorded"  # read, so nothing is missing
    energy = Energy.from_json(ENERGY)
    assert energy.measured_sources() == ["nvml", "rapl"] and energy.figures("nvml") == EnergyFigures(
        0.25, 0.5, 300.0, 70.0, "the GPU board")
    assert energy.why_missing("jetson_rails") == "jetson_rails: not a Jetson"
    assert Energy(skipped="--energy off").why_missing("nvml") == "energy pass skipped (--energy off)"
    compared = ParityVerdict.from_json(PARITY_COMPARED)
    assert not compared.is_reference and compared.figures["top5_overlap"] == 0.975
    accuracy = AccuracyFigures.from_json(ACCURACY)
    assert (accuracy.top1, accuracy.agreement_top1, accuracy.details["data"]) == (75.0, 0.975, {"layout": "class-folders"})
    assert Prepared.from_json(PREPARED).other == {"an_older_part": {"kept": True}}


@pytest.mark.parametrize("cls, data, problem", [
    (Memory, {"host_rss": "700 MB"}, "memory reading: expected an object"),
    (Energy, {"sources": {"nvml": 3.0}}, "energy.nvml: expected an object"),
    (AccuracyFigures, [75.0], "accuracy: expected an object"),
    (Prepared, "weights.pt", "prepared: expected an object"),
])
def test_a_part_of_the_wrong_shape_fails_naming_it(cls, data, problem):
    with pytest.raises(ValueError, match=problem):
        cls.from_json(data)


def _record(**parts) -> dict:
    return {"run_id": "r", "host": "h", "kind": "bench", "cell_id": "m|torch|fp32|bs1|cpu",
            "cell": {"model": "m", "runtime": "torch", "precision": "fp32", "batch_size": 1, "device": "cpu"},
            "status": "ok", "error": None, "started_at": "2026-01-01T00:00:00+00:00",
            "timing": {"host": {"median_ms": 2.0, "per_image_median_ms": 2.0, "images_per_s": 500.0, "samples": 10}},
            **parts}


def test_a_record_holds_the_same_types_and_is_written_back_unchanged(tmp_path):
    path = tmp_path / "records.jsonl"
    written = _record(memory=MEMORY, energy=ENERGY, prepared=PREPARED)
    append_record(path, written)
    append_record(path, {**_record(memory={"host_rss": "700 MB"}), "cell_id": "bad"})
    read = read_records(path)
    [record] = read.typed
    assert isinstance(record.memory, Memory) and isinstance(record.energy, Energy)
    assert isinstance(record.prepared, Prepared) and record.artifact["opset"] == 18
    assert record.peak_bytes("cuda_nvml") == 900_000_000 and record.energy_figures("nvml").average_watts == 300.0
    assert record.why_no_energy("jetson_rails") == "jetson_rails: not a Jetson"
    dumped = record.model_dump(mode="json")
    assert {k: dumped[k] for k in ("memory", "energy", "prepared")} == {"memory": MEMORY, "energy": ENERGY,
                                                                        "prepared": PREPARED}
    assert len(read.skipped) == 1 and "memory" in read.skipped[0] and "expected an object" in read.skipped[0]


def test_a_cells_result_carries_the_typed_parts_across_the_process_boundary():
    result = CellResult(status="ok", memory=Memory.from_json(MEMORY), energy=Energy.from_json(ENERGY),
                        parity=ParityVerdict.from_json(PARITY_REFERENCE), accuracy=AccuracyFigures.from_json(ACCURACY),
                        prepared=Prepared.from_json(PREPARED))
    sent = json.loads(json.dumps(result.to_json()))
    assert sent["memory"] == MEMORY and sent["energy"] == ENERGY and sent["accuracy"] == ACCURACY
    assert CellResult.from_json(sent) == result
    with pytest.raises(ValueError, match="result.memory: memory reading: expected an object"):
        CellResult.from_json({**sent, "memory": {"host_rss": 5}})
    assert Record.model_validate({**_record(), "schema_version": 2, "memory": result.memory}).memory is result.memory
    assert isinstance(MemoryReading({"peak_bytes": 1}).peak_bytes, int)
