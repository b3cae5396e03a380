"""Bundles: what a board needs to measure and check models without torch, made on a workstation.

A bundle is a folder that can be copied as it is (rsync, scp):

    DIR/bundle.json              what made it: harness version, profile, opset, seed, models, precisions
    DIR/<model>/manifest.json    one small file per model: the catalogue entry, published and measured
                                 figures with their sources, complexity, weights, file hashes, reference
    DIR/<model>/model-<precision>.onnx    int8: both flavours (exporters.quantize.FLAVORS), `model-int8.onnx`
                                 for ONNX Runtime and OpenVINO, `model-int8-sym.onnx` for TensorRT
    DIR/<model>/reference.npz    PyTorch eager fp32 outputs (CPU) on seeded inputs, at batch 1 and the
                                 largest planned batch

The reference inputs are not stored: the board regenerates them from the seed (harness.measure.inputs)
and checks them against the hash in the manifest, so a bundle stays small. A bundle has one seed.

A model's files are replaced together: each is written beside its final name first, then all are renamed
in one go (manifest last) with Ctrl-C held back until the renames are done, so an interrupted or failed
export leaves each model as it was before or as it is now, never half of each.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from exporters.quantize import FLAVORS
from exporters.store import sha256_of
from harness.errors import UserError
from harness.measure.inputs import input_sha256, make_inputs
from harness.protocol import BundledReference, InputSpec, OnnxModel

BUNDLE_FILE = "bundle.json"
LOCK_FILE = ".bundle.lock"  # exports into one bundle update bundle.json one at a time
MANIFEST = "manifest.json"
REFERENCE_FILE = "reference.npz"
FORMAT = 1
EXPORT_AGAIN = "export the bundle again on the workstation, then copy it"
FLAVOR_USE = {"int8": "the asymmetric one ONNX Runtime and OpenVINO read",
              "int8-sym": "the symmetric one TensorRT reads"}


def onnx_precisions(precisions: list[str]) -> list[str]:
    """The ONNX files a bundle carries for the precisions asked for: int8 is both flavours, so that any
    runtime on the board finds the one it reads (`Runtime.onnx_precision`)."""
    files: list[str] = []
    for precision in precisions:
        files += list(FLAVORS) if precision == "int8" else [precision]
    return list(dict.fromkeys(files))


def user_precision(onnx_precision: str) -> str:
    """The precision a user asks for that makes the ONNX file of `onnx_precision` (int8-sym is internal)."""
    return "int8" if onnx_precision in FLAVORS else onnx_precision


def precision_label(onnx_precision: str) -> str:
    """How an ONNX file's precision is shown: int8-sym, a name the CLI does not take, as the int8 it is made for."""
    return "int8 (symmetric, for TensorRT)" if onnx_precision == "int8-sym" else onnx_precision


