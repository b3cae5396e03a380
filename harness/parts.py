"""The measured parts of a cell — memory, energy, parity, accuracy, and what its prepare and build jobs made —
each one type, from the cell's process that measures it (`harness.cell.worker`) through the result it answers
(`harness.protocol.CellResult`) and the record (`harness.records.Record`) to the reports that read it.

Each part travels and is stored in the records' JSON form, unchanged since schema 1: `from_json` reads it (older
records included) and `to_json` writes it back key for key. A source that could not be read is `Missing`, with
the reason, never a figure. Plain dataclasses, no pydantic: the cell's process imports this module, and every
import there is in its measured memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class Missing:
    """A source that could not be read, with the reason (JSON: {"missing": reason})."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"missing": self.reason}


def _missing_in(data: Any) -> Missing | None:
    return Missing(str(data["missing"])) if isinstance(data, Mapping) and "missing" in data else None


def _dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected an object, got {type(data).__name__}")
    return dict(data)


# ---------------------------------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemoryReading:
    """One memory source's reading: its figures in bytes under the source's own names (`peak_bytes`,
    `baseline_bytes`, NVML's `context_bytes`, the PyTorch allocator's `peak_reserved_bytes`, a TensorRT
    engine's `context_device_memory_bytes`, ...) and how it was read (`source`)."""

    figures: Mapping[str, Any]

    @property
    def peak_bytes(self) -> int | None:
        """The peak reports compare: `peak_bytes`, or the allocator's reserved peak; None where the source has
        no peak (a TensorRT engine states sizes, not a peak)."""
        peak = self.figures.get("peak_bytes", self.figures.get("peak_reserved_bytes"))
        return None if peak is None else int(peak)

    @property
    def baseline_bytes(self) -> int | None:
        baseline = self.figures.get("baseline_bytes")
        return None if baseline is None else int(baseline)

    def to_json(self) -> dict[str, Any]:
        return dict(self.figures)


SourceReading = Union[MemoryReading, Missing]


def memory_reading(data: Mapping[str, Any] | MemoryReading | Missing) -> SourceReading:
    """A source's reading from what a measurer or a runtime returned ({"missing": why} or its figures)."""
    if isinstance(data, (MemoryReading, Missing)):
        return data
    return _missing_in(data) or MemoryReading(_dict(data, "memory reading"))


@dataclass(frozen=True)
class Memory:
    """Memory as a vector: one reading per source (host_rss, cuda_nvml, torch_allocator, jetson_unified,
    jetson_process, a runtime's own), and how many runs the memory pass made (None in older records)."""

    readings: dict[str, SourceReading] = field(default_factory=dict)
    pass_runs: int | None = None

    def peak_bytes(self, source: str) -> int | None:
        """The peak of one source; None where it is missing or has no peak."""
        reading = self.readings.get(source)
        return reading.peak_bytes if isinstance(reading, MemoryReading) else None

    def readable_sources(self) -> list[str]:
        return [source for source in self.readings if self.peak_bytes(source) is not None]

    def why_missing(self, source: str) -> str:
        reading = self.readings.get(source)
        return reading.reason if isinstance(reading, Missing) else "not recorded"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {source: reading.to_json() for source, reading in self.readings.items()}
        if self.pass_runs is not None:
            data["memory_pass_runs"] = self.pass_runs
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Memory:
        data = _dict(data or {}, "memory")
        runs = data.pop("memory_pass_runs", None)
        return cls({source: memory_reading(reading) for source, reading in data.items()}, runs)


# ---------------------------------------------------------------------------------------------------- energy


