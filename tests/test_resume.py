"""Sweeps that never lose work: interrupted by SIGINT or SIGKILL, resumed with no duplicate and no gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.records import read_records
from harness.sweep.planning import plan_cells
from harness.sweep.runs import RunLock
from tests.helpers import ROOT, harness, noise_images, one_error_line, run_cli, run_main

SLOW = "tests.faulty_runtimes:SlowRuntime"
ARGS = ["bench", "--runtime", SLOW, "--models", "resnet18,alexnet,vgg11", "--batch-sizes", "1,2", "--show", "time"]


def _interactive_signals() -> None:
    """Ctrl-C as in a terminal: a test run started in the background (`pytest &` in a script) has
    SIGINT ignored, and a child would inherit that and never see the interrupt this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "harness", *ARGS, "--out", str(tmp_path), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interactive_signals)  # noqa: PLW1509


def _wait_for_records(path: Path, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(read_records(path).records) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} records after {timeout_s} s")


def _cell_ids(path: Path) -> list[str]:
    return [r["cell_id"] for r in read_records(path).records]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_sweep_resumes_without_duplicates_or_gaps(tmp_path, capsys, how):
    records = tmp_path / "r" / "records.jsonl"
    parent = _start(tmp_path, "--run-id", "r")
    _wait_for_records(records, 2)
    parent.send_signal(how)
    _, stderr = parent.communicate(timeout=60)
    if how == signal.SIGINT:
        assert parent.returncode == 130, stderr
        assert "every finished record is in" in stderr and "--resume r" in stderr, stderr
    kept = _cell_ids(records)
    assert 2 <= len(kept) < 6 and len(set(kept)) == len(kept)

    time.sleep(0.5)  # a child whose parent was killed is killed too (PR_SET_PDEATHSIG); give it a moment
    resumed = run_cli(capsys, *ARGS, "--out", str(tmp_path), "--resume", "r")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(kept)} already recorded in r" in resumed.stdout
    ids = _cell_ids(records)
    expected = [c.cell_id for c in plan_cells(["resnet18", "alexnet", "vgg11"], [SLOW], ["fp32"], [1, 2], "cpu")]
    assert sorted(ids) == sorted(expected) and len(ids) == 6
    assert ids[:len(kept)] == kept  # nothing finished was lost or rewritten


def test_resume_last_finds_the_run_of_the_same_plan(tmp_path, capsys):
    first = run_cli(capsys, *ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path), "--run-id", "a")
    assert first.returncode == 0, first.stderr
    again = run_cli(capsys, *ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path), "--resume", "last")
    assert again.returncode == 0 and "1 already recorded in a" in again.stdout


def test_resume_with_another_plan_is_refused(tmp_path, capsys):
    def run(*args: str):
        return run_cli(capsys, *ARGS[:4], *args, "--batch-sizes", "1", "--out", str(tmp_path))

    assert run("resnet18", "--run-id", "a").returncode == 0
    assert "run a was planned with other" in one_error_line(run("alexnet", "--resume", "a"))
    assert "no run in" in one_error_line(run("alexnet", "--resume", "last"))


@pytest.mark.parametrize("damage", [b"", b"\xeb\xff\x00plan", b"[]"], ids=["empty", "binary", "array"])
def test_a_damaged_plan_is_one_line_and_resume_last_passes_over_it(tmp_path, capsys, damage):
    """plan.json empty, binary or not an object: --resume and --run-id of that run were a JSONDecodeError,
    UnicodeDecodeError or AttributeError traceback; --resume last (which reads every run's plan) too."""
    args = [*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path)]
    assert run_cli(capsys, *args, "--run-id", "good").returncode == 0
    assert run_cli(capsys, *args, "--run-id", "bad").returncode == 0
    (tmp_path / "bad" / "plan.json").write_bytes(damage)
    for how in (["--resume", "bad"], ["--run-id", "bad"]):
        line = one_error_line(run_cli(capsys, *args, *how))
        assert "bad/plan.json is damaged" in line and "start a new run" in line, how
    last = run_cli(capsys, *args, "--resume", "last")
    assert last.returncode == 0 and "Records: " + str(tmp_path / "good") in last.stdout, last.stderr


def test_a_second_writer_is_refused(tmp_path, capsys):
    with RunLock(tmp_path / "busy"):
        line = one_error_line(harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path),
                                      "--run-id", "busy"))
    assert f"is being written by pid {os.getpid()}" in line
    assert run_cli(capsys, *ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path),
                   "--run-id", "busy").returncode == 0  # free again once the holder let go


