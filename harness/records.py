"""Result records: schema-versioned JSON lines, appended atomically, read back tolerating a torn last line."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"
ENV_FILE = "env.json"
STATUSES = ("ok", "error", "oom", "timeout", "crashed", "unsupported", "parity_failed", "skipped")


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line with a single write to an O_APPEND file, then fsync.

    A reader sees either the whole line or, if the machine died mid-write, a torn last line that
    `read_records` skips; earlier lines are never touched.
    """
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    line = json.dumps({"schema_version": SCHEMA_VERSION, **record}, separators=(",", ":"), allow_nan=False)
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class RecordsRead:
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per unreadable line, saying where and why
    newer_schema: int | None = None  # the highest schema_version above ours seen, if any


def read_records(path: Path) -> RecordsRead:
    """All complete records; a torn or unreadable line is skipped and reported, never fatal."""
    result = RecordsRead()
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
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
        version = record.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            result.newer_schema = max(version, result.newer_schema or version)
        if version != SCHEMA_VERSION:
            result.skipped.append(f"{path}:{number}: schema_version {record.get('schema_version')!r} "
                                  f"is not {SCHEMA_VERSION}; skipped")
            continue
        result.records.append(record)
    for problem in result.skipped:
        log.warning(problem)
    return result
