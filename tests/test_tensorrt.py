"""The `trt` runtime on the TensorRT and cuda-python test doubles (tests/trt_double): building from the
harness's ONNX files, the engine cache, version branches (8.5 / 10 / 11), parser failures, DLA, CUDA
graphs, timing caches, and the whole CLI path (bench, verify, --onnx, export --engine).

What this does not show: that TensorRT on a GPU gives these answers at these speeds. The doubles run the
graph with ONNX Runtime on the CPU; bench/gpu_check.py is the check on real hardware.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtimes.base import EngineArtifact, EngineShapes, OnnxFileArtifact, RuntimeOptions, UnsupportedConfiguration
from tests import onnx_graphs
from tests.trt_double import device as fake_device
from tests.trt_double import subprocess_env, tensorrt_double

ROOT = Path(__file__).resolve().parent.parent


def _runtime(device: str = "cuda", precision: str = "fp32", **extra):
    from runtimes.tensorrt.runtime import TensorRTRuntime

    return TensorRTRuntime(RuntimeOptions(device=device, precision=precision, extra=extra))


def _build(runtime, onnx_path: Path, shapes: EngineShapes, state_dir: Path) -> Path:
    runtime.init_device()
    built = runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), shapes, str(state_dir))
    plan = state_dir / f"plan-{shapes.label}.engine"
    plan.write_bytes(built.plan)
    return plan


def _device_state() -> fake_device.Device:
    return fake_device.DEVICE


# ---------------------------------------------------------------- the runtime, in process

@pytest.mark.parametrize("version", ["8.5.2", "8.6.1", "10.3.0", "11.4.0.106"])
def test_build_load_run_matches_onnxruntime_on_every_version(doubles, tmp_path, version):
    import onnxruntime

    doubles(version)
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    runtime = _runtime()
    plan = _build(runtime, onnx_path, EngineShapes.static(4), tmp_path)
    facts = runtime.inspect_engine(str(plan))
    assert facts["context_device_memory_bytes"] > 0 and facts["plan_file_bytes"] == plan.stat().st_size
    inputs = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with runtime:
        runtime.load(EngineArtifact("m", str(plan), sha256=""))
        runtime.prepare(inputs)
        clock = runtime.device_clock()
        clock.mark_start()
        runtime.run()
        clock.mark_end()
        runtime.synchronize()
        assert clock.elapsed_ms() >= 0
        got = runtime.outputs()[0]
        info = runtime.info()
    expected = onnxruntime.InferenceSession(str(onnx_path)).run(None, {"image": inputs})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert info["version"] == version and info["options"]["buffers"] == "cuda-python"
    assert _device_state().default_stream_uses == 0, "work went to the default stream"


def test_precision_comes_from_the_builder_flag_before_11_and_from_the_graph_on_11(doubles, tmp_path):
    from runtimes.tensorrt.api import STRONGLY_TYPED_FP16, WEAKLY_TYPED_FP16
    from runtimes.tensorrt.runtime import TensorRTRuntime

    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    doubles("10.3.0")
    assert TensorRTRuntime.onnx_precision("fp16") == "fp32"
    facts = _runtime(precision="fp16").build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1),
                                                    str(tmp_path)).facts
    assert facts["precision_from"] == WEAKLY_TYPED_FP16 and facts["strongly_typed"] is False
    doubles("11.4.0.106")
    assert TensorRTRuntime.onnx_precision("fp16") == "fp16"
    runtime = _runtime(precision="fp16")
    runtime.init_device()
    facts = runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1), str(tmp_path)).facts
    assert facts["precision_from"] == STRONGLY_TYPED_FP16 and facts["strongly_typed"] is True


def test_tf32_is_on_by_default_and_recorded_off_when_asked(doubles, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    on = _runtime().build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    off = _runtime(tf32="off").build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1),
                                            str(tmp_path))
    assert on.facts["tf32"] is True and off.facts["tf32"] is False


@pytest.mark.parametrize("version, where", [("8.5.2", "node #0"), ("8.6.1", "node #0"), ("10.3.0", "node fancy (FancyPool)")])
def test_a_node_the_parser_rejects_is_unsupported_with_its_name_and_op(doubles, tmp_path, version, where):
    import onnx

    doubles(version)
    path = onnx_graphs.unsupported_op(tmp_path / "u.onnx")
    model = onnx.load(str(path))
    model.graph.node[0].name = "fancy"
    onnx.save(model, str(path))
    runtime = _runtime()
    runtime.init_device()
    with pytest.raises(UnsupportedConfiguration) as caught:
        runtime.build_engine(OnnxFileArtifact("u", str(path)), EngineShapes.static(1), str(tmp_path))
    assert where in str(caught.value) and "No importer registered for op: FancyPool" in str(caught.value)


def test_dla_is_refused_where_there_is_none_and_used_where_there_is(doubles, tmp_path, monkeypatch):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    with pytest.raises(UnsupportedConfiguration, match="fp16 or int8, not fp32"):
        _runtime(device="dla:0")
    runtime = _runtime(device="dla:0", precision="fp16")
    runtime.init_device()
    with pytest.raises(UnsupportedConfiguration, match="no DLA core"):
        runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    monkeypatch.setenv(fake_device.DLA_ENV, "2")
    with pytest.raises(UnsupportedConfiguration, match="this device has 2"):
        _runtime(device="dla:2", precision="fp16").build_engine(OnnxFileArtifact("m", str(onnx_path)),
                                                                EngineShapes.static(1), str(tmp_path))
    plan = _build(runtime, onnx_path, EngineShapes.static(1), tmp_path)
    header = tensorrt_double.plan_header(plan)
    assert header["dla_core"] == 0 and header["fp16"] is True
    with pytest.raises(Exception, match="could not deserialize"):  # loaded on another core: refused
        _runtime(device="dla:1", precision="fp16").inspect_engine(str(plan))


def test_cuda_graph_replays_the_captured_enqueue(doubles, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    runtime = _runtime(cuda_graph="on")
    plan = _build(runtime, onnx_path, EngineShapes.static(2), tmp_path)
    inputs = np.ones((2, 3, 8, 8), np.float32)
    with runtime:
        runtime.load(EngineArtifact("m", str(plan), sha256=""))
        runtime.prepare(inputs)
        assert runtime._graph is not None and runtime.info()["options"]["cuda_graph"] is True
        stream = _device_state().streams[runtime.backend.stream_handle(runtime._stream)]
        before = stream.work_done
        runtime.run()
        runtime.synchronize()
        assert stream.work_done == before + 1, "one launch ran the captured enqueue once"
        graph_out = runtime.outputs()[0]
    plain = _runtime()
    with plain:
        plain.load(EngineArtifact("m", str(plan), sha256=""))
        plain.prepare(inputs)
        plain.run()
        plain.synchronize()
        np.testing.assert_array_equal(plain.outputs()[0], graph_out)


def test_shapes_outside_a_static_engine_are_refused(doubles, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    runtime = _runtime()
    plan = _build(runtime, onnx_path, EngineShapes.static(2), tmp_path)
    with runtime:
        runtime.load(EngineArtifact("m", str(plan), sha256=""))
        with pytest.raises(UnsupportedConfiguration, match=r"does not accept input shape \(3, 3, 8, 8\) for"):
            runtime.prepare(np.ones((3, 3, 8, 8), np.float32))


DETECTOR_DIMS = {"images": [1, 3, 12, 10], "orig_target_sizes": [1, 2]}


def _detector_feeds(batch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(batch)
    return [rng.standard_normal((batch, 3, 12, 10)).astype(np.float32),
            rng.integers(1, 640, (batch, 2)).astype(np.int64)]


@pytest.mark.parametrize("version, sizes_type", [("8.6.1", "INT32"), ("10.3.0", "INT64"), ("11.4.0.106", "INT64")])
def test_two_inputs_with_symbolic_sizes_get_one_profile_each_and_match_onnxruntime(doubles, tmp_path, version,
                                                                                   sizes_type):
    """Every dynamic input in the profile: the batch from EngineShapes, height and width from the shapes given;
    an int64 input is an INT32 binding before TensorRT 9 (the 8.x parser narrows it) and INT64 from 10 on."""
    import onnxruntime

    doubles(version)
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    runtime = _runtime()
    runtime.init_device()
    shapes = EngineShapes("dynamic", 1, 3, 3, input_dims=DETECTOR_DIMS)
    built = runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), shapes, str(tmp_path))
    assert built.facts["shapes"]["profiles"] == {
        "images": {"min": [1, 3, 12, 10], "opt": [3, 3, 12, 10], "max": [3, 3, 12, 10]},
        "orig_target_sizes": {"min": [1, 2], "opt": [3, 2], "max": [3, 2]}}
    assert "input" not in built.facts["shapes"], "the one-input fields would name one of two inputs"
    (tmp_path / "det.engine").write_bytes(built.plan)
    tensors = {t["name"]: t for t in runtime.inspect_engine(str(tmp_path / "det.engine"))["tensors"]}
    assert [t["mode"] for t in tensors.values()] == ["INPUT", "INPUT", "OUTPUT", "OUTPUT"]
    assert tensors["orig_target_sizes"]["dtype"] == sizes_type
    session = onnxruntime.InferenceSession(str(onnx_path))
    with runtime:
        runtime.load(EngineArtifact("m", str(tmp_path / "det.engine"), sha256=""))
        for batch in (1, 3):
            feeds = _detector_feeds(batch)
            runtime.prepare(feeds)
            runtime.run()
            runtime.synchronize()
            scores, mask = runtime.outputs()
            expected = session.run(None, dict(zip(("images", "orig_target_sizes"), feeds)))
            np.testing.assert_allclose(scores, expected[0], rtol=1e-5)
            np.testing.assert_allclose(mask, expected[1], rtol=1e-5)
        with pytest.raises(UnsupportedConfiguration, match="does not accept input shape .* for images"):
            runtime.prepare([np.zeros((1, 3, 16, 10), np.float32), np.zeros((1, 2), np.int64)])  # not the given
        with pytest.raises(UnsupportedConfiguration, match="2 input"):
            runtime.prepare(_detector_feeds(1)[0])


def test_int64_values_beyond_int32_are_refused_on_tensorrt_8(doubles, tmp_path):
    doubles("8.6.1")
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    runtime = _runtime()
    plan = _build(runtime, onnx_path, EngineShapes("static", 1, 1, 1, input_dims=DETECTOR_DIMS), tmp_path)
    images, sizes = _detector_feeds(1)
    with runtime:
        runtime.load(EngineArtifact("m", str(plan), sha256=""))
        with pytest.raises(UnsupportedConfiguration, match="orig_target_sizes is int64 with values beyond int32"):
            runtime.prepare([images, sizes + 2**40])


def test_a_dynamic_size_nobody_gave_and_a_shape_tensor_are_unsupported_with_the_reason(doubles, tmp_path):
    from onnx import TensorProto, helper

    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    runtime = _runtime()
    runtime.init_device()
    with pytest.raises(UnsupportedConfiguration, match=r"input images has dynamic dimension\(s\) 2, 3 besides the "
                                                       r"batch .* --input-shape images:1x3xNxN"):
        runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6]),
                               helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    reshape = onnx_graphs._save(graph, tmp_path / "reshape.onnx")
    with pytest.raises(UnsupportedConfiguration, match=r"input shape is a shape tensor .* \(set_shape_input\)"):
        runtime.build_engine(OnnxFileArtifact("m", str(reshape)), EngineShapes.static(1), str(tmp_path))


def test_a_graph_without_a_dynamic_batch_runs_its_own_batch_only(doubles, tmp_path):
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx", height=12, width=10)
    fixed = tmp_path / "fixed.onnx"
    import onnx

    model = onnx.load(str(onnx_path))
    for graph_input in model.graph.input:
        graph_input.type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, str(fixed))
    runtime = _runtime()
    runtime.init_device()
    with pytest.raises(UnsupportedConfiguration, match="batch size is fixed at 2; it cannot run bs1"):
        runtime.build_engine(OnnxFileArtifact("m", str(fixed)), EngineShapes.static(1), str(tmp_path))
    built = runtime.build_engine(OnnxFileArtifact("m", str(fixed)), EngineShapes.static(2), str(tmp_path))
    assert built.facts["shapes"]["profiles"] == {}, "a graph of fixed shapes needs no profile"


def test_engine_keys_of_graphs_without_given_shapes_are_those_before_input_dims(doubles):
    """input_dims enters the key only where given: engines cached before the field existed are still found."""
    from runtimes.tensorrt.engine import BuildSettings, engine_key

    runtime = _runtime()
    settings = BuildSettings("fp32", True, None, None, True)
    key = engine_key(runtime.api, "sha", ("GPU", "8.6"), EngineShapes.static(2), settings)
    assert key["shapes"] == {"kind": "static", "min_batch": 2, "opt_batch": 2, "max_batch": 2}
    given = engine_key(runtime.api, "sha", ("GPU", "8.6"), EngineShapes("static", 2, 2, 2, DETECTOR_DIMS), settings)
    assert given["shapes"]["input_dims"] == DETECTOR_DIMS


def test_the_timing_cache_grows_across_builds_and_survives_damage(doubles, tmp_path):
    first = onnx_graphs.classifier(tmp_path / "a.onnx")
    second = onnx_graphs.two_layer_classifier(tmp_path / "b.onnx")
    runtime = _runtime()
    runtime.init_device()
    one = runtime.build_engine(OnnxFileArtifact("a", str(first)), EngineShapes.static(1), str(tmp_path)).facts
    two = runtime.build_engine(OnnxFileArtifact("b", str(second)), EngineShapes.static(1), str(tmp_path)).facts
    cache = Path(one["timing_cache"]["path"])
    assert one["timing_cache"]["bytes_before"] == 0 and two["timing_cache"]["bytes_before"] == \
        one["timing_cache"]["bytes_after"] < two["timing_cache"]["bytes_after"] == cache.stat().st_size
    assert "gpu" in cache.name and "trt10.3.0" in cache.name
    cache.write_bytes(b"garbage")
    three = runtime.build_engine(OnnxFileArtifact("a", str(first)), EngineShapes.static(1), str(tmp_path)).facts
    assert "starts from an empty cache" in three["timing_cache"]["discarded"]
    assert "discarding it" in three["timing_cache"]["discarded"], "TensorRT's own words are kept"
    doubles("10.3.1")  # a cache of another TensorRT version: the real library logs it and starts empty
    other = _runtime().build_engine(OnnxFileArtifact("a", str(first)), EngineShapes.static(1), str(tmp_path)).facts
    assert other["timing_cache"]["bytes_before"] == 0  # its own file: trt10.3.1
    Path(other["timing_cache"]["path"]).write_bytes(cache.read_bytes())
    moved = _runtime().build_engine(OnnxFileArtifact("a", str(first)), EngineShapes.static(1), str(tmp_path)).facts
    assert "discarded" in moved["timing_cache"]
    off = _runtime(timing_cache="off").build_engine(OnnxFileArtifact("a", str(first)), EngineShapes.static(1),
                                                    str(tmp_path)).facts
    assert off["timing_cache"] == {"used": False}


def test_merging_keeps_what_another_build_wrote_meanwhile(doubles, tmp_path):
    """Two builds that started from the same cache file: the second to finish keeps the first one's entries."""
    from runtimes.tensorrt.engine import Builder, BuildSettings

    runtime = _runtime()
    runtime.init_device()
    api, gpu = runtime.api, runtime._gpu()
    settings = BuildSettings("fp32", True, None, None, True)
    builder = Builder(api, runtime.logger)
    first, second = onnx_graphs.classifier(tmp_path / "a.onnx"), onnx_graphs.two_layer_classifier(tmp_path / "b.onnx")
    config_a = api.trt.Builder(runtime.logger).create_builder_config()
    config_b = api.trt.Builder(runtime.logger).create_builder_config()
    from runtimes.tensorrt.engine import timing_cache_path

    path = timing_cache_path(str(tmp_path), api, gpu)
    builder._load_timing_cache(config_a, path)
    builder._load_timing_cache(config_b, path)
    config_a.get_timing_cache()._entries.update({"layer-a": 1.0})
    config_b.get_timing_cache()._entries.update({"layer-b": 2.0})
    builder._merge_timing_cache(config_a, path)
    builder._merge_timing_cache(config_b, path)
    merged = api.trt.Builder(runtime.logger).create_builder_config().create_timing_cache(path.read_bytes())
    assert {"layer-a", "layer-b"} <= set(merged._entries)
    del first, second, settings


