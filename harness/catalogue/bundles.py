"""Bundles: what a board needs to measure and check models without torch, made on a workstation.

A bundle is a folder that can be copied as it is (rsync, scp):

    DIR/bundle.json              what made it: harness version, profile, opset, seed, models, precisions
    DIR/<model>/manifest.json    one small file per model: the catalogue entry, published and measured
                                 figures with their sources, complexity, weights, file hashes, reference
    DIR/<model>/model-<precision>.onnx
    DIR/<model>/reference.npz    PyTorch eager fp32 outputs (CPU) on seeded inputs, at batch 1 and the
                                 largest planned batch

The reference inputs are not stored: the board regenerates them from the seed (harness.measure.inputs)
and checks them against the hash in the manifest, so a bundle stays small.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from exporters.store import sha256_of
from harness.errors import UserError
from harness.measure.inputs import input_sha256, make_inputs
from harness.protocol import OnnxModel

BUNDLE_FILE = "bundle.json"
MANIFEST = "manifest.json"
REFERENCE_FILE = "reference.npz"
FORMAT = 1


@dataclass(frozen=True)
class BundleModel:
    """One model of a bundle, as the board reads it."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def precisions(self) -> list[str]:
        return sorted(self.manifest["files"])

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

    def reference_outputs(self, batch_size: int) -> dict[str, Any] | None:
        """Where the board finds the reference outputs for `batch_size`, and the hash its inputs must have."""
        batch = self.manifest["reference"]["batches"].get(str(batch_size))
        if batch is None:
            return None
        return {"file": str(self.folder / self.manifest["reference"]["file"]), "key": batch["outputs_key"],
                "input_sha256": batch["input_sha256"], "seed": self.seed,
                "source": self.manifest["reference"]["runtime"]}

    def request_model(self, precision: str) -> OnnxModel:
        path = self.onnx_path(precision)
        if path is None:
            raise UserError(f"the bundle has no {precision} file for {self.name} (it has "
                            f"{', '.join(self.precisions)}): export it with --precision {precision}")
        return OnnxModel(name=self.name, onnx_path=str(path), input_shape=[d or 1 for d in self.input_shape],
                         input_dtype=self.manifest["input"]["dtype"])

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
    meta_path = folder / BUNDLE_FILE
    if not meta_path.is_file():
        raise UserError(f"'{path_text}' is not a bundle (no {BUNDLE_FILE}); make one with "
                        "python -m harness export --bundle DIR --models ...")
    meta = _read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{meta_path} has bundle format {meta.get('format')}; this harness reads format {FORMAT}: "
                        "export the bundle again with this version")
    models = {}
    for name in meta.get("models", []):
        model_folder = folder / name
        manifest = _read_json(model_folder / MANIFEST)
        for precision, entry in manifest["files"].items():
            _check_file(model_folder / entry["path"], entry["sha256"], f"{name}'s {precision} ONNX file")
        reference = manifest["reference"]
        _check_file(model_folder / reference["file"], reference["sha256"], f"{name}'s reference outputs")
        models[name] = BundleModel(name, model_folder, manifest)
    if not models:
        raise UserError(f"the bundle {folder} holds no model; export some with --bundle {folder} --models ...")
    return Bundle(folder.resolve(), meta, models)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: copy the whole bundle folder, or export it again") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({exc}): copy the bundle again") from None


def _check_file(path: Path, sha256: str, what: str) -> None:
    if not path.is_file():
        raise UserError(f"{what} ({path}) is missing: copy the whole bundle folder again")
    if sha256_of(path) != sha256:
        raise UserError(f"{what} ({path}) does not match the hash in its manifest (damaged or changed in the "
                        "copy): copy the bundle again")


# ---------------------------------------------------------------- writing (on the workstation)

def reference_inputs(batch_sizes: list[int], shape: list[int], seed: int) -> dict[int, str]:
    """The hash of the seeded input at each reference batch size."""
    return {b: input_sha256(make_inputs([b, *shape[1:]], seed)) for b in batch_sizes}


def write_model(bundle_dir: Path, name: str, manifest: dict[str, Any], onnx_files: dict[str, Path],
                outputs: dict[int, np.ndarray]) -> Path:
    """Copy the ONNX files and write the reference outputs and the manifest (last, atomically)."""
    folder = bundle_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for precision, source in onnx_files.items():
        target = folder / f"model-{precision}.onnx"
        shutil.copyfile(source, target)
        files[precision] = {**manifest["files"][precision], "path": target.name, "sha256": sha256_of(target),
                            "bytes": target.stat().st_size}
    reference_path = folder / REFERENCE_FILE
    np.savez(reference_path, **{f"bs{b}": array.astype(np.float32) for b, array in outputs.items()})
    reference = {**manifest["reference"], "file": REFERENCE_FILE, "sha256": sha256_of(reference_path)}
    _write_json(folder / MANIFEST, {**manifest, "format": FORMAT, "files": files, "reference": reference})
    return folder


def write_meta(bundle_dir: Path, meta: dict[str, Any]) -> None:
    """bundle.json: the models it holds now (models exported into it before are kept)."""
    path = bundle_dir / BUNDLE_FILE
    before = json.loads(path.read_text()) if path.is_file() else {}
    models = sorted(set(before.get("models", [])) | set(meta["models"]))
    _write_json(path, {**before, **meta, "format": FORMAT, "models": models,
                       "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)

