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
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import BOARD_ENV, HIDDEN, ROOT, WITH_TRT, harness, jetson_board, one_error_line, run_cli


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


def test_a_bundle_run_reads_no_catalogue(bundle, tmp_path):
    """A bundle carries what it needs: bench, verify and check --on-device on one run where no models.yaml can be
    read (named by --catalogue and by $HARNESS_MODELS alike), while a command that needs the catalogue says so."""
    missing = str(tmp_path / "nowhere" / "models.yaml")
    env = {**WITH_TRT, "HARNESS_MODELS": missing}
    out = str(tmp_path / "runs")
    bench = harness("--catalogue", missing, "bench", "--bundle", str(bundle), "--runtime", "ort", "--batch-sizes",
                    "1,2", "--out", out, "--run-id", "b", env=env)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert [r["status"] for r in _records(tmp_path / "runs" / "b")] == ["ok", "ok"]
    verify = harness("verify", "--bundle", str(bundle), "--runtime", "ort", "--out", out,
                     "--run-id", "v", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert [r["status"] for r in _records(tmp_path / "runs" / "v")] == ["ok"]
    check = harness("check", "--on-device", "--bundle", str(bundle), "--profile", "workstation", "--out", out,
                    env=env)
    assert "models ready for" in check.stdout and "catalogue" not in check.stderr, check.stdout + check.stderr
    assert f"cannot read the model catalogue {missing}" in one_error_line(harness("list", "--no-compute", env=env))


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


def test_a_damaged_or_misused_bundle_is_one_line(bundle, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    onnx_file = copy / "squeezenet1_1" / "model-fp32.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    line = one_error_line(harness("bench", "--bundle", str(copy), "--runtime", "ort", "--batch-sizes", "1",
                                  env=BOARD_ENV))
    assert "does not match the hash in its manifest" in line and "copy the bundle again" in line
    assert "export the bundle again on the workstation, then copy it" in line  # a re-export cut short, say
    assert "not a bundle" in one_error_line(harness("bench", "--bundle", str(tmp_path), "--runtime", "ort",
                                                    env=BOARD_ENV))
    assert "runtime 'torch' needs PyTorch" in one_error_line(
        harness("bench", "--bundle", str(bundle), "--runtime", "torch", env=BOARD_ENV))
    assert "a bundle carries ONNX files" in one_error_line(run_cli(capsys, "bench", "--bundle", str(bundle),
                                                                   "--runtime", "torch"))
    assert "pass --batch-size 2" in one_error_line(harness("verify", "--bundle", str(bundle), "--runtime", "ort",
                                                           "--batch-size", "3", env=BOARD_ENV))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert "holds other files" in one_error_line(run_cli(capsys, "export", "--bundle", str(tmp_path / "other"),
                                                         "--models", "squeezenet1_1"))
    assert "--profile applies to --bundle" in one_error_line(run_cli(capsys, "export", "--models", "squeezenet1_1",
                                                                     "--profile", "jetson-nano"))
    assert "engines are built there" in one_error_line(run_cli(capsys, "export", "--bundle", str(tmp_path / "new"),
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


def test_the_profile_caps_the_opset(tmp_path, capsys):
    result = run_cli(capsys, "export", "--bundle", str(tmp_path / "nano"), "--models", "squeezenet1_1", "--profile",
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


# ---------------------------------------------------------------- writes that are cut short, damaged bundles

def _fake_model(tmp_path: Path, tag: str, precisions: tuple[str, ...] = ("fp32",)) -> tuple[dict, dict, dict]:
    """What `write_model` takes, with ONNX files whose bytes say `tag` (no export needed)."""
    sources = {}
    for precision in precisions:
        sources[precision] = tmp_path / f"{tag}-{precision}.onnx"
        sources[precision].write_bytes(f"{tag} {precision} ".encode() * 50_000)
    manifest = {"name": "m", "summary": {"name": "m"}, "input": {"name": "input", "shape": [None, 3, 8, 8],
                                                                 "dtype": "float32"},
                "files": {p: {"precision": p} for p in precisions},
                "reference": {"runtime": "PyTorch eager fp32", "seed": 0,
                              "batches": {"1": {"input_sha256": "0" * 64, "outputs_key": "bs1"}}}}
    return manifest, sources, {1: np.full((1, 10), len(tag), dtype=np.float32)}


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _half_then(exc: BaseException):
    """A copy that writes half of the file, then fails as a Ctrl-C or a full disk would."""
    def copy(source, target, *args, **kwargs):
        data = Path(source).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise exc
    return copy


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_a_write_cut_short_leaves_the_model_as_it_was(tmp_path, monkeypatch, exc):
    from harness.catalogue import bundles

    bundle_dir = tmp_path / "b"
    bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "old", ("fp32", "fp16")))
    before = _folder_state(bundle_dir / "m")
    monkeypatch.setattr(bundles.shutil, "copyfile", _half_then(exc))
    with pytest.raises(type(exc)):
        bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "new", ("fp32", "fp16")))
    assert _folder_state(bundle_dir / "m") == before  # every file whole and old, no temporary file left


