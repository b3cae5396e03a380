"""`export --bundle DIR`: ONNX files, reference outputs and one manifest per model, for a board without torch.

Two sweeps of jobs, as every command runs them (fresh processes, progress bar, records): the export of
each model at each precision (at the profile's opset), then PyTorch eager fp32 on the CPU at batch 1 and
at the largest planned batch size on seeded inputs (the reference cells of `verify`). Then each model whose
files were made is written into the bundle; a model whose export failed is reported and left out.
"""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any, Callable


from harness import __version__
from harness.catalogue import bundles
from harness.catalogue.registry import Catalogue
from harness.cell.worker import load_outputs, reference_outputs_path
from harness.cli.accuracy import crop_sets
from harness.cli.calibration import calibration_images, calibration_settings
from harness.cli.common import (EXPORT_AGAIN, check_common, check_precisions, check_sources, check_weights, console,
                                err_console, export_settings, finish, parse_batch_sizes, run_sweep, writable_dir)
from harness.cli.tables import export_table
from harness.errors import UserError
from harness.execution.executor import StorageFailed
from harness.measure.inputs import GENERATOR
from harness.measure.timing import QUICK
from harness.paths import cache_dir
from harness.records import as_records
from harness.profiles import load_profile
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
    """`export --bundle DIR`; Ctrl-C anywhere is one line and exit 130, the bundle as it was or with the models
    finished so far (each replaced whole), and a full disk one line naming it."""
    try:
        return _export_bundle(args, catalogue)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {args.bundle} keeps each model as it was or as exported now, never half "
                          "of each; run the same export command again to go on (finished files are cached)",
                          highlight=False, soft_wrap=True)  # one line, however narrow the terminal or pipe
        return 130


def _export_bundle(args: argparse.Namespace, catalogue: Catalogue) -> int:
    precisions = check_precisions(args.precision)
    if "bf16" in precisions:
        raise UserError("bf16 has no ONNX file of its own (ov reads the fp32 file with a bf16 hint): bundle "
                        "--precision fp32")
    files_wanted = bundles.onnx_precisions(precisions)
    batch_sizes = parse_batch_sizes(args.batch_sizes or "1")
    args.opset, note = bundle_opset(args)
    check_common(args)
    bundle_dir = check_bundle_dir(args.bundle, args.seed)
    specs = catalogue.select(args.models)
    check_sources(specs)
    weights = check_weights(args.weights)
    images = calibration_images(args, precisions)
    subjects = catalogue_subjects(specs)
    if note:
        console.print(note)
    export = export_settings(args, calibration_settings(args, images, specs, crop_sets) if images is not None else None)
    logs = Path(cache_dir()) / "export-logs"
    exported = _run(Sweep(logs, new_run_id(), subjects, BenchSettings(
        policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="export", export=export)),
        plan_cells(list(subjects), [EXPORT], files_wanted, [1], "cpu"), "exporting")
    if exported is None:
        return 130
    made = _files_by_model(exported, files_wanted)
    reference_batches = sorted({1, max(batch_sizes)})
    references = [Cell(model, *REFERENCE, batch, REFERENCE_DEVICE) for model in made for batch in reference_batches]
    sweep = Sweep(logs, new_run_id(), {m: subjects[m] for m in made}, BenchSettings(
        policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="parity",
        export=export_settings(args)))
    referenced = _run(sweep, references, "reference outputs") if references else []
    if referenced is None:
        return 130
    meta = {"harness": __version__, "profile": args.profile, "opset": args.opset, "seed": args.seed,
            "precisions": precisions, "weights": weights, "reference_batch_sizes": reference_batches}
    written = _write_models(bundle_dir, made, subjects, reference_batches, sweep, args, meta)
    records = as_records(exported) + as_records(referenced)
    console.print(export_table(as_records(exported)))
    console.print(f"bundle {bundle_dir}: {len(written)} of {len(subjects)} models "
                  f"({', '.join(written) or 'none'}); copy the folder to the board as it is (rsync -a, scp -r)")
    return finish(records, sweep.records_path)


