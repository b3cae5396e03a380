"""Records of one or more run folders, reduced to the figures reports need: one `Point` per cell.

Reports are pure functions of these points; nothing here runs a benchmark. Runs from several
machines merge: each point carries the device it ran on, named from the environment file of the host that measured it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.paths import cache_dir
from harness.records import RECORDS_FILE, Published, Record, read_environments, read_records

# The memory reading that stands for "memory" on each kind of device: what the paper measured on
# the GPU (the process's total, CUDA context included), the unified pool on a Jetson, RSS on a CPU.
# the memory source that stands for the device: NVML's process memory on a GPU, the process's own share of a
# Jetson's unified memory (host RSS + its GPU buffers; older records: the system-wide NvMapMemUsed), host RSS
PRIMARY_MEMORY_SOURCE = {"cuda": "cuda_nvml", "jetson": "jetson_process", "cpu": "host_rss"}
FALLBACK_MEMORY_SOURCE = {"jetson_process": "jetson_unified"}  # records made before jetson_process existed
# the energy source that stands for the device (harness.measure.energy): the GPU board, the whole Jetson
# module, the CPU packages
PRIMARY_ENERGY_SOURCE = {"cuda": "nvml", "jetson": "jetson_rails", "cpu": "rapl"}
# the runtime that runs no model (it measures the harness itself): its cells answer nothing about a model
NO_MODEL_RUNTIME = "null"


@dataclass(frozen=True)
class Accuracy:
    top1: float | None
    top5: float | None
    kind: str  # "measured" or "published"
    source: str  # where a published figure comes from, or which run measured it


@dataclass(frozen=True)
class Point:
    """One benchmark cell: what ran, where, and what it measured (None where it did not)."""

    model: str
    display_name: str
    family: str
    runtime: str
    precision: str
    device: str  # a readable name of the machine's device, e.g. "CPU AMD EPYC (vm)" or "GPU NVIDIA H200"
    device_kind: str  # cpu, cuda or jetson
    batch_size: int
    status: str
    error: str | None
    run_id: str
    started_at: str
    batch_median_ms: float | None = None
    batch_p90_ms: float | None = None
    per_image_ms: float | None = None
    images_per_s: float | None = None
    samples: int | None = None
    valid: bool = True
    invalid_reasons: tuple[str, ...] = ()
    memory_peak_bytes: dict[str, int] = field(default_factory=dict)  # per readable source
    params: int | None = None
    macs: int | None = None
    accuracy: Accuracy | None = None
    onnx_opset: int | None = None  # of the ONNX file the cell ran, if it ran one
    onnx_path: str | None = None
    joules_per_image: float | None = None  # net of idle power, from the device's primary energy source
    average_watts: float | None = None  # what that source drew while the cell ran (idle included)
    energy_missing: str | None = None  # why that source has no figures for the cell (None where it has)
    task: str = "classification"  # exporters.tasks: the paper's figures plot classifiers alone
    # a Jetson's clocks and heat during the timed loop: [seconds, GPU MHz, EMC MHz, hottest zone °C] rows
    board_trace: list[list[float | None]] | None = None
    scenario: str = "single-stream"  # how queries reached the runtime (harness.measure.scenarios)
    p99_ms: float | None = None  # multi-stream and server: the stated p99 latency (server: at rate_qps)
    rate_qps: float | None = None  # server: the highest Poisson rate whose p99 held its bound
    scenario_images_per_s: float | None = None  # server: at rate_qps; offline: all streams at once

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def memory_source(self) -> str:
        source = PRIMARY_MEMORY_SOURCE[self.device_kind]
        fallback = FALLBACK_MEMORY_SOURCE.get(source)
        return fallback if source not in self.memory_peak_bytes and fallback in self.memory_peak_bytes else source

    @property
    def memory_bytes(self) -> int | None:
        """Peak memory from the device's primary source (see PRIMARY_MEMORY_SOURCE)."""
        return self.memory_peak_bytes.get(self.memory_source)

    @property
    def energy_source(self) -> str:
        return PRIMARY_ENERGY_SOURCE[self.device_kind]

    @property
    def images_per_joule(self) -> float | None:
        return 1 / self.joules_per_image if self.joules_per_image else None

    @property
    def model_bytes(self) -> int | None:
        """Size of the parameters in fp32 (the paper's "model complexity" axis of Fig. 4)."""
        return None if self.params is None else self.params * 4

    @property
    def series(self) -> tuple[str, str, str]:
        """What one chart or table is drawn for: runtime, device and precision."""
        return (self.runtime, self.device, self.precision)