def test_ctrl_c_during_the_renames_waits_for_them(tmp_path, monkeypatch):
    """The model's files are renamed together: a Ctrl-C arriving between two renames lets the rest finish."""
    import signal

    from harness.catalogue import bundles

    bundle_dir = tmp_path / "b"
    bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "old"))
    real_replace, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_replace(source, target)

    monkeypatch.setattr(bundles.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "new"))
    assert len(calls) == 3  # the ONNX file, the reference, the manifest
    manifest = json.loads((bundle_dir / "m" / "manifest.json").read_text())
    from exporters.store import sha256_of

    assert manifest["files"]["fp32"]["sha256"] == sha256_of(bundle_dir / "m" / "model-fp32.onnx")
    assert (bundle_dir / "m" / "model-fp32.onnx").read_bytes().startswith(b"new")


def test_a_model_exported_again_keeps_only_its_new_files(tmp_path):
    from harness.catalogue import bundles

    bundle_dir = tmp_path / "b"
    bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "old", ("fp32", "fp16")))
    bundles.write_model(bundle_dir, "m", *_fake_model(tmp_path, "new", ("fp32",)))
    assert sorted(p.name for p in (bundle_dir / "m").iterdir()) == ["manifest.json", "model-fp32.onnx",
                                                                    "reference.npz"]


def test_two_exports_at_once_keep_each_others_models(tmp_path, monkeypatch):
    """bundle.json is read, added to and written: an export that reads it while another is between its read and
    its write kept only its own models, so the board did not see the other's (its files were there)."""
    import threading

    from harness.catalogue import bundles

    bundle_dir = tmp_path / "b"
    bundle_dir.mkdir()
    first_has_read, real_read = threading.Event(), bundles.read_meta

    def read_then_let_the_other_in(folder, text):
        meta = real_read(folder, text)
        if threading.current_thread().name == "first":
            first_has_read.set()
            time.sleep(1.0)  # the other export's whole update fits here, unless it waits for this one
        return meta

    bundles.write_meta(bundle_dir, {"seed": 0, "models": []})
    monkeypatch.setattr(bundles, "read_meta", read_then_let_the_other_in)
    first = threading.Thread(target=bundles.write_meta, args=(bundle_dir, {"seed": 0, "models": ["a"]}),
                             name="first")
    first.start()
    assert first_has_read.wait(10)
    bundles.write_meta(bundle_dir, {"seed": 0, "models": ["b"]})
    first.join()
    assert json.loads((bundle_dir / "bundle.json").read_text())["models"] == ["a", "b"]
    from harness.cli.bundle import check_bundle_dir

    (bundle_dir / "bundle.json").unlink()  # the lock file alone does not make the folder "hold other files"
    assert check_bundle_dir(str(bundle_dir), 0) == bundle_dir.resolve()


@pytest.mark.parametrize("exc, code, says", [
    (KeyboardInterrupt(), 130, "interrupted: "),
    (OSError(28, "No space left on device"), 1, "error: cannot write the bundle"),
])
def test_export_cut_short_while_writing_the_bundle_is_one_line(bundle, tmp_path, monkeypatch, capsys, exc, code,
                                                               says):
    """The same export again into a copy of the bundle, cut short while copying an ONNX file: one line, the exit
    code of an interrupt or a storage failure, and the bundle still reads as it was."""
    from harness.catalogue import bundles

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    before = _folder_state(copy / "squeezenet1_1")
    monkeypatch.setattr(bundles.shutil, "copyfile", _half_then(exc))
    result = run_cli(capsys, "export", "--bundle", str(copy), "--models", "squeezenet1_1", "--precision", "fp32,fp16",
                     "--batch-sizes", "1,2", "--profile", "jetson-orin-nano")  # at a process's width, as harness()
    assert result.returncode == code, result.stdout + result.stderr
    err = result.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(says) and "Traceback" not in err, err
    if code == 1:
        assert "No space left on device" in lines[0] and "make room" in lines[0]
    assert _folder_state(copy / "squeezenet1_1") == before
    assert bundles.read_bundle(str(copy)).models["squeezenet1_1"].precisions == ["fp16", "fp32"]
    if code == 130:  # a first export cut short leaves a bundle (of no model yet) that the next export goes on in
        from harness.cli.bundle import check_bundle_dir

        new = tmp_path / "new"
        assert run_cli(capsys, "export", "--bundle", str(new), "--models", "squeezenet1_1", "--precision",
                       "fp32,fp16", "--batch-sizes", "1,2", "--profile", "jetson-orin-nano").returncode == 130
        assert json.loads((new / "bundle.json").read_text())["models"] == []
        assert check_bundle_dir(str(new), 0) == new.resolve()


