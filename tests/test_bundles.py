"""Bundles: made on the workstation (`export --bundle`), measured and verified where torch is not installed
(tests/no_torch hides torch, torchvision, timm and pretrainedmodels from every process of the harness, as a
venv made with `pip install 'dnn-harness[device]'` would), with ONNX Runtime, the null runtime and the
TensorRT test double."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import ROOT, _one_error_line, harness

NO_TORCH = ROOT / "tests" / "no_torch"
BOARD_ENV = {"PYTHONPATH": f"{NO_TORCH}{os.pathsep}{ROOT}"}
WITH_TRT = {**BOARD_ENV, "TRT_DOUBLE_VERSION": "10.3.0", "TRT_DOUBLE_DRIVER_DEVICES": "1"}
HIDDEN = ("torch", "torchvision", "timm", "pretrainedmodels")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundles") / "b"
    result = harness("export", "--bundle", str(folder), "--models", "squeezenet1_1", "--precision", "fp32,fp16",
                     "--batch-sizes", "1,2", "--profile", "jetson-orin-nano")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 models" in result.stdout and "copy the folder to the board" in result.stdout
    return folder


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_the_bundle_holds_files_references_and_a_manifest(bundle):
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["models"] == ["squeezenet1_1"] and meta["reference_batch_sizes"] == [1, 2] and meta["opset"] == 18
    manifest = json.loads((bundle / "squeezenet1_1" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"fp32", "fp16"} and manifest["files"]["fp32"]["opset"] == 18
    assert manifest["summary"]["published"]["top1"] > 50 and manifest["summary"]["complexity"]["params"] > 1e6
    assert manifest["catalogue_entry"]["name"] == "squeezenet1_1" and manifest["weights"]["kind"] == "random"
    assert set(manifest["reference"]["batches"]) == {"1", "2"}
    with np.load(bundle / "squeezenet1_1" / "reference.npz") as reference:
        assert reference["bs1"].shape == (1, 1000) and reference["bs2"].shape == (2, 1000)
    sizes = {p.name: p.stat().st_size for p in (bundle / "squeezenet1_1").iterdir()}
    assert sizes["manifest.json"] < 20_000 and sizes["reference.npz"] < 20_000  # inputs are regenerated, not stored


def test_the_board_env_has_no_torch():
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                            f"print([m for m in {HIDDEN!r} if u.find_spec(m)])"],
                           capture_output=True, text=True, env={**os.environ, **BOARD_ENV}, cwd=ROOT)
    assert probe.stdout.strip() == "[]", probe.stderr


def test_bench_and_verify_from_a_bundle_without_torch(bundle, tmp_path):
    out = str(tmp_path / "runs")
    bench = harness("bench", "--bundle", str(bundle), "--runtime", "ort,null", "--batch-sizes", "1,2", "--out", out,
                    "--run-id", "b", env=BOARD_ENV)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    records = _records(tmp_path / "runs" / "b")
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert records[0]["model"]["published"]["top1"] > 50 and records[0]["model"]["bundle"] == str(bundle)
    verify = harness("verify", "--bundle", str(bundle), "--runtime", "ort", "--precision", "fp32,fp16", "--out", out,
                     "--run-id", "v", env=BOARD_ENV)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for record in _records(tmp_path / "runs" / "v"):
        assert record["status"] == "ok" and record["cell"]["batch_size"] == 2  # the largest reference by default
        assert "from the bundle" in record["parity"]["reference"] and record["parity"]["top1_agreement"] == 1.0


def test_trt_from_a_bundle_without_torch(bundle, tmp_path):
    out = str(tmp_path / "runs")
    bench = harness("bench", "--bundle", str(bundle), "--runtime", "trt", "--precision", "fp32,fp16",
                    "--batch-sizes", "1", "--device", "cuda", "--out", out, "--run-id", "b", env=WITH_TRT)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    verify = harness("verify", "--bundle", str(bundle), "--runtime", "trt", "--precision", "fp32,fp16",
                     "--batch-size", "1", "--device", "cuda", "--out", out, "--run-id", "v", env=WITH_TRT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = _records(tmp_path / "runs" / "v")
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert all(r["prepared"]["engine"]["build"]["tensorrt"] == "10.3.0" for r in records)


def test_a_damaged_or_misused_bundle_is_one_line(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    onnx_file = copy / "squeezenet1_1" / "model-fp32.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    line = _one_error_line(harness("bench", "--bundle", str(copy), "--runtime", "ort", "--batch-sizes", "1",
                                   env=BOARD_ENV))
    assert "does not match the hash in its manifest" in line and "copy the bundle again" in line
    assert "not a bundle" in _one_error_line(harness("bench", "--bundle", str(tmp_path), "--runtime", "ort",
                                                     env=BOARD_ENV))
    assert "runtime 'torch' needs PyTorch" in _one_error_line(
        harness("bench", "--bundle", str(bundle), "--runtime", "torch", env=BOARD_ENV))
    assert "a bundle carries ONNX files" in _one_error_line(harness("bench", "--bundle", str(bundle), "--runtime",
                                                                    "torch"))
    assert "pass --batch-size 2" in _one_error_line(harness("verify", "--bundle", str(bundle), "--runtime", "ort",
                                                            "--batch-size", "3", env=BOARD_ENV))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert "holds other files" in _one_error_line(harness("export", "--bundle", str(tmp_path / "other"),
                                                          "--models", "squeezenet1_1"))
    assert "--profile applies to --bundle" in _one_error_line(harness("export", "--models", "squeezenet1_1",
                                                                      "--profile", "jetson-nano"))
    assert "engines are built there" in _one_error_line(harness("export", "--bundle", str(tmp_path / "new"),
                                                                "--models", "squeezenet1_1", "--engine"))


def test_inputs_that_do_not_regenerate_are_not_compared(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    manifest_path = copy / "squeezenet1_1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["reference"]["batches"]["2"]["input_sha256"] = "0" * 64  # as if made by another numpy stream
    manifest_path.write_text(json.dumps(manifest))
    result = harness("verify", "--bundle", str(copy), "--runtime", "ort", "--out", str(tmp_path / "runs"),
                     "--run-id", "v", env=BOARD_ENV)
    (record,) = _records(tmp_path / "runs" / "v")
    assert result.returncode == 1 and record["status"] == "error"
    assert "differ from the workstation's" in record["error"]


def test_the_profile_caps_the_opset(tmp_path):
    result = harness("export", "--bundle", str(tmp_path / "nano"), "--models", "squeezenet1_1", "--profile",
                     "jetson-nano")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "opset 13" in result.stdout and "--opset 18 lowered" in result.stdout
    manifest = json.loads((tmp_path / "nano" / "squeezenet1_1" / "manifest.json").read_text())
    assert manifest["files"]["fp32"]["opset"] == 13 and "torchscript" in manifest["files"]["fp32"]["exporter"]


# ---------------------------------------------------------------- the torch-free install

def _extras() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    return config


def _names(block: str) -> set[str]:
    return {line.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
            for line in block.splitlines() if line.strip() and not line.strip().startswith(("#", "%"))}


def test_the_device_install_declares_no_torch():
    config = _extras()
    core = _names(config["options"]["install_requires"])
    device = _names(config["options.extras_require"]["device"])
    assert not (core | device) & set(HIDDEN), core | device
    assert {"onnxruntime", "onnx", "cuda-python"} <= device
    assert "torch" in _names(config["options.extras_require"]["torch"])


@pytest.mark.slow
def test_pip_resolves_the_device_install_without_torch(tmp_path):
    """What `pip install 'dnn-harness[device]'` would install, resolved against the package index (no install)."""
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", str(report), f"{ROOT}[device]"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and ("Could not find a version" in result.stderr or "connection" in result.stderr.lower()):
        pytest.skip(f"the package index cannot be reached: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert "onnxruntime" in names and not names & set(HIDDEN), sorted(names)


def test_weights_beside_a_bundle_are_refused_and_its_own_are_named(bundle, tmp_path):
    """A bundle's weights are those it was exported with: --weights beside it would be planned and printed as if it
    applied (bench said 'the source library's pretrained weights' over a random-weight bundle)."""
    for command in ("bench", "verify"):
        line = _one_error_line(harness(command, "--bundle", str(bundle), "--runtime", "ort", "--weights", "pretrained",
                                       "--out", str(tmp_path), env=BOARD_ENV))
        assert "a bundle's weights are those it was exported with; drop --weights pretrained" in line
    bench = harness("bench", "--bundle", str(bundle), "--runtime", "null", "--batch-sizes", "1", "--out",
                    str(tmp_path), "--run-id", "b", env=BOARD_ENV)
    assert bench.returncode == 0, bench.stderr
    assert "weights: the bundle's, as exported (random)" in " ".join(bench.stdout.split())
    assert _records(tmp_path / "b")[0]["model"]["weights"] == "random"
