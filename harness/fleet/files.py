"""The files a job needs on the node that runs it: named by the job's request, made once on the driver's
machine, carried by Ray's object store, and checked by SHA-256 on arrival.

The driver side (`needed_files`) reads what a request names: the prepared weights and ONNX file in the
driver's artifact cache, an outside ONNX file the user named (a bundle's, or `--onnx`), a bundle's reference
outputs, a weights file the user named, an accuracy run's decoded crops, and a verify run's reference
outputs. The node side (`place_files`) puts each under the node's own cache at the same relative path
(outside files under `fleet-files/<sha256>/`), fetching only what is missing or differs, and refuses a file
whose bytes do not hash to what the driver recorded. An engine is never carried: it is built on its device's node and stays
there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from exporters.store import sha256_of as file_sha256
from harness.paths import write_bytes_atomically
from harness.protocol import reference_outputs_file

OUTSIDE_FOLDER = "fleet-files"
CACHE = "cache"  # a file of the artifact cache, at the same relative path on every node
MODEL = "model"  # the request's outside ONNX file: the node's copy replaces the request's path
RUN = "run"  # a file of the run folder another cell made (a verify run's reference outputs)
BUNDLED = "bundled"  # a bundle's reference outputs (verify --bundle): the node's copy replaces the request's path
WEIGHTS = "weights"  # a state-dict file the user named: the node's copy replaces the request's path
INPUTS = "inputs"  # an outside ONNX file's .npz of inputs (--inputs): the node's copy replaces the request's path


class FileArrivedDamaged(RuntimeError):
    """The bytes a node received do not hash to what the driver recorded."""


@dataclass(frozen=True)
class NeededFile:
    relative_path: str  # under the node's artifact cache (CACHE, MODEL) or the run's folder there (RUN)
    sha256: str
    role: str = CACHE  # CACHE, MODEL, RUN, WEIGHTS, BUNDLED or INPUTS


_known: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: a file is hashed once per process


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _known:
        _known[key] = file_sha256(path)
    return _known[key]


def needed_files(request: dict[str, Any], driver_cache: Path, with_weights: bool,
                 driver_run_dir: Path | None = None) -> list[tuple[NeededFile, Path]]:
    """What the request (as JSON) names that a node must hold, each with where the driver reads it; the
    weights file only `with_weights` (a runtime that builds the PyTorch module); in a verify run, the
    reference outputs its cell is compared with."""
    needed: list[tuple[NeededFile, Path]] = []
    prepared = request.get("prepared") or {}
    weights = prepared.get("weights") or {}
    if with_weights and weights.get("kind") == "random" and weights.get("path"):
        needed.append((NeededFile(weights["path"], weights["sha256"]), driver_cache / weights["path"]))
    artifact = prepared.get("artifact") or {}
    if artifact.get("kind") == "onnx" and not artifact.get("external") and artifact.get("path"):
        needed.append((NeededFile(artifact["path"], artifact["sha256"]), driver_cache / artifact["path"]))
    if with_weights and weights.get("path") and weights.get("kind") != "random":  # a state-dict file the user named
        source = Path(weights["path"])
        needed.append((NeededFile(f"{OUTSIDE_FOLDER}/{weights['sha256']}/{source.name}", weights["sha256"], WEIGHTS),
                       source))
    crop_set = ((request.get("accuracy") or {}).get("sets") or {}).get((request.get("model") or {}).get("name"))
    if crop_set:  # an accuracy cell's decoded crops: every file of their folder in the cache
        folder = driver_cache / crop_set["folder"]
        needed += [(NeededFile(str(path.relative_to(driver_cache)), sha256_of(path)), path)
                   for path in sorted(folder.rglob("*")) if path.is_file()]
    outside = (request.get("model") or {}).get("onnx_path")
    if outside:
        needed.append(_outside(Path(outside), MODEL))
    inputs_file = (request.get("model") or {}).get("inputs_file")
    if inputs_file:
        needed.append(_outside(Path(inputs_file), INPUTS))
    bundled = request.get("reference_outputs")
    if bundled:  # a bundle model's reference outputs, made on the workstation
        needed.append(_outside(Path(bundled["file"]), BUNDLED))
    if request.get("mode") == "parity" and driver_run_dir is not None:
        cell, reference = request["cell"], request["reference"]
        compared = (cell["runtime"], cell["precision"]) != (reference["runtime"], reference["precision"])
        source = driver_run_dir / reference_outputs_file(cell["model"], cell["batch_size"])
        if compared and source.is_file():
            needed.append((NeededFile(reference_outputs_file(cell["model"], cell["batch_size"]),
                                      sha256_of(source), RUN), source))
    return needed


def _outside(source: Path, role: str) -> tuple[NeededFile, Path]:
    """A file outside the cache (a bundle's, or one the user named), kept on a node under its hash."""
    sha = sha256_of(source)
    return NeededFile(f"{OUTSIDE_FOLDER}/{sha}/{source.name}", sha, role), source


def place_files(request: dict[str, Any], cache_dir: Path, files: list[tuple[NeededFile, Any]],
                fetch: Callable[[Any], bytes], run_dir: Path | None = None) -> list[str]:
    """Make every needed file present in `cache_dir` (or `run_dir`), fetching (`fetch(handle)`) only those
    missing or different; point the request at the node's copy of an outside file. Returns the paths fetched."""
    fetched = []
    for needed, handle in files:
        path = ((run_dir if needed.role == RUN and run_dir is not None else cache_dir) / needed.relative_path)
        if not (path.is_file() and sha256_of(path) == needed.sha256):
            _write_checked(path, fetch(handle), needed.sha256)
            fetched.append(needed.relative_path)
        if needed.role == MODEL:
            request["model"]["onnx_path"] = str(path)
        elif needed.role == INPUTS:
            request["model"]["inputs_file"] = str(path)
        elif needed.role == BUNDLED:
            request["reference_outputs"]["file"] = str(path)
        elif needed.role == WEIGHTS:
            request["weights"] = str(path)
            request["prepared"]["weights"]["path"] = str(path)
    return fetched


def _write_checked(path: Path, data: bytes, sha256: str) -> None:
    """Check the hash of what arrived, then write it atomically: a damaged file never lands where a cell reads."""
    arrived = hashlib.sha256(data).hexdigest()
    if arrived != sha256:
        raise FileArrivedDamaged(f"{path.name} arrived with SHA-256 {arrived[:12]}..., the driver recorded "
                                 f"{sha256[:12]}...; it was not used")
    write_bytes_atomically(path, data)