def test_a_refused_timing_cache_and_a_refused_address_are_not_ignored(doubles, tmp_path, monkeypatch):
    """set_timing_cache and set_tensor_address answer with a bool: False is recorded or stops the cell."""
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    monkeypatch.setenv("TRT_DOUBLE_REFUSE_TIMING_CACHE", "1")
    runtime = _runtime()
    plan = _build(runtime, onnx_path, EngineShapes.static(1), tmp_path)
    facts = runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1), str(tmp_path)).facts
    assert facts["timing_cache"]["used"] is False and "set_timing_cache returned False" in \
        facts["timing_cache"]["refused"]
    with runtime:
        runtime.load(EngineArtifact("m", str(plan), sha256=""))
        monkeypatch.setattr(type(runtime._context), "set_tensor_address", lambda self, name, memory: False)
        with pytest.raises(RuntimeError, match="refused the device address of tensor"):
            runtime.prepare(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.parametrize("state, says", [
    ("no-device", "CUDA is not usable here: cuda-python: CUDA cannot be used here (cudaGetDeviceCount failed: "
                  "cudaErrorNoDevice"),
    ("old-driver", "the NVIDIA driver is too old for this cuda-python: the driver supports CUDA 11.4, cuda-python")])
def test_without_a_usable_cuda_no_tensorrt_object_is_made(doubles, tmp_path, monkeypatch, state, says):
    """The real trt.Builder raises and a trt.Runtime crashes the process without CUDA: CUDA is checked first, and
    the cell is unsupported with the reason (not 'install cuda-python', which is installed)."""
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    monkeypatch.setenv("TRT_DOUBLE_CUDA", state)
    runtime = _runtime(buffers="cuda-python")
    for step in (runtime.init_device, lambda: runtime.inspect_engine(str(onnx_path)),
                 lambda: runtime.build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes.static(1),
                                              str(tmp_path))):
        with pytest.raises(UnsupportedConfiguration) as refused:
            step()
        assert says in str(refused.value) and "install cuda-python" not in str(refused.value)


