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
from tests.test_cli import ROOT, _one_error_line, harness

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
def test_interrupted_sweep_resumes_without_duplicates_or_gaps(tmp_path, how):
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
    resumed = harness(*ARGS, "--out", str(tmp_path), "--resume", "r")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(kept)} already recorded in r" in resumed.stdout
    ids = _cell_ids(records)
    expected = [c.cell_id for c in plan_cells(["resnet18", "alexnet", "vgg11"], [SLOW], ["fp32"], [1, 2], "cpu")]
    assert sorted(ids) == sorted(expected) and len(ids) == 6
    assert ids[:len(kept)] == kept  # nothing finished was lost or rewritten


def test_resume_last_finds_the_run_of_the_same_plan(tmp_path):
    first = harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path), "--run-id", "a")
    assert first.returncode == 0, first.stderr
    again = harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path), "--resume", "last")
    assert again.returncode == 0 and "1 already recorded in a" in again.stdout


def test_resume_with_another_plan_is_refused(tmp_path):
    assert harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path), "--run-id", "a").returncode == 0
    line = _one_error_line(harness(*ARGS[:4], "alexnet", "--batch-sizes", "1", "--out", str(tmp_path),
                                   "--resume", "a"))
    assert "run a was planned with other" in line
    assert "no run in" in _one_error_line(harness(*ARGS[:4], "alexnet", "--batch-sizes", "1", "--out",
                                                  str(tmp_path), "--resume", "last"))


def test_a_second_writer_is_refused(tmp_path):
    with RunLock(tmp_path / "busy"):
        line = _one_error_line(harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path),
                                       "--run-id", "busy"))
    assert f"is being written by pid {os.getpid()}" in line
    assert harness(*ARGS[:4], "resnet18", "--batch-sizes", "1", "--out", str(tmp_path),
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


def test_a_torn_last_line_is_repaired_on_resume_and_its_cell_runs_again(tmp_path):
    """Before: the next record was glued onto the fragment, the resume said every cell was ok and exited
    0, and a planned cell had no readable record."""
    args = [*ARGS[:2], "null", "--models", "resnet18", "--batch-sizes", "1,2,4", "--out", str(tmp_path)]
    assert harness(*args, "--run-id", "r").returncode == 0
    records = tmp_path / "r" / "records.jsonl"
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(b"".join(lines[:2]) + lines[2][:100])  # the machine died while writing the third
    resumed = harness(*args, "--resume", "r")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "torn" in resumed.stderr and "3/3 cells ok" in resumed.stdout
    read = read_records(records)
    assert read.skipped == [] and sorted(r["cell"]["batch_size"] for r in read.records) == [1, 2, 4]
    assert len(list((tmp_path / "r").glob("records.jsonl.torn-*"))) == 1


def test_retry_failed_runs_failed_cells_again(tmp_path):
    args = [*ARGS[:2], "tests.faulty_runtimes:FailsOnceRuntime", "--models", "resnet18", "--batch-sizes", "1",
            "--out", str(tmp_path)]
    env = {"FAILS_ONCE_MARKER": str(tmp_path / "failed-once")}
    first = harness(*args, "--run-id", "r", env=env)
    assert first.returncode == 1 and "error" in first.stdout
    plain = harness(*args, "--resume", "r", env=env)  # a failure is a result: resume alone keeps it
    assert plain.returncode == 1 and "1 already recorded" in plain.stdout
    retried = harness(*args, "--resume", "r", "--retry-failed", env=env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    statuses = [r["status"] for r in read_records(tmp_path / "r" / "records.jsonl").records]
    assert statuses == ["error", "ok"]  # both kept; readers take the last
    shown = harness("show", str(tmp_path / "r"))
    assert shown.returncode == 0 and "error" not in shown.stdout and "img/s" in shown.stdout


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


def test_the_printed_resume_command_pastes_into_a_shell_and_resumes(tmp_path):
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
    resumed = harness(*words[3:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "already recorded in r" in resumed.stdout and len(_cell_ids(out / "r" / "records.jsonl")) == 6