@dataclass(frozen=True)
class EnergyFigures:
    """One energy source over the energy pass: energy per image net of idle power (None where the busy power
    is not above idle: `note` says so), the gross figure, and the power drawn busy and idle."""

    joules_per_image: float | None
    gross_joules_per_image: float | None = None
    average_watts: float | None = None
    idle_watts: float | None = None
    what: str | None = None  # what the source measures (the GPU board, the CPU packages, a Jetson's rails)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"joules_per_image": self.joules_per_image, "gross_joules_per_image": self.gross_joules_per_image,
                "average_watts": self.average_watts, "idle_watts": self.idle_watts, "what": self.what}
        return {**data, **({"note": self.note} if self.note is not None else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnergyFigures:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


EnergyReading = Union[EnergyFigures, Missing]


@dataclass(frozen=True)
class Energy:
    """The energy pass after the timed loop: figures per source (or why a source is missing), the pass's
    windows and calls (None where no source was readable), or why the pass was skipped."""

    sources: dict[str, EnergyReading] = field(default_factory=dict)
    pass_facts: dict[str, Any] | None = None  # idle_s, busy_s, calls, images, loop_includes
    skipped: str | None = None

    def figures(self, source: str) -> EnergyFigures | None:
        reading = self.sources.get(source)
        return reading if isinstance(reading, EnergyFigures) else None

    def measured_sources(self) -> list[str]:
        return [source for source in self.sources if self.figures(source) is not None]

    def why_missing(self, source: str) -> str:
        """Why `source` has no figures: the pass skipped, the source unreadable, or not readable here."""
        if self.skipped:
            return f"energy pass skipped ({self.skipped})"
        reading = self.sources.get(source)
        if isinstance(reading, Missing) and reading.reason:
            return f"{source}: {reading.reason}"
        return f"{source} not readable where the cell ran"

    def to_json(self) -> dict[str, Any]:
        data = {"sources": {name: reading.to_json() for name, reading in self.sources.items()},
                "pass": self.pass_facts}
        return {**data, **({"skipped": self.skipped} if self.skipped is not None else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Energy:
        data = _dict(data or {}, "energy")
        sources = data.get("sources") if isinstance(data.get("sources"), Mapping) else {}
        readings = {name: _missing_in(reading) or EnergyFigures.from_json(_dict(reading, f"energy.{name}"))
                    for name, reading in sources.items()}
        return cls(readings, data.get("pass"), data.get("skipped"))


# ---------------------------------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class ParityVerdict:
    """A verify cell's outputs against the reference's on the same weights and inputs: the reference cell
    names the file it left its outputs in; every other cell states its errors (harness.measure.parity.Parity's
    figures), what it was compared with and the tolerance of its precision."""

    is_reference: bool
    outputs_file: str | None = None  # the reference cell's outputs, relative to the run folder
    figures: dict[str, float] = field(default_factory=dict)  # max_abs_err, rel_l2_err, top1_agreement, ...
    reference: str | None = None  # what it was compared with
    tolerance: dict[str, float] | None = None
    # a graph of several outputs: each output's figures, in order (`figures` then holds the worst of each)
    per_output: list[dict[str, float]] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.is_reference:
            return {"is_reference": True, "outputs_file": self.outputs_file}
        return {**self.figures, "is_reference": False, "reference": self.reference, "tolerance": self.tolerance,
                **({"per_output": self.per_output} if self.per_output is not None else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParityVerdict:
        data = _dict(data, "parity")
        if data.get("is_reference"):
            return cls(True, outputs_file=data.get("outputs_file"))
        named = {"is_reference", "reference", "tolerance", "outputs_file", "per_output"}
        return cls(False, data.get("outputs_file"), {k: v for k, v in data.items() if k not in named},
                   data.get("reference"), data.get("tolerance"), data.get("per_output"))


# -------------------------------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class AccuracyFigures:
    """An accuracy cell on labelled images: top-1/top-5 in %, the counts, the loop's speed, and top-1
    agreement with the reference's answers image by image; `details` keeps what describes the run (the
    predictions file, the preprocessing, the data) as written."""

    top1: float | None
    top5: float | None
    images: int | None
    top1_correct: int | None = None
    top5_correct: int | None = None
    images_per_s: float | None = None
    is_reference: bool | None = None
    agreement_top1: float | None = None  # share of images whose top-1 answer equals the reference's
    reference_top1: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    _NAMED = ("top1", "top5", "images", "top1_correct", "top5_correct", "images_per_s", "is_reference",
              "agreement_top1", "reference_top1")

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self._NAMED}, **self.details}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccuracyFigures:
        data = _dict(data, "accuracy")
        return cls(**{name: data.get(name) for name in cls._NAMED},
                   details={k: v for k, v in data.items() if k not in cls._NAMED})


# -------------------------------------------------------------------------------------------------- prepared


@dataclass
class Prepared:
    """What a model's prepare job (and an engine's build job) made, which the cells after them run from: the
    weights file, params and MACs, the artifact (an ONNX file, its precision and opset), the engine, and the
    library import time the preparing process paid. Each part is the job's own description, as written."""

    weights: dict[str, Any] | None = None
    complexity: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    library_import_s: float | None = None
    other: dict[str, Any] = field(default_factory=dict)  # parts an older harness wrote, kept as they were

    _NAMED = ("weights", "complexity", "artifact", "engine", "library_import_s")

    def to_json(self) -> dict[str, Any]:
        named = {name: value for name in self._NAMED if (value := getattr(self, name)) is not None}
        return {**named, **self.other}

    def copy(self) -> Prepared:
        return Prepared.from_json(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Prepared:
        data = _dict(data or {}, "prepared")
        return cls(**{name: data.get(name) for name in cls._NAMED},
                   other={k: v for k, v in data.items() if k not in cls._NAMED})


# -------------------------------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class ScenarioFigures:
    """A cell's scenario (harness.measure.scenarios): the stated latency percentile with the queries behind it
    (single-stream: p90 of the timed loop; multi-stream: p99 of its own back-to-back queries; server: p99 at the
    highest rate that held the bound), the server's rate search, offline's throughput with its streams."""

    name: str
    percentile: float | None = None
    latency_ms: float | None = None  # the early-stopping estimate: None where too few queries ran
    empirical_ms: float | None = None  # the plain order statistic, beside it
    queries: int | None = None
    queries_needed: int | None = None  # for the percentile with no query over it
    bound_ms: float | None = None  # server: the p99 bound
    bound_from: str | None = None  # server: where the bound came from (--p99-bound, or 5 x the median)
    capacity_qps: float | None = None  # server: back-to-back queries per second, where the search starts
    rate_qps: float | None = None  # server: the highest rate that held the bound
    images_per_s: float | None = None  # server: at that rate; offline: all streams together
    streams: int | None = None  # offline: inferences in flight at once (requests, or instances on threads)
    parallelism: str | None = None  # offline: what keeps them in flight (the runtime's own, or the harness's)
    threads_per_stream: int | None = None
    trials: list[dict[str, Any]] | None = None  # server: each rate tried
    queries_per_stream: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: value for name in self.__dataclass_fields__ if (value := getattr(self, name)) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioFigures:
        data = _dict(data, "scenario")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"scenario: unknown field(s) {', '.join(unknown)}")
        if "name" not in data:
            raise ValueError("scenario: no name")
        return cls(**data)


# ---------------------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class StageTimes:
    """Where one query's time goes (harness.measure.stages): the median ms of each stage the harness (or the
    runtime's tool) could see, what each holds, and why a stage is missing."""

    medians_ms: dict[str, float]
    source: str  # "harness" (its own pass) or the tool that stated them ("trtexec")
    repeats: int | None = None
    includes: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"medians_ms": self.medians_ms, "source": self.source, "repeats": self.repeats,
                "includes": self.includes, "missing": self.missing}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageTimes:
        data = _dict(data, "stages")
        return cls(_dict(data.get("medians_ms") or {}, "stages.medians_ms"), str(data.get("source")),
                   data.get("repeats"), dict(data.get("includes") or {}), dict(data.get("missing") or {}))
