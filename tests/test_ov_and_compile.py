"""OpenVINO (`ov`) and torch.compile (`torch-compile`) beyond the shared contract suite: explicit precision,
static shapes, options, what Dynamo did, bf16 where the CPU computes it, and both from the command line."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.parity import TOLERANCES, compare
from harness.measure.timing import Policy, sample
from harness.records import read_records
from runtimes import RuntimeUnavailable, create_runtime, runtime_class
from runtimes.base import BadOption, RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration
from runtimes.cpu_features import native_bf16, parse_flags
from tests.helpers import INPUTS, TORCH_ARTIFACT, importable, one_error_line, run_cli, tiny_model


needs_ov = pytest.mark.skipif(not importable("ov"), reason="openvino not installed")
CPU_BF16 = native_bf16()
needs_bf16 = pytest.mark.skipif(CPU_BF16 is None, reason="this CPU does not compute bf16 in hardware")


def _eager_logits(inputs: np.ndarray = INPUTS) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return tiny_model().eval()(torch.from_numpy(inputs)).numpy()


def _infer(name: str, artifact, options: RuntimeOptions, inputs: np.ndarray = INPUTS) -> tuple[np.ndarray, dict]:
    with create_runtime(name, options) as runtime:
        runtime.load(artifact)
        runtime.prepare(inputs)
        for _ in range(2):
            runtime.run()
            runtime.synchronize()
        return runtime.outputs()[0], runtime.info()


# ---------------------------------------------------------------- OpenVINO


@needs_ov
def test_ov_fp32_is_explicit_and_matches_torch(onnx_artifact):  # noqa: F811
    logits, info = _infer("ov", onnx_artifact, RuntimeOptions(threads=1, input_shapes=(INPUTS.shape,)))
    np.testing.assert_allclose(logits, _eager_logits(), rtol=1e-4, atol=1e-5)
    options = info["options"]
    assert options["requested"]["INFERENCE_PRECISION_HINT"] == "f32"  # never OpenVINO's default (bf16 here)
    assert options["inference_precision_hint"] == "f32" and options["performance_hint"] == "LATENCY"
    assert options["num_streams"] == 1 and options["inference_num_threads"] == 1
    assert options["static_shape"] is True and options["input_shape"] == "[2,3,16,16]" and options["compiles"] == 1
    assert info["version"] and info["device_name"]


@needs_ov
def test_ov_without_a_known_shape_keeps_the_dynamic_batch_and_recompiles_a_static_one(onnx_artifact):  # noqa: F811
    _, info = _infer("ov", onnx_artifact, RuntimeOptions())
    assert info["options"]["static_shape"] is False and info["options"]["input_shape"].startswith("[?")
    one = INPUTS[:1]
    logits, info = _infer("ov", onnx_artifact, RuntimeOptions(input_shapes=(INPUTS.shape,)), inputs=one)
    assert logits.shape == (1, 1000) and info["options"]["compiles"] == 2  # an accuracy run's smaller last batch
    np.testing.assert_allclose(logits, _eager_logits(one), rtol=1e-4, atol=1e-5)


@needs_ov
def test_ov_options_reach_openvino(onnx_artifact):  # noqa: F811
    cls = runtime_class("ov")
    extra = cls.parse_options({"hint": "throughput", "streams": "2"})
    _, info = _infer("ov", onnx_artifact, RuntimeOptions(extra=extra))
    assert info["options"]["performance_hint"] == "THROUGHPUT" and info["options"]["num_streams"] == 2
    with pytest.raises(BadOption, match="choose from latency, throughput"):
        cls.parse_options({"hint": "fast"})
    with pytest.raises(BadOption, match="has no option 'ov.nireq'"):
        cls.parse_options({"nireq": "4"})


@needs_ov
def test_ov_keeps_openvinos_own_latency_beside_the_host_clock(onnx_artifact):  # noqa: F811
    """The real InferRequest.latency, read per sample: positive, and inside the host interval around the
    same run(), since the binding stamps it between the Python calls."""
    with create_runtime("ov", RuntimeOptions(threads=1, input_shapes=(INPUTS.shape,))) as runtime:
        runtime.load(onnx_artifact)
        runtime.prepare(INPUTS)
        measurement = sample(runtime, Policy(warmup_min_s=0.0, min_samples=20, min_duration_s=0.0))
    assert measurement.device_clock.startswith("OpenVINO InferRequest.latency")
    assert len(measurement.device_ms) == len(measurement.host_ms) == 20
    for device_ms, host_ms in zip(measurement.device_ms, measurement.host_ms):
        assert 0.0 < device_ms <= host_ms


@needs_ov
def test_ov_refuses_what_the_device_does_not_offer():
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision, capability in (("bf16", "BF16"), ("fp16", "FP16")):
        if capability in capabilities:
            create_runtime("ov", RuntimeOptions(precision=precision)).close()
        else:
            with pytest.raises(UnsupportedConfiguration, match=f"does not offer {capability}"):
                create_runtime("ov", RuntimeOptions(precision=precision))
    with pytest.raises(UnsupportedConfiguration, match="runs on cpu, intel-gpu"):
        create_runtime("ov", RuntimeOptions(device="cuda"))
    if "NPU" not in openvino.Core().available_devices:
        with pytest.raises(UnsupportedConfiguration, match="finds no NPU device"):
            create_runtime("ov", RuntimeOptions(device="npu"))


def test_openvino_device_names():
    from runtimes.openvino import openvino_device

    assert [openvino_device(d) for d in ("cpu", "intel-gpu", "intel-gpu:1", "npu", "cuda", "intel-gpu:x")] == \
        ["CPU", "GPU", "GPU.1", "NPU", None, None]


@needs_ov
@pytest.mark.skipif(CPU_BF16 is None, reason="this CPU does not compute bf16 in hardware")
def test_ov_bf16_agrees_within_the_bf16_tolerance(onnx_artifact):  # noqa: F811
    logits, info = _infer("ov", onnx_artifact, RuntimeOptions(precision="bf16"))
    assert info["options"]["inference_precision_hint"] == "bf16"
    parity = compare(_eager_logits(), logits)
    tolerance = TOLERANCES["bf16"]
    assert parity.max_rel_err <= tolerance.max_rel_err and parity.min_cosine >= tolerance.min_cosine
    assert parity.max_rel_err > 0  # bf16 did round: the hint was applied


# ---------------------------------------------------------------- torch.compile


def test_compile_matches_eager_and_records_what_dynamo_did():
    logits, info = _infer("torch-compile", TORCH_ARTIFACT, RuntimeOptions())
    np.testing.assert_allclose(logits, _eager_logits(), rtol=1e-4, atol=1e-5)
    options = info["options"]
    assert (options["compile_backend"], options["compile_mode"], options["inductor_freezing"]) == \
        ("inductor", "default", True)
    assert options["compiled"] and options["frames_compiled_first_run"] == 1
    assert options["recompiles"] == 0 and options["graph_breaks"] == 0 and options["graphs"] == 1


class _BreakingModel:
    """A module whose forward has a graph break (a print Dynamo cannot trace)."""

    def __new__(cls):
        import torch

        class Breaking(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = tiny_model()

            def forward(self, x):
                x = x * 2
                torch._dynamo.graph_break()
                return self.body(x)

        return Breaking()


def test_graph_breaks_and_recompiles_are_counted():
    artifact = TorchModuleArtifact(name="breaking", build=_BreakingModel)
    with create_runtime("torch-compile", RuntimeOptions(extra={"backend": "eager"})) as runtime:
        runtime.load(artifact)
        runtime.prepare(INPUTS)
        runtime.run()
        runtime.synchronize()
        runtime.prepare(INPUTS[:1])  # a new batch size: a guard fails, Dynamo compiles again
        runtime.run()
        runtime.synchronize()
        options = runtime.info()["options"]
    assert options["graph_breaks"] >= 1 and options["graph_break_reasons"]
    assert options["frames_compiled_first_run"] >= 2  # the frame before the break, and the one resumed after it
    assert options["recompiles"] >= 1


def test_a_missing_cpp_compiler_is_unsupported():
    import torch
    import torch._inductor.config

    def shifted():  # a graph of its own: no cached kernel stands in for compiling one
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1000))

    module = shifted()
    module(torch.from_numpy(INPUTS))  # materialize the lazy layer
    with torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}), \
            create_runtime("torch-compile", RuntimeOptions()) as runtime:
        runtime.load(TorchModuleArtifact(name="shifted", build=lambda: module))
        runtime.prepare(INPUTS)
        with pytest.raises(Exception) as caught:
            runtime.run()
            runtime.synchronize()
    assert runtime_class("torch-compile").classify_failure(caught.value) == "unsupported"


def test_compile_options_are_validated():
    cls = runtime_class("torch-compile")
    assert cls.parse_options({"mode": "max-autotune", "freezing": "off"}) == {"mode": "max-autotune",
                                                                              "freezing": "off"}
    with pytest.raises(BadOption, match="choose from default, reduce-overhead, max-autotune"):
        cls.parse_options({"mode": "fastest"})


# ---------------------------------------------------------------- bf16 on torch


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    cases = {"flags\t: fpu avx512f avx512_vnni\n": None, "flags\t: fpu avx512f avx512_bf16\n": "avx512_bf16",
             "flags\t: fpu amx_tile amx_bf16\n": "amx_bf16", "Features\t: fp asimd bf16 i8mm\n": "bf16"}
    for text, expected in cases.items():
        (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + text)
        assert native_bf16(tmp_path / "cpuinfo") == expected
    assert native_bf16(tmp_path / "missing") is None
    assert parse_flags("flags : a b\nflags : b c\n") == {"a", "b", "c"}


def test_torch_bf16_is_unsupported_where_the_cpu_would_emulate_it(monkeypatch):
    import runtimes.torch_eager

    monkeypatch.setattr(runtimes.torch_eager, "native_bf16", lambda: None)
    for name in ("torch", "torch-compile"):
        with pytest.raises(UnsupportedConfiguration, match="computes it in hardware"):
            create_runtime(name, RuntimeOptions(precision="bf16"))


@needs_bf16
@pytest.mark.parametrize("name", ["torch", "torch-compile"])
def test_torch_bf16_autocasts(name):
    logits, info = _infer(name, TORCH_ARTIFACT, RuntimeOptions(precision="bf16"))
    assert info["options"]["autocast"] == "bf16" and info["options"]["cpu_bf16_instructions"] == CPU_BF16
    parity = compare(_eager_logits(), logits)
    assert 0 < parity.max_rel_err <= TOLERANCES["bf16"].max_rel_err


# ---------------------------------------------------------------- from the command line


@pytest.mark.slow
@needs_ov
def test_verify_and_bench_ov_and_torch_compile(tmp_path, capsys):
    result = run_cli(capsys, "verify", "--models", "squeezenet1_1", "--runtime", "ov,torch-compile", "--precision",
                     "fp32,bf16", "--out", str(tmp_path), "--run-id", "v")
    assert result.returncode == 0, result.stderr + result.stdout
    records = {(r["cell"]["runtime"], r["cell"]["precision"]): r
               for r in read_records(tmp_path / "v" / "records.jsonl").records}
    for runtime in ("ov", "torch-compile"):
        fp32 = records[(runtime, "fp32")]
        assert fp32["status"] == "ok" and fp32["parity"]["max_rel_err"] < 1e-4, fp32
        bf16 = records[(runtime, "bf16")]
        if CPU_BF16 is None:
            assert bf16["status"] == "unsupported"
        else:
            assert bf16["status"] == "ok" and bf16["parity"]["top1_agreement"] == 1.0, bf16
    result = run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "ov", "--batch-sizes", "3",
                     "--runtime-option",
                     "ov.hint=throughput", "--out", str(tmp_path), "--run-id", "b", "--show", "time,cold")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "cold start" in result.stdout and "1 compile(s), input [3,3,224,224]" in result.stdout
    [record] = read_records(tmp_path / "b" / "records.jsonl").records
    options = record["runtime"]["options"]
    assert options["input_shape"] == "[3,3,224,224]" and options["performance_hint"] == "THROUGHPUT"
    assert record["cold_start"]["load_includes"].startswith("reading the ONNX file")
    timing = record["timing"]
    assert timing["device_clock"].startswith("OpenVINO")
    assert len(record["samples_ms"]["device"]) == timing["host"]["samples"]
    assert 0.0 < timing["device"]["median_ms"] <= timing["host"]["median_ms"]


def test_mistakes_with_the_new_runtimes_get_one_line(capsys):
    line = one_error_line(run_cli(capsys, "export", "--models", "squeezenet1_1", "--precision", "bf16"))
    assert "bf16 has no ONNX file of its own" in line and "--precision fp32" in line
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "ov", "--runtime-option",
                                  "ov.hint=fast"))
    assert "bad value 'fast' for ov.hint" in line
    assert "choose from time, memory, energy, cold" in one_error_line(run_cli(capsys, "show", "results", "--show",
                                                                              "warm"))
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--device", "tpu"))
    assert "unknown device 'tpu'" in line and "intel-gpu" in line


def test_without_openvino_the_runtime_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # what an import of a missing package finds
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'dnn-harness\[ov\]'"):
        runtime_class("ov")
