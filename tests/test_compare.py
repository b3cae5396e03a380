"""`compare`: synthetic runs whose raw samples are drawn here, so what is noise and what is a shift is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.reports.compare import (IMPROVEMENT, INVALID, NOW_FAILS, NOW_RUNS, REGRESSION, SMALL, WITHIN_NOISE,
                                     Limits, compare, ratio_interval, read_run)
from tests.report_fixtures import CPU_ENV, record, write_run
from tests.test_cli import _one_error_line, harness


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


def test_compare_cli_gates_ci_and_writes_markdown(tmp_path):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))])
    write_run(tmp_path / "same", [_timed("resnet50", _draw(12, 10.0, 0.1)), _timed("vgg16", _draw(13, 10.0, 0.1))])
    write_run(tmp_path / "slow", [_timed("resnet50", _draw(22, 11.0, 0.1)), _timed("vgg16", _draw(23, 10.0, 0.1))])
    quiet = harness("compare", str(tmp_path / "base"), str(tmp_path / "same"))
    assert quiet.returncode == 0, quiet.stderr
    assert "no regression in 2 compared cells (2 within noise" in quiet.stdout
    slow = harness("compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--markdown", str(tmp_path / "c.md"))
    assert slow.returncode == 1, slow.stderr
    assert "1 regression in 2 compared cells" in slow.stdout and "regression" in slow.stdout
    markdown = (tmp_path / "c.md").read_text()
    assert "| resnet50 | ort | fp32 | 1 | cpu |" in markdown and "| regression |" in markdown
    answer = json.loads(harness("compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--json").stdout)
    [resnet] = [c for c in answer["comparisons"][0]["cells"] if c["model"] == "resnet50"]
    assert answer["regressions"] == 1 and resnet["verdicts"] == ["regression"] and resnet["time_ratio"] > 1.05
    assert harness("compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--threshold", "15%").returncode == 0
    assert "bad --threshold 'fast'" in _one_error_line(harness("compare", str(tmp_path / "base"),
                                                               str(tmp_path / "slow"), "--threshold", "fast"))
    assert "is not a run folder (no such folder)" in _one_error_line(harness("compare", str(tmp_path / "nope"),
                                                                             str(tmp_path / "slow")))


def test_report_with_a_baseline_adds_the_comparison_section(tmp_path):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1))])
    write_run(tmp_path / "slow", [_timed("resnet50", _draw(22, 11.0, 0.1))])
    result = harness("report", str(tmp_path / "slow"), "--baseline", str(tmp_path / "base"), "--out",
                     str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert "slow against base" in page and "regression" in page
    assert "## Compared with base: slow against base: 1 regression" in (tmp_path / "report" / "tables.md").read_text()


def test_a_torn_candidate_is_compared_for_what_it_holds_and_says_what_was_skipped(tmp_path):
    write_run(tmp_path / "base", [_timed("resnet50", _draw(2, 10.0, 0.1)), _timed("vgg16", _draw(3, 10.0, 0.1))])
    torn = write_run(tmp_path / "torn", [_timed("resnet50", _draw(12, 10.0, 0.1))])
    with (torn / "records.jsonl").open("a") as records:  # a run killed while appending its second record
        records.write(json.dumps(_timed("vgg16", _draw(13, 10.0, 0.1)))[:200])
    result = harness("compare", str(tmp_path / "base"), str(torn))
    assert result.returncode == 0, result.stderr
    assert "torn last line skipped" in result.stdout
    assert "no regression in 1 compared cell " in result.stdout and "1 cell in one run only" in result.stdout
