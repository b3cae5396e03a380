"""export, verify, and bench on ONNX Runtime from the command line, including ONNX files made elsewhere."""

from __future__ import annotations

import importlib.util

import pytest

import numpy as np

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
    (lambda p: onnx_graphs.classifier(p, opset=5), "declares opset 5"),
    (onnx_graphs.detector, "input 'images' has symbolic dimension(s) 2 (height), 3 (width): give its shape, e.g. "
                           "--input-shape images:1x3xNxN"),
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


OPENVINO = pytest.param("ov", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                       reason="openvino not installed"))


@pytest.mark.parametrize("runtime", ["ort", OPENVINO])
def test_a_graph_with_two_inputs_symbolic_sizes_and_two_outputs(tmp_path, runtime, capsys):
    """RT-DETR's shape of export: images with symbolic height and width beside an int64 input, two outputs."""
    path = onnx_graphs.detector(tmp_path / "det.onnx")
    result = run_cli(capsys, "bench", "--runtime", runtime, "--onnx", str(path), "--input-shape", "images:1x3x32x24",
                     "--batch-sizes", "1,2", "--out", str(tmp_path), "--run-id", "d")
    assert result.returncode == 0, result.stderr + result.stdout
    records = read_records(tmp_path / "d" / "records.jsonl").records
    assert [r["status"] for r in records] == ["ok", "ok"]
    fed = [[(i["name"], i["shape"], i["dtype"]) for i in r["input"]["inputs"]] for r in records]
    assert fed == [[("images", [b, 3, 32, 24], "float32"), ("orig_target_sizes", [b, 2], "int64")] for b in (1, 2)]
    model = records[0]["model"]
    assert model["outputs"] == ["scores", "mask"]
    assert [(i["name"], i["shape"], i["batched"]) for i in model["inputs"]] == [
        ("images", [1, 3, 32, 24], True), ("orig_target_sizes", [1, 2], True)]


def test_the_batch_of_input_shape_is_the_default_batch_size(tmp_path, capsys):
    path = onnx_graphs.detector(tmp_path / "det.onnx", height=16, width=16)
    result = run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path),
                     "--input-shape", "images:3x3x16x16,orig_target_sizes:3x2", "--out", str(tmp_path), "--run-id", "b")
    assert result.returncode == 0, result.stderr + result.stdout
    [record] = read_records(tmp_path / "b" / "records.jsonl").records
    assert record["cell"]["batch_size"] == 3 and record["input"]["inputs"][1]["shape"] == [3, 2]


def test_inputs_from_an_npz_are_fed_as_saved(tmp_path, capsys):
    """The .npz's arrays reach the runtime cast to the graph's types, batched ones cut to the cell's batch."""
    from harness.catalogue.onnx_files import inspect_onnx
    from harness.cell.worker import CellContext
    from harness.cells import Cell
    from harness.protocol import CellRequest, Reference

    path = onnx_graphs.detector(tmp_path / "det.onnx")
    rng = np.random.default_rng(5)
    images, sizes = rng.standard_normal((4, 3, 8, 6)), np.array([[640, 480], [320, 240], [10, 20], [7, 9]])
    np.savez(tmp_path / "in.npz", images=images, orig_target_sizes=sizes.astype(np.int32))
    onnx_file = inspect_onnx(str(path), inputs_file=str(tmp_path / "in.npz"))
    assert onnx_file.rows == 4 and onnx_file.default_batch_sizes() == [4]
    request = CellRequest(mode="bench", cell=Cell("det", "ort", "fp32", 2, "cpu"), model=onnx_file.request_model(),
                          reference=Reference("torch", "fp32"))
    feeds = CellContext(request, {"cache_dir": str(tmp_path), "run_dir": str(tmp_path)}).feeds()
    assert [f.dtype for f in feeds] == [np.float32, np.int64]
    assert np.array_equal(feeds[0], images[:2].astype(np.float32)) and np.array_equal(feeds[1], sizes[:2])
    from runtimes import create_runtime
    from runtimes.base import OnnxFileArtifact, RuntimeOptions

    with create_runtime("ort", RuntimeOptions()) as runtime:
        runtime.load(OnnxFileArtifact("det", str(path)))
        runtime.prepare(feeds)
        runtime.run()
        scores, mask = runtime.outputs()
    assert mask.shape == (2, 1, 8, 6) and np.allclose(mask[:, 0], images[:2].mean(axis=1), atol=1e-5)
    result = run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--inputs", str(tmp_path / "in.npz"),
                     "--batch-sizes", "1,4", "--out", str(tmp_path), "--run-id", "n")
    assert result.returncode == 0, result.stderr + result.stdout
    records = read_records(tmp_path / "n" / "records.jsonl").records
    assert [r["input"]["inputs"][0]["shape"] for r in records] == [[1, 3, 8, 6], [4, 3, 8, 6]]
    assert "in.npz" in records[0]["input"]["generator"]