def test_orders():
    models, batch = ["a", "b"], [1, 2]
    by_model = [c.cell_id for c in plan_cells(models, ["torch"], ["fp32"], batch, "cpu")]
    assert by_model == ["a|torch|fp32|bs1|cpu", "a|torch|fp32|bs2|cpu", "b|torch|fp32|bs1|cpu", "b|torch|fp32|bs2|cpu"]
    interleaved = [c.cell_id for c in plan_cells(models, ["torch"], ["fp32"], batch, "cpu", order="interleaved")]
    assert interleaved == ["a|torch|fp32|bs1|cpu", "b|torch|fp32|bs1|cpu", "a|torch|fp32|bs2|cpu",
                           "b|torch|fp32|bs2|cpu"]
    ten = [f"m{i}" for i in range(10)]
    shuffled = [c.cell_id for c in plan_cells(ten, ["torch"], ["fp32"], batch, "cpu", order="random", seed=3)]
    again = [c.cell_id for c in plan_cells(ten, ["torch"], ["fp32"], batch, "cpu", order="random", seed=3)]
    assert shuffled == again and sorted(shuffled) != shuffled and len(set(shuffled)) == 20


def test_a_torn_last_line_is_repaired_on_resume_and_its_cell_runs_again(tmp_path, capsys):
    """Before: the next record was glued onto the fragment, the resume said every cell was ok and exited
    0, and a planned cell had no readable record."""
    args = [*ARGS[:2], "null", "--models", "resnet18", "--batch-sizes", "1,2,4", "--out", str(tmp_path)]
    assert run_cli(capsys, *args, "--run-id", "r").returncode == 0
    records = tmp_path / "r" / "records.jsonl"
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(b"".join(lines[:2]) + lines[2][:100])  # the machine died while writing the third
    resumed = run_cli(capsys, *args, "--resume", "r")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "torn" in resumed.stderr and "3/3 cells ok" in resumed.stdout
    read = read_records(records)
    assert read.skipped == [] and sorted(r["cell"]["batch_size"] for r in read.records) == [1, 2, 4]
    assert len(list((tmp_path / "r").glob("records.jsonl.torn-*"))) == 1


