"""`compare`: synthetic runs whose raw samples are drawn here, so what is noise and what is a shift is known."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.reports.compare import (IMPROVEMENT, INVALID, NOW_FAILS, NOW_RUNS, REGRESSION, SMALL, WITHIN_NOISE,
                                     Limits, compare, ratio_interval, read_run)
from tests.report_fixtures import CPU_ENV, record, write_run
from tests.helpers import one_error_line, run_cli


def _timed(model: str, samples_ms: np.ndarray, batch_size: int = 1, valid: bool = True, memory: int = 500_000_000,
           runtime: str = "ort") -> dict:
    """A record of the fixture's shape whose median and raw samples are `samples_ms`."""
    median = float(np.median(samples_ms))
    result = record(model, runtime, batch_size, batch_size * 1000.0 / median, memory, valid=valid)
    result["samples_ms"] = {"host": [float(s) for s in samples_ms], "device": None}
    return result


def _draw(seed: int, center_ms: float, spread_ms: float, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).normal(center_ms, spread_ms, n).clip(min=0.1)


def _runs(tmp_path: Path, baseline: list[dict], candidate: list[dict], candidate_env: dict | None = None):
    return (read_run(write_run(tmp_path / "base", baseline)),
            read_run(write_run(tmp_path / "cand", candidate, candidate_env)))


def _verdicts(comparison) -> dict[str, list[str]]:
    return {c.match[0]: c.verdicts for c in comparison.changes}


def test_noise_is_not_flagged_and_a_tight_ten_percent_shift_is(tmp_path):
    baseline = [_timed("squeezenet1_1", _draw(1, 10.0, 1.0)), _timed("resnet50", _draw(2, 10.0, 0.1)),
                _timed("vgg16", np.linspace(5.0, 15.0, 21))]
    candidate = [_timed("squeezenet1_1", _draw(11, 10.0, 1.0)),  # the same distribution: noise only
                 _timed("resnet50", _draw(12, 11.0, 0.1)),  # 10 % slower, tight samples
                 _timed("vgg16", np.linspace(5.0, 15.0, 21) * 1.1)]  # 10 % slower inside a spread of +-50 %
    comparison = compare(*_runs(tmp_path, baseline, candidate))
    verdicts = _verdicts(comparison)
    assert verdicts["squeezenet1_1"] == [WITHIN_NOISE]
    assert verdicts["resnet50"] == [REGRESSION]
    assert verdicts["vgg16"] == [WITHIN_NOISE]
    shifted = next(c for c in comparison.changes if c.match[0] == "resnet50")
    assert shifted.time.ratio == pytest.approx(1.10, abs=0.01) and 1.08 < shifted.time.low < shifted.time.high < 1.12
    assert [c.match[0] for c in comparison.regressions] == ["resnet50"]


def test_over_many_draws_noise_is_rarely_flagged_and_a_tight_shift_always_is():
    from harness.reports.compare import TimeChange, time_verdict

    def verdict(base: np.ndarray, cand: np.ndarray) -> str:
        ratio = float(np.median(cand) / np.median(base))
        return time_verdict(TimeChange(ratio, *ratio_interval(base, cand, resamples=500), 1.0, ratio), 0.05)

    noise = [verdict(_draw(seed, 10.0, 1.0, n=60), _draw(seed + 1000, 10.0, 1.0, n=60)) for seed in range(40)]
    shifted = [verdict(_draw(seed, 10.0, 0.2, n=60), _draw(seed + 1000, 11.0, 0.2, n=60)) for seed in range(40)]
    assert noise.count(REGRESSION) == 0 and noise.count(WITHIN_NOISE) >= 34  # a 95 % interval: ~2 of 40 outside
    assert shifted.count(REGRESSION) == 40


def test_the_threshold_decides_how_large_a_real_change_must_be(tmp_path):
    baseline = [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))]
    candidate = [_timed("resnet50", _draw(12, 10.3, 0.1)),  # 3 % slower: real, under 5 %
                 _timed("vgg16", _draw(13, 9.0, 0.1))]  # 10 % faster
    runs = _runs(tmp_path, baseline, candidate)
    assert _verdicts(compare(*runs)) == {"resnet50": [SMALL], "vgg16": [IMPROVEMENT]}
    assert _verdicts(compare(*runs, Limits(threshold=0.02)))["resnet50"] == [REGRESSION]