def _write_models(bundle_dir: Path, made: dict[str, dict[str, dict[str, Any]]], subjects: dict[str, Any],
                  reference_batches: list[int], sweep: Sweep, args: argparse.Namespace,
                  meta: dict[str, Any]) -> list[str]:
    """Each model whose files and reference outputs were made, written into the bundle; their names.
    bundle.json is written first and after each model, so that a bundle cut short is a bundle of the models
    finished (an export into it goes on)."""
    _write(bundles.write_meta, bundle_dir, {**meta, "models": []})
    written = []
    for model, files in made.items():
        outputs = {b: reference_outputs_path(sweep.run_dir, Cell(model, *REFERENCE, b, REFERENCE_DEVICE))
                   for b in reference_batches}
        if not all(path.is_file() for path in outputs.values()):
            continue  # its reference cell failed: its record says why
        manifest = _manifest(model, files, subjects[model].spec, reference_batches, args)
        _write(bundles.write_model, bundle_dir, model, manifest, {p: _in_cache(r) for p, r in files.items()},
               {b: load_outputs(path) for b, path in outputs.items()})
        _write(bundles.write_meta, bundle_dir, {**meta, "models": [model]})
        written.append(model)
    return written


def _write(write: Callable[..., Any], bundle_dir: Path, *args: Any) -> None:
    """`write(bundle_dir, *args)`; a file system that refuses (full disk, gone) is one line naming the bundle."""
    try:
        write(bundle_dir, *args)
    except OSError as exc:
        what = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        fix = "make room, then run" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "run"
        raise StorageFailed(f"cannot write the bundle {bundle_dir} ({what}); the model being written is left as "
                            f"it was: {fix} the same export command again") from None


def check_bundle_dir(path_text: str, seed: int) -> Path:
    """A folder a bundle can be written to: new, empty, or a bundle already (models are added to it) made with
    the same seed, so that every model's reference inputs are those the board regenerates from one seed."""
    folder = Path(path_text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--bundle '{path_text}' is a file; pass a folder")
    others = folder.is_dir() and any(entry.name != bundles.LOCK_FILE for entry in folder.iterdir())
    if others and not (folder / bundles.BUNDLE_FILE).is_file():
        raise UserError(f"--bundle '{path_text}' is a folder that holds other files; pass a new or empty folder "
                        "(or an existing bundle, to add models to it)")
    if (folder / bundles.BUNDLE_FILE).is_file():
        meta = bundles.read_meta(folder, path_text)
        if meta["models"] and meta.get("seed") != seed:
            raise UserError(f"the bundle '{path_text}' was exported with --seed {meta.get('seed')} and a bundle has "
                            f"one seed (the board regenerates its inputs from it): add models with --seed "
                            f"{meta.get('seed')}, or export into a new folder")
    problem = writable_dir(folder)
    if problem:
        raise UserError(f"cannot write to --bundle '{path_text}': {problem}")
    return folder.resolve()


def _run(sweep: Sweep, cells: list[Cell], verb: str) -> list[dict[str, Any]] | None:
    records = run_sweep(sweep, cells, verb, EXPORT_AGAIN)
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
                      "fallback_reason": a.get("fallback_reason"), "source_sha256": a.get("sha256"),
                      **({"quantization": a["quantization"]} if a.get("quantization") else {})}
                  for p, a in artifacts.items()},
        "input": {"name": "input", "shape": shape, "dtype": "float32"},
        "reference": {"runtime": "PyTorch eager fp32 on the CPU (workstation)", "seed": args.seed,
                      "generator": GENERATOR,
                      "batches": {str(b): {"input_shape": [b, *shape[1:]], "input_sha256": hashes[b],
                                           "outputs_key": f"bs{b}"} for b in batches}},
    }
