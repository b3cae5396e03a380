"""Run folders: one writer at a time (a lock), resuming an interrupted run, finding the last run of a plan."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, TextIO

from harness.errors import UserError
from harness.records import RECORDS_FILE, Record, read_records

PLAN_FILE = "plan.json"
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive, non-blocking flock on <run>/.lock, released when the process ends however it ends."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"run folder {self.path.parent} is being written by {holder}; wait for it to finish "
                            "or use another --run-id") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


NOT_IN_SIGNATURE = ("order", "retry_failed", "energy")  # how a plan runs, not what its timing measures


def plan_signature(cells: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two invocations the same plan: the set of cells and every setting but how it runs
    (settings left at an empty default are left out, so runs planned before they existed still match).
    Returned in its JSON form, as plan.json stores it: a tuple in a setting (a recipe's mean and std)
    comes back from the file as a list, and must compare equal to itself."""
    return as_json({"cells": sorted(json.dumps(c, sort_keys=True) for c in cells),
                    "settings": {k: v for k, v in settings.items() if k not in NOT_IN_SIGNATURE and v != {}}})


def as_json(value: Any) -> Any:
    """`value` as it reads back from a JSON file: tuples become lists, keys strings."""
    return json.loads(json.dumps(value))


def same_plan(plan: dict[str, Any], signature: dict[str, Any]) -> bool:
    """True when a stored plan (plan.json, read back) has this signature; both sides compared in JSON form."""
    return as_json(plan.get("signature")) == as_json(signature)


def read_plan(run_dir: Path) -> dict[str, Any]:
    """The plan.json of a run folder; one line naming --out and the run id when it has none, and one naming the
    file when it is damaged (empty, binary, not a JSON object)."""
    path = run_dir / PLAN_FILE
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run folder (no {PLAN_FILE}); check --out and the run id") from None
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
        plan = f"{type(exc).__name__}: {exc}"
    if not isinstance(plan, dict):
        raise UserError(f"{path} is damaged ({str(plan)[:80]}), so the run cannot be resumed: start a new run "
                        f"(another --run-id, or no --resume); report, show and compare still read its records")
    return plan


RETRIED_STATUSES = ("error", "crashed", "timeout")  # what --retry-failed runs again
UNFINISHED_STATUSES = ("lost",)  # no fault of the cell's: every resume runs it again


def finished_cell_ids(run_dir: Path, retry_failed: bool = False,
                      records: list[Record] | None = None) -> set[str]:
    """Cells with a record (their latest) that need not run again: not a lost one (its machine went away) and,
    with `retry_failed`, not a failed one."""
    if records is None:
        path = run_dir / RECORDS_FILE
        records = read_records(path).typed if path.exists() else []
    latest = {record.cell_id: record.status for record in records}
    return {cell_id for cell_id, status in latest.items()  # type: ignore[misc]
            if cell_id and status not in UNFINISHED_STATUSES and not (retry_failed and status in RETRIED_STATUSES)}


def last_run_of_plan(out_dir: Path, signature: dict[str, Any]) -> str | None:
    """The newest run folder under out_dir whose plan matches, by creation time in plan.json."""
    candidates = []
    for plan_path in out_dir.glob(f"*/{PLAN_FILE}"):
        try:
            plan = json.loads(plan_path.read_text())
        except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
            continue
        if isinstance(plan, dict) and same_plan(plan, signature):
            candidates.append((plan.get("created_at", ""), plan_path.parent.name))
    return max(candidates)[1] if candidates else None