def test_invalid_failing_and_missing_cells(tmp_path):
    baseline = [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1)),
                record("googlenet", "ort", 1, None, None, status="oom"), _timed("squeezenet1_1", _draw(4, 5, 0.1)),
                _timed("mobilenet_v2", _draw(5, 5, 0.1), batch_size=8)]
    candidate = [_timed("resnet50", _draw(12, 15.0, 0.1), valid=False),  # 50 % slower, but invalid
                 record("vgg16", "ort", 1, None, None, status="error"),
                 _timed("googlenet", _draw(6, 10.0, 0.1)), _timed("squeezenet1_1", _draw(14, 5, 0.1)),
                 _timed("mobilenet_v2", _draw(7, 5, 0.1), batch_size=4)]
    comparison = compare(*_runs(tmp_path, baseline, candidate))
    verdicts = _verdicts(comparison)
    assert verdicts["resnet50"] == [INVALID] and verdicts["vgg16"] == [NOW_FAILS]
    assert verdicts["googlenet"] == [NOW_RUNS]
    assert sorted(c.match[0] for c in comparison.regressions) == ["vgg16"]  # invalid is never a regression
    assert comparison.only_baseline == [("mobilenet_v2", "ort", "fp32", 8, "cpu")]
    assert comparison.only_candidate == [("mobilenet_v2", "ort", "fp32", 4, "cpu")]


def test_memory_and_accuracy_are_judged_only_with_their_limits(tmp_path):
    baseline = [_timed("resnet50", _draw(2, 10.0, 0.1), memory=1_000_000_000),
                {**record("resnet50", "ort", 1, 1.0, 1), "kind": "accuracy", "accuracy": {"top1": 76.1}}]
    candidate = [_timed("resnet50", _draw(12, 10.0, 0.1), memory=1_200_000_000),
                 {**record("resnet50", "ort", 1, 1.0, 1), "kind": "accuracy", "accuracy": {"top1": 75.0}}]
    runs = _runs(tmp_path, baseline, candidate)
    plain = compare(*runs).changes[0]
    assert plain.memory == {"host_rss": (1_000_000_000, 1_200_000_000)} and plain.top1 == (76.1, 75.0)
    assert not plain.regressed
    judged = compare(*runs, Limits(memory_threshold=0.1, max_accuracy_drop=0.5)).changes[0]
    assert judged.verdicts[1:] == ["memory regression", "accuracy regression"] and judged.regressed


def test_environment_differences_come_first_and_leave_out_temperatures(tmp_path):
    base_env = {**CPU_ENV, "packages": {"onnxruntime": "1.31.0", "torch": "2.14.1"},
                "jetson": {"is_jetson": False}, "thermal": {"zones": {"cpu": {"temp_mC": 41000}}}}
    cand_env = {**CPU_ENV, "packages": {"onnxruntime": "1.32.0", "torch": "2.14.1"},
                "jetson": {"is_jetson": False}, "thermal": {"zones": {"cpu": {"temp_mC": 55000}}}}
    baseline, candidate = [_timed("resnet50", _draw(2, 10.0, 0.1))], [_timed("resnet50", _draw(12, 10.0, 0.1))]
    write_run(tmp_path / "base", baseline, base_env)
    write_run(tmp_path / "cand", candidate, cand_env)
    comparison = compare(read_run(tmp_path / "base"), read_run(tmp_path / "cand"))
    assert comparison.environment == [("packages.onnxruntime", "1.31.0", "1.32.0")]


def test_the_interval_is_reproducible_and_covers_the_ratio():
    base, cand = _draw(1, 10.0, 1.0), _draw(2, 12.0, 1.0)
    low, high = ratio_interval(base, cand)
    assert (low, high) == ratio_interval(base, cand)
    assert low < np.median(cand) / np.median(base) < high


