"""Result records: schema-versioned JSON lines, appended atomically, read back with their shape checked.

Schema 2 (this version) names the host a record was measured on (`host`), and the run folder holds one
environment file per host (`env-<host>.json`), so one run can span machines. Schema 1 records (one
`env.json` per run, no `host`) are still read: `read_records` upgrades them to schema 2 in memory, taking
the host from that run's `env.json`. A line that is not a record of a known shape is skipped and
reported, never fatal; a record of a newer schema makes every reader refuse the run with one line.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, StrictInt, StrictStr,
                      ValidationError, model_validator)

from harness.cells import cell_id_of
from harness.errors import UserError
from harness.parts import (AccuracyFigures, Energy, EnergyFigures, Memory, ParityVerdict, Prepared, ScenarioFigures,
                           StageTimes)
from harness.protocol import STATUSES, Status

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
RECORDS_FILE = "records.jsonl"
ENV_FILE = "env.json"  # schema 1: one environment per run
ENV_PREFIX = "env-"  # schema 2: env-<host>.json, one per host


class CellKey(BaseModel):
    """What a cell is: model, runtime, precision, batch size, device."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: StrictStr
    runtime: StrictStr
    precision: StrictStr
    batch_size: StrictInt = Field(ge=1)
    device: StrictStr
    scenario: Literal["single-stream", "multi-stream", "server", "offline"] = "single-stream"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


T = TypeVar("T")


def _typed_part(cls: type[T], read: Callable[[Any], T]) -> Any:
    """A field holding one of harness.parts' types: read from its JSON form (or taken as it is), written back
    in that form."""
    return Annotated[cls, PlainValidator(lambda value: value if isinstance(value, cls) else read(value)),
                     PlainSerializer(lambda value: value.to_json())]


MemoryPart = _typed_part(Memory, Memory.from_json)
EnergyPart = _typed_part(Energy, Energy.from_json)
ParityPart = _typed_part(ParityVerdict, ParityVerdict.from_json)
AccuracyPart = _typed_part(AccuracyFigures, AccuracyFigures.from_json)
PreparedPart = _typed_part(Prepared, Prepared.from_json)
ScenarioPart = _typed_part(ScenarioFigures, ScenarioFigures.from_json)
StagesPart = _typed_part(StageTimes, StageTimes.from_json)


class Statistics(_Part):
    """Statistics of a cell's per-batch times (harness.measure.timing.Statistics), as recorded."""

    median_ms: float
    per_image_median_ms: float
    images_per_s: float | None
    samples: StrictInt
    p90_ms: float | None = None


class Timing(_Part):
    host: Statistics
    device: Statistics | None = None  # by the runtime library's own clock, where it has one
    device_clock: str | None = None  # which clock that is (CUDA events, OpenVINO's request latency)
    # how its samples were taken: queued ahead in a pass of their own, or in the host loop (None: older records,
    # which took them in the host loop)
    device_method: str | None = None


class Validity(_Part):
    valid: bool = True
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # seen, not judged (an unpinned board's clock range)


class Published(_Part):
    top1: float | None = None
    top5: float | None = None
    accuracy_source: str | None = None


class Complexity(_Part):
    params: int | None = None
    macs: int | None = None


class ModelSummary(_Part):
    """What a record says about the model it measured (the rest of the summary is kept as it is)."""

    name: str | None = None
    task: str = "classification"  # exporters.tasks; records from before tasks existed measured classifiers
    display_name: str | None = None
    family: str | None = None
    published: Published = Published()
    complexity: Complexity | None = None


