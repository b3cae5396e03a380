"""The `trtexec` runtime on the trtexec double (tests/trtexec_double.py) of each JetPack generation's TensorRT:
flags by version, engines, numerics through --loadInputs/--exportOutput, timing through --exportTimes with the
harness's rules, and `check --on-device` end to end on the Nano (JetPack 4.6, TensorRT 8.2), Xavier NX (5.1,
8.5) and Orin Nano (6.1, 10.3) fixture boards, with no TensorRT Python bindings and no torch, as those boards
run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtimes.base import EngineArtifact, EngineShapes, OnnxFileArtifact, RuntimeOptions, UnsupportedConfiguration
from runtimes.trtexec_tool import Flags
from tests import onnx_graphs, trtexec_double
from tests.helpers import BOARD_ENV, JETPACKS, ROOT, harness, jetson_board


@pytest.fixture
def trtexec(tmp_path, monkeypatch):
    def use(version: str) -> Path:
        path = trtexec_double.install(tmp_path / f"trtexec-{version}" / "trtexec", version)
        monkeypatch.setenv("HARNESS_TRTEXEC", str(path))
        return path

    return use


def test_flags_follow_each_versions_options():
    build = {v: Flags(v).build("m.onnx", "m.engine", "fp16", {"x": ((1, 3), (1, 3), (1, 3))}, None, 256, "c")
             for v in ((8, 2, 1), (8, 5, 2), (10, 3, 0), (11, 4, 0))}
    assert "--buildOnly" in build[(8, 2, 1)] and "--workspace=256" in build[(8, 2, 1)]
    assert "--buildOnly" in build[(8, 5, 2)] and "--memPoolSize=workspace:256" in build[(8, 5, 2)]
    assert "--skipInference" in build[(10, 3, 0)] and "--fp16" in build[(10, 3, 0)]
    assert "--fp16" not in build[(11, 4, 0)], "11.x takes precision from the graph's types"
    for version, flags in build.items():  # the double of each version takes exactly these
        known = trtexec_double.known_flags(version)
        assert all(f.lstrip("-").split("=")[0] in known for f in flags), (version, flags)
    run = Flags((10, 3, 0)).infer("m.engine", 20, 2, 1, False, export_times="t.json")
    assert {"--warmUp=0", "--noDataTransfers", "--useDLACore=1", "--iterations=20", "--duration=2"} <= set(run)
    assert "--noCudaGraph" in Flags((11, 4, 0)).infer("m.engine", 1, 0, None, False)


@pytest.mark.parametrize("version", ["8.2.1", "8.5.2", "10.3.0"])
def test_build_run_and_time_on_each_jetpacks_trtexec(trtexec, tmp_path, version):
    import onnxruntime

    from harness.measure.timing import Policy, from_trace
    from runtimes.trtexec import TrtexecRuntime

    trtexec(version)
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx", opset=13)
    runtime = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))
    built = runtime.build_engine(OnnxFileArtifact("c", str(onnx_path)), EngineShapes.static(2), str(tmp_path))
    assert built.facts["trtexec"] == version and built.facts["precision_from"] == "trtexec --fp16"
    plan = tmp_path / "model.engine"
    plan.write_bytes(built.plan)
    assert runtime.inspect_engine(str(plan))["plan_file_bytes"] == len(built.plan)
    inputs = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    runtime.load(EngineArtifact("c", str(plan), "", description={"onnx_path": str(onnx_path)}))
    runtime.prepare(inputs)
    runtime.run()
    expected = onnxruntime.InferenceSession(str(onnx_path)).run(None, {"image": inputs})[0]
    np.testing.assert_allclose(runtime.outputs()[0], expected, rtol=1e-5)
    policy = Policy(warmup_min_iters=1, warmup_min_s=0.0, min_samples=10, min_duration_s=0.2)
    run = runtime.measure(policy.as_dict())
    assert len(run.records) >= 11 and run.peak_rss_bytes > 0 and run.load_s == 0.0123
    assert ("endToEndMs" in run.records[0]) == (version == "8.2.1"), "8.2's exported times have endToEndMs"
    measured = from_trace([r["latencyMs"] for r in run.records], [r["computeMs"] for r in run.records],
                          [r["startComputeMs"] for r in run.records], policy, "c", "m")
    assert len(measured.host_ms) >= 10


def test_what_trtexec_refuses_is_unsupported_or_a_rebuild(trtexec, tmp_path):
    from runtimes.base import IncompatibleEngine
    from runtimes.trtexec import TrtexecRuntime

    trtexec("8.2.1")
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx", opset=17)
    runtime = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))
    with pytest.raises(UnsupportedConfiguration, match="Unsupported ONNX opset 17"):
        runtime.build_engine(OnnxFileArtifact("c", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    trtexec("8.5.2")
    newer = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))
    built = newer.build_engine(OnnxFileArtifact("c", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    plan = tmp_path / "other.engine"
    plan.write_bytes(built.plan)
    with pytest.raises(IncompatibleEngine, match="not compatible with this version of TensorRT"):
        runtime.inspect_engine(str(plan))
    with pytest.raises(UnsupportedConfiguration, match="fp16 or int8, not fp32"):
        TrtexecRuntime(RuntimeOptions(device="dla:0", precision="fp32"))


def test_without_trtexec_the_runtime_says_where_it_is_looked_for(monkeypatch, tmp_path):
    from runtimes import RuntimeUnavailable, runtime_class

    monkeypatch.delenv("HARNESS_TRTEXEC", raising=False)
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeUnavailable, match="/usr/src/tensorrt/bin/trtexec"):
        runtime_class("trtexec")
    monkeypatch.setenv("HARNESS_TRTEXEC", str(tmp_path / "nope"))
    with pytest.raises(RuntimeUnavailable, match="nope is not an executable file"):
        runtime_class("trtexec")


@pytest.mark.parametrize("board", [pytest.param(b, marks=[] if b == "orin-nano" else [pytest.mark.slow])
                                   for b in sorted(JETPACKS)])
def test_check_on_device_runs_on_every_jetpack_generation(tmp_path, board, request):
    """Each board as it ships: no TensorRT Python bindings for the harness's Python, no torch, JetPack's trtexec
    at /usr/src/tensorrt/bin. The check picks trtexec by itself, builds, checks numerics against the bundle
    and times, and every verdict comes from those records."""
    version, profile = JETPACKS[board]
    if profile == "jetson-orin-nano":  # the session's bundle is this export: fp32, for the Orin Nano
        bundle = request.getfixturevalue("board_bundle")
    else:
        bundle = tmp_path / "bundle"
        made = harness("export", "--bundle", str(bundle), "--models", "squeezenet1_1", "--precision", "fp32",
                       "--profile", profile)
        assert made.returncode == 0, made.stdout + made.stderr
    spec = (ROOT / "harness" / "data" / "profiles" / f"{profile}.yaml").read_text()
    relaxed = tmp_path / "profile.yaml"  # no speed target: a shared CI machine's timing would make it flaky
    relaxed.write_text(spec.replace("  min_fps: 30\n", ""))
    root = jetson_board(tmp_path, board)
    env = {**BOARD_ENV, "HARNESS_JETSON_ROOT": str(root), "TRT_DOUBLE_DRIVER_DEVICES": "1"}
    result = harness("check", "--on-device", "--bundle", str(bundle), "--profile", str(relaxed), "--out",
                     str(tmp_path / "runs"), "--run-id", "od", "--json", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answer = json.loads(result.stdout)  # stdout is the JSON alone
    assert answer["ready"] == 1, answer
    verdicts = {c["name"]: c["verdict"] for c in answer["checks"][0]["criteria"]}
    assert verdicts == {"memory": "PASS", "numerics": "PASS", "opset/ops": "PASS"}, answer
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "od" / "records.jsonl").read_text().splitlines()]
    assert record["cell"]["runtime"] == "trtexec" and record["runtime"]["version"] == version
    assert record["timing"]["device_clock"].startswith("trtexec --exportTimes computeMs")
    assert record["memory"]["jetson_process"]["host_rss_peak_bytes"] > 0
    assert record["jetson"]["during_timed_loop"]["samples"] >= 2
    if board == "orin-nano":  # the same command again resumes the run: its verdicts come from the records there
        again = harness("check", "--on-device", "--bundle", str(bundle), "--profile", str(relaxed), "--out",
                        str(tmp_path / "runs"), "--run-id", "od", "--json", env=env)
        assert again.returncode == 0 and json.loads(again.stdout[again.stdout.index("{"):])["checks"] == \
            answer["checks"], again.stdout[-2000:]


@pytest.mark.slow
def test_a_sustained_check_runs_long_enough_and_traces_the_board(tmp_path, board_bundle):
    """--sustained 10: trtexec runs for at least 10 s of timed inferences, the clock and temperature trace covers
    the run, and the speed verdict reads its last half."""
    bundle = board_bundle
    relaxed = tmp_path / "profile.yaml"
    shipped = ROOT / "harness" / "data" / "profiles" / "jetson-orin-nano.yaml"
    relaxed.write_text(shipped.read_text().replace("min_fps: 30", "min_fps: 1"))
    env = {**BOARD_ENV, "HARNESS_JETSON_ROOT": str(jetson_board(tmp_path, "orin-nano")),
           "TRT_DOUBLE_DRIVER_DEVICES": "1"}
    result = harness("check", "--on-device", "--sustained", "10", "--bundle", str(bundle), "--profile", str(relaxed),
                     "--out", str(tmp_path / "runs"), "--run-id", "s", "--json", env=env)
    # a busy shared machine may spread ten seconds of samples past the CV limit: speed is then UNKNOWN, exit 1
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    answer = json.loads(result.stdout)  # stdout is the JSON alone
    speed = next(c for c in answer["checks"][0]["criteria"] if c["name"] == "speed")
    assert "over the last half of" in speed["figure"] and "sustained" in speed["figure"]
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "s" / "records.jsonl").read_text().splitlines()]
    assert record["timing"]["loop_s"] >= 9.5
    trace = record["jetson"]["during_timed_loop"]["trace"]
    assert trace[-1][0] - trace[0][0] >= 9.5 and len(trace[0]) == 4
    report = harness("report", str(tmp_path / "runs" / "s"), "--out", str(tmp_path / "report"), "--quiet")
    assert report.returncode == 0, report.stderr
    figure = next((tmp_path / "report").glob("**/board-traces-*.svg"))
    assert f'src="{figure.relative_to(tmp_path / "report").as_posix()}"' in \
        (tmp_path / "report" / "report.html").read_text()


@pytest.mark.parametrize("text, says", [("not json", "not JSON"), ("[]", "no inference records"),
                                        ('[{"computeMs": 1.0}]', "lack startComputeMs, latencyMs")])
def test_an_exported_times_file_it_cannot_read_says_what_is_wrong(tmp_path, text, says):
    from runtimes.trtexec_tool import read_times

    path = tmp_path / "times.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=says):
        read_times(path)


def test_engines_at_once_are_put_on_one_time_line():
    """Two engines whose processes started 1 s apart: the common window starts at the later one's start plus
    the warm-up and ends at the earlier one's last inference; inferences straddling an edge count in part."""
    from harness.measure.concurrent import EngineTrace, overlap

    gpu = EngineTrace("cuda", 100.0, [(i * 10.0, i * 10.0 + 10.0) for i in range(1000)], 2)  # 100/s, to 110 s
    dla = EngineTrace("dla:0", 101.0, [(i * 40.0, i * 40.0 + 40.0) for i in range(300)], 2)  # 25/s, to 113 s
    result = overlap([gpu, dla], warmup_s=2.0, wanted_window_s=7.0)
    assert result.valid and result.window_s == pytest.approx(7.0)  # 103 s to 110 s
    assert result.images_per_s["cuda"] == pytest.approx(200.0) and result.images_per_s["dla:0"] == pytest.approx(50.0)
    assert result.aggregate_images_per_s == pytest.approx(250.0)
    late = EngineTrace("dla:1", 108.0, [(i * 40.0, i * 40.0 + 40.0) for i in range(300)], 2)
    short = overlap([gpu, dla, late], warmup_s=2.0, wanted_window_s=7.0)
    assert not short.valid and "ran together for 0.0 s" in short.why


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_check_with_dla_times_the_gpu_and_every_dla_core_at_once(tmp_path, precision, request):
    """Xavier NX (JetPack 5.1, two DLA cores): --with-dla checks the model on the GPU and on each DLA core, then
    times the three engines alone and at once; the aggregate is the sum of what each did in the common window.
    At int8 (Xavier has fast int8) every engine is built from the bundle's symmetric Q/DQ file."""
    bundle = tmp_path / "bundle"
    calibration = ["--precision", "fp32,int8", "--calibration", str(request.getfixturevalue("photos_folder")),
                   "--calibration-images", "8"] if precision == "int8" else ["--precision", "fp32"]
    made = harness("export", "--bundle", str(bundle), "--models", "squeezenet1_1", *calibration,
                   "--profile", "jetson-xavier-nx")
    assert made.returncode == 0, made.stderr
    relaxed = tmp_path / "profile.yaml"
    shipped = ROOT / "harness" / "data" / "profiles" / "jetson-xavier-nx.yaml"
    relaxed.write_text(shipped.read_text().replace("  min_fps: 30\n", ""))
    env = {**BOARD_ENV, "HARNESS_JETSON_ROOT": str(jetson_board(tmp_path, "xavier-nx")),
           "TRTEXEC_DOUBLE_DLA_CORES": "2",
           "TRT_DOUBLE_DRIVER_DEVICES": "1"}
    result = harness("check", "--on-device", "--with-dla", "--precision", precision, "--bundle", str(bundle),
                     "--profile", str(relaxed), "--out", str(tmp_path / "runs"), "--run-id", "d", "--json", env=env)
    # random weights: int8's top-1 on one reference image is chance, so at int8 only what ran is asserted
    assert result.returncode in ((0,) if precision == "fp16" else (0, 1)), result.stderr[-3000:]
    answer = json.loads(result.stdout)  # stdout is the JSON alone
    assert [c["model"] for c in answer["checks"]] == ["squeezenet1_1", "squeezenet1_1 on dla:0",
                                                      "squeezenet1_1 on dla:1"]
    built = [next(k for k in c["criteria"] if k["name"] == "opset/ops")["verdict"] for c in answer["checks"]]
    assert built == ["PASS"] * 3 and (precision == "int8" or answer["ready"] == 3), answer["checks"]
    dla_record = json.loads((tmp_path / "runs" / "d-dla1" / "records.jsonl").read_text().splitlines()[0])
    assert dla_record["cell"]["device"] == "dla:1" and dla_record["runtime"]["options"]["dla_core"] == 1
    assert dla_record["cell"]["precision"] == precision
    if precision == "int8":
        assert dla_record["prepared"]["artifact"]["path"].endswith("model-int8-sym.onnx")
        assert "--int8" in dla_record["prepared"]["engine"]["build"]["command"]
    result = answer["at_once"]["squeezenet1_1"]
    together = result["at_once"]
    assert together["valid"] and together["window_s"] >= 5.0, together
    assert set(together["images_per_s"]) == {"cuda", "dla:0", "dla:1"}
    assert together["aggregate_images_per_s"] == pytest.approx(sum(together["images_per_s"].values()))
    assert all(result["alone"][e]["images_per_s"][e] > 0 for e in ("cuda", "dla:0", "dla:1"))
    assert any("--useDLACore=1" in flag for flag in result["commands"]["dla:1"])
    assert json.loads((tmp_path / "runs" / "d" / "at-once.json").read_text()) == answer["at_once"]