def series_label(series: tuple[str, str, str]) -> str:
    runtime, device, precision = series
    return f"{runtime} · {precision} · {device}"


@dataclass
class Dataset:
    points: list[Point]  # single-stream cells: the timed loop every chart, table and check is drawn from
    runs: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. records skipped while reading
    scenario_points: list[Point] = field(default_factory=list)  # multi-stream, server and offline cells

    @property
    def every_point(self) -> list[Point]:
        return self.points + self.scenario_points

    def series(self) -> list[tuple[str, str, str]]:
        return sorted({p.series for p in self.points})

    def of(self, series: tuple[str, str, str], batch_size: int | None = None, ok_only: bool = True) -> list[Point]:
        return [p for p in self.points if p.series == series and (batch_size is None or p.batch_size == batch_size)
                and (p.ok or not ok_only)]


def _part(env: dict[str, Any], key: str) -> dict[str, Any]:
    """One section of an environment file, {} where it is absent or not an object (a hand-edited file)."""
    value = env.get(key)
    return value if isinstance(value, dict) else {}


def device_kind(env: dict[str, Any], device: str) -> str:
    if _part(env, "jetson").get("is_jetson"):
        return "jetson"
    return "cuda" if device.startswith("cuda") else "cpu"


def device_name(env: dict[str, Any], device: str) -> str:
    """A readable name for the device a cell ran on, from the env file of the host that ran it."""
    kind = device_kind(env, device)
    if kind == "jetson":
        jetson = _part(env, "jetson")
        return f"Jetson {jetson.get('model') or jetson.get('module') or '(model unknown)'}"
    if kind == "cuda":
        number = device.partition("@")[0].partition(":")[2]  # cuda:N, or cuda:N@node on a fleet
        index = int(number) if number.isdigit() else 0
        gpus = _part(env, "nvml").get("gpus")
        gpus = gpus if isinstance(gpus, list) else []
        gpu = gpus[index] if index < len(gpus) and isinstance(gpus[index], dict) else None
        name = gpu.get("name") if gpu is not None else _part(env, "torch").get("cuda_device_name")
        return f"GPU {name or device}"
    host = env.get('hostname') or 'unknown host'
    local = device.partition("@")[0]
    if local != "cpu":  # another family a runtime declares (OpenVINO's intel-gpu:N, npu): named as the cell names it
        return f"{local} ({host})"
    return f"CPU {env.get('cpu_model') or 'unknown'} ({host})"


def _published(published: Published) -> Accuracy | None:
    if published.top1 is None:
        return None
    return Accuracy(published.top1, published.top5, "published", published.accuracy_source or "unknown source")


def point_from_record(record: Record, env: dict[str, Any]) -> Point:
    cell, model = record.cell, record.model
    complexity = model.complexity
    host = record.timing.host if record.timing else None
    artifact = record.artifact
    return Point(
        model=cell.model, display_name=model.display_name or cell.model, family=model.family or "other",
        task=model.task,
        runtime=cell.runtime, precision=cell.precision, device=device_name(env, cell.device),
        device_kind=device_kind(env, cell.device), batch_size=cell.batch_size, status=record.status,
        error=record.error, run_id=record.run_id, started_at=record.started_at,
        batch_median_ms=host.median_ms if host else None, batch_p90_ms=host.p90_ms if host else None,
        per_image_ms=host.per_image_median_ms if host else None, images_per_s=host.images_per_s if host else None,
        samples=host.samples if host else None, valid=record.valid,
        invalid_reasons=tuple(record.validity.reasons if record.validity else ()),
        memory_peak_bytes={source: record.peak_bytes(source) for source in record.readable_sources()},  # type: ignore[misc]
        params=complexity.params if complexity else None, macs=complexity.macs if complexity else None,
        accuracy=_published(model.published), onnx_opset=artifact.get("opset"),
        onnx_path=_onnx_path(artifact.get("path")),
        board_trace=_board_trace(record),
        **_energy(record, PRIMARY_ENERGY_SOURCE[device_kind(env, cell.device)]), **_scenario(record))


