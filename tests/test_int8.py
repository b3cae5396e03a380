"""INT8: a Q/DQ file made from the fp32 one on calibration images, run on ONNX Runtime and TensorRT (double),
refused by torch; calibration and evaluation never share an image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from exporters.quantize import CalibrationFeed, QuantizationFailed, QuantizeSpec, left_in_float, quantize
from exporters.store import Store
from tests.helpers import noise_images, one_error_line, run_cli, run_main

METHOD = "minmax"
CALIBRATION = {"images": 8, "files_sha256": "a" * 64, "seed": 0, "layout": "class-folders", "preprocessing": {}}


def _conv_classifier(path: Path, biases: bool = False) -> Path:
    """(N, 3, 8, 8) -> conv 3->4 -> global pool -> linear 4 -> 10: a conv and a matmul to quantize (with
    `biases`, a conv bias and a Gemm with a bias, as every real classifier has)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "k"),
               numpy_helper.from_array(rng.standard_normal((4, 10)).astype(np.float32), "w")]
    if biases:
        weights += [numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "kb"),
                    numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "wb")]
    nodes = [helper.make_node("Conv", ["image", "k", *(["kb"] if biases else [])], ["features"], name="conv",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["features"], ["active"]),
             helper.make_node("GlobalAveragePool", ["active"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "wb"], ["scores"], name="classifier") if biases else
             helper.make_node("MatMul", ["flat", "w"], ["scores"], name="classifier")]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feed(count: int = 8, seed: int = 1) -> CalibrationFeed:
    crops = np.random.default_rng(seed).integers(0, 256, (count, 3, 8, 8), dtype=np.uint8)
    return CalibrationFeed(crops, np.arange(count), lambda batch: (batch.astype(np.float32) - 128) / 64, batch=4)


def test_a_tiny_model_quantized_end_to_end(tmp_path):
    import onnxruntime

    fp32 = _conv_classifier(tmp_path / "fp32.onnx")
    store = Store(tmp_path / "cache")
    spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION)
    entry, hit = quantize(spec, fp32, "image", _feed, store)
    assert not hit and entry.meta["calibration_images_read"] == 8 and entry.meta["left_in_float"] == []
    ops = {node.op_type for node in onnx.load(str(entry.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "MatMul"} <= ops
    inputs = ((np.random.default_rng(2).integers(0, 256, (16, 3, 8, 8)).astype(np.float32)) - 128) / 64
    reference = onnxruntime.InferenceSession(str(fp32)).run(None, {"image": inputs})[0]
    quantized = onnxruntime.InferenceSession(str(entry.path)).run(None, {"image": inputs})[0]
    cosine = (reference * quantized).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(quantized, axis=1)
    # 8 calibration images: most rows agree to 4 digits, a row whose activations leave the calibrated range less
    assert np.median(cosine) > 0.999 and cosine.min() > 0.9
    assert (reference.argmax(1) == quantized.argmax(1)).mean() >= 0.75
    again, hit = quantize(spec, fp32, "image", _feed, store)
    assert hit and again.path == entry.path


def test_the_key_follows_the_calibration_set_and_the_method(tmp_path):
    fp32 = _conv_classifier(tmp_path / "fp32.onnx")
    store = Store(tmp_path / "cache")
    base = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION)
    other_files = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax",
                               calibration={**CALIBRATION, "files_sha256": "b" * 64})
    other_method = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="percentile", calibration=CALIBRATION)
    symmetric = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION,
                             flavor="int8-sym")
    paths = {quantize(spec, fp32, "image", _feed, store)[0].path
             for spec in (base, other_files, other_method, symmetric)}
    assert len(paths) == 4