def test_retry_failed_runs_failed_cells_again(tmp_path, capsys, monkeypatch):
    args = [*ARGS[:2], "tests.faulty_runtimes:FailsOnceRuntime", "--models", "resnet18", "--batch-sizes", "1",
            "--out", str(tmp_path)]
    monkeypatch.setenv("FAILS_ONCE_MARKER", str(tmp_path / "failed-once"))
    first = run_cli(capsys, *args, "--run-id", "r")
    assert first.returncode == 1 and "error" in first.stdout
    plain = run_cli(capsys, *args, "--resume", "r")  # a failure is a result: resume alone keeps it
    assert plain.returncode == 1 and "1 already recorded" in plain.stdout
    retried = run_cli(capsys, *args, "--resume", "r", "--retry-failed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    statuses = [r["status"] for r in read_records(tmp_path / "r" / "records.jsonl").records]
    assert statuses == ["error", "ok"]  # both kept; readers take the last
    shown = run_cli(capsys, "show", str(tmp_path / "r"))
    assert shown.returncode == 0 and "error" not in shown.stdout and "img/s" in shown.stdout


# ---------------------------------------------------------------- every command that writes plan.json resumes

def _resumes(capsys: pytest.CaptureFixture[str], args: list[str], out: Path, first_code: int) -> None:
    """The command's run `r` is taken up again by --resume r, --resume last and --run-id r: no cell runs
    twice and none of the three is refused as another plan."""
    code, output = run_main(capsys, *args, "--out", str(out), "--run-id", "r")
    assert code == first_code, output
    recorded = _cell_ids(out / "r" / "records.jsonl")
    for again in (["--resume", "r"], ["--resume", "last"], ["--run-id", "r"]):
        code, output = run_main(capsys, *args, "--out", str(out), *again)
        assert code == first_code and "other models, runtimes" not in output and "has this plan" not in output, \
            (again, output)
        assert _cell_ids(out / "r" / "records.jsonl") == recorded, again  # nothing ran twice


def test_bench_with_int8_calibration_resumes(tmp_path, capsys):
    """Before: the recipe's mean and std, tuples in the plan, came back from plan.json as lists, so every
    resume of an int8 bench was refused as another plan."""
    calibration = noise_images(tmp_path / "calibration" / "n02123045", count=5, suffix=".png")
    _resumes(capsys, ["bench", "--runtime", "null", "--models", "resnet18", "--precision", "fp32,int8",
                      "--batch-sizes", "1", "--calibration", str(calibration.parent), "--calibration-images", "4",
                      "--show", "time"], tmp_path / "runs", 0)


def test_plain_bench_resumes_by_id_and_by_run_id(tmp_path, capsys):
    _resumes(capsys, ["bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1", "--show", "time"],
             tmp_path / "runs", 0)


def test_accuracy_resumes(tmp_path, capsys):
    """Before: the crop sets' normalization (tuples) made every accuracy resume 'another plan'. The model has no
    pretrained weights, so its reference cell fails at once (exit 1) and the rest are skipped: the plan is
    what is tested."""
    data = noise_images(tmp_path / "val" / "n02123045", count=3, suffix=".png")
    calibration = noise_images(tmp_path / "calibration" / "n02123045", count=3, seed=10, suffix=".png")
    _resumes(capsys, ["accuracy", "--data", str(data.parent), "--models", "shufflenet_v1_g8", "--runtime", "null",
                      "--precision", "fp32,int8", "--calibration", str(calibration.parent), "--workers", "1"],
             tmp_path / "runs", 1)


def test_verify_with_int8_calibration_resumes_under_its_run_id(tmp_path, capsys):
    calibration = noise_images(tmp_path / "calibration" / "n02123045", count=5, suffix=".png")
    args = ["verify", "--runtime", "null", "--models", "squeezenet1_1", "--precision", "int8", "--batch-size", "1",
            "--calibration", str(calibration.parent), "--calibration-images", "4"]
    code, output = run_main(capsys, *args, "--out", str(tmp_path), "--run-id", "v")
    assert code in (0, 1), output
    recorded = _cell_ids(tmp_path / "v" / "records.jsonl")
    code, output = run_main(capsys, *args, "--out", str(tmp_path), "--run-id", "v")
    assert code in (0, 1) and "other models, runtimes" not in output, output
    assert _cell_ids(tmp_path / "v" / "records.jsonl") == recorded


@pytest.mark.parametrize("argv, kept", [
    (["bench", "--out", "my results/été", "--device", "cpu@*", "--run-id", "old", "--models", "resnet18"],
     ["bench", "--out", "my results/été", "--device", "cpu@*", "--models", "resnet18"]),
    (["bench", "--run-id=old", "--resume", "last", "--models", "a b"], ["bench", "--models", "a b"]),
    (["bench", "--resu=last", "--run-i", "x", "--runtime", "ort"], ["bench", "--runtime", "ort"]),
])
def test_the_printed_resume_command_is_shell_quoted(argv, kept):
    """Pasted into a shell, the resume command is the same words: a path with a space, unicode, a device with
    '*' (which a shell would expand), --run-id and --resume dropped in every form argparse takes."""
    import shlex

    from harness.cli.common import resume_hint

    hint = resume_hint("20260101-x", argv)
    assert shlex.split(hint) == ["python", "-m", "harness", *kept, "--resume", "20260101-x"]
    assert "'cpu@*'" in hint or "cpu@*" not in argv


def test_the_printed_resume_command_pastes_into_a_shell_and_resumes(tmp_path, capsys):
    """Ctrl-C in a run whose --out has a space and an accent: the 'resume with:' line, split as a shell splits
    it, is the command that resumes the run."""
    import shlex

    out = tmp_path / "my results été"
    parent = _start(out, "--run-id", "r")
    _wait_for_records(out / "r" / "records.jsonl", 1)
    parent.send_signal(signal.SIGINT)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, stderr
    line = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    words = shlex.split(line.removeprefix("resume with: "))
    assert words[:3] == ["python", "-m", "harness"] and words[-2:] == ["--resume", "r"] and str(out) in words
    time.sleep(0.5)
    resumed = run_cli(capsys, *words[3:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "already recorded in r" in resumed.stdout and len(_cell_ids(out / "r" / "records.jsonl")) == 6


@pytest.mark.parametrize("stop, code, says", [(KeyboardInterrupt, 130, "to check the remaining cells: "),
                                              (None, 1, "make room, then run: ")])
def test_verify_cut_short_names_the_command_that_goes_on(tmp_path, monkeypatch, capsys, stop, code, says):
    """verify has no --resume: Ctrl-C said 'run the same verify command again' (without --run-id: a new run, every
    cell measured anew) and a full disk printed '--resume ID', which verify refuses. Both now name the command with
    --run-id, and that command goes on from the run's records."""
    import shlex

    from harness.cli.main import main
    from harness.execution.executor import StorageFailed
    from harness.sweep.sweep import Sweep

    real_run = Sweep.run

    def one_cell_then_stop(self, cells, on_done=None, **kwargs):
        def done_then_stop(cell, record):  # the reference cell is recorded, then the sweep stops
            on_done(cell, record)
            raise stop() if stop else StorageFailed("cannot write in cells/: No space left on device")

        return real_run(self, cells, on_done=done_then_stop, **kwargs)

    args = ["verify", "--runtime", "ort", "--models", "squeezenet1_1", "--batch-size", "1", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", ["harness", *args])
    monkeypatch.setattr(Sweep, "run", one_cell_then_stop)
    assert main(args) == code
    line = " ".join(capsys.readouterr().err.split())
    words = shlex.split(line[line.index(says) + len(says):].split(";")[0])
    assert words[:4] == ["python", "-m", "harness", "verify"] and words[-2] == "--run-id", line
    monkeypatch.setattr(Sweep, "run", real_run)
    assert main(words[3:]) == 0
    records = read_records(tmp_path / words[-1] / "records.jsonl").records
    assert len(records) == 2 and len({r["cell_id"] for r in records}) == 2  # the reference cell not run again