def test_trt_failures_are_classified(doubles, tmp_path):
    from runtimes.tensorrt.cuda_buffers import CudaError
    from runtimes.tensorrt.runtime import TensorRTRuntime

    assert TensorRTRuntime.classify_failure(CudaError("cudaMalloc failed: cudaErrorMemoryAllocation",
                                                      "cudaErrorMemoryAllocation")) == "oom"
    assert TensorRTRuntime.classify_failure(TypeError("pybind11::init(): factory function returned nullptr")) == \
        "unsupported"
    assert TensorRTRuntime.classify_failure(RuntimeError("something else")) is None
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    with pytest.raises(UnsupportedConfiguration, match="refused the optimization profile"):
        _runtime().build_engine(OnnxFileArtifact("m", str(onnx_path)), EngineShapes("dynamic", 4, 2, 1),
                                str(tmp_path))


def test_only_an_older_tensorrt_is_refused(doubles):
    doubles("8.4.3")
    with pytest.raises(UnsupportedConfiguration, match="older than 8.5"):
        _runtime()


# ---------------------------------------------------------------- the CLI, with workers on the doubles

def _predicted(record: dict) -> np.ndarray:
    return np.load(record["accuracy"]["predictions_file"])


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_bench_builds_once_then_loads_from_the_cache_and_rebuilds_damaged_or_incompatible_engines(trt_cli, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    args = ("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--batch-sizes", "1,2", "--device", "cuda",
            "--out", str(tmp_path / "results"))
    code, out, err = trt_cli(*args, "--run-id", "first")
    assert code == 0, out + err
    first = _records(tmp_path / "results" / "first")
    assert [r["status"] for r in first] == ["ok", "ok"]
    engines = [r["prepared"]["engine"] for r in first]
    assert [e["cache_hit"] for e in engines] == [False, False]
    assert [e["shapes"]["label"] for e in engines] == ["bs1", "bs2"]
    record = first[0]
    assert record["cold_start"]["load_includes"].startswith("deserializing the engine")
    assert record["timing"]["device"]["samples"] == record["timing"]["host"]["samples"]
    assert record["memory"]["tensorrt_engine"]["context_device_memory_bytes"] == engines[0]["context_device_memory_bytes"]
    assert record["runtime"]["options"]["buffers"] == "cuda-python"

    code, out, err = trt_cli(*args, "--run-id", "second")
    assert code == 0, out + err
    assert [r["prepared"]["engine"]["cache_hit"] for r in _records(tmp_path / "results" / "second")] == [True, True]

    cache = Path(os.environ["HARNESS_CACHE_DIR"])
    damaged = cache / engines[0]["folder"] / "model.engine"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    forged = cache / engines[1]["folder"] / "model.engine"
    tensorrt_double.rewrite_plan_header(forged, compute_capability="7.2")  # as if built for another GPU
    meta = json.loads((forged.parent / "meta.json").read_text())
    from exporters.store import sha256_of

    meta.update(sha256=sha256_of(forged), verified_stamp=None)
    (forged.parent / "meta.json").write_text(json.dumps(meta))
    code, out, err = trt_cli(*args, "--run-id", "third")
    assert code == 0, out + err
    third = [r["prepared"]["engine"] for r in _records(tmp_path / "results" / "third")]
    assert [e["cache_hit"] for e in third] == [False, False]
    assert "hash differs" in third[0]["rebuilt_because"]
    assert "could not deserialize" in third[1]["rebuilt_because"]


def test_dynamic_profile_builds_one_engine_for_all_batch_sizes(trt_cli, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--batch-sizes", "1,2,4",
                             "--device", "cuda", "--runtime-option", "trt.profile=dynamic", "--out",
                             str(tmp_path / "results"), "--run-id", "dyn")
    assert code == 0, out + err
    engines = [r["prepared"]["engine"] for r in _records(tmp_path / "results" / "dyn")]
    assert {e["folder"] for e in engines} == {engines[0]["folder"]}
    assert engines[0]["shapes"] == {"kind": "dynamic", "min_batch": 1, "opt_batch": 4, "max_batch": 4,
                                    "label": "dynamic-1-4-4"}


@pytest.mark.parametrize("profile", ["static", "dynamic"])
def test_bench_of_a_graph_with_two_inputs_and_symbolic_sizes(trt_cli, tmp_path, profile):
    """RT-DETR's shape of export on trt: --input-shape reaches the build job, whose profile covers both inputs."""
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--device", "cuda",
                             "--input-shape", "images:1x3x32x24", "--batch-sizes", "1,2", "--runtime-option",
                             f"trt.profile={profile}", "--out", str(tmp_path / "results"), "--run-id", profile)
    assert code == 0, out + err
    records = _records(tmp_path / "results" / profile)
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("error") for r in records]
    engines = [r["prepared"]["engine"] for r in records]
    assert len({e["folder"] for e in engines}) == (1 if profile == "dynamic" else 2)
    assert engines[0]["shapes"]["input_dims"] == {"images": [1, 3, 32, 24], "orig_target_sizes": [1, 2]}
    top = 2 if profile == "dynamic" else 1
    assert engines[0]["build"]["shapes"]["profiles"] == {
        "images": {"min": [1, 3, 32, 24], "opt": [top, 3, 32, 24], "max": [top, 3, 32, 24]},
        "orig_target_sizes": {"min": [1, 2], "opt": [top, 2], "max": [top, 2]}}
    assert [[i["shape"] for i in r["input"]["inputs"]] for r in records] == [
        [[b, 3, 32, 24], [b, 2]] for b in (1, 2)]


