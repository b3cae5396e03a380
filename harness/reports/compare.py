"""Two runs compared cell by cell: did the candidate get slower, hungrier or less accurate than the baseline?

Cells match on model, runtime, precision, batch size and device kind (cpu, cuda, jetson; a fleet's node
name too, where the device was pinned to one), and scenario (bench --scenario). For each pair measured in both:

- **time**: the ratio of the candidate's median per-batch time to the baseline's (> 1: slower), with a
  95 % percentile-bootstrap interval from the raw samples both records hold (`samples_ms.host`);
- **memory**: the ratio of peaks, per memory source both read;
- **accuracy**: top-1 of each run's accuracy records for the model, runtime and precision, where both have one.

A cell is a *regression* only when the time ratio exceeds 1 + threshold **and** the whole interval lies
above 1 (the change is larger than the threshold and no-change is outside the interval); a cell that ran
before and fails now is one too. Invalid cells (noisy, throttled: `validity.valid` false on either side)
are shown and their time never judged. Memory and accuracy are judged only when their own limits are given
(a peak is one reading: there is no interval to put around it).

A pair measured with different settings (threads, `--runtime-option`s, channels-last, weights, the ONNX
file's opset or simplification, int8 calibration) measured two different things: it is shown with what
differs and not judged, unless the limits allow it. A pair whose timing cannot be compared (a median of 0,
samples that are not finite numbers) is not judged either, and `problems` names it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
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
SETTINGS_DIFFER, BAD_TIMING = "different settings: not judged", "unusable timing: not judged"
NOW_FAILS, NOW_RUNS, FAILS_IN_BOTH = "now fails", "now runs", "fails in both"
MEMORY_REGRESSION, ACCURACY_REGRESSION = "memory regression", "accuracy regression"
SCENARIO_REGRESSION = "scenario regression"

# a scenario's headline figure (bench --scenario): its field in the record, its unit, whether higher is better
HEADLINES = {"server": ("rate_qps", "queries/s within the p99 bound", True),
             "offline": ("images_per_s", "images/s", True),
             "multi-stream": ("latency_ms", "p99 ms", False)}

# time verdicts that are a judgement (the rest say why a pair was not judged)
JUDGED = (REGRESSION, IMPROVEMENT, WITHIN_NOISE, SMALL, NOW_FAILS, NOW_RUNS)

# parts of an environment that change between any two runs without changing what they measure
VOLATILE = ("thermal", ".cur", "temp_", "note", "reason", "missing", "fleet_node", "cpu_affinity")


CellMatch = tuple[str, str, str, int, str]  # model, runtime, precision, batch size, device kind


class NoBenchRecords(UserError):
    """A run folder without bench records (an accuracy run, an empty one)."""


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
    settings: list[tuple[str, Any, Any]] = field(default_factory=list)  # what differs: (setting, baseline, candidate)
    problem: str | None = None  # why the timing cannot be compared (BAD_TIMING)
    scenario: tuple[str, float, float] | None = None  # the scenario's headline: (unit, baseline, candidate)

    @property
    def regressed(self) -> bool:
        return any(v in (REGRESSION, NOW_FAILS, MEMORY_REGRESSION, ACCURACY_REGRESSION, SCENARIO_REGRESSION)
                   for v in self.verdicts)


@dataclass(frozen=True)
class Limits:
    threshold: float = DEFAULT_THRESHOLD  # of time, as a fraction (0.05: 5 %)
    memory_threshold: float | None = None  # of any memory source's peak, as a fraction; None: not judged
    max_accuracy_drop: float | None = None  # top-1 points; None: not judged
    scenario_threshold: float | None = None  # of a scenario's headline figure, as a fraction; None: not judged
    allow_different_settings: bool = False  # judge pairs measured with different settings too


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

    @property
    def judged(self) -> list[CellChange]:
        """The pairs whose time got a verdict (or that regressed in memory or top-1)."""
        return [c for c in self.changes if c.verdicts[0] in JUDGED or c.regressed]

    def counted(self, verdict: str) -> int:
        return sum(c.verdicts[0] == verdict for c in self.changes)


# ---------------------------------------------------------------- reading runs

def read_run(path: Path) -> Run:
    """A run folder's latest bench record per cell, its environment and its measured top-1 figures."""
    records, skipped = _read_records(path)
    environments = read_environments(path)
    cells: dict[CellMatch, Record] = {}
    top1, unreadable = top1_figures(records)
    for record in latest_records([r for r in records if r.kind == "bench"]):
        env = environments.get(record.host) or environments.get(None) or {}
        cells[cell_match(record, env)] = record
    if not cells:
        raise NoBenchRecords(f"no benchmark records in '{path}': compare runs made by `python -m harness bench`")
    environment = environments.get(None) or next(iter(environments.values()), {})
    return Run(path, cells, environment, top1, skipped + unreadable)


