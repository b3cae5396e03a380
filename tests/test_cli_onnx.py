"""export, verify, and bench on ONNX Runtime from the command line, including ONNX files made elsewhere."""

from __future__ import annotations

import importlib.util

import pytest

from harness.records import read_records
from tests import onnx_graphs
from tests.helpers import one_error_line, run_cli


def test_export_catalogue_models_then_hit_the_cache(tmp_path, capsys, monkeypatch):
    models = "squeezenet1_1,mobilenet_v2,shufflenet_v1_g8"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # the session's may hold these already
    first = run_cli(capsys, "export", "--models", models)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "3/3 cells ok" in first.stdout and first.stdout.count("torch.onnx dynamo") == 3
    assert first.stdout.count(" new ") == 3
    second = run_cli(capsys, "export", "--models", models)
    assert second.returncode == 0 and second.stdout.count(" hit ") == 3


def test_verify_against_torch(tmp_path, capsys):
    result = run_cli(capsys, "verify", "--models", "squeezenet1_1", "--runtime", "ort", "--out", str(tmp_path),
                     "--run-id", "v")
    assert result.returncode == 0, result.stderr + result.stdout
    reference, record = read_records(tmp_path / "v" / "records.jsonl").records
    # the reference runs through the runtime contract like any runtime, first, and says so
    assert reference["cell"]["runtime"] == "torch" and reference["parity"]["is_reference"] is True
    assert "reference" in result.stdout
    assert record["kind"] == "parity" and record["status"] == "ok"
    assert record["parity"]["top1_agreement"] == 1.0 and record["parity"]["max_rel_err"] < 1e-4
    assert record["prepared"]["weights"]["kind"] == "random"
    assert "BatchNorm" in record["prepared"]["weights"]["description"]


def test_verify_leaves_a_precision_the_runtime_cannot_run_out_of_its_exit_code(tmp_path, capsys):
    """ort has no bf16: verify --precision fp32,bf16 lists that cell as unsupported and exits 0 when the rest
    agree; --strict counts it; a verify where nothing could be compared fails."""
    base = ["verify", "--models", "squeezenet1_1", "--runtime", "ort", "--out", str(tmp_path)]
    both = run_cli(capsys, *base, "--precision", "fp32,bf16", "--run-id", "v")
    assert both.returncode == 0, both.stdout + both.stderr
    said = " ".join(both.stdout.split())
    assert "unsupported: CannotRunHere: ort runs fp32, fp16 or int8 (Q/DQ) graphs, not bf16" in said
    assert "2/3 cells ok, 1 that their runtime cannot run here not counted as failures (--strict counts them)" in said
    strict = run_cli(capsys, *base, "--precision", "fp32,bf16", "--run-id", "v", "--strict")  # on v's records
    assert strict.returncode == 1 and "2/3 cells ok. Records" in strict.stdout, strict.stdout + strict.stderr
    alone = run_cli(capsys, *base, "--precision", "bf16", "--run-id", "b")
    assert alone.returncode == 1 and "no cell was compared" in alone.stdout, alone.stdout + alone.stderr
    again = run_cli(capsys, *base, "--precision", "bf16", "--run-id", "b")  # the run id again: judged on its records
    assert again.returncode == 1 and "1/2 cells ok" in again.stdout, again.stdout + again.stderr


def test_bench_torch_and_ort_side_by_side(tmp_path, capsys):
    result = run_cli(capsys, "bench", "--runtime", "torch,ort", "--models", "squeezenet1_1", "--batch-sizes", "1",
                     "--out", str(tmp_path), "--run-id", "b")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "vs torch" in result.stdout
    records = read_records(tmp_path / "b" / "records.jsonl").records
    ort_record = next(r for r in records if r["cell"]["runtime"] == "ort")
    artifact = ort_record["prepared"]["artifact"]
    assert artifact["exporter"] == "torch.onnx dynamo" and artifact["opset"] == 18 and artifact["sha256"]
    assert ort_record["runtime"]["options"]["providers"] == ["CPUExecutionProvider"]
    torch_record = next(r for r in records if r["cell"]["runtime"] == "torch")
    assert torch_record["prepared"]["weights"]["sha256"] == ort_record["prepared"]["weights"]["sha256"]


