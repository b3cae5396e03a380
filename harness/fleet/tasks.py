"""What runs on a fleet node as a Ray task: one job in a fresh process with the local executor's isolation
(timeout, memory cap, dies with its parent), and a probe of the node's environment.

These are plain functions, wrapped with `ray.remote` by the driver; every node imports them from its own
installed harness. A task never raises for a cell's failure: the cell's status says it. What a task
returns is plain data: the worker's result, the node-side wall clock of the job, its log, the files that
had to be fetched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.execution.executor import Placement
from harness.execution.isolation import run_isolated
from harness.execution.local import cap_log
from harness.fleet.files import FileArrivedDamaged, NeededFile, place_files
from harness.paths import cache_dir

RUNS_FOLDER = "fleet-runs"  # under the node's cache: each run's request, result and log files while a job runs
OUTPUTS_FOLDER = "outputs"  # what a job leaves in the run folder for other cells (verify's reference outputs)


def node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def run_job(envelope: dict[str, Any], files: list[tuple[NeededFile, Any]], run_id: str, stem: str,
            timeout_s: float, max_memory_bytes: int | None, cache: str | None = None) -> dict[str, Any]:
    """Place the job's files in this node's cache (or in `cache`: the driver's, for a prepare job on the
    driver's node), run the job in a fresh process, return what came back."""
    import ray

    started_unix = time.time()
    cache_path = Path(cache) if cache else cache_dir()
    run_dir = cache_path / RUNS_FOLDER / run_id
    request = envelope["request"]
    answer: dict[str, Any] = {"node_id": node_id(), "started_unix": started_unix, "fetched": [], "log": ""}
    try:
        answer["fetched"] = place_files(request, cache_path, files, fetch=ray.get, run_dir=run_dir)
    except (FileArrivedDamaged, OSError) as exc:
        return {**answer, "result": {"status": "error", "error": f"the job's files could not be placed on this node: "
                                                                   f"{exc}"},
                "wall_s": time.time() - started_unix, "ended_unix": time.time()}
    placement = Placement(cache_dir=cache_path, run_dir=run_dir)
    outcome = run_isolated({"request": request, "placement": placement.as_dict()}, run_dir / "cells", stem,
                           timeout_s, max_memory_bytes)
    answer["log"] = _take_log(run_dir / "cells", stem)
    answer["run_files"] = {path: data for path, data in _written_since(run_dir / OUTPUTS_FOLDER, run_dir,
                                                                       started_unix).items()
                           if path not in answer["fetched"]}
    return {**answer, "result": outcome.result, "wall_s": outcome.wall_s, "exit_code": outcome.exit_code,
            "ended_unix": time.time()}


def _written_since(folder: Path, run_dir: Path, since_unix: float) -> dict[str, bytes]:
    """Files the job wrote into the run's folder (a verify reference's outputs), for the driver's run folder."""
    if not folder.is_dir():
        return {}
    return {str(path.relative_to(run_dir)): path.read_bytes() for path in folder.iterdir()
            if path.is_file() and path.stat().st_mtime >= since_unix}


def _take_log(log_dir: Path, stem: str) -> str:
    """The job's log (its head and tail where long), with the job's files removed from the node."""
    for suffix in (".request.json", ".result.json"):
        (log_dir / f"{stem}{suffix}").unlink(missing_ok=True)
    log = log_dir / f"{stem}.log"
    if not log.exists():
        return ""
    cap_log(log)  # cut on the node, as the local executor cuts it, before it travels
    text = log.read_text(errors="replace")
    log.unlink()
    return text


def forget_run(run_id: str) -> bool:
    """Remove what this node kept of a run (its jobs' folders under fleet-runs/): everything a cell made
    that the run needs went back to the driver's run folder. True when there was something to remove."""
    import shutil

    folder = cache_dir() / RUNS_FOLDER / run_id
    if not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def probe() -> dict[str, Any]:
    """This node's environment (what env-<host>.json holds) and its Ray node id."""
    from harness.measure import environment

    facts = environment.collect()
    facts["packages"] = _with_module_versions(facts["packages"])
    return {"node_id": node_id(), "environment": facts}


def versions() -> dict[str, str | None]:
    """This node's package versions (what `node --list` shows)."""
    from harness.measure.environment import package_versions

    return _with_module_versions(package_versions())


def _with_module_versions(packages: dict[str, str | None]) -> dict[str, str | None]:
    """TensorRT's version from the module where pip does not know it (JetPack installs it as a Debian package):
    the driver picks a TensorRT cell's ONNX file by it."""
    if packages.get("tensorrt") is None:
        try:
            import tensorrt

            packages = {**packages, "tensorrt": str(tensorrt.__version__)}
        except Exception:  # not installed, or a library that cannot load here: no version to report
            pass
    return packages