@pytest.mark.parametrize("flags, says", [
    (["--profile", "jetson-orin-nano"], "has no DLA cores"),
    (["--profile", "jetson-xavier-nx", "--runtime", "trt"], "use --runtime trtexec"),
    (["--profile", "jetson-xavier-nx", "--device", "dla:0"], "leave --device dla:0 out"),
    (["--profile", "jetson-xavier-nx", "--precision", "fp32"], "not fp32")])
def test_with_dla_refuses_what_it_cannot_do_in_one_line(tmp_path, flags, says):
    result = harness("check", "--on-device", "--with-dla", "--bundle", str(tmp_path), *flags)
    assert result.returncode == 2 and says in result.stderr, result.stderr


def test_int8_is_refused_on_a_board_without_fast_int8(tmp_path):
    """The Nano's Maxwell GPU (compute capability 5.3) has no fast int8: checking it at int8 is refused in one
    line naming fp16; Xavier NX (7.2) and Orin Nano (8.7) have it."""
    from harness.reports.check import load_profile

    assert [load_profile(p).fast_int8 for p in ("jetson-nano", "jetson-xavier-nx", "jetson-orin-nano")] == \
        [False, True, True]
    result = harness("check", "--on-device", "--precision", "int8", "--bundle", str(tmp_path), "--profile",
                     "jetson-nano")
    assert result.returncode == 2 and "no fast int8" in result.stderr and "--precision fp16" in result.stderr