def test_a_parser_failure_is_unsupported_with_the_node_and_the_rest_goes_on(trt_cli, tmp_path):
    path = onnx_graphs.unsupported_op(tmp_path / "u.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(path), "--runtime", "trt", "--batch-sizes", "1",
                             "--device", "cuda", "--out", str(tmp_path / "results"), "--run-id", "bad")
    (record,) = _records(tmp_path / "results" / "bad")
    assert record["status"] == "unsupported" and "FancyPool" in record["error"] and "parser rejects" in record["error"]
    assert code == 1


def test_dla_without_a_dla_is_unsupported_with_the_reason(trt_cli, tmp_path):
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--batch-sizes", "1",
                             "--precision", "fp16", "--device", "dla:0", "--out", str(tmp_path / "results"),
                             "--run-id", "dla")
    (record,) = _records(tmp_path / "results" / "dla")
    assert record["status"] == "unsupported" and "no DLA core" in record["error"]


def test_an_engine_swapped_after_its_build_is_never_loaded(trt_cli, tmp_path):
    """The cell loads only the file whose hash the build job recorded."""
    from harness.cell import worker

    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    context = _context_with_engine(trt_cli, tmp_path, onnx_path)
    assert Path(context.engine_artifact().path).is_file()
    engine_file = Path(context.in_cache(context.prepared.engine["folder"])) / worker.ENGINE_FILE
    engine_file.write_bytes(engine_file.read_bytes() + b"plugin code")
    with pytest.raises(RuntimeError, match="changed or vanished after its build job"):
        context.engine_artifact()