@dataclass(frozen=True)
class BundleModel:
    """One model of a bundle, as the board reads it (its manifest checked by `read_bundle`)."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def precisions(self) -> list[str]:
        """The precisions a user can ask for (int8 once, for both its flavours)."""
        return sorted({user_precision(p) for p in self.manifest["files"]})

    def onnx_path(self, precision: str) -> Path | None:
        entry = self.manifest["files"].get(precision)
        return self.folder / entry["path"] if entry else None

    @property
    def input_shape(self) -> list[int | None]:
        return list(self.manifest["input"]["shape"])

    @property
    def reference_batch_sizes(self) -> list[int]:
        return sorted(int(b) for b in self.manifest["reference"]["batches"])

    @property
    def seed(self) -> int:
        return int(self.manifest["reference"]["seed"])

    def reference_outputs(self, batch_size: int) -> BundledReference | None:
        """Where the board finds the reference outputs for `batch_size`, and the hash its inputs must have."""
        batch = self.manifest["reference"]["batches"].get(str(batch_size))
        if batch is None:
            return None
        return BundledReference(file=str(self.folder / self.manifest["reference"]["file"]), key=batch["outputs_key"],
                                input_sha256=batch["input_sha256"], seed=self.seed,
                                source=self.manifest["reference"]["runtime"])

    def request_model(self, precision: str) -> OnnxModel:
        """The ONNX file of `precision` (an ONNX precision: a runtime's `onnx_precision`); one line if absent."""
        path = self.onnx_path(precision)
        if path is None:
            asked = user_precision(precision)
            which = f"{asked} file ({FLAVOR_USE[precision]})" if precision in FLAVORS else f"{asked} file"
            fix = f"--precision {asked}" + (" --calibration DATA" if asked == "int8" else "")
            raise UserError(f"the bundle has no {which} for {self.name} (it has {', '.join(self.precisions)}): "
                            f"export it again with {fix}")
        described = self.manifest["input"]
        return OnnxModel(name=self.name, onnx_path=str(path),
                         inputs=[InputSpec(described.get("name", "input"), described["dtype"],
                                           [d or 1 for d in self.input_shape], batched=True)])

    def summary(self) -> dict[str, Any]:
        """The record's model summary: the workstation's, with where the bundle is."""
        return {**self.manifest["summary"], "bundle": str(self.folder.parent),
                "onnx_sha256": {p: e["sha256"] for p, e in self.manifest["files"].items()}}


@dataclass(frozen=True)
class Bundle:
    folder: Path
    meta: dict[str, Any]
    models: dict[str, BundleModel] = field(default_factory=dict)


def read_bundle(path_text: str) -> Bundle:
    """A bundle folder, every file checked against its manifest's hash; each problem is one UserError."""
    folder = Path(path_text).expanduser()
    meta = read_meta(folder, path_text)
    models = {}
    for name in meta["models"]:
        model_folder = folder / name
        manifest_path = model_folder / MANIFEST
        manifest = _read_json(manifest_path)
        problem = manifest_problem(manifest)
        if problem:
            raise UserError(f"{manifest_path} is not a manifest this harness can read ({problem}): {EXPORT_AGAIN}")
        for precision, entry in manifest["files"].items():
            _check_file(model_folder / entry["path"], entry["sha256"],
                        f"{name}'s {user_precision(precision)} ONNX file")
        reference = manifest["reference"]
        _check_file(model_folder / reference["file"], reference["sha256"], f"{name}'s reference outputs")
        _check_reference_keys(model_folder / reference["file"], manifest_path, reference["batches"])
        models[name] = BundleModel(name, model_folder, manifest)
    if not models:
        raise UserError(f"the bundle {folder} holds no model; export some with --bundle {folder} --models ...")
    seeds = {name: model.seed for name, model in models.items()}
    if len(set(seeds.values())) > 1:
        raise UserError(f"the models of {folder} were exported with different seeds ("
                        f"{', '.join(f'{n}: {s}' for n, s in seeds.items())}), so their reference inputs differ: "
                        f"{EXPORT_AGAIN} (one --seed for the whole bundle)")
    return Bundle(folder.resolve(), meta, models)


def read_meta(folder: Path, path_text: str) -> dict[str, Any]:
    """bundle.json of `folder`, checked: an object of this format naming its models' folders."""
    meta_path = folder / BUNDLE_FILE
    if not meta_path.is_file():
        raise UserError(f"'{path_text}' is not a bundle (no {BUNDLE_FILE}); make one with "
                        "python -m harness export --bundle DIR --models ...")
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path} holds a JSON {_json_type(meta)}, not a bundle's description: {EXPORT_AGAIN}")
    if meta.get("format") != FORMAT:
        raise UserError(f"{meta_path} has bundle format {meta.get('format')}; this harness reads format {FORMAT}: "
                        "export the bundle again with this version")
    models = meta.get("models")
    if not isinstance(models, list) or not all(_plain_name(name) for name in models):
        raise UserError(f"{meta_path} does not list its models as folder names ('models'): {EXPORT_AGAIN}")
    return meta


def manifest_problem(manifest: Any) -> str | None:
    """What makes `manifest` unreadable to the board (a missing or mistyped field), or None."""
    if not isinstance(manifest, dict):
        return f"a JSON {_json_type(manifest)} instead of an object"
    files, reference, shape = manifest.get("files"), manifest.get("reference"), manifest.get("input")
    if not isinstance(files, dict) or not files:
        return "no 'files'"
    for precision, entry in files.items():
        if not (isinstance(entry, dict) and _plain_name(entry.get("path")) and isinstance(entry.get("sha256"), str)):
            return f"'files.{precision}' lacks a file name or its hash"
    if not isinstance(shape, dict) or not isinstance(shape.get("dtype"), str) or not _is_shape(shape.get("shape")):
        return "no 'input' shape and dtype"
    if not isinstance(manifest.get("summary"), dict):
        return "no 'summary'"
    return _reference_problem(reference)


def _reference_problem(reference: Any) -> str | None:
    """What is wrong with a manifest's 'reference' part, or None."""
    if not (isinstance(reference, dict) and _plain_name(reference.get("file"))
            and isinstance(reference.get("sha256"), str) and isinstance(reference.get("runtime"), str)):
        return "no 'reference' file, hash and runtime"
    seed = reference.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"the reference seed {seed!r} is not a whole number"
    batches = reference.get("batches")
    if not isinstance(batches, dict) or not batches:
        return "no reference batch sizes"
    for batch, entry in batches.items():
        if not (str(batch).isdigit() and int(batch) > 0 and isinstance(entry, dict)
                and isinstance(entry.get("input_sha256"), str) and isinstance(entry.get("outputs_key"), str)):
            return f"the reference at batch size {batch!r} lacks its input hash or outputs key"
    return None


def _is_shape(shape: Any) -> bool:
    """A list of positive whole numbers, None for a dynamic dimension."""
    return isinstance(shape, list) and bool(shape) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape)


