"""Deployment readiness: does each model fit a device profile's memory, speed and ONNX opset?

Figures measured on the profile's device are used where records exist; otherwise memory is estimated
from a Fig. 4 fit (memory vs model size) and labelled as an estimate, and speed, which no fit predicts
honestly, is UNKNOWN. Anything not PASS makes the check fail, so it can gate a CI pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.profiles import DeviceProfile, Targets, available_profiles, load_profile
from harness.reports.data import NO_MODEL_RUNTIME, Dataset, Point
from harness.reports.fits import MB, Line, memory_fits

__all__ = ["FAIL", "PASS", "UNKNOWN", "Criterion", "DeviceProfile", "ModelCheck", "Targets", "available_profiles",
           "check_models", "load_profile", "on_device_checks"]

PASS, FAIL, UNKNOWN = "PASS", "FAIL", "UNKNOWN"


@dataclass(frozen=True)
class Criterion:
    name: str
    verdict: str  # PASS, FAIL or UNKNOWN
    figure: str  # what was measured or estimated, with its origin
    limit: str


@dataclass(frozen=True)
class ModelCheck:
    model: str
    criteria: list[Criterion]

    @property
    def passed(self) -> bool:
        return all(c.verdict == PASS for c in self.criteria)


def _measured(dataset: Dataset | None, profile: DeviceProfile, model: str) -> list[Point]:
    if dataset is None:
        return []
    return [p for p in dataset.points if p.ok and p.model == model and profile.matches(p)
            and p.batch_size == profile.targets.batch_size and p.runtime != NO_MODEL_RUNTIME]  # null ran no model


def memory_estimator(dataset: Dataset | None, profile: DeviceProfile) -> tuple[Line, str] | None:
    """The all-models Fig. 4 fit of the series with most batch-1 points, preferring the profile's device kind."""
    if dataset is None:
        return None
    best: tuple[int, bool, Line, str] | None = None
    for series in dataset.series():
        if series[0] == NO_MODEL_RUNTIME:  # the harness's own memory, not a model's
            continue
        points = dataset.of(series, batch_size=1)
        line = memory_fits(points).get("all models")
        if line is None:
            continue
        same_kind = points[0].device_kind == profile.kind
        candidate = (line.points, same_kind, line, " · ".join(series))
        if best is None or (candidate[1], candidate[0]) > (best[1], best[0]):
            best = candidate
    return (best[2], best[3]) if best else None


def _memory(profile: DeviceProfile, measured: list[Point], params: int | None,
            estimator: tuple[Line, str] | None) -> Criterion:
    limit = f"<= {profile.memory_budget_bytes / 1e9:g} GB"
    readings = [p for p in measured if p.memory_bytes is not None]
    if readings:
        point = min(readings, key=lambda p: p.memory_bytes)  # type: ignore[arg-type,return-value]
        verdict = PASS if point.memory_bytes <= profile.memory_budget_bytes else FAIL  # type: ignore[operator]
        return Criterion("memory", verdict, f"{point.memory_bytes / 1e9:.2f} GB measured ({point.memory_source}, "  # type: ignore[operator]
                                            f"{point.runtime})", limit)
    if params is None or estimator is None:
        return Criterion("memory", UNKNOWN, "not measured on this device, and no fit to estimate from", limit)
    line, series = estimator
    estimate_bytes = line.at(params * 4 / MB) * MB
    verdict = PASS if estimate_bytes <= profile.memory_budget_bytes else FAIL
    return Criterion("memory", verdict, f"{estimate_bytes / 1e9:.2f} GB ESTIMATE (Fig. 4 fit of {series}: "
                                        f"{line.slope:.2f} x size + {line.intercept:.0f} MB)", limit)


def _speed(profile: DeviceProfile, measured: list[Point]) -> Criterion | None:
    target = profile.targets.min_fps
    if target is None:
        return None
    limit = f">= {target:g} images/s at batch {profile.targets.batch_size}"
    timed = [p for p in measured if p.images_per_s]
    if not timed:
        return Criterion("speed", UNKNOWN, "not measured on this device (no estimate is honest)", limit)
    trusted = [p for p in timed if p.valid]
    if not trusted:  # a figure the harness does not trust answers nothing, as on the device
        point = max(timed, key=lambda p: p.images_per_s)  # type: ignore[arg-type,return-value]
        return Criterion("speed", UNKNOWN, f"{point.images_per_s:.1f} images/s measured ({point.runtime}, "
                                           f"{point.precision}), INVALID: {'; '.join(point.invalid_reasons)}", limit)
    point = max(trusted, key=lambda p: p.images_per_s)  # type: ignore[arg-type,return-value]
    verdict = PASS if point.images_per_s >= target else FAIL  # type: ignore[operator]
    return Criterion("speed", verdict, f"{point.images_per_s:.1f} images/s measured ({point.runtime}, "
                                       f"{point.precision})", limit)