def _scenario(record: Record) -> dict[str, Any]:
    figures = record.scenario
    stated_p99 = figures.latency_ms if figures and figures.percentile == 0.99 else None
    return {"scenario": record.cell.scenario, "p99_ms": stated_p99,
            "rate_qps": figures.rate_qps if figures else None,
            "scenario_images_per_s": figures.images_per_s if figures else None}


def _board_trace(record: Record) -> list[list[float | None]] | None:
    """The Jetson clock/temperature trace of the record's timed loop, where it has one."""
    during = ((record.model_extra or {}).get("jetson") or {}).get("during_timed_loop")
    return during.get("trace") if isinstance(during, dict) else None


def _energy(record: Record, source: str) -> dict[str, Any]:
    figures = record.energy_figures(source)
    if figures is None:
        return {"joules_per_image": None, "average_watts": None, "energy_missing": record.why_no_energy(source)}
    return {"joules_per_image": figures.joules_per_image, "average_watts": figures.average_watts,
            "energy_missing": None}


def _onnx_path(path: str | None) -> str | None:
    """Schema-2 records name the cached file relative to the artifact cache (this machine's)."""
    if path is None or Path(path).is_absolute():
        return path
    return str(cache_dir() / path)


def _run_dirs(paths: list[Path]) -> list[Path]:
    """Each path is a run folder, or a folder of run folders (e.g. results/)."""
    runs = []
    for path in paths:
        if (path / RECORDS_FILE).is_file():
            runs.append(path)
        elif path.is_dir() and any((child / RECORDS_FILE).is_file() for child in path.iterdir()):
            runs += sorted(child for child in path.iterdir() if (child / RECORDS_FILE).is_file())
        elif not path.exists():
            raise UserError(f"no such run folder '{path}': pass results/<run-id> or a folder of runs")
        else:
            raise UserError(f"no {RECORDS_FILE} in '{path}': pass a run folder such as results/<run-id>")
    return runs


def load(paths: list[Path]) -> Dataset:
    """Bench records of the given run folders, merged; the newest record of a cell wins (a re-run)."""
    newest: dict[tuple, Point] = {}
    accuracy_records: list[Record] = []
    notes: list[str] = []
    runs = _run_dirs(paths)
    for run_dir in runs:
        read = read_records(run_dir / RECORDS_FILE).check_readable(run_dir)
        notes += read.skipped
        environments = read_environments(run_dir)
        for record in read.typed:
            if record.kind == "accuracy":
                accuracy_records.append(record)
                continue
            if record.kind != "bench":
                continue
            env = environments.get(record.host) or environments.get(None) or {}
            point = point_from_record(record, env)
            key = (point.model, *point.series, point.batch_size, point.scenario)
            if key not in newest or _later(point, newest[key]):
                newest[key] = point
    if not newest:
        raise UserError("no benchmark records in " + ", ".join(map(str, paths))
                        + ": run `python -m harness bench ...` first")
    points = with_measured_accuracy(list(newest.values()), accuracy_records)
    return Dataset(points=[p for p in points if p.scenario == "single-stream"], runs=[str(r) for r in runs],
                   notes=notes, scenario_points=[p for p in points if p.scenario != "single-stream"])


def _later(a: Point, b: Point) -> bool:
    """Prefer a finished measurement over a failed one, then the newer record."""
    if a.ok != b.ok:
        return a.ok
    return datetime.fromisoformat(a.started_at) > datetime.fromisoformat(b.started_at) if a.started_at and \
        b.started_at else False


def with_measured_accuracy(points: list[Point], accuracy_records: list[Record]) -> list[Point]:
    """Replace published accuracy by a measured one where an accuracy record exists for the same model,
    runtime and precision (any device: the answers of a graph do not depend on the machine)."""
    measured: dict[tuple[str, str, str], Accuracy] = {}
    for record in accuracy_records:
        if not record.ok:
            continue
        cell, figures = record.cell, record.accuracy
        if figures is None:
            continue
        measured[(cell.model, cell.runtime, cell.precision)] = Accuracy(
            figures.top1, figures.top5, "measured", f"run {record.run_id}: {figures.images} images")
    return [replace(p, accuracy=measured.get((p.model, p.runtime, p.precision), p.accuracy)) for p in points]
