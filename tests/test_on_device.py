"""`check --on-device` end to end on a fixture board (tests/fixtures/jetson) with the TensorRT double and no
torch (tests/no_torch), from a bundle made here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import BOARDS, ROOT, WITH_TRT, harness, one_error_line, run_cli


def _profile(tmp_path: Path, **changes) -> Path:
    """The shipped Orin Nano profile without a speed target (a shared CI machine's timing would make the verdict
    flaky) nor part numbers, with `changes`."""
    profile = yaml.safe_load((ROOT / "harness" / "data" / "profiles" / "jetson-orin-nano.yaml").read_text())
    profile["targets"] = {"batch_size": 1}
    profile.pop("part_numbers")  # used on the Xavier NX fixture too: a profile of one's own, for any 8 GB module
    profile.update(changes)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _on_board(board: str) -> dict[str, str]:
    return {**WITH_TRT, "HARNESS_JETSON_ROOT": str(BOARDS / board)}


def test_on_device_passes_and_writes_ordinary_runs(board_bundle, tmp_path, capsys):
    result = harness("check", "--on-device", "--bundle", str(board_bundle), "--profile", str(_profile(tmp_path)),
                     "--out", str(tmp_path / "runs"), "--run-id", "od", "--json", env=_on_board("orin-nano"))
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)  # stdout is the JSON alone
    said = " ".join(result.stderr.split())  # people's lines, as the terminal wraps them
    assert "mode: measured now on this machine" in said and "done" in said  # and the progress bars
    assert answer["mode"] == "on-device" and answer["ready"] == 1
    verdicts = {c["name"]: c["verdict"] for c in answer["checks"][0]["criteria"]}
    assert verdicts == {"memory": "PASS", "numerics": "PASS", "opset/ops": "PASS"}
    bench = [json.loads(line) for line in (tmp_path / "runs" / "od" / "records.jsonl").read_text().splitlines()]
    assert bench[0]["cell"]["runtime"] == "trt" and bench[0]["cell"]["precision"] == "fp16"
    assert bench[0]["jetson"]["after"]["module"] == "NVIDIA Jetson Orin Nano Developer Kit"
    report = run_cli(capsys, "report", str(tmp_path / "runs" / "od"), "--out", str(tmp_path / "report"), "--quiet")
    assert report.returncode == 0, report.stderr  # the records serve report like any run's


def test_on_device_fails_a_budget_and_warns_about_the_power_mode(board_bundle, tmp_path):
    result = harness("check", "--on-device", "--bundle", str(board_bundle), "--profile",
                     str(_profile(tmp_path, memory_budget="100MB", power_mode="MODE_20W_6CORE")),
                     "--out", str(tmp_path / "runs"), env=_on_board("xavier-nx"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the board's power mode is MODE_15W_6CORE, the profile assumes MODE_20W_6CORE" in result.stderr
    assert "0/1 models ready" in result.stdout and "FAIL" in result.stdout


def test_on_device_refuses_off_a_jetson_unless_the_profile_is_not_one(board_bundle, tmp_path, capsys):
    line = one_error_line(harness("check", "--on-device", "--bundle", str(board_bundle), "--profile",
                                  "jetson-orin-nano", env=WITH_TRT))
    assert "this machine is not a Jetson" in line and "kind cuda or cpu" in line
    workstation = harness("check", "--on-device", "--bundle", str(board_bundle), "--profile", "workstation",
                          "--out", str(tmp_path / "runs"), env=WITH_TRT)
    assert "memory" in workstation.stdout and "numerics" in workstation.stdout, workstation.stderr
    assert "--on-device measures a bundle" in one_error_line(run_cli(capsys, "check", "--on-device", "--profile",
                                                                     "workstation"))
    assert "add --on-device" in one_error_line(run_cli(capsys, "check", "--profile", "workstation", "--bundle",
                                                        str(board_bundle)))


def test_estimate_mode_says_so(tmp_path, capsys):
    from tests.report_fixtures import cpu_records, write_run

    run = write_run(tmp_path / "run", cpu_records())
    result = run_cli(capsys, "check", "--profile", "workstation", "--models", "squeezenet1_1", str(run))
    assert "mode: estimate" in result.stdout, result.stderr


JETSON_CLOCKS = '''#!{python}
import json, pathlib, sys
root = pathlib.Path(__file__).resolve().parents[2]
log = root / "jetson_clocks.log"
log.write_text(log.read_text() + " ".join(sys.argv[1:]) + "\\n" if log.exists() else " ".join(sys.argv[1:]) + "\\n")
mins = {{root / "sys/class/devfreq/17000000.gv11b/min_freq": root / "sys/class/devfreq/17000000.gv11b/max_freq",
        root / "sys/kernel/debug/bpmp/debug/clk/emc/min_rate": root / "sys/kernel/debug/bpmp/debug/clk/emc/max_rate"}}
if sys.argv[1:2] == ["--store"]:
    pathlib.Path(sys.argv[2]).write_text(json.dumps({{str(k): k.read_text() for k in mins}}))
elif sys.argv[1:2] == ["--restore"]:
    for path, text in json.loads(pathlib.Path(sys.argv[2]).read_text()).items():
        pathlib.Path(path).write_text(text)
else:
    for low, high in mins.items():
        low.write_text(high.read_text())
'''


def _board_copy(tmp_path: Path, name: str) -> Path:
    import shutil
    import sys

    root = tmp_path / name
    shutil.copytree(BOARDS / name, root)
    tool = root / "usr" / "bin" / "jetson_clocks"
    tool.parent.mkdir(parents=True)
    tool.write_text(JETSON_CLOCKS.format(python=sys.executable))
    tool.chmod(0o755)
    for zone in (root / "sys" / "class" / "thermal").glob("thermal_zone*"):
        (zone / "temp").write_text("50000\n")  # a cool board: only the clocks are in question here
    return root


def test_pin_clocks_pins_for_the_check_and_restores_after(board_bundle, tmp_path):
    root = _board_copy(tmp_path, "xavier-nx")
    gpu_min = root / "sys/class/devfreq/17000000.gv11b/min_freq"
    before = gpu_min.read_text()
    result = harness("check", "--on-device", "--pin-clocks", "--bundle", str(board_bundle), "--profile",
                     str(_profile(tmp_path)), "--out", str(tmp_path / "runs"), "--run-id", "p", "--json",
                     env={**WITH_TRT, "HARNESS_JETSON_ROOT": str(root)})
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "clocks pinned with jetson_clocks" in result.stderr and "not pinned" not in result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "p" / "records.jsonl").read_text().splitlines()]
    assert record["jetson"]["before"]["clocks"]["pinned"] is True
    assert record["jetson"]["during_timed_loop"]["gpu_mhz"]["min"] > 0
    calls = (root / "jetson_clocks.log").read_text().split("\n")  # the call that pins has no arguments: ""
    assert [call.split(" ")[0] for call in calls] == ["--store", "", "--restore", ""]
    assert gpu_min.read_text() == before, "the board's own clock settings are back"


def test_pin_clocks_refused_where_it_cannot_run(board_bundle, tmp_path, monkeypatch, trt_cli, capsys):
    from harness.cli import on_device

    root = _board_copy(tmp_path, "xavier-nx")
    args = ("check", "--on-device", "--pin-clocks", "--bundle", str(board_bundle), "--profile", str(_profile(tmp_path)),
            "--out", str(tmp_path / "runs"))
    monkeypatch.setattr(on_device, "_is_root", lambda: False)
    code, out, err = trt_cli(*args, HARNESS_JETSON_ROOT=str(root))
    assert code == 2 and "needs root: run the check with sudo" in err, out + err
    monkeypatch.setattr(on_device, "_is_root", lambda: True)
    (root / "usr" / "bin" / "jetson_clocks").unlink()
    code, out, err = trt_cli(*args, HARNESS_JETSON_ROOT=str(root))
    assert code == 2 and "no /usr/bin/jetson_clocks on this board" in err, out + err
    assert "--pin-clocks applies to measuring: add --on-device" in one_error_line(
        run_cli(capsys, "check", "--profile", "workstation", "--models", "resnet18", "--pin-clocks"))


def test_a_board_of_another_module_is_refused_and_its_own_tensorrt_decides(tmp_path):
    """A 2 GB Nano is not judged against the 4 GB Nano's budget; a JetPack 6.0 board (TensorRT 8.6) is held
    to its parser's opset 17, not the 20 of the Orin Nano profile's TensorRT 10.3."""
    from harness.cli.on_device import profile_for_board, refuse_other_module
    from harness.errors import UserError
    from harness.reports.check import load_profile

    nano = load_profile("jetson-nano")
    with pytest.raises(UserError, match=r"has 2\.0 GB of memory .* jetson-nano-2gb"):
        refuse_other_module(nano, {"mem_total_bytes": 2_033_000_000}, "this machine")
    refuse_other_module(nano, {"mem_total_bytes": 4_156_694_528}, "this machine")  # the 4 GB Nano's MemTotal
    refuse_other_module(load_profile("jetson-nano-2gb"), {"mem_total_bytes": 2_033_000_000}, "this machine")
    orin = load_profile("jetson-orin-nano")
    judged, warnings = profile_for_board(orin, {"tensorrt": "8.6.2", "jetpack": "6.0"})
    assert judged.onnx_max_opset == 17 and "TensorRT 8.6.2" in judged.onnx_max_opset_source
    assert any("the board's TensorRT is 8.6.2, the profile assumes 10.3" in w for w in warnings)
    assert any("JetPack 6.0, the profile assumes 6.1 / 6.2" in w for w in warnings)
    same, quiet = profile_for_board(orin, {"tensorrt": "10.3.0", "jetpack": "6.1"})
    assert same.onnx_max_opset == 20 and quiet == []


def test_a_sustained_run_is_judged_on_its_steady_state():
    """A board that throttles under load: fast at first, slower once hot. The last half decides."""
    from types import SimpleNamespace

    from harness.reports.check import FAIL, _measured_speed, load_profile

    samples = [20.0] * 100 + [40.0] * 200  # 50 images/s at first, 25 once hot
    record = SimpleNamespace(ok=True, valid=True, cell=SimpleNamespace(runtime="trt", precision="fp16", batch_size=1),
                             host_timing=SimpleNamespace(images_per_s=33.3), samples_ms={"host": samples},
                             timing=SimpleNamespace(model_extra={"loop_s": 10.0}))
    profile = load_profile("jetson-orin-nano")
    steady = _measured_speed(profile, record, sustained=True)
    assert steady.verdict == FAIL and "25.0 images/s over the last half of 10 s sustained" in steady.figure
    assert "50.0 in its first tenth" in steady.figure
    assert _measured_speed(profile, record).figure.startswith("33.3 images/s")


def test_sustained_needs_on_device_and_a_sensible_duration(board_bundle, capsys):
    assert "--sustained applies to measuring: add --on-device" in one_error_line(
        run_cli(capsys, "check", "--profile", "workstation", "--models", "resnet18", "--sustained", "60"))
    assert "bad --sustained 5: give seconds from 10 to 86400" in one_error_line(
        run_cli(capsys, "check", "--on-device", "--bundle", str(board_bundle), "--profile", "workstation",
                "--sustained", "5"))


NVPMODEL = '''#!{python}
import pathlib, sys
root = pathlib.Path(__file__).resolve().parents[2]
status = root / "var/lib/nvpmodel/status"
log = root / "nvpmodel.log"
log.write_text((log.read_text() if log.exists() else "") + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["-m"]:
    status.write_text(f"pmode:{{int(sys.argv[2]):04d}} fmode:quiet\\n")
'''


def _with_nvpmodel(root: Path) -> Path:
    import sys

    tool = root / "usr" / "sbin" / "nvpmodel"
    tool.parent.mkdir(parents=True)
    tool.write_text(NVPMODEL.format(python=sys.executable))
    tool.chmod(0o755)
    return root


def test_power_mode_is_set_for_the_check_and_restored(board_bundle, tmp_path):
    root = _with_nvpmodel(_board_copy(tmp_path, "xavier-nx"))
    result = harness("check", "--on-device", "--power-mode", "profile", "--bundle", str(board_bundle), "--profile",
                     str(_profile(tmp_path, power_mode="MODE_20W_6CORE")), "--out", str(tmp_path / "runs"),
                     "--run-id", "pm", env={**WITH_TRT, "HARNESS_JETSON_ROOT": str(root)})
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "power mode set to MODE_20W_6CORE (nvpmodel -m 8)" in result.stderr
    assert "the board's power mode is" not in result.stderr, "the mode was set, so no mismatch is warned about"
    (record,) = [json.loads(line) for line in (tmp_path / "runs" / "pm" / "records.jsonl").read_text().splitlines()]
    assert record["jetson"]["before"]["power_mode"]["name"] == "MODE_20W_6CORE"
    assert (root / "nvpmodel.log").read_text().splitlines() == ["-m 8", "-m 2"]
    assert (root / "var/lib/nvpmodel/status").read_text().startswith("pmode:0002"), "the board's own mode is back"


def test_power_mode_mistakes_are_one_line(board_bundle, tmp_path, monkeypatch, trt_cli):
    from harness.cli import on_device

    root = _with_nvpmodel(_board_copy(tmp_path, "xavier-nx"))
    args = ("check", "--on-device", "--bundle", str(board_bundle), "--profile", str(_profile(tmp_path)), "--out",
            str(tmp_path / "runs"))
    code, out, err = trt_cli(*args, "--power-mode", "TURBO", HARNESS_JETSON_ROOT=str(root))
    assert code == 2 and "--power-mode TURBO: this board's nvpmodel has MODE_15W_2CORE" in err, out + err
    monkeypatch.setattr(on_device, "_is_root", lambda: False)
    code, out, err = trt_cli(*args, "--power-mode", "MODE_20W_6CORE", HARNESS_JETSON_ROOT=str(root))
    assert code == 2 and "needs root" in err and "sudo nvpmodel -m 8" in err, out + err


def test_a_module_another_profile_answers_for_is_refused():
    from harness.cli.on_device import refuse_other_module
    from harness.errors import UserError
    from harness.reports.check import load_profile

    two_gb = {"part_number": {"part": "p3448-0003", "from": "/proc/device-tree/nvidia,boardids"},
              "module_name": "Jetson Nano (2 GB)", "mem_total_bytes": 4_156_694_528}
    with pytest.raises(UserError, match=r"is a Jetson Nano \(2 GB\) \(p3448-0003.*pass --profile jetson-nano-2gb"):
        refuse_other_module(load_profile("jetson-nano"), two_gb, "this machine")
    refuse_other_module(load_profile("jetson-nano-2gb"), {**two_gb, "mem_total_bytes": 2_033_000_000}, "this machine")
    agx = {"part_number": {"part": "p3701-0005", "from": "x"}, "module_name": "Jetson AGX Orin (64 GB)"}
    with pytest.raises(UserError, match="write a profile for this module"):
        refuse_other_module(load_profile("jetson-orin-nano"), agx, "node agx")


def test_clocks_and_power_mode_are_restored_when_the_check_is_interrupted(tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) inside the check: jetson_clocks --restore and nvpmodel back to the board's mode
    still run, in that order (the stack unwinds what was set last first)."""
    from harness.cli import on_device
    from harness.measure import jetson

    root = _with_nvpmodel(_board_copy(tmp_path, "xavier-nx"))
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(root))
    monkeypatch.setattr(on_device, "_is_root", lambda: True)
    gpu_min = root / "sys/class/devfreq/17000000.gv11b/min_freq"
    unpinned = gpu_min.read_text()
    board = jetson.facts()
    with pytest.raises(KeyboardInterrupt):
        with on_device.power_mode_set(board, "MODE_20W_6CORE"), on_device.pinned_clocks(board):
            assert jetson.power_mode()["name"] == "MODE_20W_6CORE" and jetson.clocks()["pinned"] is True
            raise KeyboardInterrupt
    assert gpu_min.read_text() == unpinned and jetson.power_mode()["name"] == "MODE_15W_6CORE"
    assert (root / "jetson_clocks.log").read_text().splitlines()[-1].startswith("--restore")