def _plain_name(name: Any) -> bool:
    """A file or folder name inside the bundle: no path separators, not '.' or '..'."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "true/false"}.get(type(value), "null")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: copy the whole bundle folder, or export it again") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({exc}): copy the bundle again; if that does not help, "
                        f"{EXPORT_AGAIN}") from None


def _check_reference_keys(path: Path, manifest_path: Path, batches: dict[str, dict[str, str]]) -> None:
    """Every reference batch of the manifest has its outputs in the reference file."""
    try:
        with np.load(path) as stored:
            keys = set(stored.files)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({exc}): {EXPORT_AGAIN}") from None
    missing = sorted(b for b, entry in batches.items() if entry["outputs_key"] not in keys)
    if missing:
        raise UserError(f"{manifest_path} names reference outputs at batch size {', '.join(missing)} that {path.name} "
                        f"lacks: {EXPORT_AGAIN}")


def _check_file(path: Path, sha256: str, what: str) -> None:
    if not path.is_file():
        raise UserError(f"{what} ({path}) is missing: copy the whole bundle folder again")
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise UserError(f"{what} ({path}) cannot be read ({exc.strerror or exc}): copy the bundle again") from None
    if digest != sha256:
        raise UserError(f"{what} ({path}) does not match the hash in its manifest (damaged or changed in the copy, "
                        f"or its export was cut short): copy the bundle again; if that does not help, {EXPORT_AGAIN}")


# ---------------------------------------------------------------- writing (on the workstation)

def reference_inputs(batch_sizes: list[int], shape: list[int], seed: int) -> dict[int, str]:
    """The hash of the seeded input at each reference batch size."""
    return {b: input_sha256(make_inputs([b, *shape[1:]], seed)) for b in batch_sizes}


def onnx_file_name(precision: str) -> str:
    return f"model-{precision}.onnx"


def write_model(bundle_dir: Path, name: str, manifest: dict[str, Any], onnx_files: dict[str, Path],
                outputs: dict[int, list[np.ndarray]]) -> Path:
    """The model's ONNX files, reference outputs and manifest, replaced together (see the module's docstring);
    ONNX files of precisions the model no longer has are removed afterwards. Reference outputs: the first of a
    batch size's under bs<N>, any others under bs<N>.1, bs<N>.2, ..."""
    folder = bundle_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []  # (written beside, final name)
    try:
        files = {}
        for precision, source in onnx_files.items():
            target = folder / onnx_file_name(precision)
            staged.append((_beside(target), target))
            shutil.copyfile(source, staged[-1][0])
            files[precision] = {**manifest["files"][precision], "path": target.name,
                                "sha256": sha256_of(staged[-1][0]), "bytes": staged[-1][0].stat().st_size}
        reference_path = folder / REFERENCE_FILE
        staged.append((_beside(reference_path), reference_path))
        staged[-1][0].write_bytes(_npz_bytes({f"bs{b}" + (f".{n}" if n else ""): array.astype(np.float32)
                                              for b, arrays in outputs.items() for n, array in enumerate(arrays)}))
        reference = {**manifest["reference"], "file": REFERENCE_FILE, "sha256": sha256_of(staged[-1][0])}
        staged.append((_beside(folder / MANIFEST), folder / MANIFEST))
        staged[-1][0].write_text(json.dumps({**manifest, "format": FORMAT, "files": files, "reference": reference},
                                            indent=2, default=str))
        with _interrupts_held():
            for written, target in staged:
                os.replace(written, target)
    finally:
        for written, _ in staged:
            written.unlink(missing_ok=True)
    kept = {entry["path"] for entry in files.values()}
    for old in folder.glob(onnx_file_name("*")):
        if old.name not in kept:
            old.unlink(missing_ok=True)
    return folder


def write_meta(bundle_dir: Path, meta: dict[str, Any]) -> None:
    """bundle.json: the models it holds now (models exported into it before are kept)."""
    path = bundle_dir / BUNDLE_FILE
    with _locked(bundle_dir / LOCK_FILE):  # read, add, write: two exports at once must not drop each other's models
        before = read_meta(bundle_dir, str(bundle_dir)) if path.is_file() else {}
        models = sorted(set(before.get("models", [])) | set(meta["models"]))
        _write_json(path, {**before, **meta, "format": FORMAT, "models": models,
                           "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (made if missing) while the block runs; waits for another holder."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _beside(path: Path) -> Path:
    """Where `path`'s new content is written before it is renamed over `path` (same folder: same file system)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C waits until the block is done (renames take microseconds), then interrupts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def _write_json(path: Path, value: dict[str, Any]) -> None:
    written = _beside(path)
    try:
        written.write_text(json.dumps(value, indent=2, default=str))
        os.replace(written, path)
    finally:
        written.unlink(missing_ok=True)
