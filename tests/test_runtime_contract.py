"""One contract suite, run against every runtime that can be imported here."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from runtimes import RUNTIMES, RuntimeUnavailable, create_runtime, runtime_class
from runtimes.base import ONNX_FILE, RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration
from tests.helpers import INPUTS, TORCH_ARTIFACT, importable, tiny_model


def _why_not_here(name: str) -> str | None:
    """None when the runtime can run on this machine's CPU; else the reason it cannot."""
    try:
        create_runtime(name, RuntimeOptions()).close()
    except RuntimeUnavailable as exc:
        return str(exc)
    except UnsupportedConfiguration as exc:
        return f"needs what this machine lacks: {exc}"
    return None


RUNTIME_NAMES = [pytest.param(name, marks=pytest.mark.skipif(_why_not_here(name) is not None,
                                                             reason=str(_why_not_here(name))))
                 for name in RUNTIMES]


@pytest.fixture
def artifact_for(onnx_artifact):
    def choose(runtime):
        return onnx_artifact if runtime.consumes == ONNX_FILE else TORCH_ARTIFACT

    return choose


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_lifecycle(name, artifact_for):
    runtime = create_runtime(name, RuntimeOptions())
    runtime.load(artifact_for(runtime))
    runtime.prepare(INPUTS)
    for _ in range(3):
        runtime.run()
        runtime.synchronize()
    [logits] = runtime.outputs()
    assert isinstance(logits, np.ndarray) and logits.shape == (2, 1000)
    runtime.close()
    runtime.close()  # idempotent


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_info_names_every_knob(name, artifact_for):
    with create_runtime(name, RuntimeOptions()) as runtime:
        runtime.load(artifact_for(runtime))
        info = runtime.info()
    assert {"name", "version", "device", "precision", "options"} <= set(info)
    assert info["name"] == name and info["device"] == "cpu" and info["precision"] == "fp32"


SCALARS = (str, int, float, bool, type(None), RuntimeOptions, dict, list, tuple, set, types.ModuleType)
LIBRARY_HANDLES = {"device", "Core"}  # torch.device, OpenVINO's Core: the library, not what a model holds


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_leaving_the_context_releases_what_the_runtime_held(name, artifact_for, monkeypatch):
    """Leaving `with` calls the runtime's own _release once (close() again does not), and every object it held
    after a run (session, module, request, buffers: anything not a plain value) is dropped."""
    released = []
    cls = runtime_class(name)
    monkeypatch.setattr(cls, "_release", lambda self, own=cls._release: (released.append(self), own(self))[1])
    with create_runtime(name, RuntimeOptions()) as runtime:
        runtime.load(artifact_for(runtime))
        runtime.prepare(INPUTS)
        runtime.run()
        runtime.synchronize()
        held = [key for key, value in vars(runtime).items()
                if not isinstance(value, SCALARS) and type(value).__name__ not in LIBRARY_HANDLES]
    assert released == [runtime]
    runtime.close()
    assert released == [runtime], "close() after leaving the context released twice"
    assert held or name == "null", "a runtime that ran a model held nothing to release"
    still = {key: type(vars(runtime)[key]).__name__ for key in held if vars(runtime)[key] is not None}
    assert not still, f"still held after close: {still}"


OWN_CLOCK_ON_CPU = {"ov"}  # OpenVINO's InferRequest.latency


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_on_the_cpu_a_device_clock_is_the_librarys_own(name, artifact_for):
    """On the CPU the host clock is the only clock, except where the runtime's library keeps one of its own:
    then the clock names itself and reads a positive time after a run."""
    with create_runtime(name, RuntimeOptions()) as runtime:
        runtime.load(artifact_for(runtime))
        clock = runtime.device_clock()
        if name not in OWN_CLOCK_ON_CPU:
            assert clock is None
            return
        runtime.prepare(INPUTS)
        clock.mark_start()
        runtime.run()
        clock.mark_end()
        runtime.synchronize()
        assert clock.source.startswith("OpenVINO") and clock.elapsed_ms() > 0


def _infer_once(name: str, artifact, options: RuntimeOptions) -> tuple[np.ndarray, dict]:
    with create_runtime(name, options) as runtime:
        runtime.load(artifact)
        runtime.prepare(INPUTS)
        runtime.run()
        runtime.synchronize()
        return runtime.outputs()[0], runtime.info()


def test_torch_outputs_match_the_module():
    import torch

    logits, info = _infer_once("torch", TORCH_ARTIFACT, RuntimeOptions(threads=1))
    assert info["options"]["threads"] == 1
    with torch.inference_mode():
        expected = tiny_model().eval()(torch.from_numpy(INPUTS)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_torch_channels_last_gives_the_same_answer():
    results = []
    for channels_last in (False, True):
        logits, info = _infer_once("torch", TORCH_ARTIFACT, RuntimeOptions(channels_last=channels_last))
        results.append(logits)
        assert info["options"]["channels_last"] is channels_last
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-5)


def test_torch_refuses_fp16_on_cpu_and_unknown_precision():
    with pytest.raises(UnsupportedConfiguration, match="fp16"):
        create_runtime("torch", RuntimeOptions(precision="fp16"))
    with pytest.raises(UnsupportedConfiguration):
        create_runtime("torch", RuntimeOptions(precision="int8"))


def test_null_runtime_never_builds_the_model():
    def explode():
        raise AssertionError("built")

    with create_runtime("null", RuntimeOptions()) as runtime:
        runtime.load(TorchModuleArtifact(name="x", build=explode))
        runtime.prepare(INPUTS)
        runtime.run()
        assert runtime.outputs()[0].shape == (2, 1000)


def test_importing_runtimes_imports_no_runtime_library():
    code = ("import sys, runtimes, runtimes.torch_eager, runtimes.null, harness.cli.main; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'timm', 'openvino') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_runtime_by_import_path():
    cls = runtime_class("tests.faulty_runtimes:RaisingRuntime")
    assert cls.__name__ == "RaisingRuntime"
    with pytest.raises(RuntimeUnavailable):
        runtime_class("tests.faulty_runtimes:NoSuchRuntime")
    with pytest.raises(RuntimeUnavailable):
        runtime_class("no_such_module_xyz:Runtime")


@pytest.mark.skipif(not importable("ort"), reason="onnxruntime not installed")
def test_ort_matches_torch_and_records_its_settings(onnx_artifact):
    import torch

    logits, info = _infer_once("ort", onnx_artifact, RuntimeOptions(threads=1))
    with torch.inference_mode():
        expected = tiny_model().eval()(torch.from_numpy(INPUTS)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    options = info["options"]
    assert options["intra_op_num_threads"] == 1 and options["providers"] == ["CPUExecutionProvider"]
    assert "ENABLE_ALL" in options["graph_optimization_level"]


@pytest.mark.skipif(not importable("ort"), reason="onnxruntime not installed")
def test_ort_without_cuda_provider_is_unsupported_on_cuda():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(UnsupportedConfiguration, match="CUDAExecutionProvider"):
        create_runtime("ort", RuntimeOptions(device="cuda"))


def test_runtimes_refuse_the_wrong_artifact(onnx_artifact):
    with pytest.raises(UnsupportedConfiguration):
        create_runtime("torch", RuntimeOptions()).load(onnx_artifact)
    if importable("ort"):
        with pytest.raises(UnsupportedConfiguration):
            create_runtime("ort", RuntimeOptions()).load(TORCH_ARTIFACT)