def _record(status: str, error_type: str | None, error: str = "") -> Any:
    from harness.records import Record

    return Record.model_validate({"schema_version": 1, "kind": "parity", "status": status, "error": error,
                                  "error_type": error_type, "cell": {"model": "m", "runtime": "ort", "precision":
                                                                     "fp32", "batch_size": 1, "device": "cuda"}})


@pytest.mark.parametrize("error_type, error", [
    ("CannotRunHere", "CannotRunHere: this onnxruntime build has no CUDAExecutionProvider"),
    ("RuntimeUnavailable", "RuntimeUnavailable: runtime 'ort' needs onnxruntime: No module named 'onnxruntime'")])
def test_a_runtime_that_cannot_run_here_judges_nothing(error_type, error):
    """Not installed (a fleet node), or refusing this device or precision whatever the model: every criterion is
    UNKNOWN with the reason, not FAIL. A model whose graph the runtime rejects still fails its ops."""
    from harness.reports.check import FAIL, UNKNOWN, load_profile, on_device_checks

    profile = load_profile("workstation")
    unable = _record("unsupported" if error_type == "CannotRunHere" else "error", error_type, error)
    [check] = on_device_checks(profile, {"m": 17}, [unable], [unable], False, "cuda_nvml")
    assert {c.name: c.verdict for c in check.criteria} == {"memory": UNKNOWN, "speed": UNKNOWN, "numerics": UNKNOWN,
                                                           "opset/ops": UNKNOWN}
    assert all(c.figure.startswith("not measured: ort cannot run here (") and error.split(": ", 1)[1] in c.figure
               for c in check.criteria)
    rejected = _record("unsupported", "UnsupportedConfiguration", "UnsupportedConfiguration: the parser rejects Foo")
    [check] = on_device_checks(profile, {"m": 17}, [rejected], [rejected], False, "cuda_nvml")
    assert {c.name: c.verdict for c in check.criteria}["opset/ops"] == FAIL