def test_a_bundle_has_one_seed(bundle, tmp_path, capsys):
    """Models exported with another seed would be checked on the board against inputs of the wrong seed: the
    export refuses, and a bundle whose models disagree (hand-assembled) is refused on the board."""
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    line = one_error_line(run_cli(capsys, "export", "--bundle", str(copy), "--models", "squeezenet1_1", "--seed", "7"))
    assert "exported with --seed 0" in line and "add models with --seed 0" in line
    shutil.copytree(copy / "squeezenet1_1", copy / "other")
    meta = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**meta, "models": ["other", "squeezenet1_1"]}))
    manifest = json.loads((copy / "other" / "manifest.json").read_text())
    manifest["reference"]["seed"] = 7
    (copy / "other" / "manifest.json").write_text(json.dumps(manifest))
    line = one_error_line(harness("verify", "--bundle", str(copy), "--runtime", "ort", env=BOARD_ENV))
    assert "different seeds (other: 7, squeezenet1_1: 0)" in line and "export the bundle again" in line


def _edit(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _with(manifest: dict, part: str, key: str, value) -> dict:
    manifest[part][key] = value
    return manifest


@pytest.mark.parametrize("file, change, says", [
    ("squeezenet1_1/manifest.json", lambda m: {}, "no 'files'"),
    ("squeezenet1_1/manifest.json", lambda m: [], "a JSON array instead of an object"),
    ("squeezenet1_1/manifest.json", lambda m: _with(m, "reference", "seed", "seven"), "seed 'seven' is not a whole"),
    ("squeezenet1_1/manifest.json", lambda m: _with(m, "reference", "batches", {"two": {}}), "batch size 'two'"),
    ("squeezenet1_1/manifest.json", lambda m: _with(m, "files", "fp32", {"path": "../../x", "sha256": "0"}),
     "'files.fp32' lacks a file name"),
    ("squeezenet1_1/manifest.json", lambda m: _with(m, "input", "shape", ["N", 3]), "no 'input' shape"),
    ("squeezenet1_1/manifest.json", lambda m: {**m, "reference": {**m["reference"], "batches": {
        "1": {**m["reference"]["batches"]["1"], "outputs_key": "bs9"}}}}, "that reference.npz lacks"),
    ("bundle.json", lambda m: [], "holds a JSON array"),
    ("bundle.json", lambda m: {**m, "models": ["../squeezenet1_1"]}, "as folder names"),
])
def test_a_damaged_manifest_or_bundle_file_is_one_line(bundle, tmp_path, file, change, says):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    _edit(copy / file, change)
    line = one_error_line(harness("verify", "--bundle", str(copy), "--runtime", "ort", env=BOARD_ENV))
    assert str(copy / file) in line and says in line, line
    assert "export the bundle again on the workstation, then copy it" in line


def test_exporting_into_a_damaged_bundle_is_one_line_before_any_work(bundle, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "bundle.json").write_text("[]")
    line = one_error_line(run_cli(capsys, "export", "--bundle", str(copy), "--models", "squeezenet1_1"))
    assert str(copy / "bundle.json") in line and "holds a JSON array" in line
    (copy / "bundle.json").write_text("{not json")
    line = one_error_line(run_cli(capsys, "export", "--bundle", str(copy), "--models", "squeezenet1_1"))
    assert str(copy / "bundle.json") in line and "cannot be read" in line
    assert "bf16 has no ONNX file" in one_error_line(run_cli(capsys, "export", "--bundle", str(tmp_path / "new"),
                                                             "--models", "squeezenet1_1", "--precision", "bf16"))


# ---------------------------------------------------------------- int8

@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, photos_folder) -> Path:
    folder = tmp_path_factory.mktemp("bundles") / "int8"
    result = harness("export", "--bundle", str(folder), "--models", "squeezenet1_1", "--precision", "fp32,int8",
                     "--calibration", str(photos_folder), "--calibration-images", "8", "--profile", "jetson-orin-nano")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "int8 (symmetric, for TensorRT)" in result.stdout and "int8-sym" not in result.stdout + result.stderr
    return folder


def _artifact_path(run_dir: Path) -> str:
    (record,) = _records(run_dir)
    assert record["status"] == "ok", record.get("error")
    return record["prepared"]["artifact"]["path"]