def test_compare_cli_gates_ci_and_writes_markdown(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))])
    write_run(tmp_path / "same", [_timed("resnet50", _draw(12, 10.0, 0.1)), _timed("vgg16", _draw(13, 10.0, 0.1))])
    write_run(tmp_path / "slow", [_timed("resnet50", _draw(22, 11.0, 0.1)), _timed("vgg16", _draw(23, 10.0, 0.1))])
    quiet = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "same"))
    assert quiet.returncode == 0, quiet.stderr
    assert "no regression in 2 compared cells (2 within noise" in quiet.stdout
    slow = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--markdown",
                   str(tmp_path / "c.md"))
    assert slow.returncode == 1, slow.stderr
    assert "1 regression in 2 compared cells" in slow.stdout and "regression" in slow.stdout
    markdown = (tmp_path / "c.md").read_text()
    assert "| resnet50 | ort | fp32 | 1 | cpu |" in markdown and "| regression |" in markdown
    answer = json.loads(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--json").stdout)
    [resnet] = [c for c in answer["comparisons"][0]["cells"] if c["model"] == "resnet50"]
    assert answer["regressions"] == 1 and resnet["verdicts"] == ["regression"] and resnet["time_ratio"] > 1.05
    assert run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--threshold",
                   "15%").returncode == 0
    assert "bad --threshold 'fast'" in one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"),
                                                              str(tmp_path / "slow"), "--threshold", "fast"))
    assert "is not a run folder (no such folder)" in one_error_line(run_cli(capsys, "compare", str(tmp_path / "nope"),
                                                                            str(tmp_path / "slow")))