@pytest.mark.slow
def test_a_dla_core_the_board_lacks_fails_its_rows_and_skips_the_at_once_run(tmp_path):
    """The profile says two DLA cores, the board has one: dla:1's engine cannot be built (trtexec says so), its
    rows say why and no 'built and ran' is claimed for it, and the at-once run is not started."""
    bundle = tmp_path / "bundle"
    made = harness("export", "--bundle", str(bundle), "--models", "squeezenet1_1", "--precision", "fp32",
                   "--profile", "jetson-xavier-nx")
    assert made.returncode == 0, made.stderr
    env = {**BOARD_ENV, "HARNESS_JETSON_ROOT": str(jetson_board(tmp_path, "xavier-nx")),
           "TRTEXEC_DOUBLE_DLA_CORES": "1",
           "TRT_DOUBLE_DRIVER_DEVICES": "1"}
    result = harness("check", "--on-device", "--with-dla", "--bundle", str(bundle), "--profile", "jetson-xavier-nx",
                     "--out", str(tmp_path / "runs"), "--run-id", "m", "--json", env=env)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    answer = json.loads(result.stdout[result.stdout.index("{"):])
    missing = next(c for c in answer["checks"] if c["model"] == "squeezenet1_1 on dla:1")
    verdicts = {c["name"]: (c["verdict"], c["figure"]) for c in missing["criteria"]}
    assert verdicts["numerics"][0] == "FAIL" and "DLA engine, 1 not available" in verdicts["numerics"][1]
    assert verdicts["opset/ops"][0] == "UNKNOWN" and "not built" in verdicts["opset/ops"][1]
    assert answer["at_once"]["squeezenet1_1"] == {"skipped": "dla:1 did not pass its timing cell"}