def with_accuracy(run: Run, path: Path) -> Run:
    """The run with top-1 from an accuracy run folder (made by `harness accuracy`) added; a figure of that
    folder wins over one of the run's own for the same model, runtime and precision."""
    records, skipped = _read_records(path)
    top1, unreadable = top1_figures(records)
    if not top1:
        raise UserError(f"no finished accuracy records with a top-1 in '{path}'"
                        f"{' (' + unreadable[0] + ')' if unreadable else ''}: pass run folders made by "
                        f"`python -m harness accuracy` to --accuracy")
    return replace(run, top1={**run.top1, **top1}, skipped=[*run.skipped, *skipped, *unreadable])


def _read_records(path: Path) -> tuple[list[Record], list[str]]:
    if not (path / RECORDS_FILE).is_file():
        what = "no such folder" if not path.exists() else f"no {RECORDS_FILE} in it"
        raise UserError(f"'{path}' is not a run folder ({what}): pass results/<run-id>")
    read = read_records(path / RECORDS_FILE).check_readable(path)
    return read.typed, list(read.skipped)


def top1_figures(records: list[Record]) -> tuple[dict[tuple[str, str, str], float], list[str]]:
    """Top-1 per (model, runtime, precision) from the latest finished accuracy records, and a line for each
    figure that is not a number (left out)."""
    top1: dict[tuple[str, str, str], float] = {}
    unreadable = []
    for record in latest_records([r for r in records if r.kind == "accuracy"]):
        figure = record.accuracy.top1 if record.ok and record.accuracy else None
        if figure is None:
            continue
        if isinstance(figure, bool) or not isinstance(figure, (int, float)) or not math.isfinite(figure):
            unreadable.append(f"{record.cell_id}: top-1 {figure!r} is not a number; left out")
            continue
        top1[(record.cell.model, record.cell.runtime, record.cell.precision)] = float(figure)
    return top1, unreadable


def cell_match(record: Record, env: dict[str, Any]) -> CellMatch:
    """What a cell is across runs: the device by kind (and by node, where a fleet pinned it to one)."""
    cell = record.cell
    _, _, node = cell.device.partition("@")
    kind = device_kind(env, cell.device)
    where = f"{kind}@{node}" if node else kind
    # a scenario other than single-stream is a cell of its own (bench --scenario): named beside the device
    return (cell.model, cell.runtime, cell.precision, cell.batch_size,
            where if cell.scenario == "single-stream" else f"{where} {cell.scenario}")


# ---------------------------------------------------------------- what a cell was measured with

def measured_settings(record: Record) -> dict[str, str]:
    """The settings a record's cell was measured with that change what it measures, by name, as text: the
    threads asked for, the runtime's own options (`--runtime-option`), channels-last, the weights, and the ONNX
    file's opset, simplification and int8 calibration. The record's `settings` (what the run was asked) first,
    else what its runtime reported; a setting the record does not say is left out (an older record, a cell
    that failed before it loaded)."""
    extra = record.model_extra or {}
    asked = _dict(extra.get("settings"))
    reported = _dict(_dict(extra.get("runtime")).get("options"))
    settings: dict[str, str] = {}
    for name, key, fallback in (("threads", "threads", "threads_requested"),
                                ("runtime options", "runtime_options", "runtime_options"),
                                ("channels-last", "channels_last", "channels_last")):
        source = asked if key in asked else reported if fallback in reported else None
        if source is not None:
            settings[name] = _setting_text(source[key if source is asked else fallback])
    weights = _weights_text(_dict(record.prepared.weights))
    if weights:
        settings["weights"] = weights
    artifact = record.artifact if isinstance(record.artifact, dict) else {}
    if artifact.get("kind") == "onnx":
        settings["ONNX file"] = f"opset {artifact.get('opset')}{', simplified' if artifact.get('simplified') else ''}"
        quantization = _dict(artifact.get("quantization"))
        if quantization:
            settings["int8 calibration"] = (f"{quantization.get('method')}, {quantization.get('images')} images of "
                                            f"{str(quantization.get('files_sha256'))[:12]}")
    return settings