def test_report_with_a_baseline_adds_the_comparison_section(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "slow", [_timed("resnet50", _draw(22, 11.0, 0.1))])
    result = run_cli(capsys, "report", str(tmp_path / "slow"), "--baseline", str(tmp_path / "base"), "--out",
                     str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert "slow against base" in page and "regression" in page
    assert "## Compared with base: slow against base: 1 regression" in (tmp_path / "report" / "tables.md").read_text()


def test_a_torn_candidate_is_compared_for_what_it_holds_and_says_what_was_skipped(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))])
    torn = write_run(tmp_path / "torn", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    with (torn / "records.jsonl").open("a") as records:  # a run killed while appending its second record
        records.write(json.dumps(_timed("vgg16", _draw(13, 10.0, 0.1)))[:200])
    result = run_cli(capsys, "compare", str(tmp_path / "base"), str(torn))
    assert result.returncode == 0, result.stderr
    assert "torn last line skipped" in result.stdout
    assert "no regression in 1 compared cell " in result.stdout and "1 cell in one run only" in result.stdout


# ---------------------------------------------------------------- settings that change what a cell measures

def _with(record: dict, **parts) -> dict:
    """The record with parts replaced or added, e.g. settings={...}, runtime={...}, prepared={...}."""
    return {**record, **parts}


ONNX_FILE = {"kind": "onnx", "opset": 18, "simplified": False, "path": "onnx/x/model.onnx"}
SETTING_PAIRS = {  # setting kind: (baseline's parts, candidate's parts, the setting's name in the verdict)
    "threads": ({"settings": {"threads": None, "channels_last": False, "runtime_options": {}}},
                {"settings": {"threads": 4, "channels_last": False, "runtime_options": {}}}, "threads"),
    "runtime option": ({"settings": {"threads": None, "channels_last": False, "runtime_options": {}}},
                       {"settings": {"threads": None, "channels_last": False,
                                     "runtime_options": {"graph_optimization": "basic"}}}, "runtime options"),
    "channels-last": ({"settings": {"threads": None, "channels_last": False, "runtime_options": {}}},
                      {"settings": {"threads": None, "channels_last": True, "runtime_options": {}}}, "channels-last"),
    # records written before `settings`: what the runtime reported
    "threads (older records)": ({"runtime": {"options": {"threads_requested": 2, "intra_op_num_threads": 2}}},
                                {"runtime": {"options": {"threads_requested": None, "intra_op_num_threads": 16}}},
                                "threads"),
    "runtime option (older records)": ({"runtime": {"options": {"runtime_options": {"execution_mode": "parallel"}}}},
                                       {"runtime": {"options": {"runtime_options": {}}}}, "runtime options"),
    "weights": ({"prepared": {"weights": {"kind": "random", "seed": 0, "sha256": "a" * 64}}},
                {"prepared": {"weights": {"kind": "pretrained", "tag": "IMAGENET1K_V2", "library": "tv"}}}, "weights"),
    "weights file": ({"prepared": {"weights": {"kind": "file", "path": "/a/w.pt", "sha256": "a" * 64}}},
                     {"prepared": {"weights": {"kind": "file", "path": "/a/w.pt", "sha256": "b" * 64}}}, "weights"),
    "ONNX opset": ({"prepared": {"artifact": ONNX_FILE}}, {"prepared": {"artifact": {**ONNX_FILE, "opset": 17}}},
                   "ONNX file"),
    "ONNX simplified": ({"prepared": {"artifact": ONNX_FILE}},
                        {"prepared": {"artifact": {**ONNX_FILE, "simplified": True}}}, "ONNX file"),
    "int8 calibration": (
        {"prepared": {"artifact": {**ONNX_FILE, "quantization": {"method": "minmax", "images": 100,
                                                                 "files_sha256": "c" * 64}}}},
        {"prepared": {"artifact": {**ONNX_FILE, "quantization": {"method": "entropy", "images": 100,
                                                                 "files_sha256": "c" * 64}}}}, "int8 calibration"),
}


@pytest.mark.parametrize("kind", SETTING_PAIRS)
def test_a_pair_measured_with_different_settings_is_shown_and_not_judged(tmp_path, kind):
    from harness.reports.compare import SETTINGS_DIFFER, comparison_tables

    base_parts, cand_parts, name = SETTING_PAIRS[kind]
    baseline = [_with(_timed("resnet50", _draw(2, 10.0, 0.1)), **base_parts)]
    candidate = [_with(_timed("resnet50", _draw(12, 12.0, 0.1)), **cand_parts)]  # 20 % slower, tight
    runs = _runs(tmp_path, baseline, candidate)
    [refused] = compare(*runs).changes
    assert refused.verdicts == [SETTINGS_DIFFER] and not refused.regressed and refused.time is None
    assert [setting for setting, _, _ in refused.settings] == [name]
    [row] = comparison_tables(compare(*runs))[1].rows
    assert row[-1].text.startswith(f"{SETTINGS_DIFFER} ({name} ")
    [judged] = compare(*runs, Limits(allow_different_settings=True)).changes
    assert judged.verdicts == [REGRESSION] and judged.settings == refused.settings


def test_settings_that_do_not_change_the_work_or_are_not_recorded_leave_the_pair_judged(tmp_path):
    from harness.reports.compare import measured_settings

    random_weights = {"kind": "random", "path": "weights/x/weights.pt"}
    baseline = [_with(_timed("resnet50", _draw(2, 10.0, 0.1)),  # another seed, another cache path: same work
                      prepared={"weights": {**random_weights, "seed": 0, "sha256": "a" * 64}},
                      runtime={"options": {"threads_requested": None, "intra_op_num_threads": 8}}),
                _timed("vgg16", _draw(3, 10.0, 0.1))]  # a record that says no setting at all
    candidate = [_with(_timed("resnet50", _draw(12, 12.0, 0.1)),
                       prepared={"weights": {**random_weights, "seed": 1, "sha256": "b" * 64}},
                       runtime={"options": {"threads_requested": None, "intra_op_num_threads": 16}}),
                 _with(_timed("vgg16", _draw(13, 12.0, 0.1)), settings={"threads": 4, "runtime_options": {}})]
    comparison = compare(*_runs(tmp_path, baseline, candidate))
    assert _verdicts(comparison) == {"resnet50": [REGRESSION], "vgg16": [REGRESSION]}
    assert measured_settings(comparison.changes[0].baseline) == {"threads": "library default", "weights": "random"}


def test_a_real_bench_record_carries_the_settings_it_was_asked_for(tmp_path, capsys):
    from harness.reports.compare import measured_settings
    from harness.records import Record

    result = run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null,torch", "--batch-sizes", "1",
                     "--threads", "3", "--channels-last", "--runtime-option", "torch.cudnn_benchmark=off", "--energy",
                     "off", "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "r" / "records.jsonl").read_text().splitlines()
    records = {record["cell"]["runtime"]: record for record in map(json.loads, lines)}
    assert records["null"]["settings"] == {"threads": 3, "runtime_options": {}}  # channels-last: a torch module's
    assert records["torch"]["settings"] == {"threads": 3, "channels_last": True,
                                            "runtime_options": {"cudnn_benchmark": "off"}}
    assert measured_settings(Record.model_validate(records["torch"])) == {
        "threads": "3", "runtime options": "cudnn_benchmark=off", "channels-last": "True", "weights": "random"}


def test_compare_cli_refuses_a_verdict_on_runs_measured_with_other_settings(tmp_path, capsys):
    asked = {"threads": None, "channels_last": False, "runtime_options": {}}
    write_run(tmp_path / "base", [_with(_timed("resnet50", _draw(2, 10.0, 0.1)), settings=asked)])
    write_run(tmp_path / "cand", [_with(_timed("resnet50", _draw(12, 12.0, 0.1)), settings={**asked, "threads": 1})])
    markdown = tmp_path / "c.md"
    refused = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--markdown", str(markdown))
    line = one_error_line(refused)
    assert "nothing compared" in line and "measured with different settings" in line
    assert "--allow-different-settings" in line
    assert "| different settings: not judged (threads library default → 1) |" in markdown.read_text()
    allowed = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--allow-different-settings",
                      "--markdown", str(markdown))
    assert allowed.returncode == 1, allowed.stderr
    assert "| regression (settings differ: threads library default → 1) |" in markdown.read_text()