def _context_with_engine(trt_cli, tmp_path: Path, onnx_path: Path):
    from harness.cell.worker import CellContext
    from harness.protocol import CellRequest

    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--batch-sizes", "1",
                             "--device", "cuda", "--out", str(tmp_path / "results"), "--run-id", "swap")
    assert code == 0, out + err
    (record,) = _records(tmp_path / "results" / "swap")
    request = {"mode": "bench", "cell": record["cell"], "reference": {"runtime": "torch", "precision": "fp32"},
               "model": {"name": "c", "onnx_path": str(onnx_path),
                         "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, 8, 8]}]},
               "prepared": record["prepared"]}
    return CellContext(CellRequest.from_json(request), {"cache_dir": os.environ["HARNESS_CACHE_DIR"],
                                                        "run_dir": str(tmp_path / "results" / "swap")})


@pytest.mark.slow
def test_catalogue_model_bench_verify_and_export_engine(trt_cli, tmp_path):
    """The whole path for a catalogue model: prepare (export) -> build -> bench; verify against PyTorch
    eager; export --engine ahead of a sweep, then the sweep finds the engines cached."""
    out_dir = str(tmp_path / "results")
    code, out, err = trt_cli("export", "--engine", "--models", "squeezenet1_1", "--precision", "fp32,fp16",
                             "--batch-sizes", "1,2")
    assert code == 0, out + err
    assert "Engines" in out and out.count("new") + out.count("hit") == 4  # other tests may have built some
    code, out, err = trt_cli("bench", "--models", "squeezenet1_1", "--runtime", "trt", "--precision", "fp32,fp16",
                             "--batch-sizes", "1,2", "--device", "cuda", "--out", out_dir, "--run-id", "b")
    assert code == 0, out + err
    records = _records(tmp_path / "results" / "b")
    assert len(records) == 4 and all(r["prepared"]["engine"]["cache_hit"] for r in records)
    fp16 = next(r for r in records if r["cell"]["precision"] == "fp16")
    assert fp16["prepared"]["artifact"]["precision"] == "fp32"  # 10.x: the builder flag on the fp32 graph
    code, out, err = trt_cli("verify", "--models", "squeezenet1_1", "--runtime", "trt", "--precision", "fp32,fp16",
                             "--device", "cuda", "--out", out_dir, "--run-id", "v", "--batch-size", "2")
    assert code == 0, out + err
    verify = {(r["cell"]["runtime"], r["cell"]["precision"], r["cell"]["device"]): r
              for r in _records(tmp_path / "results" / "v")}
    assert verify[("torch", "fp32", "cpu")]["parity"]["is_reference"]  # the reference runs on the CPU
    for precision in ("fp32", "fp16"):
        record = verify[("trt", precision, "cuda")]
        assert record["status"] == "ok" and record["parity"]["top1_agreement"] == 1.0
    code, out, err = trt_cli("verify", "--models", "squeezenet1_1", "--runtime", "trt", "--device", "cuda",
                             "--out", out_dir, "--run-id", "wrong", "--batch-size", "2",
                             TRT_DOUBLE_OUTPUT_SCALE="1.5")
    wrong = [r for r in _records(tmp_path / "results" / "wrong") if r["cell"]["runtime"] == "trt"]
    assert code == 1 and wrong[0]["status"] == "parity_failed" and "parity_failed" in out
    code, out, err = trt_cli("bench", "--models", "squeezenet1_1", "--runtime", "trt", "--precision", "fp16",
                             "--batch-sizes", "1", "--device", "cuda", "--out", out_dir, "--run-id", "v11",
                             version="11.4.0.106")
    assert code == 0, out + err
    (record,) = _records(tmp_path / "results" / "v11")
    assert record["prepared"]["artifact"]["precision"] == "fp16"  # 11.x: the fp16 ONNX graph
    assert "strongly typed" in record["prepared"]["engine"]["build"]["precision_from"]


def test_without_tensorrt_the_documented_command_says_what_to_install():
    """The issue's command on a machine without TensorRT: one line, exit 2 (before the device check)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "harness", "bench", "--runtime", "trt", "--models", "resnet18",
                             "--batch-sizes", "1,4", "--device", "cuda"], capture_output=True, text=True, cwd=ROOT,
                            env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}, timeout=120)
    if result.returncode == 0 or "Traceback" in result.stderr:
        pytest.fail(result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "pip install 'dnn-harness[trt-cu12]'" in lines[0] and "--system-site-packages" in lines[0]


# ---------------------------------------------------------------- reports

def test_reports_best_and_check_show_trt_beside_torch_with_its_speed_up(tmp_path):
    """A GPU run with torch and trt cells (hand-written, as a real run would record them): the report's
    tables and speed-up chart, `best` and `check` all see trt."""
    from harness.reports import data
    from harness.reports.best import Constraints, ranked
    from harness.reports.check import check_models, load_profile
    from harness.reports.report import write_report
    from tests.report_fixtures import GPU_ENV, cpu_records, record, write_run

    rows = []
    for r in cpu_records():
        if r["status"] != "ok":
            continue
        model, batch, fps = r["cell"]["model"], r["cell"]["batch_size"], r["timing"]["host"]["images_per_s"]
        rows.append(record(model, "torch", batch, fps * 10, 900_000_000, device="cuda:0", source="cuda_nvml"))
        trt = record(model, "trt", batch, fps * 30, 700_000_000, device="cuda:0", source="cuda_nvml")
        trt["prepared"] = {"artifact": {"opset": 18, "path": "/nonexistent/model.onnx"},
                           "engine": {"cache_hit": False, "build_s": 12.0, "plan_bytes": 50_000_000}}
        rows.append(trt)
    dataset = data.load([write_run(tmp_path / "gpu-run", rows, GPU_ENV)])
    report = write_report(dataset, tmp_path / "out", "trt report")
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "trt" in tables and any(p.name.startswith("speedup-over-torch") for p in report.files)
    picks = ranked(dataset.points, Constraints(max_memory_bytes=800_000_000))
    assert picks and {p.runtime for p in picks} == {"trt"}  # only trt's cells fit 0.8 GB
    profile = load_profile("workstation").model_copy(update={"device_match": ["Test GPU"]})
    [check] = check_models(profile, [("resnet50", 175_000_000)], dataset)
    speed = next(c for c in check.criteria if c.name == "speed")
    assert "trt" in speed.figure


# ---------------------------------------------------------------- the GPU check script

# Two real trtexec summary lines (NVIDIA/TensorRT issue 4177, TensorRT 10; beyondli/Yolo_on_Jetson issue 4,
# a Jetson's 8.x): the script reads the median from either.
TRTEXEC_LINES = [
    "[10/03/2024-10:47:59] [I] GPU Compute Time: min = 5.34595 ms, max = 13.3388 ms, mean = 7.58404 ms, "
    "median = 7.14139 ms, percentile(90%) = 10.2881 ms, percentile(95%) = 10.8175 ms, percentile(99%) = 12.9485 ms",
    "GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean = 3.63242 ms, median = 3.71753 ms, "
    "percentile(99%) 3.87793 ms",
]


def test_the_gpu_check_reads_trtexecs_median():
    from harness.measure.trtexec import gpu_compute_median_ms

    assert [gpu_compute_median_ms(line) for line in TRTEXEC_LINES] == [7.14139, 3.71753]


@pytest.mark.slow
def test_the_gpu_check_runs_to_the_end_with_what_is_installed(tmp_path):
    """On the doubles (the driver's count faked to 1): torch without CUDA and onnxruntime without CUDA are
    skipped with the reason, trt runs and is verified, and a trtexec on PATH is run on the cell's engine."""
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "trtexec-calls.txt"
    trtexec = tools / "trtexec"
    trtexec.write_text(f"""#!{sys.executable}
import sys, pathlib
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec")
if len(sys.argv) == 1:
    sys.exit(1)
engine = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--loadEngine="))
assert pathlib.Path(engine).is_file(), engine
pathlib.Path({str(calls)!r}).open("a").write(" ".join(sys.argv[1:]) + "\\n")
print({TRTEXEC_LINES[1]!r})
""")
    trtexec.chmod(0o755)
    env = {**os.environ, **subprocess_env("10.3.0", TRT_DOUBLE_DRIVER_DEVICES="1"),
           "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(tmp_path / "results"), "--models",
                             "squeezenet1_1", "--batch-sizes", "1"], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "skipped torch: torch has no CUDA here" in result.stdout
    assert "skipped ort: onnxruntime offers no CUDAExecutionProvider" in result.stdout
    summary = json.loads(next((tmp_path / "results").glob("gpu-check-*-bench/gpu-check.json")).read_text())
    assert summary["runtimes"] == ["trt"]
    rows = {row["cell"]: row for row in summary["rows"]}
    fp16 = rows["squeezenet1_1|trt|fp16|bs1|cuda"]
    assert fp16["status"] == "ok" and fp16["parity"] == "ok"
    assert fp16["ratio_to_trtexec"] == pytest.approx(fp16["device_median_ms"] / 3.71753)
    assert "--noDataTransfers" in fp16["trtexec_command"] and fp16["trtexec_version"] == "10.3.0"
    # a static engine too: trtexec would set a dynamic batch it is not given to 1 (here 1 anyway)
    assert any(re.fullmatch(r"--shapes=[\w.:]+:1x3x\d+x\d+", a) for a in fp16["trtexec_command"])
    assert fp16["device_method"] == "queued ahead"
    assert len(calls.read_text().splitlines()) == 2


# ---------------------------------------------------------------- a hostile user

def test_engine_flags_without_engine_and_other_mistakes_are_one_line(trt_cli):
    for args, words in [(("export", "--models", "resnet18", "--device", "cuda"), "--device only apply to engines"),
                        (("export", "--models", "resnet18", "--runtime-option", "trt.tf32=off"), "add --engine"),
                        (("export", "--engine", "--models", "resnet18", "--runtime", "ort"), "builds no engine"),
                        (("export", "--engine", "--models", "resnet18", "--device", "cpu"), "are built for cuda[:N] or dla:N"),
                        (("export", "--engine", "--models", "resnet18", "--runtime-option", "trt.profile=wide"),
                         "bad value 'wide' for trt.profile"),
                        (("bench", "--models", "resnet18", "--runtime", "trt", "--device", "dla:x"),
                         "unknown device 'dla:x'")]:
        code, out, err = trt_cli(*args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and words in lines[0], (args, err)


def test_export_engine_without_tensorrt_says_what_to_install():
    from tests.helpers import one_error_line, harness

    line = one_error_line(harness("export", "--engine", "--models", "resnet18"))
    assert "pip install 'dnn-harness[trt-cu12]'" in line


def test_a_build_killed_midway_leaves_nothing_half_made_and_the_run_resumes(tmp_path):
    import signal
    import time

    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    marker = tmp_path / "building"
    env = {**os.environ, **subprocess_env("10.3.0", TRT_DOUBLE_DRIVER_DEVICES="1"), "COLUMNS": "200",
           "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "harness", "bench", "--onnx", str(onnx_path), "--runtime", "trt",
            "--batch-sizes", "1,2", "--device", "cuda", "--out", str(tmp_path / "results"), "--run-id", "r"]
    parent = subprocess.Popen(args, cwd=ROOT, env={**env, "TRT_DOUBLE_BUILD_MARKER": str(marker),
                                                   "TRT_DOUBLE_BUILD_SECONDS": "30"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the build never started"
    os.killpg(parent.pid, signal.SIGKILL)  # the whole sweep, build job included, mid-build
    parent.communicate(timeout=60)
    cache = tmp_path / "cache"
    assert cache.is_dir(), "the sweep wrote no cache where this test looks"
    assert not list(cache.rglob("model.engine")), "a half-built engine was published"
    resumed = subprocess.run([*args[:-2], "--resume", "r"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = _records(tmp_path / "results" / "r")
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert all(not r["prepared"]["engine"]["cache_hit"] for r in records)  # nothing half-built was taken
    assert list(cache.rglob("model.engine")), "the resumed build published no engine where this test looks"


def test_abandoned_half_written_engines_are_removed_and_live_ones_kept(tmp_path):
    import socket

    from harness.cell import worker

    host = socket.gethostname()
    dead = tmp_path / f".{worker.ENGINE_FILE}.{host}.999999999.tmp"
    live = tmp_path / f".{worker.ENGINE_FILE}.{host}.{os.getpid()}.tmp"
    elsewhere = tmp_path / f".{worker.ENGINE_FILE}.another-host.999999999.tmp"
    for path in (dead, live, elsewhere):
        path.write_bytes(b"half")
    worker._remove_abandoned(tmp_path)
    assert not dead.exists() and live.exists() and elsewhere.exists()


def test_torch_refuses_a_dla_with_the_reason():
    from runtimes.torch_eager import TorchEagerRuntime

    with pytest.raises(UnsupportedConfiguration, match="cpu or cuda, not dla:0"):
        TorchEagerRuntime(RuntimeOptions(device="dla:0"))


@pytest.mark.slow
def test_accuracy_on_trt_with_a_smaller_last_batch(trt_cli, tmp_path, lite0_weights, photos):
    """Real photographs and real Lite0 weights through trt (on the doubles): the engine takes batches from 1
    to --batch-size, so the smaller last batch runs; cat and coffee come out as such."""
    from tests.helpers import CAT_CLASSES, COFFEE_CLASSES, ESPRESSO, TIGER_CAT

    val = tmp_path / "val"
    for folder, name in ((TIGER_CAT, "chelsea"), (ESPRESSO, "coffee"), (TIGER_CAT, "chelsea2")):
        (val / folder).mkdir(parents=True, exist_ok=True)
        (val / folder / f"{name}.JPEG").write_bytes(photos[name.rstrip("2")].read_bytes())
    code, out, err = trt_cli("accuracy", "--data", str(val), "--models", "tf_efficientnet_lite0", "--runtime", "trt",
                             "--weights", str(lite0_weights), "--batch-size", "2", "--device", "cuda",
                             "--out", str(tmp_path / "runs"), "--run-id", "acc")
    records = {r["cell"]["runtime"]: r for r in _records(tmp_path / "runs" / "acc")}
    trt = records["trt"]
    assert trt["status"] == "ok", trt.get("error")
    assert trt["prepared"]["engine"]["shapes"]["label"] == "dynamic-1-2-2"
    top1 = [int(row[0]) for row in _predicted(trt)]
    assert top1[0] in CAT_CLASSES and top1[1] in CAT_CLASSES and top1[2] in COFFEE_CLASSES


def test_the_onnx_file_follows_the_tensorrt_where_the_cell_runs(doubles):
    """A fleet's driver (maybe without TensorRT) picks a trt cell's ONNX file by the node's TensorRT: the fp16
    graph from 11.x, the fp32 one before; a node given the other file refuses it instead of mislabelling it."""
    from harness.cell.worker import CellContext
    from harness.parts import Prepared
    from harness.sweep.planning import Cell
    from runtimes.tensorrt.runtime import TensorRTRuntime

    doubles("10.3.0")
    assert TensorRTRuntime.onnx_precision("fp16") == "fp32"  # this machine's TensorRT
    assert TensorRTRuntime.onnx_precision("fp16", {"tensorrt": "11.4.0.106"}) == "fp16"  # a node's
    assert TensorRTRuntime.onnx_precision("fp16", {"tensorrt": "8.6.2"}) == "fp32"
    assert TensorRTRuntime.onnx_precision("int8", {"tensorrt": "11.4.0.106"}) == "int8-sym"
    context = object.__new__(CellContext)  # only what the check reads
    context.cell = Cell("m", "trt", "fp16", 1, "cuda")
    context.prepared = Prepared(artifact={"kind": "onnx", "precision": "fp16"})
    with pytest.raises(RuntimeError, match="trt fp16 here reads the fp32 ONNX file, but the fp16 one was prepared"):
        context._check_onnx_precision(_runtime(precision="fp16"))
    context.prepared = Prepared(artifact={"kind": "onnx", "precision": "fp32"})
    context._check_onnx_precision(_runtime(precision="fp16"))


def test_each_trt_extra_holds_one_cuda_major():
    """A bare `tensorrt` resolves to the CUDA 13 build and `cuda-python` to 13.x: each extra pins one CUDA major
    for both, and no extra asks for the bare names."""
    from packaging.requirements import Requirement
    from setuptools.config.setupcfg import read_configuration

    extras = read_configuration(str(ROOT / "setup.cfg"))["options"]["extras_require"]
    for extra, major in (("trt_cu12", 12), ("trt_cu13", 13), ("trt", 12)):
        wanted = {Requirement(r).name: Requirement(r).specifier for r in extras[extra]}
        assert f"tensorrt-cu{major}" in wanted and "tensorrt" not in wanted, extra
        cuda = wanted["cuda-python"]
        assert cuda.contains(f"{major}.9.0") and not cuda.contains(f"{major + 1}.0.0") and \
            not cuda.contains(f"{major - 1}.9.0"), (extra, cuda)
    device = {Requirement(r).name: Requirement(r).specifier for r in extras["device"]}
    assert not device["cuda-python"].contains("13.0.0"), "JetPack 6's CUDA 12 refuses cuda-python 13"


def test_offline_runs_several_execution_contexts_on_one_engine(trt_cli, tmp_path):
    """trt's own parallelism for the offline scenario: execution contexts on the one engine, each with its own
    stream and buffers (the double refuses an enqueue whose addresses are not allocations of the right size)."""
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trt", "--device", "cuda",
                             "--input-shape", "images:2x3x16x16", "--scenario", "offline", "--streams", "3",
                             "--out", str(tmp_path / "results"), "--run-id", "offline")
    assert code == 0, out + err
    [record] = _records(tmp_path / "results" / "offline")
    assert record["status"] == "ok", record.get("error")
    scenario = record["scenario"]
    assert scenario["parallelism"].startswith("3 TensorRT execution contexts on one engine")
    assert scenario["queries"] > 0 and scenario["images_per_s"] > 0 and "queries_per_stream" not in scenario
