"""ONNX export: dynamic batch, checker, metadata, the TorchScript fallback, fp16, and the content-keyed cache."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters.onnx_export import ExportSpec, export
from exporters.store import Store


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1000)).eval()


class DataDependent(torch.nn.Module):
    """A branch on a tensor's value: torch.export refuses it, the TorchScript tracer records one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.body(x)
        return self.body(-x)


def _spec(**overrides) -> ExportSpec:
    base = dict(model="tiny", weights_id="seed0", input_size=32, metadata=(("harness.model", "tiny"),))
    return ExportSpec(**{**base, **overrides})


def _run(path, batch: int) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((batch, 3, 32, 32), dtype=np.float32)
    return session.run(None, {session.get_inputs()[0].name: x})[0], x


def test_export_small_model(tmp_path):
    entry, hit = export(_spec(), tiny, Store(tmp_path))
    assert not hit and entry.meta["exporter"] == "torch.onnx dynamo" and entry.meta["fallback_reason"] is None
    assert entry.meta["opset"] >= 18 and entry.meta["export_s"] > 0
    model = onnx.load(str(entry.path))
    onnx.checker.check_model(model, full_check=True)
    assert not model.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # dynamic batch
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["harness.model"] == "tiny" and metadata["harness.exporter"] == "torch.onnx dynamo"
    for batch in (1, 5):
        out, x = _run(entry.path, batch)
        with torch.inference_mode():
            expected = tiny()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_cache_hit_does_not_export_again(tmp_path):
    store = Store(tmp_path)
    first, _ = export(_spec(), tiny, store)

    def must_not_build():
        raise AssertionError("exported again")

    second, hit = export(_spec(), must_not_build, store)
    assert hit and second.path == first.path and second.meta["sha256"] == first.meta["sha256"]


def test_key_changes_with_what_determines_content(tmp_path):
    store = Store(tmp_path)
    a, _ = export(_spec(), tiny, store)
    b, hit = export(_spec(weights_id="seed1"), tiny, store)
    assert not hit and a.path != b.path


def test_damaged_file_is_detected_and_rebuilt(tmp_path):
    store = Store(tmp_path)
    entry, _ = export(_spec(), tiny, store)
    data = bytearray(entry.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.path.write_bytes(bytes(data))
    rebuilt, hit = export(_spec(), tiny, store)
    assert not hit and rebuilt.meta["sha256"] == entry.meta["sha256"]  # the same content, made again
    onnx.checker.check_model(onnx.load(str(rebuilt.path)), full_check=True)


def test_torchscript_fallback_is_recorded_with_its_reason(tmp_path):
    entry, _ = export(_spec(model="branchy"), DataDependent, Store(tmp_path))
    assert entry.meta["exporter"] == "torch.onnx torchscript"
    assert entry.meta["fallback_reason"].startswith("dynamo exporter failed:")
    assert entry.meta["opset"] == 17
    json.dumps(entry.meta)


def test_fp16_keeps_fp32_inputs_and_outputs(tmp_path):
    entry, _ = export(_spec(precision="fp16"), tiny, Store(tmp_path))
    model = onnx.load(str(entry.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    out, x = _run(entry.path, 2)
    with torch.inference_mode():
        expected = tiny()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=2e-2, atol=2e-2)


def test_simplified_graph_gives_the_same_answer(tmp_path):
    plain, _ = export(_spec(), tiny, Store(tmp_path))
    slim, _ = export(_spec(simplify=True), tiny, Store(tmp_path))
    assert slim.path != plain.path
    np.testing.assert_allclose(_run(slim.path, 3)[0], _run(plain.path, 3)[0], rtol=1e-5, atol=1e-6)


def test_unknown_precision(tmp_path):
    from exporters.onnx_export import ExportFailed

    with pytest.raises(ExportFailed):
        export(_spec(precision="int8"), tiny, Store(tmp_path))


def test_unchanged_file_is_not_rehashed_but_a_rewritten_one_is(tmp_path, monkeypatch):
    import exporters.store as store_module

    store = Store(tmp_path)
    entry, _ = export(_spec(), tiny, store)
    hashed = []
    real = store_module.sha256_of
    monkeypatch.setattr(store_module, "sha256_of", lambda path: hashed.append(path) or real(path))
    export(_spec(), tiny, store)
    assert hashed == []  # size, mtime and inode unchanged since the last check
    entry.path.write_bytes(entry.path.read_bytes())  # same content, rewritten: checked again, still valid
    _, hit = export(_spec(), tiny, store)
    assert hit and hashed == [entry.path]