@pytest.mark.parametrize("flavor", ["int8", "int8-sym"])
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_every_calibration_method_makes_a_q_dq_file_from_uneven_batches(tmp_path, method, flavor):
    """10 images in batches of 4: the last batch is smaller. Before, Entropy and Percentile stacked every batch's
    activations into one array and failed ("setting an array element with a sequence")."""
    import onnxruntime
    from onnx import numpy_helper

    fp32 = _conv_classifier(tmp_path / "fp32.onnx", biases=True)
    spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method=method, calibration=CALIBRATION, flavor=flavor)
    entry, hit = quantize(spec, fp32, "image", lambda: _feed(10), Store(tmp_path / "cache"))
    assert not hit and entry.meta["calibration_images_read"] == 10 and entry.meta["left_in_float"] == []
    graph = onnx.load(str(entry.path)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    if flavor == "int8-sym":  # TensorRT's explicit quantization: every zero point 0
        zero_points = [numpy_helper.to_array(t) for t in graph.initializer if t.name.endswith("zero_point")]
        assert zero_points and all(not z.any() for z in zero_points)
    inputs = ((np.random.default_rng(2).integers(0, 256, (16, 3, 8, 8)).astype(np.float32)) - 128) / 64
    reference = onnxruntime.InferenceSession(str(fp32)).run(None, {"image": inputs})[0]
    quantized = onnxruntime.InferenceSession(str(entry.path)).run(None, {"image": inputs})[0]
    cosine = (reference * quantized).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(quantized, axis=1)
    assert np.median(cosine) > 0.99 and (reference.argmax(1) == quantized.argmax(1)).mean() >= 0.75


def test_excluded_nodes_stay_in_float_and_are_named(tmp_path):
    fp32 = _conv_classifier(tmp_path / "fp32.onnx")
    spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION,
                        exclude_nodes=("classifier",))
    entry, _ = quantize(spec, fp32, "image", _feed, Store(tmp_path / "cache"))
    assert entry.meta["left_in_float"] == ["classifier (MatMul)"] == left_in_float(entry.path)


def test_no_calibration_image_is_a_clear_failure(tmp_path):
    fp32 = _conv_classifier(tmp_path / "fp32.onnx")
    spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION)
    with pytest.raises(QuantizationFailed):
        quantize(spec, fp32, "image", lambda: iter(()), Store(tmp_path / "cache"))


# ---------------------------------------------------------------- the command line

def test_int8_without_calibration_and_overlaps_are_one_line(photos_folder, tmp_path, capsys):
    assert "--calibration DATA" in one_error_line(run_cli(capsys, "export", "--models", "squeezenet1_1", "--precision",
                                                          "int8"))
    assert "goes with --precision int8" in one_error_line(run_cli(capsys, "export", "--models", "squeezenet1_1",
                                                                  "--calibration", str(photos_folder)))
    line = one_error_line(run_cli(capsys, "accuracy", "--data", str(photos_folder), "--models", "squeezenet1_1",
                                  "--runtime", "ort", "--precision", "int8", "--calibration", str(photos_folder),
                                  "--calibration-images", "8", "--weights", "pretrained"))
    assert "--calibration shares 8 image(s) with --data" in line and "--split" in line  # 8: --calibration-images
    assert "drop --calibration" in one_error_line(run_cli(capsys, 
        "accuracy", "--data", str(photos_folder), "--models", "squeezenet1_1", "--runtime", "ort", "--precision",
        "int8", "--calibration", str(photos_folder), "--split", "--weights", "pretrained"))


def test_export_and_bench_int8_record_the_quantization(photos_folder, tmp_path, capsys):
    result = run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "ort,torch", "--precision", "int8",
                     "--batch-sizes", "1", "--calibration", str(photos_folder), "--calibration-images", "8",
                     "--out", str(tmp_path), "--run-id", "r")
    records = {r["cell"]["runtime"]: r for r in map(json.loads, (tmp_path / "r" / "records.jsonl").read_text()
                                                    .splitlines())}
    assert records["ort"]["status"] == "ok", records["ort"].get("error")
    quantization = records["ort"]["prepared"]["artifact"]["quantization"]
    assert quantization["images"] == 8 and quantization["method"] == "minmax" and len(quantization["files_sha256"]) == 64
    assert records["torch"]["status"] == "unsupported" and "Q/DQ" in records["torch"]["error"]
    assert result.returncode == 1  # the torch cell did not run