def settings_differences(baseline: Record, candidate: Record) -> list[tuple[str, str, str]]:
    """The settings both records say and that differ: (setting, baseline's, candidate's)."""
    base, cand = measured_settings(baseline), measured_settings(candidate)
    return [(name, base[name], cand[name]) for name in base if name in cand and base[name] != cand[name]]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _setting_text(value: Any) -> str:
    if value is None:
        return "library default"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    return str(value)


def _weights_text(weights: dict[str, Any]) -> str | None:
    """Random, pretrained (by tag) or a file (by content): the seed of random weights is left out (it changes
    values, not the work), and so is a file's path (the same file has another path on another machine)."""
    kind = weights.get("kind")
    if kind is None:
        return None
    if kind == "random":
        return "random"
    if weights.get("tag") is not None or weights.get("sha256") is None:
        return f"{kind} {weights.get('tag') or ''}".strip()
    return f"{kind} {str(weights['sha256'])[:12]}"


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
    samples = _dict((record.model_extra or {}).get("samples_ms")).get("host")
    if not isinstance(samples, list) or len(samples) < 2:
        return None
    return np.asarray(samples, dtype=float)


def timing_problem(record: Record) -> str | None:
    """Why a finished record's timing cannot be compared (None when it can): a median that is not a finite
    number above 0, or raw samples that are not finite numbers of 0 or more."""
    host = record.host_timing
    for what, value in (("median", host.median_ms), ("per-image median", host.per_image_median_ms)):
        if not math.isfinite(value) or value <= 0:
            return f"a {what} of {value:g} ms"
    samples = _dict((record.model_extra or {}).get("samples_ms")).get("host")
    if samples is None:
        return None
    if not isinstance(samples, list) or not all(_finite(x) and x >= 0 for x in samples):
        return "raw samples that are not finite numbers of 0 ms or more"
    if len(samples) >= 2 and not np.median(samples) > 0:
        return "a median of its raw samples of 0 ms"
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    change = CellChange(match, baseline, candidate, [], settings=settings_differences(baseline, candidate))
    if change.settings and not limits.allow_different_settings:
        change.verdicts = [SETTINGS_DIFFER]
        return change
    if not (baseline.ok and candidate.ok):
        change.verdicts = [FAILS_IN_BOTH if not (baseline.ok or candidate.ok) else
                           NOW_FAILS if baseline.ok else NOW_RUNS]
        return change
    problem = "; ".join(f"{side} has {found}" for side, record in (("baseline", baseline), ("candidate", candidate))
                        if (found := timing_problem(record)))
    if problem:
        change.problem, change.verdicts = problem, [BAD_TIMING]
        return change
    change.time = time_change(baseline, candidate)
    change.memory = {source: (baseline.peak_bytes(source), candidate.peak_bytes(source))  # type: ignore[misc]
                     for source in baseline.readable_sources() if candidate.peak_bytes(source) is not None}
    accuracy_key = match[:3]
    if accuracy_key in baseline_run.top1 and accuracy_key in candidate_run.top1:
        change.top1 = (baseline_run.top1[accuracy_key], candidate_run.top1[accuracy_key])
    # an invalid timing (noise, throttling) leaves its time unjudged; its memory peak and top-1 still count
    change.verdicts = [time_verdict(change.time, limits.threshold) if baseline.valid and candidate.valid
                       else INVALID]
    if limits.memory_threshold is not None and any(
            base > 0 and cand > base * (1 + limits.memory_threshold) for base, cand in change.memory.values()):
        change.verdicts.append(MEMORY_REGRESSION)
    if limits.max_accuracy_drop is not None and change.top1 is not None \
            and change.top1[0] - change.top1[1] > limits.max_accuracy_drop:
        change.verdicts.append(ACCURACY_REGRESSION)
    change.scenario = scenario_change(baseline, candidate)
    if limits.scenario_threshold is not None and change.scenario is not None \
            and _worse(change.scenario, baseline.cell.scenario, limits.scenario_threshold):
        change.verdicts.append(SCENARIO_REGRESSION)
    return change