def required_opset(onnx_path: str, max_opset: int) -> str | None:
    """Which of the graph's operators do not exist at `max_opset` (None: all do, a re-export would work)."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    missing = set()
    for node in model.graph.node:
        try:
            onnx.defs.get_schema(node.op_type, max_opset, node.domain)
        except onnx.defs.SchemaError:
            missing.add(node.op_type)
    return ", ".join(sorted(missing)) or None


def _opset(profile: DeviceProfile, exported: list[Point]) -> Criterion | None:
    if profile.onnx_max_opset is None:
        return None
    limit = f"<= opset {profile.onnx_max_opset} ({profile.onnx_max_opset_source or 'profile'})"
    with_opset = [p for p in exported if p.onnx_opset is not None]
    if not with_opset:
        return Criterion("onnx opset", UNKNOWN, "no ONNX export in the records", limit)
    point = min(with_opset, key=lambda p: p.onnx_opset)  # type: ignore[arg-type,return-value]
    if point.onnx_opset <= profile.onnx_max_opset:  # type: ignore[operator]
        return Criterion("onnx opset", PASS, f"opset {point.onnx_opset}", limit)
    note = ""
    if point.onnx_path and Path(point.onnx_path).is_file():
        missing = required_opset(point.onnx_path, profile.onnx_max_opset)
        note = (f"; ops missing at opset {profile.onnx_max_opset}: {missing}" if missing else
                f"; every op exists at opset {profile.onnx_max_opset}: re-export with --opset {profile.onnx_max_opset}")
    return Criterion("onnx opset", FAIL, f"opset {point.onnx_opset}{note}", limit)


def check_models(profile: DeviceProfile, models: list[tuple[str, int | None]], dataset: Dataset | None) -> list[ModelCheck]:
    """`models`: (name, parameter count) pairs from the catalogue."""
    estimator = memory_estimator(dataset, profile)
    checks = []
    for name, params in models:
        measured = _measured(dataset, profile, name)
        exported = [p for p in (dataset.points if dataset else []) if p.model == name]
        criteria = [_memory(profile, measured, params, estimator), _speed(profile, measured),
                    _opset(profile, exported)]
        checks.append(ModelCheck(name, [c for c in criteria if c is not None]))
    return checks


# ---------------------------------------------------------------- measured on the device, now

def on_device_checks(profile: DeviceProfile, opsets: dict[str, int | None], bench: list[Any],
                     parity: list[Any], sustained: bool, memory_source: str) -> list[ModelCheck]:
    """Each bundle model's verdicts from the records `check --on-device` just wrote on this device.

    `opsets`: model -> its ONNX file's opset; `bench`, `parity`: records.Record of the timing cell at the
    profile's batch size and of the numerics cell; `memory_source`: the device kind's primary reading.
    """
    timed = {r.cell.model: r for r in bench}
    checked = {r.cell.model: r for r in parity}
    checks = []
    for model, opset in opsets.items():
        record = timed.get(model)
        criteria = [_measured_memory(profile, record, memory_source), _measured_speed(profile, record, sustained),
                    _numerics(checked.get(model)), _ops(profile, opset, record, checked.get(model))]
        checks.append(ModelCheck(model, [c for c in criteria if c is not None]))
    return checks


def _failed(record: Any) -> str:
    return f"{record.status}: {(record.error or '').split(': ', 1)[-1][:160]}" if record else "did not run"


CANNOT_RUN = ("CannotRunHere", "RuntimeUnavailable")  # error types: the runtime, not the model, could not run


def _cannot_run(*records: Any) -> str | None:
    """Why the runtime could not run here at all (not installed, or refusing this device or precision whatever
    the model), from the first such record; None where none says so. Such a cell judges nothing: UNKNOWN."""
    for record in records:
        if record is not None and not record.ok and getattr(record, "error_type", None) in CANNOT_RUN:
            reason = (record.error or "").split(": ", 1)[-1][:160]
            return f"not measured: {record.cell.runtime} cannot run here ({reason})"
    return None


def _measured_memory(profile: DeviceProfile, record: Any, source: str) -> Criterion:
    limit = f"<= {profile.memory_budget_bytes / 1e9:g} GB"
    unable = _cannot_run(record)
    if unable:
        return Criterion("memory", UNKNOWN, unable, limit)
    if record is None or not record.ok:
        return Criterion("memory", FAIL, _failed(record), limit)
    peak = record.peak_bytes(source)
    if peak is None:
        why = record.memory.why_missing(source)
        return Criterion("memory", UNKNOWN, f"{source} unreadable: {why}", limit)
    verdict = PASS if peak <= profile.memory_budget_bytes else FAIL
    figure = f"{peak / 1e9:.2f} GB measured ({source})"
    reading = record.memory.readings[source].figures  # a peak was read above
    if source == "jetson_process":  # the process's own; the system-wide figure beside it, not judged
        figure = (f"{peak / 1e9:.2f} GB measured (host RSS {reading['host_rss_peak_bytes'] / 1e9:.2f} + GPU buffers "
                  f"{reading['gpu_buffers_bytes'] / 1e9:.2f}, from {reading['gpu_buffers_from'].split(' (')[0]}); "
                  f"system-wide NvMapMemUsed {(reading.get('system_nvmap_peak_bytes') or 0) / 1e9:.2f} GB")
    return Criterion("memory", verdict, figure, limit)


def _rate(samples_ms: list[float], batch_size: int) -> float:
    ordered = sorted(samples_ms)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return batch_size * 1000.0 / median


def _measured_speed(profile: DeviceProfile, record: Any, sustained: bool = False) -> Criterion | None:
    """Images/s at the profile's batch size; after a sustained run, those of its last half (the steady state
    under load), with the first tenth's beside them."""
    target = profile.targets.min_fps
    if target is None:
        return None
    limit = f">= {target:g} images/s at batch {profile.targets.batch_size}"
    unable = _cannot_run(record)
    if unable:
        return Criterion("speed", UNKNOWN, unable, limit)
    if record is None or not record.ok:
        return Criterion("speed", FAIL, _failed(record), limit)
    fps = record.host_timing.images_per_s
    figure = f"{fps:.1f} images/s measured ({record.cell.runtime} {record.cell.precision})"
    samples = (getattr(record, "samples_ms", None) or {}).get("host") or []
    if sustained and len(samples) >= 20:
        batch, loop_s = record.cell.batch_size, record.timing.model_extra.get("loop_s") or 0
        fps = _rate(samples[len(samples) // 2:], batch)
        figure = (f"{fps:.1f} images/s over the last half of {loop_s:.0f} s sustained ({record.cell.runtime} "
                  f"{record.cell.precision}; {_rate(samples[:len(samples) // 10], batch):.1f} in its first tenth)")
    if not record.valid:  # a figure the harness does not trust answers nothing
        return Criterion("speed", UNKNOWN, f"{figure}, INVALID: {'; '.join(record.validity.reasons)}", limit)
    return Criterion("speed", PASS if fps >= target else FAIL, figure, limit)


def _numerics(record: Any) -> Criterion:
    limit = "outputs within the precision's tolerance of the bundle's PyTorch eager fp32"
    unable = _cannot_run(record)
    if unable:
        return Criterion("numerics", UNKNOWN, unable, limit)
    if record is None or record.status not in ("ok", "parity_failed"):
        return Criterion("numerics", FAIL, _failed(record), limit)
    errors = record.parity.figures if record.parity else {}
    figure = f"max rel err {errors.get('max_rel_err', float('nan')):.2e}, top-1 agreement " \
             f"{errors.get('top1_agreement', float('nan')):.2f}"
    return Criterion("numerics", PASS if record.ok else FAIL, figure if record.ok else f"{figure}; {record.error}",
                     limit)


def _ops(profile: DeviceProfile, opset: int | None, bench: Any, parity: Any) -> Criterion:
    limit = f"opset <= {profile.onnx_max_opset}, every op accepted" if profile.onnx_max_opset else "every op accepted"
    unable = _cannot_run(bench, parity)
    if unable:  # the ops were never put to the runtime
        return Criterion("opset/ops", UNKNOWN, unable, limit)
    for record in (bench, parity):
        if record is not None and record.status == "unsupported":
            return Criterion("opset/ops", FAIL, _failed(record), limit)
    if opset is not None and profile.onnx_max_opset is not None and opset > profile.onnx_max_opset:
        return Criterion("opset/ops", FAIL, f"opset {opset}: export the bundle with --profile", limit)
    if not any(record is not None and record.ok for record in (bench, parity)):  # failed for another reason
        return Criterion("opset/ops", UNKNOWN, f"not built: {_failed(bench or parity)}", limit)
    return Criterion("opset/ops", PASS, f"opset {opset}, built and ran", limit)
