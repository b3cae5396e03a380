"""The CUDA paths, end to end, on a machine with a GPU: the event clock, NVML memory readings, fp16, ONNX
Runtime's IO binding and the torch-free CUDA context. Marked `gpu`: skipped with the reason where the
CUDA driver sees no device (every CI machine of this project so far)."""

from __future__ import annotations

import importlib.util

import pytest

from harness.records import read_records
from tests.helpers import harness

pytestmark = pytest.mark.gpu


def _bench(tmp_path, runtime: str, precision: str = "fp32") -> list[dict]:
    result = harness("bench", "--runtime", runtime, "--models", "squeezenet1_1", "--batch-sizes", "1,8",
                     "--device", "cuda", "--precision", precision, "--out", str(tmp_path), "--run-id", "g")
    assert result.returncode in (0, 1), result.stderr
    return read_records(tmp_path / "g" / "records.jsonl").records


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_on_cuda_records_both_clocks_and_its_memory(tmp_path, precision):
    for record in _bench(tmp_path, "torch", precision):
        assert record["status"] == "ok", record["error"]
        host, device = record["timing"]["host"], record["timing"]["device"]
        assert device is not None and 0 < device["median_ms"] <= host["median_ms"] * 1.05
        assert len(record["samples_ms"]["device"]) == len(record["samples_ms"]["host"])
        allocator = record["memory"]["torch_allocator"]
        assert allocator["peak_reserved_bytes"] >= allocator["peak_allocated_bytes"] > 0
        assert record["runtime"]["options"]["cudnn_benchmark"] is True


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="needs nvidia-ml-py (extra gpu)")
def test_nvml_reads_the_context_and_the_peak(tmp_path):
    for record in _bench(tmp_path, "torch"):
        nvml = record["memory"]["cuda_nvml"]
        assert nvml["peak_bytes"] >= nvml["context_bytes"] > 0, nvml


def test_ort_on_cuda_binds_its_buffers_on_the_device(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)")
    for record in _bench(tmp_path, "ort"):
        assert record["status"] == "ok", record["error"]
        assert record["runtime"]["options"]["io_binding"] is True
        assert record["memory"]["torch_allocator"] == {"missing": "ort does not allocate through PyTorch"}


def test_verify_fp16_on_cuda_within_tolerance(tmp_path):
    result = harness("verify", "--models", "squeezenet1_1", "--runtime", "torch", "--precision", "fp32,fp16",
                     "--device", "cuda", "--out", str(tmp_path), "--run-id", "v")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_driver_context_is_the_one_nvml_sees():
    from runtimes.cuda_driver import retain_primary_context

    from harness.measure.memory import NvmlProcess

    nvml = NvmlProcess("cuda:0")
    if nvml.reason:
        pytest.skip(nvml.reason)
    retain_primary_context("cuda:0")
    assert nvml.used_bytes() > 0