def test_a_process_killed_outright_takes_its_trtexec_with_it(tmp_path):
    """kill -9 of the process running trtexec (the harness during the at-once run, a cell's worker while it times)
    left trtexec running for the rest of its --duration, beside whatever ran next on the board (a resumed check
    timed against it). trtexec now dies with the thread that started it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = ("from runtimes.trtexec import TrtexecRuntime\n"
              "runtime = TrtexecRuntime.__new__(TrtexecRuntime)\n"
              "runtime.trtexec = '/bin/sleep'  # stands for a trtexec run of 60 s\n"
              "runtime._run(['60'], 120, on_start=lambda pid: print(pid, flush=True))\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    alive = _running(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "trtexec outlived the process that ran it"


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_ctrl_c_during_the_at_once_run_leaves_no_trtexec_running(trtexec, tmp_path):
    """Ctrl-C while the engines run together: every trtexec process the run started is ended before the
    interrupt goes on (none is left on the board competing with what runs next)."""
    import os
    import signal
    import threading
    import time

    from harness.cell import at_once
    from runtimes.trtexec import TrtexecRuntime

    trtexec("10.3.0")
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx", opset=13)
    runtimes, started = {}, []
    for device in ("cuda", "cuda:0"):
        runtime = TrtexecRuntime(RuntimeOptions(device=device, precision="fp16"))
        built = runtime.build_engine(OnnxFileArtifact("c", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
        plan = tmp_path / f"{device.replace(':', '')}.engine"
        plan.write_bytes(built.plan)
        runtime.load(EngineArtifact("c", str(plan), "", description={"onnx_path": str(onnx_path)}))
        measure = runtime.measure
        runtime.measure = lambda policy, on_start=None, on_line=None, measure=measure: measure(
            policy, on_start=lambda pid: (started.append(pid), on_start(pid)), on_line=on_line)
        runtimes[device] = runtime
    # Ctrl-C as in a terminal: a test run started in the background (`pytest &`) has SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # as Ctrl-C does
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            at_once.alone_and_at_once(runtimes, 1, 60.0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - began < 30, "the interrupt waited for the run to end"
    assert started, "no trtexec was started"
    for pid in started:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already: ended, not left running


def test_a_scenario_on_trtexec_is_unsupported_with_the_reason(trtexec, tmp_path):
    """trtexec times its own back-to-back loop: a server, offline or multi-stream cell cannot run on it."""
    from harness.cell.worker import CellContext, run_bench
    from harness.cells import Cell
    from harness.protocol import CellRequest, InputSpec, OnnxModel, Reference

    trtexec("10.3.0")
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    request = CellRequest(mode="bench", cell=Cell("c", "trtexec", "fp16", 1, "cuda", "server"),
                          model=OnnxModel("c", str(onnx_path), [InputSpec("image", "float32", [1, 3, 8, 8])]),
                          reference=Reference("torch", "fp32"))
    context = CellContext(request, {"cache_dir": str(tmp_path / "cache"), "run_dir": str(tmp_path / "run")})
    with pytest.raises(UnsupportedConfiguration, match="the server scenario needs a runtime the harness drives"):
        run_bench(context)


DETECTOR_DIMS = {"images": [1, 3, 12, 10], "orig_target_sizes": [1, 2]}


@pytest.mark.parametrize("version", ["8.5.2", "10.3.0"])
def test_two_inputs_with_symbolic_sizes_build_run_and_time(trtexec, tmp_path, version):
    """One --minShapes/--optShapes/--maxShapes list over both inputs; --loadInputs and --shapes for each; the
    int64 input's file holds int32 before TensorRT 9 (the double refuses a file of other bytes, as trtexec)."""
    import onnxruntime

    from harness.measure.timing import Policy
    from runtimes.trtexec import TrtexecRuntime

    trtexec(version)
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx", opset=17)
    runtime = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))
    shapes = EngineShapes("dynamic", 1, 2, 2, input_dims=DETECTOR_DIMS)
    built = runtime.build_engine(OnnxFileArtifact("det", str(onnx_path)), shapes, str(tmp_path))
    assert "--minShapes=images:1x3x12x10,orig_target_sizes:1x2" in built.facts["command"]
    assert "--maxShapes=images:2x3x12x10,orig_target_sizes:2x2" in built.facts["command"]
    assert built.facts["shapes"]["profiles"]["orig_target_sizes"] == {"min": [1, 2], "opt": [2, 2], "max": [2, 2]}
    plan = tmp_path / "det.engine"
    plan.write_bytes(built.plan)
    runtime.inspect_engine(str(plan))
    runtime.load(EngineArtifact("det", str(plan), "", description={"onnx_path": str(onnx_path)}))
    session = onnxruntime.InferenceSession(str(onnx_path))
    for batch in (1, 2):
        rng = np.random.default_rng(batch)
        feeds = [rng.standard_normal((batch, 3, 12, 10)).astype(np.float32),
                 rng.integers(1, 640, (batch, 2)).astype(np.int64)]
        runtime.prepare(feeds)
        runtime.run()
        expected = session.run(None, {"images": feeds[0], "orig_target_sizes": feeds[1]})
        for got, want in zip(runtime.outputs(), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5)
    timed = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16",
                                          input_shapes=((2, 3, 12, 10), (2, 2))))
    timed.load(EngineArtifact("det", str(plan), "", description={"onnx_path": str(onnx_path)}))
    run = timed.measure(Policy(warmup_min_iters=1, warmup_min_s=0.0, min_samples=3, min_duration_s=0.0).as_dict())
    assert "--shapes=images:2x3x12x10,orig_target_sizes:2x2" in run.command and len(run.records) >= 4
    assert run.facts["shapes"] == {"images": [2, 3, 12, 10], "orig_target_sizes": [2, 2]}