def _int8_artifact(capsys: pytest.CaptureFixture[str], calibration: Path) -> dict:
    """The int8 file `export` made (or found in the cache) for squeezenet1_1 calibrated on `calibration`: what a
    bench or verify cell would load, without the cell."""
    code, output = run_main(capsys, "export", "--models", "squeezenet1_1", "--precision", "int8", "--calibration",
                            str(calibration), "--calibration-images", "4")
    assert code == 0, output
    records = Path(" ".join(output.split()).split("Records: ")[1].split()[0])
    (record,) = [json.loads(line) for line in records.read_text().splitlines()]
    return record["prepared"]["artifact"]


def test_an_image_changed_under_its_name_is_quantized_again(tmp_path, capsys):
    """Before: the key held the calibration files' names only, so new pixels under an old name (here even with
    the old size and modification time) reused the int8 file calibrated on the old ones."""
    calibration = noise_images(tmp_path / "calibration" / "n02123045", 4)
    first = _int8_artifact(capsys, calibration.parent)
    again = _int8_artifact(capsys, calibration.parent)
    assert not first["cache_hit"] and again["cache_hit"] and again["path"] == first["path"]
    changed = calibration / "0.bmp"
    stat = changed.stat()
    Image.fromarray(np.full((40, 50, 3), 255, dtype=np.uint8)).save(changed)  # white, same name and size
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed.stat().st_size == stat.st_size
    third = _int8_artifact(capsys, calibration.parent)
    assert not third["cache_hit"] and third["path"] != first["path"]
    assert third["quantization"]["files_sha256"] == first["quantization"]["files_sha256"]
    assert third["quantization"]["contents_sha256"] != first["quantization"]["contents_sha256"]


def test_calibration_needs_no_labels(tmp_path):
    """A flat folder without ground truth, folders of any names, and a CSV listing paths are calibration sets."""
    from harness.accuracy.layouts import UNLABELLED, open_unlabelled

    flat = noise_images(tmp_path / "flat", 3)
    (flat / "notes.txt").write_text("not an image")
    images = open_unlabelled(flat, "--calibration")
    assert [p.name for p in images.paths] == ["0.bmp", "1.bmp", "2.bmp"] and set(images.labels) == {UNLABELLED}
    noise_images(tmp_path / "nested" / "cats", 2, suffix=".png")
    noise_images(tmp_path / "nested" / "dogs" / "small", 1, suffix=".jpg")
    nested = open_unlabelled(tmp_path / "nested", "--calibration")
    assert [str(p.relative_to(tmp_path / "nested")) for p in nested.paths] == ["cats/0.png", "cats/1.png",
                                                                               "dogs/small/0.jpg"]
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\nflat/0.bmp,n02123045\n" + f"{flat / '2.bmp'}\n")
    assert open_unlabelled(listing, "--calibration").paths == (flat / "0.bmp", flat / "2.bmp")


@pytest.mark.parametrize("problem", ["missing", "empty", "not-csv", "unreadable"])
def test_calibration_errors_name_the_calibration_option(tmp_path, capsys, problem):
    """Before: a plain folder was refused for want of labels and told to pass --labels (an option of accuracy),
    and images that could not be read said 'check --data'."""
    data = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "not-csv": tmp_path / "list.txt",
            "unreadable": tmp_path / "torn"}[problem]
    if problem == "empty":
        data.mkdir()
    elif problem == "not-csv":
        data.write_text("0.bmp\n")
    elif problem == "unreadable":  # in a class folder, which was read before too
        (data / "n02123045").mkdir(parents=True)
        for name in ("a.png", "b.jpg"):
            (data / "n02123045" / name).write_bytes(b"not an image")
    code, output = run_main(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--precision", "int8",
                         "--batch-sizes", "1", "--calibration", str(data), "--out", str(tmp_path / "runs"))
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, output
    assert "--calibration" in lines[0] and "--data" not in lines[0] and "--labels" not in lines[0], lines[0]