# ---------------------------------------------------------------- no verdict is never a pass

def _zero_median(samples_ms: np.ndarray) -> dict:
    broken = _timed("resnet50", samples_ms)
    broken["timing"]["host"]["median_ms"] = 0.0
    return broken


def _nan_samples(samples_ms: np.ndarray) -> dict:
    broken = _timed("resnet50", samples_ms)
    broken["samples_ms"]["host"][5] = float("nan")
    return broken


def _text_samples(samples_ms: np.ndarray) -> dict:
    broken = _timed("resnet50", samples_ms)
    broken["samples_ms"] = {"host": ["fast"] * 10}
    return broken


@pytest.mark.parametrize("damage, side, problem", [
    (_zero_median, "baseline", "baseline has a median of 0 ms"),
    (_zero_median, "candidate", "candidate has a median of 0 ms"),
    (_nan_samples, "candidate", "candidate has raw samples that are not finite numbers"),
    (_nan_samples, "baseline", "baseline has raw samples that are not finite numbers"),
    (_text_samples, "candidate", "candidate has raw samples that are not finite numbers")])
def test_a_timing_that_cannot_be_compared_is_an_error_not_a_pass(tmp_path, damage, side, problem, capsys):
    sound = [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))]
    damaged = [damage(_draw(12, 10.0, 0.1)), _timed("vgg16", _draw(13, 10.0, 0.1))]
    baseline, candidate = (damaged, sound) if side == "baseline" else (sound, damaged)
    write_run(tmp_path / "base", baseline)
    write_run(tmp_path / "cand", candidate)
    result = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--json")
    line = one_error_line(result)
    assert f"resnet50 ort fp32 bs1 cpu: {problem}" in line
    [cell] = [c for c in json.loads(result.stdout)["comparisons"][0]["cells"] if c["model"] == "resnet50"]
    assert cell["verdicts"] == ["unusable timing: not judged"] and cell["time_ratio"] is None


def test_runs_with_nothing_in_common_or_nothing_judged_are_not_a_pass(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "other", [_timed("vgg16", _draw(3, 10.0, 0.1))])
    write_run(tmp_path / "noisy", [_timed("resnet50", _draw(12, 10.0, 0.1), valid=False)])
    apart = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "other"))
    assert "nothing compared (no cell in common: 1 in the baseline only, 1 in the candidate only" in \
        one_error_line(apart)
    assert "other against base: nothing judged in 0 compared cells" in apart.stdout
    noisy = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "noisy")))
    assert "nothing compared (1 cell in common, none judged: 1 invalid)" in noisy


def test_the_same_run_twice_is_refused(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "cand", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    itself = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "base" / ".")))
    assert "is both the baseline and a candidate" in itself
    twice = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"),
                                   str(tmp_path / "cand")))
    assert "is a candidate twice" in twice
    shutil.copytree(tmp_path / "base", tmp_path / "copy")  # the same records under another folder: no verdict
    copied = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "copy"))
    assert copied.returncode == 2 and "every compared cell is the same measurement in both" in \
        one_error_line(copied)


def test_markdown_naming_a_folder_is_one_line(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "cand", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    (tmp_path / "out").mkdir()
    line = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--markdown",
                                  str(tmp_path / "out")))
    assert "it is a folder; name a file" in line
    records = (tmp_path / "cand" / "records.jsonl").read_text()
    for name in ("records.jsonl", "plan.json", "env.json"):
        line = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--markdown",
                                      str(tmp_path / "cand" / name)))
        assert f"{name} is a run's own file, which the tables would replace" in line
    assert (tmp_path / "cand" / "records.jsonl").read_text() == records  # the candidate's records are still there