def test_a_size_trtexec_was_not_given_is_unsupported_and_its_default_of_1_is_refused(trtexec, tmp_path):
    from runtimes.base import IncompatibleEngine
    from runtimes.trtexec import TrtexecRuntime

    trtexec("10.3.0")
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    runtime = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))
    with pytest.raises(UnsupportedConfiguration, match="input images has dynamic dimension.* --input-shape images:"):
        runtime.build_engine(OnnxFileArtifact("det", str(onnx_path)), EngineShapes.static(1), str(tmp_path))
    classifier = onnx_graphs.classifier(tmp_path / "c.onnx", opset=13)
    built = runtime.build_engine(OnnxFileArtifact("c", str(classifier)), EngineShapes.static(2), str(tmp_path))
    plan = tmp_path / "c.engine"
    plan.write_bytes(built.plan)
    flags = runtime.flags.infer(str(plan), 1, 0, None, False)  # no --shapes: trtexec makes the batch 1
    done, _, _ = runtime._run(flags, timeout_s=60)
    assert done.returncode != 0 and "outside the optimization profile" in done.stdout
    assert runtime.inspect_engine(str(plan))["plan_file_bytes"] == len(built.plan), "the harness passes --shapes"
    unknowing = TrtexecRuntime(RuntimeOptions(device="cuda", precision="fp16"))  # knows no shapes to pass
    with pytest.raises(RuntimeError, match="could not run the engine") as failed:
        unknowing.inspect_engine(str(plan))  # trtexec printed "Engine deserialized in", then failed
    assert not isinstance(failed.value, IncompatibleEngine), "a plan trtexec loaded is not rebuilt"