def test_on_device_with_a_runtime_that_cannot_reach_the_gpu_says_unknown(board_bundle, tmp_path):
    """ort without a CUDA execution provider, checked on a GPU profile: UNKNOWN with the reason, exit 1."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime reaches a GPU")
    result = harness("check", "--on-device", "--bundle", str(board_bundle), "--profile", "workstation", "--runtime",
                     "ort",
                     "--precision", "fp32", "--out", str(tmp_path / "runs"), "--json", env=WITH_TRT)
    assert result.returncode == 1, result.stdout + result.stderr
    criteria = json.loads(result.stdout)["checks"][0]["criteria"]
    assert {c["verdict"] for c in criteria} == {"UNKNOWN"}
    assert all("no CUDAExecutionProvider" in c["figure"] for c in criteria)


@pytest.mark.parametrize("stop, code, says", [(KeyboardInterrupt, 130, "to go on: "),
                                              (None, 1, "make room, then run: ")])
def test_a_check_cut_short_names_the_command_that_goes_on(board_bundle, tmp_path, monkeypatch, trt_cli, stop, code,
                                                          says):
    """Ctrl-C or a full disk in check --on-device said nothing (Ctrl-C) or 'resume with: ... --resume ID' (a full
    disk), a flag check does not take, and the same command again started a new run and measured every cell
    anew. Now the line names the command with --run-id, under which the check goes on from its records."""
    import shlex
    import sys

    from harness.execution.executor import StorageFailed
    from harness.sweep.sweep import Sweep

    def cut_short(self, *args, **kwargs):
        raise stop() if stop else StorageFailed("cannot write in cells/: No space left on device")

    args = ["check", "--on-device", "--bundle", str(board_bundle), "--profile", str(_profile(tmp_path)), "--out",
            str(tmp_path / "my runs")]
    monkeypatch.setattr(sys, "argv", ["harness", *args])
    monkeypatch.setattr(Sweep, "run", cut_short)
    got, out, err = trt_cli(*args, HARNESS_JETSON_ROOT=str(BOARDS / "orin-nano"))
    assert got == code, out + err
    line = " ".join(err.split())  # rich wraps long lines
    command = shlex.split(line[line.index(says) + len(says):].split(";")[0])
    assert command[:4] == ["python", "-m", "harness", "check"] and command[-2] == "--run-id", line
    assert "--resume" not in command and str(tmp_path / "my runs") in command