# ---------------------------------------------------------------- thresholds

@pytest.mark.parametrize("text, fraction", [("5%", 0.05), ("0.05", 0.05), (" 12.5 % ", 0.125), ("0", 0.0),
                                            ("1000%", 10.0), ("150%", 1.5)])
def test_a_threshold_is_a_percentage_or_a_fraction(text, fraction):
    from harness.cli.compare import parse_fraction

    assert parse_fraction(text, "--threshold") == pytest.approx(fraction)


@pytest.mark.parametrize("text, problem", [("5", "a bare number is a fraction (0.05 = 5%); for 5 percent write"),
                                           ("-5%", "give a change of 0 or more"), ("-0.1", "give a change of 0"),
                                           ("nan%", "give a change of 0"), ("inf", "give a change of 0"),
                                           ("fast", "give a percentage or a fraction")])
def test_a_threshold_that_means_nothing_is_one_line(tmp_path, text, problem, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "cand", [_timed("resnet50", _draw(12, 11.0, 0.1))])
    for flag in ("--threshold", "--memory-threshold"):
        line = one_error_line(run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "cand"),
                                      f"{flag}={text}"))
        assert f"bad {flag} '{text}': {problem}" in line


def test_the_threshold_as_a_fraction_and_above_a_hundred_percent_in_the_cli(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "slow", [_timed("resnet50", _draw(22, 11.0, 0.1))])  # 10 % slower
    runs = (str(tmp_path / "base"), str(tmp_path / "slow"))
    assert run_cli(capsys, "compare", *runs, "--threshold", "0.15").returncode == 0  # 15 %, not 0.15 %
    assert run_cli(capsys, "compare", *runs, "--threshold", "0.05").returncode == 1
    assert run_cli(capsys, "compare", *runs, "--threshold", "1000%").returncode == 0
    run_cli(capsys, "compare", *runs, "--threshold", "0.005", "--markdown", str(tmp_path / "c.md"))
    assert "A regression: time > +0.5% with its whole 95 % interval" in (tmp_path / "c.md").read_text()
    assert "or a fraction (0.05 = 5%)" in " ".join(run_cli(capsys, "compare", "--help").stdout.split())


# ---------------------------------------------------------------- accuracy, memory

def _accuracy_run(path: Path, top1: float, model: str = "resnet50") -> Path:
    return write_run(path, [{**record(model, "ort", 1, 1.0, 1), "kind": "accuracy", "accuracy": {"top1": top1}}])


def test_top1_comes_from_accuracy_runs_beside_the_bench_runs(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "cand", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    _accuracy_run(tmp_path / "base-acc", 76.1)
    _accuracy_run(tmp_path / "cand-acc", 74.0)
    runs = (str(tmp_path / "base"), str(tmp_path / "cand"))
    unjudged = one_error_line(run_cli(capsys, "compare", *runs, "--max-accuracy-drop", "0.5"))
    assert "--max-accuracy-drop judged nothing: no compared cell has a measured top-1 in both runs" in unjudged
    assert "--accuracy BASELINE_ACCURACY_RUN CANDIDATE_ACCURACY_RUN" in unjudged
    judged = run_cli(capsys, "compare", *runs, "--max-accuracy-drop", "0.5", "--accuracy", str(tmp_path / "base-acc"),
                     str(tmp_path / "cand-acc"), "--json")
    assert judged.returncode == 1, judged.stderr
    [cell] = json.loads(judged.stdout)["comparisons"][0]["cells"]
    assert cell["verdicts"] == [WITHIN_NOISE, "accuracy regression"] and cell["top1"] == {"baseline": 76.1,
                                                                                          "candidate": 74.0}
    assert "one accuracy run per compared run, baseline first: 2 expected, 1 given" in one_error_line(
        run_cli(capsys, "compare", *runs, "--accuracy", str(tmp_path / "base-acc")))
    assert "no finished accuracy records with a top-1 in" in one_error_line(
        run_cli(capsys, "compare", *runs, "--accuracy", str(tmp_path / "base-acc"), str(tmp_path / "cand")))


def test_an_invalid_timing_still_has_its_top1_and_memory_judged_and_a_peak_of_zero_is_not(tmp_path):
    baseline = [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1), memory=0)]
    candidate = [_timed("resnet50", _draw(12, 10.0, 0.1), valid=False),
                 _timed("vgg16", _draw(13, 10.0, 0.1), memory=900_000_000)]
    base, cand = _runs(tmp_path, baseline, candidate)
    base = replace(base, top1={("resnet50", "ort", "fp32"): 76.0})
    cand = replace(cand, top1={("resnet50", "ort", "fp32"): 70.0})
    verdicts = _verdicts(compare(base, cand, Limits(memory_threshold=0.1, max_accuracy_drop=1.0)))
    assert verdicts == {"resnet50": [INVALID, "accuracy regression"], "vgg16": [WITHIN_NOISE]}