def test_a_plain_folder_calibrates_squeezenet_with_entropy(tmp_path, capsys):
    """18 images: a batch of 16 and one of 2, which Entropy could not stack before; no labels anywhere."""
    calibration = noise_images(tmp_path / "calibration", 18, seed=100)
    code, output = run_main(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "ort", "--precision", "int8",
                         "--batch-sizes", "1", "--calibration", str(calibration), "--calibration-method", "entropy",
                         "--calibration-images", "18", "--show", "time", "--out", str(tmp_path), "--run-id", "e")
    assert code == 0, output
    (record,) = [json.loads(line) for line in (tmp_path / "e" / "records.jsonl").read_text().splitlines()]
    quantization = record["prepared"]["artifact"]["quantization"]
    assert record["status"] == "ok" and quantization["method"] == "entropy" and quantization["images"] == 18


def test_a_fleet_mismatch_names_int8_not_its_flavor():
    """The int8 flavors are ONNX files, not precisions: the command line takes int8 only, so messages say int8."""
    from harness.cell.worker import CellContext
    from harness.parts import Prepared
    from harness.sweep.planning import Cell

    class SymmetricInt8:  # what TensorRT asks for at int8
        name = "trt"

        @classmethod
        def onnx_precision(cls, precision: str, versions: object = None) -> str:
            return "int8-sym" if precision == "int8" else precision

    context = object.__new__(CellContext)  # only what the check reads
    context.cell = Cell("m", "trt", "int8", 1, "cuda")
    context.prepared = Prepared(artifact={"kind": "onnx", "precision": "int8"})
    with pytest.raises(RuntimeError) as raised:
        context._check_onnx_precision(SymmetricInt8())
    assert "int8-sym" not in str(raised.value)
    assert "reads the int8 (symmetric activations) ONNX file, but the int8 (asymmetric activations) one" \
        in str(raised.value)


@pytest.mark.slow
def test_lite0_int8_agrees_with_fp32_on_real_photographs(photos_folder, lite0_weights, tmp_path, capsys):
    """EfficientNet-Lite0's real ImageNet weights, quantized on one seeded half of the photographs and evaluated
    on the other (--split): int8 on ONNX Runtime against PyTorch eager fp32, image by image."""
    weights = lite0_weights
    result = run_cli(capsys, "accuracy", "--data", str(photos_folder), "--models", "tf_efficientnet_lite0", "--runtime",
                     "ort", "--precision", "fp32,int8", "--split", "--weights", str(weights), "--workers", "2",
                     "--calibration-method", METHOD,
                     "--out", str(tmp_path / "runs"), "--run-id", "q")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = {(r["cell"]["runtime"], r["cell"]["precision"]): r
               for r in map(json.loads, (tmp_path / "runs" / "q" / "records.jsonl").read_text().splitlines())}
    int8 = records[("ort", "int8")]["accuracy"]
    assert int8["images"] == 12 and "evaluation half" in int8["data"]["selection"]
    quantization = records[("ort", "int8")]["prepared"]["artifact"]["quantization"]
    assert quantization["images"] == 12
    # 12 photographs of 4 scenes; per-channel int8 post-training quantization keeps EfficientNet-Lite0 within
    # about a point of fp32 top-1 on ImageNet, so at most one of 12 answers may move
    assert int8["agreement_top1"] >= 11 / 12, int8


@pytest.mark.parametrize("version, how", [("10.3.0", "BuilderFlag.INT8 with the Q/DQ ONNX graph"),
                                          ("11.4.0.106", "Q/DQ ONNX graph (explicit quantization, strongly typed")])
