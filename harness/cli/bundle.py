"""`export --bundle DIR`: ONNX files, reference outputs and one manifest per model, for a board without torch.

Two sweeps of jobs, as every command runs them (fresh processes, progress bar, records): the export of
each model at each precision (at the profile's opset), then PyTorch eager fp32 on the CPU at batch 1 and
at the largest planned batch size on seeded inputs (the reference cells of `verify`). Then each model whose
files were made is written into the bundle; a model whose export failed is reported and left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.catalogue import bundles
from harness.catalogue.registry import Catalogue
from harness.cli.common import (check_common, check_precisions, check_sources, check_weights, console, err_console,
                                export_settings, finish, parse_batch_sizes, run_sweep, writable_dir)
from harness.cli.tables import export_table
from harness.cell.worker import reference_outputs_path
from harness.errors import UserError
from harness.measure.inputs import GENERATOR
from harness.measure.timing import QUICK
from harness.paths import cache_dir
from harness.records import as_records
from harness.reports.check import load_profile
from harness.sweep.planning import EXPORT, REFERENCE, Cell, plan_cells
from harness.sweep.sweep import BenchSettings, Sweep, catalogue_subjects, new_run_id

REFERENCE_DEVICE = "cpu"


def bundle_opset(args: argparse.Namespace) -> tuple[int, str | None]:
    """The opset to export at, and a note when the profile lowered it."""
    if not args.profile:
        return args.opset, None
    profile = load_profile(args.profile)
    limit = profile.onnx_max_opset
    if limit is None or args.opset <= limit:
        return args.opset, None
    return limit, (f"opset {limit}: the newest {profile.name}'s TensorRT {profile.tensorrt or ''} parses "
                   f"({profile.onnx_max_opset_source or 'profile'}); --opset {args.opset} lowered")


def command_export_bundle(args: argparse.Namespace, catalogue: Catalogue) -> int:
    precisions = check_precisions(args.precision)
    batch_sizes = parse_batch_sizes(args.batch_sizes or "1")
    args.opset, note = bundle_opset(args)
    check_common(args)
    bundle_dir = check_bundle_dir(args.bundle)
    specs = catalogue.select(args.models)
    check_sources(specs)
    weights = check_weights(args.weights)
    subjects = catalogue_subjects(specs)
    if note:
        console.print(note)
    logs = Path(cache_dir()) / "export-logs"
    exported = _run(Sweep(logs, new_run_id(), subjects, BenchSettings(
        policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="export",
        export=export_settings(args))), plan_cells(list(subjects), [EXPORT], precisions, [1], "cpu"), "exporting")
    if exported is None:
        return 130
    made = _files_by_model(exported, precisions)
    reference_batches = sorted({1, max(batch_sizes)})
    references = [Cell(model, *REFERENCE, batch, REFERENCE_DEVICE) for model in made for batch in reference_batches]
    sweep = Sweep(logs, new_run_id(), {m: subjects[m] for m in made}, BenchSettings(
        policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="parity",
        export=export_settings(args)))
    referenced = _run(sweep, references, "reference outputs") if references else []
    if referenced is None:
        return 130
    written = []
    for model, files in made.items():
        outputs = {b: reference_outputs_path(sweep.run_dir, Cell(model, *REFERENCE, b, REFERENCE_DEVICE))
                   for b in reference_batches}
        if not all(path.is_file() for path in outputs.values()):
            continue  # its reference cell failed: its record says why
        manifest = _manifest(model, files, subjects[model].spec, reference_batches, args)
        bundles.write_model(bundle_dir, model, manifest, {p: _in_cache(r) for p, r in files.items()},
                            {b: np.load(path) for b, path in outputs.items()})
        written.append(model)
    bundles.write_meta(bundle_dir, {"harness": __version__, "profile": args.profile, "opset": args.opset,
                                    "seed": args.seed, "precisions": precisions, "weights": weights,
                                    "reference_batch_sizes": reference_batches, "models": written})
    records = as_records(exported) + as_records(referenced)
    console.print(export_table(as_records(exported)))
    console.print(f"bundle {bundle_dir}: {len(written)} of {len(subjects)} models "
                  f"({', '.join(written) or 'none'}); copy the folder to the board as it is (rsync -a, scp -r)")
    return finish(records, sweep.records_path)


def check_bundle_dir(path_text: str) -> Path:
    """A folder a bundle can be written to: new, empty, or a bundle already (models are added to it)."""
    folder = Path(path_text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--bundle '{path_text}' is a file; pass a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / bundles.BUNDLE_FILE).is_file():
        raise UserError(f"--bundle '{path_text}' is a folder that holds other files; pass a new or empty folder "
                        "(or an existing bundle, to add models to it)")
    problem = writable_dir(folder)
    if problem:
        raise UserError(f"cannot write to --bundle '{path_text}': {problem}")
    return folder.resolve()


def _run(sweep: Sweep, cells: list[Cell], verb: str) -> list[dict[str, Any]] | None:
    records = run_sweep(sweep, cells, verb)
    if records is None:
        err_console.print("run the same export command again to go on: finished files are cached")
    return records


def _files_by_model(exported: list[dict[str, Any]], precisions: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Models with a file at every asked precision: {model: {precision: its export record, as written}}."""
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for record in exported:
        if record["status"] == "ok" and record.get("prepared", {}).get("artifact", {}).get("path"):
            by_model.setdefault(record["cell"]["model"], {})[record["cell"]["precision"]] = record
    return {model: files for model, files in by_model.items() if set(files) == set(precisions)}


def _in_cache(record: dict[str, Any]) -> Path:
    return Path(cache_dir()) / record["prepared"]["artifact"]["path"]


def _manifest(model: str, files: dict[str, dict[str, Any]], spec: Any, batches: list[int],
              args: argparse.Namespace) -> dict[str, Any]:
    first = next(iter(files.values()))
    shape = [None, 3, spec.input_size, spec.input_size]
    hashes = bundles.reference_inputs(batches, [1, *shape[1:]], args.seed)
    artifacts = {p: r["prepared"]["artifact"] for p, r in files.items()}
    return {
        "name": model,
        "exported_by": f"dnn-harness {__version__}",
        "catalogue_entry": spec.model_dump(mode="json"),
        "summary": first["model"],
        "weights": first["prepared"].get("weights"),
        "files": {p: {"precision": p, "opset": a.get("opset"), "exporter": a.get("exporter"),
                      "fallback_reason": a.get("fallback_reason"), "source_sha256": a.get("sha256")}
                  for p, a in artifacts.items()},
        "input": {"name": "input", "shape": shape, "dtype": "float32"},
        "reference": {"runtime": "PyTorch eager fp32 on the CPU (workstation)", "seed": args.seed,
                      "generator": GENERATOR,
                      "batches": {str(b): {"input_shape": [b, *shape[1:]], "input_sha256": hashes[b],
                                           "outputs_key": f"bs{b}"} for b in batches}},
    }
