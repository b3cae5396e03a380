"""Where a query's time goes (harness.measure.stages): each stage timed on its own, the model's own
pre-processing on photo-sized JPEGs, trtexec's own split, and the stages in records and tables."""

from __future__ import annotations

import json

import numpy as np

from harness.measure import stages
from tests import onnx_graphs
from tests.helpers import run_main

RECIPE = {"resize_shorter_to": 256, "crop_pct": 0.875, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
          "std": [0.229, 0.224, 0.225], "color": "RGB", "value_range": [0.0, 1.0]}


def test_each_stage_is_timed_on_its_own_in_order():
    ticks, order = iter(range(0, 10**9, 1_000_000)), []  # each clock reading 1 ms after the last
    steps = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = stages.time_stages(steps, repeats=3, budget_s=60.0, clock=lambda: next(ticks))
    assert order == ["a", "b"] * 3 and times == {"a": [1.0] * 3, "b": [1.0] * 3}
    # a budget: at least the minimum, then only while it lasts (a repeat reads the clock 5 times, 1 ms apart)
    ticks = iter(range(0, 10**9, 1_000_000))
    short = stages.time_stages(steps, repeats=10, min_repeats=2, budget_s=0.010, clock=lambda: next(ticks))
    assert len(short["a"]) == 3
    assert stages.medians({"a": [3.0, 1.0, 2.0], "b": []}) == {"a": 2.0}


def test_preprocessing_decodes_photos_into_the_models_input():
    batch = stages.preprocessor(RECIPE, 224, batch_size=3, seed=0)()
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32
    assert np.allclose(batch[0], batch[2])  # the same photo, decoded three times
    # normalized: (x/255 - mean) / std lies within [-2.2, 2.7] for any pixel
    assert -2.2 < batch.min() < batch.max() < 2.7 and batch.std() > 0.05


def test_trtexecs_own_split_of_each_inference():
    """Field names as trtexec writes them (samples/common/sampleReporting.cpp, exportJSONTrace)."""
    records = [{"startEnqMs": 0.0, "endEnqMs": 0.2, "startH2dMs": 0.2, "endH2dMs": 0.5, "startComputeMs": 0.5,
                "endComputeMs": 2.5, "startD2hMs": 2.5, "endD2hMs": 2.6, "h2dMs": 0.3, "computeMs": 2.0,
                "d2hMs": 0.1, "latencyMs": 2.4}] * 3
    split = stages.from_tool_records(records)
    assert split["compute"] == 2.0 and split["host_to_device"] == 0.3 and split["device_to_host"] == 0.1
    assert abs(split["enqueue"] - 0.2) < 1e-12


def test_bench_records_the_stages_and_shows_them(capsys, tmp_path):
    code, output = run_main(capsys, "bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "2",
                            "--energy", "off", "--show", "stages", "--out", str(tmp_path), "--run-id", "s")
    assert code in (0, 1), output
    [record] = [json.loads(line) for line in (tmp_path / "s" / "records.jsonl").read_text().splitlines()]
    figures = record["stages"]
    assert figures["source"] == "harness" and stages.MIN_REPEATS <= figures["repeats"] <= stages.REPEATS
    assert set(figures["medians_ms"]) == set(stages.STAGES) and figures["medians_ms"]["preprocess"] > 0
    assert "where the time goes" in output and "preprocess" in output and "device_to_host" in output


def test_an_outside_onnx_file_has_no_preprocessing_to_time(capsys, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    code, output = run_main(capsys, "bench", "--runtime", "ort", "--onnx", str(onnx_path), "--batch-sizes", "1",
                            "--energy", "off", "--out", str(tmp_path), "--run-id", "o")
    assert code in (0, 1), output
    [record] = [json.loads(line) for line in (tmp_path / "o" / "records.jsonl").read_text().splitlines()]
    assert "preprocess" not in record["stages"]["medians_ms"]
    assert "no pre-processing recipe comes with this ONNX file" in record["stages"]["missing"]["preprocess"]
    assert record["stages"]["medians_ms"]["compute"] > 0


def test_a_stages_pass_out_of_memory_leaves_the_measured_cell_ok(capsys, tmp_path):
    """Preparing the inputs a second time may need their memory twice: under a cap that the cell itself fits,
    the stages are recorded missing with the reason, and the cell (measured already) stays ok."""
    code, output = run_main(capsys, "bench", "--runtime", "tests.faulty_runtimes:BatchProportionalRuntime",
                            "--models", "resnet18", "--batch-sizes", "2", "--max-memory", "350MB", "--energy", "off",
                            "--process-start", "exec", "--out", str(tmp_path), "--run-id", "m")
    [record] = [json.loads(line) for line in (tmp_path / "m" / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record.get("error")
    assert "ran out of memory" in record["stages"]["missing"]["all"] and record["stages"]["medians_ms"] == {}
    assert record["memory"]["host_rss"]["peak_bytes"] < 350 * 10**6  # read before the pass