def test_trt_builds_int8_from_the_same_q_dq_file(trt_cli, photos_folder, tmp_path, version, how):
    code, out, err = trt_cli("bench", "--models", "squeezenet1_1", "--runtime", "trt", "--precision", "int8",
                             "--batch-sizes", "1", "--device", "cuda", "--calibration", str(photos_folder),
                             "--calibration-images", "8", "--out", str(tmp_path), "--run-id", "t", version=version)
    assert code == 0, out + err
    (record,) = [json.loads(line) for line in (tmp_path / "t" / "records.jsonl").read_text().splitlines()]
    assert record["prepared"]["artifact"]["precision"] == "int8-sym"  # the symmetric file, on every version
    from harness.paths import cache_dir

    assert int32_dequantize_inputs(cache_dir() / record["prepared"]["artifact"]["path"]) == []  # biases stay float
    assert how in record["prepared"]["engine"]["build"]["precision_from"]


# ---------------------------------------------------------------- reports

def test_int8_records_flow_into_reports_and_best(tmp_path):
    from harness.reports import data
    from harness.reports.best import Constraints, ranked
    from harness.reports.report import write_report
    from tests.report_fixtures import accuracy_record, record, write_run

    rows = [record("resnet50", "ort", 1, 25.0, 1_000_000_000), record("mobilenet_v2", "ort", 1, 50.0, 800_000_000)]
    rows += [record("resnet50", "ort", 1, 75.0, 700_000_000, precision="int8"),
             record("mobilenet_v2", "ort", 1, 100.0, 600_000_000, precision="int8")]
    rows += [accuracy_record("resnet50", "ort", "fp32", 76.0), accuracy_record("resnet50", "ort", "int8", 75.5),
             accuracy_record("mobilenet_v2", "ort", "fp32", 71.8), accuracy_record("mobilenet_v2", "ort", "int8",
                                                                                      69.0)]
    dataset = data.load([write_run(tmp_path / "run", rows)])
    report = write_report(dataset, tmp_path / "out", "int8")
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "## Precision trade-off" in tables
    resnet = next(line for line in tables.splitlines() if line.startswith("| Resnet50 ") and "int8" in line)
    assert "x3.00" in resnet and "-0.50" in resnet
    assert any(p.name.startswith("precision-tradeoff") for p in report.files)
    assert "Precision trade-off" in report.html_path.read_text()
    strict = {(p.model, p.precision) for p in ranked(dataset.points, Constraints(max_accuracy_drop=1.0))}
    assert ("resnet50", "int8") in strict and ("mobilenet_v2", "int8") not in strict  # 2.8 points lost
    assert ("mobilenet_v2", "fp32") in strict


def test_best_max_accuracy_drop_on_the_command_line(tmp_path, capsys):
    from tests.report_fixtures import accuracy_record, record, write_run

    rows = [record("resnet50", "ort", 1, 25.0, 1_000_000_000), record("resnet50", "ort", 1, 75.0, 700_000_000,
                                                                       precision="int8"),
            accuracy_record("resnet50", "ort", "fp32", 76.0), accuracy_record("resnet50", "ort", "int8", 75.5)]
    run = write_run(tmp_path / "run", rows)
    result = run_cli(capsys, "best", str(run), "--max-accuracy-drop", "1.0", "--min-fps", "50", "--json")
    assert result.returncode == 0, result.stderr
    pick = json.loads(result.stdout)["best"]
    assert (pick["model"], pick["precision"]) == ("resnet50", "int8")
    assert "bad --max-accuracy-drop" in one_error_line(run_cli(capsys, "best", str(run), "--max-accuracy-drop", "-1"))