def test_bench_of_a_graph_with_two_inputs_on_trtexec(trt_cli, trtexec, tmp_path):
    """Through the CLI: the build job gets the given sizes, each cell's timing run its --shapes."""
    trtexec("10.3.0")
    onnx_path = onnx_graphs.detector(tmp_path / "det.onnx")
    code, out, err = trt_cli("bench", "--onnx", str(onnx_path), "--runtime", "trtexec", "--device", "cuda",
                             "--input-shape", "images:1x3x32x24", "--batch-sizes", "1,2", "--out",
                             str(tmp_path / "results"), "--run-id", "t", "--precision", "fp32")
    assert code == 0, out + err
    records = [json.loads(line) for line in (tmp_path / "results" / "t" / "records.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("error") for r in records]
    assert records[1]["prepared"]["engine"]["build"]["shapes"]["profiles"]["images"]["max"] == [2, 3, 32, 24]
    assert records[0]["prepared"]["engine"]["shapes"]["input_dims"] == {"images": [1, 3, 32, 24],
                                                                        "orig_target_sizes": [1, 2]}
    for batch, record in zip((1, 2), records):
        assert f"--shapes=images:{batch}x3x32x24,orig_target_sizes:{batch}x2" in record["timing"]["tool"]["command"]
        assert record["input"]["generator"].startswith("trtexec's own"), "the record says whose inputs were timed"