def scenario_change(baseline: Record, candidate: Record) -> tuple[str, float, float] | None:
    """The headline figure of the pair's scenario in both (server: the highest rate within the p99 bound;
    offline: images/s; multi-stream: the p99), where both recorded it; None for single-stream, whose time is
    the timed loop's."""
    headline = HEADLINES.get(baseline.cell.scenario)
    if headline is None or baseline.scenario is None or candidate.scenario is None:
        return None
    name, unit, _ = headline
    base, cand = getattr(baseline.scenario, name), getattr(candidate.scenario, name)
    return (unit, base, cand) if _finite(base) and _finite(cand) else None


def _worse(change: tuple[str, float, float], scenario: str, threshold: float) -> bool:
    """Worse by more than `threshold`: lower where higher is better (a rate, images/s), else higher (a p99)."""
    _, base, cand = change
    if HEADLINES[scenario][2]:
        return cand < base * (1 - threshold)
    return cand > base * (1 + threshold)


def problems(comparison: Comparison) -> list[str]:
    """Why the comparison is no verdict (empty when it is one): timings that cannot be compared, no pair
    judged, or a limit given that no pair had the figures to judge."""
    name = f"{comparison.candidate.path.name} against {comparison.baseline.path.name}"
    found = []
    damaged = [c for c in comparison.changes if c.verdicts[0] == BAD_TIMING]
    if damaged:
        found.append(f"{name}: {_count(len(damaged), 'cell')} with a timing that cannot be compared "
                     f"({_cell_text(damaged[0].match)}: {damaged[0].problem}); measure "
                     f"{'them' if len(damaged) > 1 else 'it'} again")
    if not comparison.judged and not damaged:
        found.append(f"{name}: nothing compared ({_why_nothing(comparison)})")
    if comparison.judged and all(_same_measurement(c) for c in comparison.judged):
        found.append(f"{name}: every compared cell is the same measurement in both (run "
                     f"{comparison.judged[0].baseline.run_id}: a copy of the baseline, or the same run under two "
                     f"names); compare two different runs")
    limits, timed = comparison.limits, [c for c in comparison.changes if c.time is not None]
    if limits.memory_threshold is not None and timed and not any(c.memory for c in timed):
        found.append(f"{name}: --memory-threshold judged nothing: no compared cell has a memory source read in "
                     f"both runs")
    if limits.scenario_threshold is not None and timed and not any(c.scenario for c in timed):
        found.append(f"{name}: --scenario-threshold judged nothing: no compared cell has a server, offline or "
                     "multi-stream figure in both runs (bench --scenario)")
    if limits.max_accuracy_drop is not None and timed and not any(c.top1 for c in timed):
        found.append(f"{name}: --max-accuracy-drop judged nothing: no compared cell has a measured top-1 in both "
                     f"runs ({_accuracy_counts(comparison)}); top-1 is measured by `python -m harness accuracy` in "
                     f"runs of its own: pass them with --accuracy BASELINE_ACCURACY_RUN CANDIDATE_ACCURACY_RUN")
    return found


def _same_measurement(change: CellChange) -> bool:
    """Both sides are one record: the same run, cell, start and raw samples (a run folder copied, then compared
    with itself)."""
    baseline, candidate = change.baseline, change.candidate
    if (baseline.run_id, baseline.cell_id, baseline.started_at) != (candidate.run_id, candidate.cell_id,
                                                                     candidate.started_at):
        return False
    samples = _samples(baseline), _samples(candidate)
    return samples[0] is not None and samples[1] is not None and np.array_equal(*samples)