def test_outside_file_with_dynamic_batch(tmp_path, capsys):
    path = onnx_graphs.classifier(tmp_path / "dyn.onnx")
    result = run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--batch-sizes", "1,4",
                     "--out", str(tmp_path), "--run-id", "o")
    assert result.returncode == 0, result.stderr + result.stdout
    records = read_records(tmp_path / "o" / "records.jsonl").records
    assert [r["input"]["shape"] for r in records] == [[1, 3, 8, 8], [4, 3, 8, 8]]
    assert records[0]["model"]["input_name"] == "image" and records[0]["model"]["name"] == "dyn"


def test_outside_file_with_fixed_batch(tmp_path, capsys):
    path = onnx_graphs.classifier(tmp_path / "fixed.onnx", batch=2)
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--batch-sizes", "1,4"))
    assert "fixed batch dimension of 2" in line and "--batch-sizes 2" in line
    ok = run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--batch-sizes", "2", "--out", str(tmp_path))
    assert ok.returncode == 0, ok.stderr + ok.stdout


@pytest.mark.parametrize("runtime", ["ort", pytest.param("ov", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino not installed"))])
def test_outside_file_with_an_unsupported_op(tmp_path, runtime, capsys):
    path = onnx_graphs.unsupported_op(tmp_path / "custom.onnx")
    result = run_cli(capsys, "bench", "--runtime", runtime, "--onnx", str(path), "--batch-sizes", "1",
                     "--out", str(tmp_path), "--run-id", "u")
    assert result.returncode == 1
    [record] = read_records(tmp_path / "u" / "records.jsonl").records
    assert record["status"] == "unsupported" and "FancyPool" in record["error"]


@pytest.mark.parametrize("make, expected", [
    (onnx_graphs.two_inputs, "has 2 inputs (a, b)"),
    (lambda p: onnx_graphs.classifier(p, opset=5), "declares opset 5"),
])
def test_outside_files_refused_with_a_reason(tmp_path, make, expected, capsys):
    path = make(tmp_path / "model.onnx")
    assert expected in one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path),
                                              "--batch-sizes", "1"))


def test_bad_onnx_inputs(tmp_path, capsys):
    assert "does not exist" in one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", "/no/such.onnx"))
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    assert "is not an ONNX file" in one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(text)))
    dyn = onnx_graphs.classifier(tmp_path / "dyn.onnx")
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "torch", "--onnx", str(dyn)))
    assert "use --runtime ort" in line
    assert "unknown runtime 'onnx'" in one_error_line(run_cli(capsys, "verify", "--models", "resnet18", "--runtime",
                                                              "onnx"))
    assert "bad --opset 3" in one_error_line(run_cli(capsys, "export", "--models", "resnet18", "--opset", "3"))


@pytest.mark.slow
def test_attention_models_export_and_agree_on_onnxruntime(tmp_path, capsys):
    """The two attention paths of the modern catalogue through the exporter and ONNX Runtime: torchvision's
    ViT (fused multi-head attention in eval) and timm's DeiT (scaled_dot_product_attention)."""
    result = run_cli(capsys, "verify", "--models", "vit_b_16,deit_small_patch16_224", "--runtime", "ort",
                     "--batch-size", "2",
                     "--out", str(tmp_path), "--run-id", "v")
    assert result.returncode == 0, result.stdout + result.stderr
    records = read_records(tmp_path / "v" / "records.jsonl").records
    references = [r for r in records if r["parity"]["is_reference"]]
    assert [r["cell"]["model"] for r in references] == ["vit_b_16", "deit_small_patch16_224"]
    for record in (r for r in records if not r["parity"]["is_reference"]):
        parity = record["parity"]
        assert record["status"] == "ok" and parity["top1_agreement"] == 1.0, record["cell"]["model"]
        assert 0 < parity["max_rel_err"] < 1e-4, record["cell"]["model"]  # > 0: the logits are not constant
        assert record["prepared"]["artifact"]["fallback_reason"] is None  # the torch.export-based exporter