class Record(_Part):
    """One cell's record, as every reader sees it. Fields readers rely on are typed; what a runtime or a
    mode adds (runtime info, cold start, samples, parity and accuracy figures) is kept as written."""

    schema_version: Literal[1, 2]
    cell_id: StrictStr | None = None  # derivable from the cell; filled in on reading where absent
    cell: CellKey
    status: Status
    kind: StrictStr = "bench"
    run_id: StrictStr = ""
    host: StrictStr | None = None
    started_at: str = ""
    error: str | None = None
    error_type: str | None = None
    timing: Timing | None = None
    validity: Validity | None = None
    memory: MemoryPart = Field(default_factory=Memory)  # source -> reading, or why it is missing
    model: ModelSummary = ModelSummary()
    prepared: PreparedPart = Field(default_factory=Prepared)
    parity: ParityPart | None = None
    accuracy: AccuracyPart | None = None
    energy: EnergyPart | None = None  # harness.measure.energy: per source its figures or why it is missing
    scenario: ScenarioPart | None = None  # harness.measure.scenarios: the scenario's figures (None: older records)
    stages: StagesPart | None = None  # harness.measure.stages: where one query's time goes (None: older records)

    @model_validator(mode="after")
    def _timed_when_ok(self) -> "Record":
        if self.kind == "bench" and self.status == "ok" and self.timing is None:
            raise ValueError("a finished bench record has no timing")
        return self

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def valid(self) -> bool:
        return self.validity is None or self.validity.valid

    @property
    def host_timing(self) -> Statistics:
        assert self.timing is not None, "only a finished bench record has timing"
        return self.timing.host

    @property
    def artifact(self) -> dict[str, Any]:
        return self.prepared.artifact or {}

    def peak_bytes(self, source: str) -> int | None:
        """The peak of one memory source (the allocator's reserved peak for torch_allocator); None if missing."""
        return self.memory.peak_bytes(source)

    def readable_sources(self) -> list[str]:
        return self.memory.readable_sources()

    def energy_figures(self, source: str) -> EnergyFigures | None:
        """One energy source's figures (joules per image, watts); None where it was missing or not measured."""
        return self.energy.figures(source) if self.energy is not None else None

    def measured_energy_sources(self) -> list[str]:
        return self.energy.measured_sources() if self.energy is not None else []

    def why_no_energy(self, source: str) -> str:
        """Why this record has no figures from an energy source: no pass, a pass skipped, the source unreadable."""
        return "no energy pass in the record" if self.energy is None else self.energy.why_missing(source)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line with a single write to an O_APPEND file, then fsync.

    The line always starts a fresh line: after a torn last line (the machine died mid-write) the new
    record is not glued onto the fragment. Earlier lines are never touched.
    """
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    line = json.dumps({"schema_version": SCHEMA_VERSION, **record}, separators=(",", ":"), allow_nan=False)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        fresh = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
        data = (("" if fresh else "\n") + line + "\n").encode()
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> str | None:
    """Move an unfinished last line (no newline: a write cut short) out of `path`, into a file beside
    it; returns what was done, or None when the file ends cleanly."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    keep = data.rfind(b"\n") + 1
    kept_aside = path.with_name(f"{path.name}.torn-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    kept_aside.write_bytes(data[keep:])
    with path.open("r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return (f"{path}: its last line was torn ({len(data) - keep} bytes, an interrupted write); moved to "
            f"{kept_aside.name} and that cell will run again")


@dataclass
class RecordsRead:
    records: list[dict[str, Any]] = field(default_factory=list)  # as written (the JSON form), in schema 2
    typed: list[Record] = field(default_factory=list)  # the same records, as readers use them
    skipped: list[str] = field(default_factory=list)  # one line per unreadable line, saying where and why
    newer_schema: int | None = None  # the highest schema_version above ours seen, if any

    def check_readable(self, where: Path) -> "RecordsRead":
        """Refuse (one line) records written by a newer harness: every reader says the same."""
        if self.newer_schema is not None:
            raise UserError(f"{where} was written by a newer harness (record schema {self.newer_schema}; this one "
                            f"reads {', '.join(map(str, READABLE_SCHEMAS))}): upgrade dnn-harness to read it")
        return self


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the line"
    return f"{where}: {first['msg']}"


def upgrade(record: dict[str, Any], v1_host: str | None) -> dict[str, Any]:
    """A record in schema-2 form: a schema-1 record takes its host from its run's env.json."""
    if record.get("cell_id") is None:
        record = {**record, "cell_id": cell_id_of(record["cell"])}
    if record["schema_version"] == 1:
        return {**record, "schema_version": 2, "host": record.get("host") or v1_host, "upgraded_from": 1}
    return record


def read_records(path: Path, v1_host: str | None = None) -> RecordsRead:
    """All complete records of known shape, in schema-2 form; anything else is skipped and reported."""
    result = RecordsRead()
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
    if v1_host is None:
        v1_host = run_hostname(path.parent)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
            kind = "torn last line" if last and not raw.endswith(b"}") else "unreadable line"
            result.skipped.append(f"{path}:{number}: {kind} skipped ({exc.msg if hasattr(exc, 'msg') else exc})")
            continue
        version = record.get("schema_version") if isinstance(record, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            result.newer_schema = max(version, result.newer_schema or version)
            continue
        try:
            Record.model_validate(record)
        except ValidationError as exc:
            result.skipped.append(f"{path}:{number}: not a record ({_problem(exc)}); skipped")
            continue
        upgraded = upgrade(record, v1_host)
        result.records.append(upgraded)
        result.typed.append(Record.model_validate(upgraded))
    for problem in result.skipped:
        log.warning(problem)
    return result


def env_file_for(host: str) -> str:
    """The environment file of one host in a run folder: env-<host>.json (unsafe characters replaced)."""
    return f"{ENV_PREFIX}{re.sub(r'[^A-Za-z0-9._-]', '_', host)}.json"


def run_hostname(run_dir: Path) -> str | None:
    """The host of a schema-1 run, from its env.json; None where there is none."""
    try:
        env = json.loads((run_dir / ENV_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return env.get("hostname") if isinstance(env, dict) else None


def read_environments(run_dir: Path) -> dict[str | None, dict[str, Any]]:
    """Environment per host of a run folder: schema 2's env-<host>.json files, and a schema-1 env.json
    under its own hostname (and under None, for records that name no host)."""
    environments: dict[str | None, dict[str, Any]] = {}
    paths = sorted(run_dir.glob(f"{ENV_PREFIX}*.json"))
    legacy = run_dir / ENV_FILE
    for path in ([legacy] if legacy.is_file() else []) + paths:
        if "-resumed-" in path.name:
            continue
        try:
            env = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg}): restore it or remove the run") from None
        if not isinstance(env, dict):
            raise UserError(f"{path} is not an environment (a JSON object): restore it or remove the run")
        environments.setdefault(env.get("hostname"), env)
        if path == legacy:
            environments.setdefault(None, env)
    return environments


def as_records(records: list[dict[str, Any]]) -> list[Record]:
    """Records a sweep has just written (dicts), as readers use them."""
    return [Record.model_validate(upgrade(record, None)) for record in records]


def latest_records(records: list[Record]) -> list[Record]:
    """One record per cell: the last one written (a cell run again by --retry-failed has two)."""
    latest: dict[str | None, Record] = {}
    for record in records:
        latest.pop(record.cell_id, None)
        latest[record.cell_id] = record
    return list(latest.values())