@pytest.mark.parametrize("args, expected", [
    (["--input-shape", "images:1x3x64"], "--input-shape gives 'images' 3 dimension(s); det.onnx declares 4"),
    (["--input-shape", "image:1x3x8x8"], "names image, which det.onnx has no input of: its inputs are images float32 "
                                         "[N, 3, height, width]; orig_target_sizes int64 [N, 2]"),
    (["--input-shape", "images:1x4x8x8"], "dimension 1 is 3, not 4"),
    (["--input-shape", "images:1x3x0x8"], "bad --input-shape 'images:1x3x0x8': write NAME:DIMS"),
    (["--input-shape", "images:1x3x8x8", "--input-shape", "images:2x3x8x8"], "names input 'images' twice"),
    (["--input-shape", "images:2x3x8x8,orig_target_sizes:1x2"], "gives the batched inputs different batches (1, 2)"),
    (["--input-shape", "images:1x3x8x8", "--inputs", "x.npz"], "--inputs gives the inputs' shapes"),
    (["--inputs", "missing.npz"], "inputs file 'missing.npz' does not exist"),
])
def test_input_mistakes_are_one_line(tmp_path, args, expected, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = onnx_graphs.detector(tmp_path / "det.onnx")
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--out", str(tmp_path),
                                  *args))
    assert expected in line


def test_npz_mistakes_are_one_line(tmp_path, capsys):
    path = onnx_graphs.detector(tmp_path / "det.onnx")
    cases = {"no array for orig_target_sizes": {"images": np.zeros((1, 3, 4, 4), np.float32)},
             "arrays for no input: extra": {"images": np.zeros((1, 3, 4, 4), np.float32),
                                            "orig_target_sizes": np.zeros((1, 2), np.int64),
                                            "extra": np.zeros(1)},
             "array 'orig_target_sizes' is float64; the input takes int64": {
                 "images": np.zeros((1, 3, 4, 4), np.float32), "orig_target_sizes": np.zeros((1, 2))},
             "hold different numbers of rows (1, 2)": {"images": np.zeros((1, 3, 4, 4), np.float32),
                                                       "orig_target_sizes": np.zeros((2, 2), np.int64)}}
    for expected, arrays in cases.items():
        np.savez(tmp_path / "in.npz", **arrays)
        line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--inputs",
                                      str(tmp_path / "in.npz"), "--out", str(tmp_path)))
        assert expected in line, line
    (tmp_path / "bad.npz").write_text("not a zip")
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--inputs",
                                  str(tmp_path / "bad.npz")))
    assert "is not an .npz of arrays" in line
    np.savez(tmp_path / "in.npz", images=np.zeros((2, 3, 4, 4), np.float32),
             orig_target_sizes=np.zeros((2, 2), np.int64))
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--inputs",
                                  str(tmp_path / "in.npz"), "--batch-sizes", "1,4"))
    assert "holds 2 rows per batched input: pass --batch-sizes up to 2" in line
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--models", "resnet18", "--inputs",
                                  str(tmp_path / "in.npz")))
    assert "--inputs describes the inputs of an ONNX file: use them with --onnx PATH" in line


def test_a_run_resumed_with_other_input_shapes_is_refused(tmp_path, capsys):
    path = onnx_graphs.detector(tmp_path / "det.onnx", height=8, width=8)
    first = run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--input-shape", "images:1x3x8x8",
                    "--batch-sizes", "1", "--out", str(tmp_path), "--run-id", "r")
    assert first.returncode == 0, first.stderr + first.stdout
    np.savez(tmp_path / "in.npz", images=np.zeros((1, 3, 8, 8), np.float32),
             orig_target_sizes=np.zeros((1, 2), np.int64))
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--inputs",
                                  str(tmp_path / "in.npz"), "--batch-sizes", "1", "--out", str(tmp_path),
                                  "--resume", "r"))
    assert "planned with other" in line


def test_verify_an_outside_file_compares_every_output_with_onnx_runtime(tmp_path, capsys):
    """The reference of an ONNX file made elsewhere is ONNX Runtime fp32; a runtime wrong on its second output
    fails, and the line names that output."""
    path = onnx_graphs.detector(tmp_path / "det.onnx", height=16, width=16)
    good = run_cli(capsys, "verify", "--onnx", str(path), "--runtime", "ort,ov", "--out", str(tmp_path),
                   "--run-id", "v")
    assert good.returncode == 0, good.stderr + good.stdout
    assert "Parity with ort fp32" in good.stdout
    records = read_records(tmp_path / "v" / "records.jsonl").records
    reference, compared = records[0], records[1]
    assert (reference["cell"]["runtime"], reference["parity"]["is_reference"]) == ("ort", True)
    assert compared["cell"]["runtime"] == "ov" and compared["status"] == "ok"
    assert len(compared["parity"]["per_output"]) == 2 and compared["parity"]["reference"].startswith("ort fp32")
    bad = run_cli(capsys, "verify", "--onnx", str(path), "--runtime", "tests.faulty_runtimes:SecondOutputOffRuntime",
                  "--out", str(tmp_path), "--run-id", "w")
    assert bad.returncode == 1
    failed = read_records(tmp_path / "w" / "records.jsonl").records[1]
    assert failed["status"] == "parity_failed" and failed["error"].startswith("output 1: ")
    assert failed["parity"]["per_output"][0]["max_abs_err"] == 0.0


@pytest.mark.parametrize("runtime", ["ort", OPENVINO])
def test_a_scalar_input_beside_a_batched_one_keeps_its_shape(tmp_path, runtime, capsys):
    path = onnx_graphs.scaled(tmp_path / "scaled.onnx")
    result = run_cli(capsys, "bench", "--runtime", runtime, "--onnx", str(path), "--batch-sizes", "3",
                     "--out", str(tmp_path), "--run-id", "s")
    assert result.returncode == 0, result.stderr + result.stdout
    [record] = read_records(tmp_path / "s" / "records.jsonl").records
    assert [(i["name"], i["shape"]) for i in record["input"]["inputs"]] == [("x", [3, 4]), ("scale", [])]
    assert [i["batched"] for i in record["model"]["inputs"]] == [True, False]
