"""trtexec beside the harness's device clock (harness/measure/trtexec.py), on a stand-in trtexec that behaves as
the real ones do in what matters here: the banner with its packed version, flags that exist only in some
versions (10.x refuses --noCudaGraph), and the GPU Compute Time line."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from harness.measure import trtexec as native
from runtimes.trtexec_tool import decode_packed_version

FAKE = '''#!{python}
import json, os, sys
version = os.environ["FAKE_TRTEXEC_VERSION"]
print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{{version}}] # " + " ".join(sys.argv))
if len(sys.argv) == 1:
    print("=== Model Options ===")
    sys.exit(1)
major = int(version) // 10000 if int(version) >= 100000 else int(version) // 1000
known = ["--loadEngine", "--separateProfileRun", "--noDataTransfers", "--useCudaGraph", "--useDLACore", "--shapes"]
if major >= 11:
    known += ["--noCudaGraph", "--includeDataTransfers"]
for arg in sys.argv[1:]:
    if arg.split("=")[0] not in known:
        print(f"[E] Unknown option: {{arg}}")
        sys.exit(1)
with open(os.environ["FAKE_TRTEXEC_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
print("[I] GPU Compute Time: min = 0.90 ms, max = 1.40 ms, mean = 1.02 ms, median = 1.01 ms, "
      "percentile(90%) = 1.10 ms")
'''


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    path = tmp_path / "bin" / "trtexec"
    path.parent.mkdir()
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))

    def use(packed: str) -> tuple[str, Path]:
        monkeypatch.setenv("FAKE_TRTEXEC_VERSION", packed)
        return str(path), log

    return use


def _record(cache: Path, tensorrt: str = "10.3.0", device: str = "cuda", cuda_graph: bool = False,
            kind: str = "static", dla_core: int | None = None) -> dict:
    folder = cache / "trt" / "engine-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.engine").write_bytes(b"plan")
    return {"cell": {"runtime": "trt", "batch_size": 4, "device": device}, "status": "ok",
            "runtime": {"version": tensorrt, "options": {"cuda_graph": cuda_graph}},
            "prepared": {"engine": {"folder": "trt/engine-1", "build": {
                "tensorrt": tensorrt, "dla_core": dla_core,
                "shapes": {"kind": kind, "input": "image", "min": [1 if kind == "dynamic" else 4, 3, 8, 8],
                           "max": [4, 3, 8, 8]}}}}}


def test_the_packed_versions_decode_as_nvidia_writes_them():
    assert decode_packed_version(8502) == (8, 5, 2)
    assert decode_packed_version(8601) == (8, 6, 1)
    assert decode_packed_version(100300) == (10, 3, 0)
    assert decode_packed_version(101600) == (10, 16, 0)
    assert decode_packed_version(110400) == (11, 4, 0)


def test_flags_follow_trtexecs_own_version(fake_trtexec, tmp_path):
    """10.x: --noDataTransfers, and never --noCudaGraph (it refuses it); 11.x: --noCudaGraph for a cell without
    a graph, nothing for transfers (none is its default)."""
    trtexec, log = fake_trtexec("100300")
    ten = native.compare(_record(tmp_path), trtexec, tmp_path)
    assert ten.median_ms == 1.01 and ten.trtexec_version == "10.3.0" and not ten.why
    assert "--noDataTransfers" in ten.command and "--noCudaGraph" not in ten.command
    graph = native.compare(_record(tmp_path, cuda_graph=True), trtexec, tmp_path)
    assert "--useCudaGraph" in graph.command
    trtexec, log = fake_trtexec("110400")
    eleven = native.compare(_record(tmp_path, tensorrt="11.4.0.106"), trtexec, tmp_path)
    assert eleven.median_ms == 1.01 and "--noCudaGraph" in eleven.command and "--noDataTransfers" not in eleven.command
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(ran) == 3


def test_a_dla_cell_and_a_dynamic_engine_are_run_as_the_cell_ran(fake_trtexec, tmp_path):
    trtexec, _ = fake_trtexec("100300")
    dla = native.compare(_record(tmp_path, device="dla:1", dla_core=1), trtexec, tmp_path)
    assert "--useDLACore=1" in dla.command
    dynamic = native.compare(_record(tmp_path, kind="dynamic"), trtexec, tmp_path)
    assert "--shapes=image:4x3x8x8" in dynamic.command


def test_every_profiled_input_gets_its_shape_even_on_a_static_engine(fake_trtexec, tmp_path):
    """trtexec sets the dynamic dims of an input given no --shapes to 1, which an engine built for batch 4
    refuses: a static engine of a dynamic-batch graph needs --shapes too, for each of its inputs."""
    trtexec, _ = fake_trtexec("100300")
    static = native.compare(_record(tmp_path), trtexec, tmp_path)
    assert "--shapes=image:4x3x8x8" in static.command
    record = _record(tmp_path, kind="dynamic")
    record["prepared"]["engine"]["build"]["shapes"] = {"kind": "dynamic", "profiles": {
        "images": {"min": [1, 3, 32, 24], "opt": [4, 3, 32, 24], "max": [4, 3, 32, 24]},
        "orig_target_sizes": {"min": [1, 2], "opt": [4, 2], "max": [4, 2]}}}
    two = native.compare(record, trtexec, tmp_path)
    assert "--shapes=images:4x3x32x24,orig_target_sizes:4x2" in two.command


def test_no_comparison_says_why(fake_trtexec, tmp_path):
    trtexec, _ = fake_trtexec("100300")
    other = native.compare(_record(tmp_path, tensorrt="8.6.2"), trtexec, tmp_path)
    assert other.median_ms is None and "trtexec is TensorRT 10.3.0, the engine was built by TensorRT 8.6.2" in other.why
    assert "not on PATH" in native.compare(_record(tmp_path), None, tmp_path).why
    failed = _record(tmp_path)
    failed["status"] = "oom"
    assert native.compare(failed, trtexec, tmp_path).why == "the cell did not run (oom)"
    missing = _record(tmp_path)
    (tmp_path / "trt" / "engine-1" / "model.engine").unlink()
    assert "engine file not found in the cache" in native.compare(missing, trtexec, tmp_path).why
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\necho hello\n")
    silent.chmod(0o755)
    assert "no '[TensorRT vNNNN]' banner" in native.compare(_record(tmp_path), str(silent), tmp_path).why
    assert native.EngineRun.of_record({"cell": {"runtime": "ort"}}, tmp_path) == "not a TensorRT cell"