def test_an_int8_bundle_carries_the_file_each_runtime_reads(int8_bundle, tmp_path):
    """Both int8 flavours with their hashes: ONNX Runtime reads the asymmetric file, TensorRT (the bindings'
    double) the symmetric one, each within int8's tolerance of the bundle's references."""
    import onnx

    from exporters.store import sha256_of

    folder = int8_bundle / "squeezenet1_1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"fp32", "int8", "int8-sym"}
    for precision, entry in manifest["files"].items():
        assert sha256_of(folder / entry["path"]) == entry["sha256"]
        ops = {node.op_type for node in onnx.load(str(folder / entry["path"])).graph.node}
        assert ("QuantizeLinear" in ops) == (precision != "fp32"), precision
    assert manifest["files"]["int8-sym"]["quantization"]["flavor"].startswith("symmetric")
    out = str(tmp_path / "runs")
    trt = harness("verify", "--bundle", str(int8_bundle), "--runtime", "trt", "--precision", "int8", "--batch-size",
                  "1", "--device", "cuda", "--out", out, "--run-id", "trt", env=WITH_TRT)
    assert trt.returncode == 0, trt.stdout + trt.stderr
    assert _artifact_path(tmp_path / "runs" / "trt") == str(folder / "model-int8-sym.onnx")
    ort = harness("verify", "--bundle", str(int8_bundle), "--runtime", "ort", "--precision", "int8", "--out", out,
                  "--run-id", "ort", env=BOARD_ENV)
    assert ort.returncode == 0, ort.stdout + ort.stderr
    assert _artifact_path(tmp_path / "runs" / "ort") == str(folder / "model-int8.onnx")
    assert "a bundle carries them already" in one_error_line(harness(
        "verify", "--bundle", str(int8_bundle), "--runtime", "ort", "--precision", "int8", "--calibration", out,
        env=BOARD_ENV))


def test_check_on_device_at_int8_from_a_bundle(int8_bundle, tmp_path):
    """A board with JetPack's trtexec (the double of TensorRT 10.3) and no torch: `check --on-device --precision
    int8` builds from the symmetric Q/DQ file and judges its numerics against the bundle."""
    relaxed = tmp_path / "profile.yaml"  # no speed target: a shared CI machine's timing would make it flaky
    relaxed.write_text((ROOT / "harness" / "data" / "profiles" / "jetson-orin-nano.yaml").read_text().replace("  min_fps: 30\n", ""))
    env = {**BOARD_ENV, "HARNESS_JETSON_ROOT": str(jetson_board(tmp_path, "orin-nano")),
           "TRT_DOUBLE_DRIVER_DEVICES": "1"}
    result = harness("check", "--on-device", "--bundle", str(int8_bundle), "--profile", str(relaxed), "--precision",
                     "int8", "--out", str(tmp_path / "runs"), "--run-id", "od", "--json", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answer = json.loads(result.stdout[result.stdout.index("{"):])
    verdicts = {c["name"]: c["verdict"] for c in answer["checks"][0]["criteria"]}
    assert verdicts == {"memory": "PASS", "numerics": "PASS", "opset/ops": "PASS"}, answer
    for run in ("od", "od-verify"):
        assert _artifact_path(tmp_path / "runs" / run) == str(int8_bundle / "squeezenet1_1" / "model-int8-sym.onnx")


def test_a_bundle_without_int8_says_so_in_the_clis_words(bundle):
    for runtime, env in (("trt", WITH_TRT), ("ort", BOARD_ENV)):
        line = one_error_line(harness("verify", "--bundle", str(bundle), "--runtime", runtime, "--precision", "int8",
                                      "--device", "cuda" if runtime == "trt" else "cpu", env=env))
        assert "no int8 file" in line and "export it again with --precision int8 --calibration DATA" in line
        assert "int8-sym" not in line and "(it has fp16, fp32)" in line


def test_weights_beside_a_bundle_are_refused_and_its_own_are_named(bundle, tmp_path):
    """A bundle's weights are those it was exported with: --weights beside it would be planned and printed as if it
    applied (bench said 'the source library's pretrained weights' over a random-weight bundle)."""
    for command in ("bench", "verify"):
        line = one_error_line(harness(command, "--bundle", str(bundle), "--runtime", "ort", "--weights", "pretrained",
                                      "--out", str(tmp_path), env=BOARD_ENV))
        assert "a bundle's weights are those it was exported with; drop --weights pretrained" in line
    bench = harness("bench", "--bundle", str(bundle), "--runtime", "null", "--batch-sizes", "1", "--out",
                    str(tmp_path), "--run-id", "b", env=BOARD_ENV)
    assert bench.returncode == 0, bench.stderr
    assert "weights: the bundle's, as exported (random)" in " ".join(bench.stdout.split())
    assert _records(tmp_path / "b")[0]["model"]["weights"] == "random"