def test_env_says_what_the_cpu_offers_for_int8(tmp_path):
    from harness.measure.environment import cpu_low_precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n")
    facts = cpu_low_precision(cpuinfo)
    assert set(facts["offered"]) == {"avx512_vnni", "avx512_bf16"} and facts["int8_dot_product"]
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an older Arm core (a Jetson Nano's A57)
    assert cpu_low_precision(cpuinfo) == {"readable": True, "offered": {}, "int8_dot_product": False,
                                          "source": str(cpuinfo)}


def test_verify_int8_is_judged_by_cosine_and_top1(photos_folder, tmp_path, capsys):
    result = run_cli(capsys, "verify", "--models", "squeezenet1_1", "--runtime", "ort", "--precision", "int8",
                     "--calibration", str(photos_folder), "--calibration-images", "8", "--out", str(tmp_path),
                     "--run-id", "v")
    records = [json.loads(line) for line in (tmp_path / "v" / "records.jsonl").read_text().splitlines()]
    int8 = next(r for r in records if r["cell"]["precision"] == "int8")
    assert int8["parity"]["tolerance"]["max_rel_err"] is None  # not judged for int8
    assert int8["parity"]["tolerance"]["min_cosine"] == 0.98
    assert int8["status"] == "ok" and int8["parity"]["min_cosine"] >= 0.98 and result.returncode == 0, int8["error"]


def test_trt_refuses_an_asymmetric_file_as_the_real_parser_does(doubles, tmp_path):
    """Only the symmetric flavor suits TensorRT: the ONNX Runtime CPU flavor's zero points are refused."""
    from runtimes.base import EngineShapes, OnnxFileArtifact, RuntimeOptions, UnsupportedConfiguration
    from runtimes.tensorrt.runtime import TensorRTRuntime

    fp32 = _conv_classifier(tmp_path / "fp32.onnx")
    store = Store(tmp_path / "cache")
    files = {flavor: quantize(QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax",
                                           calibration=CALIBRATION, flavor=flavor), fp32, "image", _feed, store)[0].path
             for flavor in ("int8", "int8-sym")}
    runtime = TensorRTRuntime(RuntimeOptions(device="cuda", precision="int8"))
    runtime.init_device()
    runtime.build_engine(OnnxFileArtifact("tiny", str(files["int8-sym"])), EngineShapes.static(1), str(tmp_path))
    with pytest.raises(UnsupportedConfiguration, match="only supports symmetric quantization"):
        runtime.build_engine(OnnxFileArtifact("tiny", str(files["int8"])), EngineShapes.static(1), str(tmp_path))


def int32_dequantize_inputs(path: Path) -> list[str]:
    """DequantizeLinear nodes whose input is an INT32 tensor (quantized biases): TensorRT refuses them."""
    graph = onnx.load(str(path)).graph
    int32 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT32}
    return [node.name for node in graph.node if node.op_type == "DequantizeLinear" and node.input[0] in int32]


def test_the_tensorrt_file_keeps_biases_in_float_as_its_parser_needs(doubles, tmp_path):
    """onnxruntime's quantize_static quantizes conv/gemm biases to INT32 DequantizeLinear nodes by default; real
    TensorRT's IDequantizeLayer takes int8/fp8/int4/fp4 only (onnx-tensorrt#850). The symmetric file has none,
    and the double refuses a file that has them, as the real parser does."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from runtimes.base import EngineShapes, OnnxFileArtifact, RuntimeOptions, UnsupportedConfiguration
    from runtimes.tensorrt.runtime import TensorRTRuntime

    fp32 = _conv_classifier(tmp_path / "fp32.onnx", biases=True)
    spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION,
                        flavor="int8-sym")
    symmetric = quantize(spec, fp32, "image", _feed, Store(tmp_path / "cache"))[0].path
    assert int32_dequantize_inputs(symmetric) == []
    assert {"conv", "classifier"} <= {n.name for n in onnx.load(str(symmetric)).graph.node}
    default_bias = tmp_path / "bias-int32.onnx"
    quantize_static(str(fp32), str(default_bias), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    assert int32_dequantize_inputs(default_bias), "onnxruntime no longer quantizes biases by default"
    runtime = TensorRTRuntime(RuntimeOptions(device="cuda", precision="int8"))
    runtime.init_device()
    runtime.build_engine(OnnxFileArtifact("tiny", str(symmetric)), EngineShapes.static(1), str(tmp_path))
    with pytest.raises(UnsupportedConfiguration, match="only activation types allowed as input to this layer"):
        runtime.build_engine(OnnxFileArtifact("tiny", str(default_bias)), EngineShapes.static(1), str(tmp_path))


class _Reader:
    def __init__(self) -> None:
        self.batches = iter(_feed())

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}