def test_an_accuracy_figure_that_is_not_a_number_is_left_out_and_said(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "cand", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    text_figure = {**record("resnet50", "ort", 1, 1.0, 1), "kind": "accuracy", "accuracy": {"top1": "76.1"}}
    write_run(tmp_path / "base-acc", [text_figure, {**record("vgg16", "ort", 1, 1.0, 1), "kind": "accuracy",
                                                    "accuracy": {"top1": 71.0}}])
    write_run(tmp_path / "text-acc", [text_figure])
    _accuracy_run(tmp_path / "cand-acc", 74.0)
    runs = (str(tmp_path / "base"), str(tmp_path / "cand"))
    result = run_cli(capsys, "compare", *runs, "--accuracy", str(tmp_path / "base-acc"), str(tmp_path / "cand-acc"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "top-1 '76.1' is not a number; left out" in result.stdout
    line = one_error_line(run_cli(capsys, "compare", *runs, "--accuracy", str(tmp_path / "text-acc"),
                                  str(tmp_path / "cand-acc")))
    assert "no finished accuracy records with a top-1 in" in line and "top-1 '76.1' is not a number" in line


# ---------------------------------------------------------------- report --baseline, names

def test_report_with_its_only_run_as_the_baseline_is_refused(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    line = one_error_line(run_cli(capsys, "report", str(tmp_path / "base"), "--baseline", str(tmp_path / "base"),
                                  "--out",
                                  str(tmp_path / "report"), "--quiet"))
    assert "is the only run reported: nothing to compare it with" in line
    assert not (tmp_path / "report").exists()  # refused before anything was written


def test_report_with_a_baseline_says_when_there_is_no_verdict(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "other", [_timed("vgg16", _draw(3, 10.0, 0.1))])
    _accuracy_run(tmp_path / "other-acc", 74.0, "vgg16")  # reported beside: not a run to compare
    result = run_cli(capsys, "report", str(tmp_path / "other"), str(tmp_path / "other-acc"), "--baseline",
                     str(tmp_path / "base"), "--out", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "## Compared with base: other against base: nothing judged in 0 compared cells" in tables
    assert "no verdict: other against base: nothing compared (no cell in common" in tables
    assert "other-acc against base" not in tables
    page = (tmp_path / "report" / "report.html").read_text()  # the page says it too, not only tables.md
    assert "<h2>Compared with base: other against base: nothing judged in 0 compared cells" in page
    assert "no verdict: other against base: nothing compared (no cell in common" in page


def test_run_names_with_brackets_and_unicode_are_printed_as_they_are(tmp_path, capsys):
    base = write_run(tmp_path / "básë [bold]", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    cand = write_run(tmp_path / "ünï [red]x", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    result = run_cli(capsys, "compare", str(base), str(cand))
    assert result.returncode == 0, result.stderr
    assert "ünï [red]x against básë [bold]: no regression in 1 compared cell" in result.stdout
    titles = [line.strip() for line in result.stdout.splitlines()]
    assert "ünï [red]x against básë [bold]" in titles  # the table's own title, not only the summary


def test_an_environment_file_with_sections_of_the_wrong_type_is_read_as_unknown(tmp_path, capsys):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "odd", [_timed("resnet50", _draw(12, 10.0, 0.1))], {"jetson": "yes", "nvml": 5})
    result = run_cli(capsys, "compare", str(tmp_path / "base"), str(tmp_path / "odd"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "odd against base: no regression in 1 compared cell" in result.stdout