def _why_nothing(comparison: Comparison) -> str:
    if not comparison.changes:
        return (f"no cell in common: {len(comparison.only_baseline)} in the baseline only, "
                f"{len(comparison.only_candidate)} in the candidate only; compare runs of the same plan")
    unjudged = [f"{comparison.counted(verdict)} {what}" for verdict, what in
                ((INVALID, "invalid"), (NO_SAMPLES, "without raw samples"), (FAILS_IN_BOTH, "failing in both"),
                 (SETTINGS_DIFFER, "measured with different settings")) if comparison.counted(verdict)]
    hint = ("; `compare --allow-different-settings` judges pairs measured with different settings"
            if comparison.counted(SETTINGS_DIFFER) else "")
    return f"{_count(len(comparison.changes), 'cell')} in common, none judged: {', '.join(unjudged)}{hint}"


def _accuracy_counts(comparison: Comparison) -> str:
    return (f"baseline: {_count(len(comparison.baseline.top1), 'top-1 figure')}, candidate: "
            f"{_count(len(comparison.candidate.top1), 'top-1 figure')}")


def _cell_text(match: CellMatch) -> str:
    model, runtime, precision, batch_size, device = match
    return f"{model} {runtime} {precision} bs{batch_size} {device}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


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
                INVALID: "not judged", NO_SAMPLES: "not judged", SETTINGS_DIFFER: "not judged",
                BAD_TIMING: "not judged"}


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
    """The candidate's top-1 and its change; n/a for a detector or segmenter (no top-1), — where not measured."""
    if change.candidate.model.task != "classification":
        return Entry("n/a", note=f"a {change.candidate.model.task} model has no top-1")
    if change.top1 is None:
        return Entry("—")
    base, cand = change.top1
    return Entry(f"{cand:.2f} ({cand - base:+.2f})")


def cells_table(comparison: Comparison) -> ReportTable:
    limits = comparison.limits
    judged = [f"time > +{limits.threshold * 100:g}% with its whole 95 % interval above ×1"]
    if limits.memory_threshold is not None:
        judged.append(f"a memory peak > +{limits.memory_threshold * 100:g}%")
    if limits.max_accuracy_drop is not None:
        judged.append(f"top-1 down by > {limits.max_accuracy_drop:g} points")
    if limits.scenario_threshold is not None:
        judged.append(f"a scenario's figure (server rate, offline images/s, multi-stream p99) worse by > "
                      f"{limits.scenario_threshold * 100:g}%")
    table = ReportTable(
        title=f"{comparison.candidate.path.name} against {comparison.baseline.path.name}",
        columns=["model", "runtime", "precision", "batch", "device", "baseline ms/img", "candidate ms/img",
                 "time ratio", "95 % interval", "memory ratio", "top-1 (Δ)", "verdict"],
        caption="time ratio: candidate median / baseline median per batch (> 1: slower); interval: percentile "
                f"bootstrap of the raw samples ({RESAMPLES} resamples). A regression: {'; or '.join(judged)}; or a "
                "cell that ran before and fails now. Invalid cells (noisy, throttled) are not judged"
                + (", and pairs measured with different settings are judged (--allow-different-settings)."
                   if limits.allow_different_settings else
                   ", nor pairs measured with different settings (threads, runtime options, weights, ONNX file)."))
    for change in comparison.changes:
        verdict = "; ".join(change.verdicts) + _verdict_reasons(change)
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


def _verdict_reasons(change: CellChange) -> str:
    """What the verdict column adds after the verdicts: why a pair was not judged, and settings that differ."""
    reasons = []
    if change.verdicts[0] == INVALID:
        reasons.append(_invalid_reasons(change))
    if change.problem:
        reasons.append(change.problem)
    if change.scenario is not None:
        unit, base, cand = change.scenario
        reasons.append(f"{unit} {base:.4g} → {cand:.4g}")
    if change.settings:
        reasons.append(("" if change.verdicts[0] == SETTINGS_DIFFER else "settings differ: ")
                       + "; ".join(f"{name} {base} → {cand}" for name, base, cand in change.settings))
    return f" ({'; '.join(reasons)})" if reasons else ""


def _invalid_reasons(change: CellChange) -> str:
    return "; ".join(f"{side}: {', '.join(record.validity.reasons)}" for side, record in
                     (("baseline", change.baseline), ("candidate", change.candidate))
                     if record.validity is not None and not record.validity.valid)


def _text(value: Any) -> str:
    return "—" if value is None else str(value)
