"""Two runs compared cell by cell: did the candidate get slower, hungrier or less accurate than the baseline?

Cells match on model, runtime, precision, batch size and device kind (cpu, cuda, jetson; a fleet's node
name too, where the device was pinned to one). For each pair measured in both:

- **time**: the ratio of the candidate's median per-batch time to the baseline's (> 1: slower), with a
  95 % percentile-bootstrap interval from the raw samples both records hold (`samples_ms.host`);
- **memory**: the ratio of peaks, per memory source both read;
- **accuracy**: top-1 of each run's accuracy records for the model, runtime and precision, where both have one.

A cell is a *regression* only when the time ratio exceeds 1 + threshold **and** the whole interval lies
above 1 (the change is larger than the threshold and no-change is outside the interval); a cell that ran
before and fails now is one too. Invalid cells (noisy, throttled: `validity.valid` false on either side)
are shown and never judged. Memory and accuracy are judged only when their own limits are given (a peak
is one reading: there is no interval to put around it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.errors import UserError
from harness.records import RECORDS_FILE, Record, latest_records, read_environments, read_records
from harness.reports.data import device_kind
from harness.reports.tables import Entry, ReportTable

DEFAULT_THRESHOLD = 0.05
RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20181203  # fixed: the same two runs give the same interval every time

REGRESSION, IMPROVEMENT = "regression", "faster"
WITHIN_NOISE, SMALL = "no change (within noise)", "changed, under the threshold"
INVALID, NO_SAMPLES = "invalid: not judged", "no samples: not judged"
NOW_FAILS, NOW_RUNS, FAILS_IN_BOTH = "now fails", "now runs", "fails in both"
MEMORY_REGRESSION, ACCURACY_REGRESSION = "memory regression", "accuracy regression"

# parts of an environment that change between any two runs without changing what they measure
VOLATILE = ("thermal", ".cur", "temp_", "note", "reason", "missing", "fleet_node", "cpu_affinity")


CellMatch = tuple[str, str, str, int, str]  # model, runtime, precision, batch size, device kind


@dataclass(frozen=True)
class Run:
    """One run folder as compare reads it: the latest bench record per cell, and top-1 per model/runtime/precision."""

    path: Path
    cells: dict[CellMatch, Record]
    environment: dict[str, Any]
    top1: dict[tuple[str, str, str], float]
    skipped: list[str] = field(default_factory=list)  # lines of records.jsonl that could not be read


@dataclass(frozen=True)
class TimeChange:
    ratio: float  # candidate median / baseline median (> 1: slower)
    low: float | None  # the interval's ends; None without raw samples
    high: float | None
    baseline_ms: float  # per-image medians
    candidate_ms: float


@dataclass
class CellChange:
    match: CellMatch
    baseline: Record
    candidate: Record
    verdicts: list[str]  # the time verdict first, then memory/accuracy regressions if any
    time: TimeChange | None = None
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)  # source -> (baseline, candidate) peak bytes
    top1: tuple[float, float] | None = None  # (baseline, candidate)

    @property
    def regressed(self) -> bool:
        return any(v in (REGRESSION, NOW_FAILS, MEMORY_REGRESSION, ACCURACY_REGRESSION) for v in self.verdicts)


@dataclass(frozen=True)
class Limits:
    threshold: float = DEFAULT_THRESHOLD  # of time, as a fraction (0.05: 5 %)
    memory_threshold: float | None = None  # of any memory source's peak, as a fraction; None: not judged
    max_accuracy_drop: float | None = None  # top-1 points; None: not judged


@dataclass
class Comparison:
    baseline: Run
    candidate: Run
    limits: Limits
    environment: list[tuple[str, Any, Any]]  # what differs: (key, baseline, candidate)
    changes: list[CellChange]
    only_baseline: list[CellMatch]
    only_candidate: list[CellMatch]

    @property
    def regressions(self) -> list[CellChange]:
        return [c for c in self.changes if c.regressed]


# ---------------------------------------------------------------- reading runs

def read_run(path: Path) -> Run:
    """A run folder's latest bench record per cell, its environment and its measured top-1 figures."""
    if not (path / RECORDS_FILE).is_file():
        what = "no such folder" if not path.exists() else f"no {RECORDS_FILE} in it"
        raise UserError(f"'{path}' is not a run folder ({what}): pass results/<run-id>")
    read = read_records(path / RECORDS_FILE).check_readable(path)
    records = read.typed
    environments = read_environments(path)
    cells: dict[CellMatch, Record] = {}
    top1: dict[tuple[str, str, str], float] = {}
    for record in latest_records([r for r in records if r.kind == "accuracy"]):
        if record.ok and (record.accuracy or {}).get("top1") is not None:
            top1[(record.cell.model, record.cell.runtime, record.cell.precision)] = float(record.accuracy["top1"])
    for record in latest_records([r for r in records if r.kind == "bench"]):
        env = environments.get(record.host) or environments.get(None) or {}
        cells[cell_match(record, env)] = record
    if not cells:
        raise UserError(f"no benchmark records in '{path}': compare runs made by `python -m harness bench`")
    environment = environments.get(None) or next(iter(environments.values()), {})
    return Run(path, cells, environment, top1, list(read.skipped))


def cell_match(record: Record, env: dict[str, Any]) -> CellMatch:
    """What a cell is across runs: the device by kind (and by node, where a fleet pinned it to one)."""
    cell = record.cell
    _, _, node = cell.device.partition("@")
    kind = device_kind(env, cell.device)
    return cell.model, cell.runtime, cell.precision, cell.batch_size, f"{kind}@{node}" if node else kind


# ---------------------------------------------------------------- the statistics

def ratio_interval(baseline_ms: np.ndarray, candidate_ms: np.ndarray, resamples: int = RESAMPLES,
                   confidence: float = CONFIDENCE, seed: int = SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(candidate) / median(baseline): each side resampled with
    replacement on its own (the runs are independent), `resamples` times, from a fixed seed."""
    rng = np.random.default_rng(seed)
    base = np.median(baseline_ms[rng.integers(0, len(baseline_ms), (resamples, len(baseline_ms)))], axis=1)
    cand = np.median(candidate_ms[rng.integers(0, len(candidate_ms), (resamples, len(candidate_ms)))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(cand / base, [tail, 100 - tail])
    return float(low), float(high)


def _samples(record: Record) -> np.ndarray | None:
    samples = ((record.model_extra or {}).get("samples_ms") or {}).get("host")
    if not samples or len(samples) < 2:
        return None
    return np.asarray(samples, dtype=float)


def time_change(baseline: Record, candidate: Record) -> TimeChange:
    base, cand = baseline.host_timing, candidate.host_timing
    base_samples, cand_samples = _samples(baseline), _samples(candidate)
    if base_samples is None or cand_samples is None:
        return TimeChange(cand.median_ms / base.median_ms, None, None, base.per_image_median_ms,
                          cand.per_image_median_ms)
    ratio = float(np.median(cand_samples) / np.median(base_samples))
    low, high = ratio_interval(base_samples, cand_samples)
    return TimeChange(ratio, low, high, base.per_image_median_ms, cand.per_image_median_ms)


def time_verdict(change: TimeChange, threshold: float) -> str:
    if change.low is None or change.high is None:
        return NO_SAMPLES
    if change.ratio > 1 + threshold and change.low > 1:
        return REGRESSION
    if change.ratio < 1 - threshold and change.high < 1:
        return IMPROVEMENT
    return WITHIN_NOISE if change.low <= 1 <= change.high else SMALL


# ---------------------------------------------------------------- comparing

def compare(baseline: Run, candidate: Run, limits: Limits = Limits()) -> Comparison:
    changes = [_cell_change(match, baseline, candidate, limits) for match in baseline.cells
               if match in candidate.cells]
    return Comparison(
        baseline, candidate, limits, environment_differences(baseline.environment, candidate.environment),
        sorted(changes, key=lambda c: c.match),
        sorted(m for m in baseline.cells if m not in candidate.cells),
        sorted(m for m in candidate.cells if m not in baseline.cells))


def _cell_change(match: CellMatch, baseline_run: Run, candidate_run: Run, limits: Limits) -> CellChange:
    baseline, candidate = baseline_run.cells[match], candidate_run.cells[match]
    change = CellChange(match, baseline, candidate, [])
    if not (baseline.ok and candidate.ok):
        change.verdicts = [FAILS_IN_BOTH if not (baseline.ok or candidate.ok) else
                           NOW_FAILS if baseline.ok else NOW_RUNS]
        return change
    change.time = time_change(baseline, candidate)
    change.memory = {source: (baseline.peak_bytes(source), candidate.peak_bytes(source))  # type: ignore[misc]
                     for source in baseline.readable_sources() if candidate.peak_bytes(source) is not None}
    accuracy_key = match[:3]
    if accuracy_key in baseline_run.top1 and accuracy_key in candidate_run.top1:
        change.top1 = (baseline_run.top1[accuracy_key], candidate_run.top1[accuracy_key])
    if not (baseline.valid and candidate.valid):
        change.verdicts = [INVALID]
        return change
    change.verdicts = [time_verdict(change.time, limits.threshold)]
    if limits.memory_threshold is not None and any(
            cand > base * (1 + limits.memory_threshold) for base, cand in change.memory.values()):
        change.verdicts.append(MEMORY_REGRESSION)
    if limits.max_accuracy_drop is not None and change.top1 is not None \
            and change.top1[0] - change.top1[1] > limits.max_accuracy_drop:
        change.verdicts.append(ACCURACY_REGRESSION)
    return change


def environment_differences(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What differs between two runs' environments (library versions, driver, CPU, host, clocks, power mode),
    leaving out what changes between any two runs (temperatures, current clocks, explanations)."""
    base, cand = dict(_flatten(baseline)), dict(_flatten(candidate))
    return [(key, base.get(key), cand.get(key)) for key in sorted(set(base) | set(cand))
            if base.get(key) != cand.get(key) and not any(part in key for part in VOLATILE)]


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            yield prefix, json.dumps(value)
        else:
            for index, inner in enumerate(value):
                yield from _flatten(inner, f"{prefix}[{index}]")
    else:
        yield prefix, value


# ---------------------------------------------------------------- as tables

VERDICT_BAND = {REGRESSION: "regression", NOW_FAILS: "regression", MEMORY_REGRESSION: "regression",
                ACCURACY_REGRESSION: "regression", IMPROVEMENT: "better", NOW_RUNS: "better",
                INVALID: "not judged", NO_SAMPLES: "not judged"}


def _label(match: CellMatch) -> list[Entry]:
    model, runtime, precision, batch_size, device = match
    return [Entry(model), Entry(runtime), Entry(precision), Entry(str(batch_size)), Entry(device)]


def _time_entries(change: CellChange) -> list[Entry]:
    time = change.time
    if time is None:
        return [Entry(change.baseline.status if not change.baseline.ok else "—"),
                Entry(change.candidate.status if not change.candidate.ok else "—"), Entry("—"), Entry("—")]
    interval = f"{time.low:.3f}–{time.high:.3f}" if time.low is not None else "no samples"
    return [Entry(f"{time.baseline_ms:.3f}"), Entry(f"{time.candidate_ms:.3f}"), Entry(f"×{time.ratio:.3f}"),
            Entry(interval)]


def _memory_entry(change: CellChange) -> Entry:
    if not change.memory:
        return Entry("—")
    text = ", ".join(f"{source} ×{cand / base:.2f}" if base else f"{source} {cand / 1e6:.0f} MB"
                     for source, (base, cand) in change.memory.items())
    return Entry(text, note="; ".join(f"{source}: {base / 1e6:.1f} MB -> {cand / 1e6:.1f} MB"
                                      for source, (base, cand) in change.memory.items()))


def _top1_entry(change: CellChange) -> Entry:
    if change.top1 is None:
        return Entry("—")
    base, cand = change.top1
    return Entry(f"{cand:.2f} ({cand - base:+.2f})")


def cells_table(comparison: Comparison) -> ReportTable:
    limits = comparison.limits
    judged = [f"time > +{limits.threshold:.0%} with its whole 95 % interval above ×1"]
    if limits.memory_threshold is not None:
        judged.append(f"a memory peak > +{limits.memory_threshold:.0%}")
    if limits.max_accuracy_drop is not None:
        judged.append(f"top-1 down by > {limits.max_accuracy_drop:g} points")
    table = ReportTable(
        title=f"{comparison.candidate.path.name} against {comparison.baseline.path.name}",
        columns=["model", "runtime", "precision", "batch", "device", "baseline ms/img", "candidate ms/img",
                 "time ratio", "95 % interval", "memory ratio", "top-1 (Δ)", "verdict"],
        caption="time ratio: candidate median / baseline median per batch (> 1: slower); interval: percentile "
                f"bootstrap of the raw samples ({RESAMPLES} resamples). A regression: {'; or '.join(judged)}; or a "
                "cell that ran before and fails now. Invalid cells (noisy, throttled) are not judged.")
    for change in comparison.changes:
        verdict = "; ".join(change.verdicts)
        if change.verdicts[0] == INVALID:
            verdict += f" ({_invalid_reasons(change)})"
        band = next((VERDICT_BAND[v] for v in change.verdicts if VERDICT_BAND.get(v) == "regression"),
                    VERDICT_BAND.get(change.verdicts[0]))
        note = (change.candidate.error or "") if change.verdicts[0] == NOW_FAILS else ""
        table.rows.append([*_label(change.match), *_time_entries(change), _memory_entry(change),
                           _top1_entry(change), Entry(verdict, band, note)])
    return table


def environment_table(comparison: Comparison) -> ReportTable:
    table = ReportTable(title="What differs between the runs' environments", columns=["what", "baseline", "candidate"],
                        caption="library versions, driver, CPU, host, clocks and power mode, from each run's env "
                                "file (temperatures and current clocks left out)")
    for key, base, cand in comparison.environment:
        table.rows.append([Entry(key), Entry(_text(base)), Entry(_text(cand))])
    if not comparison.environment:
        table.rows.append([Entry("nothing recorded differs"), Entry(""), Entry("")])
    return table


def unmatched_table(comparison: Comparison) -> ReportTable | None:
    rows = [[*_label(m), Entry("baseline only", "missing")] for m in comparison.only_baseline]
    rows += [[*_label(m), Entry("candidate only", "missing")] for m in comparison.only_candidate]
    if not rows:
        return None
    return ReportTable(title="Cells in one run only (not compared)",
                       columns=["model", "runtime", "precision", "batch", "device", "in"], rows=rows)


def comparison_tables(comparison: Comparison) -> list[ReportTable]:
    unmatched = unmatched_table(comparison)
    return [environment_table(comparison), cells_table(comparison), *([unmatched] if unmatched else [])]


def _invalid_reasons(change: CellChange) -> str:
    return "; ".join(f"{side}: {', '.join(record.validity.reasons)}" for side, record in
                     (("baseline", change.baseline), ("candidate", change.candidate))
                     if record.validity is not None and not record.validity.valid)


def _text(value: Any) -> str:
    return "—" if value is None else str(value)
