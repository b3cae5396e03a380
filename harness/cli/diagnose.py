"""The CLI's `diagnose` command: when int8 (or fp16) loses top-1 on real images, find a small set of ONNX nodes to
keep in fp32 that brings the drop within a bound, write that mixed-precision file, and time it beside the fp32 and
the all-lower-precision files.

Steps: the fp32 ONNX file through the export machinery (a prepare job, cached); the evaluation and calibration
crops through the crop cache; the fp32 and all-int8 (all-fp16) files' top-1 answers through the chosen runtime;
McNemar's exact test on the paired per-image outcomes; if the drop is real and over the bound, the search
(harness.diagnose.search) with every trial kept in the run folder (harness.diagnose.trials); the mixed file; the
three files' speeds at batch 1 through a bench sweep of its own (each cell in a process of its own, the quick
policy); a table and diagnosis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from exporters.quantize import CalibrationFeed, QuantizeSpec
from exporters.store import Store, key_of
from harness.accuracy.crop_cache import CropCache, open_crops
from harness.accuracy.layouts import UNLABELLED, LabelledImages, open_images, open_unlabelled
from harness.accuracy.preprocess import normalize, recipe_parts
from harness.catalogue.onnx_files import inspect_onnx
from harness.catalogue.registry import Catalogue, ModelSpec
from harness.cells import Cell
from harness.cli.accuracy import _calibration_apart, _decoded, check_trained_weights
from harness.cli.calibration import contents_sha256, files_sha256
from harness.cli.common import (add_export_options, add_runtime_options, check_common, check_out_dir,
                                check_runtimes, check_sources, console, device_help, err_console, export_settings,
                                progress_bar, run_sweep, runtime_options)
from harness.diagnose.search import SearchResult, smallest_fp32_set
from harness.diagnose.sensitivity import rank_nodes, weight_sqnr
from harness.diagnose.stats import Paired, paired
from harness.diagnose.trials import (Answers, EvaluationImages, Fp16Files, Int8Files, Trial, TrialLog,
                                     quantizable_nodes, run_trial)
from harness.errors import UserError
from harness.measure.timing import QUICK
from harness.paths import cache_dir, write_atomically
from harness.records import latest_records, read_records
from harness.sweep.planning import EXPORT, plan_cells
from harness.sweep.runs import RunLock
from harness.sweep.sweep import BenchSettings, Subject, Sweep, catalogue_subjects, new_run_id
from runtimes.base import ONNX_FILE, RuntimeOptions

PRECISIONS = ("int8", "fp16")
METRICS = ("agreement", "accuracy")
DEFAULT_MAX_DROP = 1.0
DEFAULT_ALPHA = 0.05
DEFAULT_MAX_TRIALS = 60
DEFAULT_BATCH_SIZE = 32
DEFAULT_TIMEOUT_S = 1800.0
SUMMARY_FILE = "diagnosis.json"
EXIT_NOT_RECOVERED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="find the ONNX nodes to keep in fp32 that win back the top-1 int8 (or fp16) loses",
        description="When a lower precision loses top-1 on real images, find a small set of ONNX nodes to "
                    "keep in fp32 that brings the drop within --max-drop, by bisection over the graph's nodes, "
                    "each trial measured on the images (McNemar's exact test says whether a drop is real); write "
                    "that mixed-precision file and time it beside the fp32 and all-lower-precision files.")
    diagnose.add_argument("--models", required=True, metavar="NAME", help="one catalogue model")
    diagnose.add_argument("--runtime", default="ort", metavar="NAME",
                          help="the runtime whose answers are compared (default ort; ov; trt on a GPU)")
    diagnose.add_argument("--precision", default="int8", metavar="P",
                          help="int8 (default: needs --calibration DATA or --split) or fp16")
    diagnose.add_argument("--data", required=True, metavar="PATH",
                          help="real images to compare answers on: a folder (labels optional: class folders, or a "
                               "flat folder with --labels) or a CSV")
    diagnose.add_argument("--labels", metavar="FILE", help="ground truth of a flat folder (as in `accuracy`)")
    diagnose.add_argument("--split", action="store_true",
                          help="int8: divide --data into disjoint seeded halves, one to calibrate on and one to "
                               "evaluate (instead of --calibration)")
    diagnose.add_argument("--per-tensor", action="store_true",
                          help="int8: one weight scale per tensor instead of per output channel (onnxruntime "
                               "quantize_static's default, and what some accelerators take)")
    diagnose.add_argument("--metric", choices=METRICS, default="agreement",
                          help="agreement (default): top-1 agreement with the fp32 file, image by image; accuracy: "
                               "top-1 against the labels (--data must have them)")
    diagnose.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP, metavar="POINTS",
                          help=f"points of the metric the mixed file may lose against fp32 (default "
                               f"{DEFAULT_MAX_DROP:g})")
    diagnose.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                          help=f"significance level of McNemar's test: a drop with p >= alpha is not real and "
                               f"nothing is searched (default {DEFAULT_ALPHA:g})")
    diagnose.add_argument("--max-trials", type=int, default=DEFAULT_MAX_TRIALS, metavar="N",
                          help=f"files made and evaluated by the search at most (default {DEFAULT_MAX_TRIALS})")
    diagnose.add_argument("--weights", default="pretrained",
                          help="pretrained (default) or a state-dict path; random weights are refused")
    diagnose.add_argument("--limit", type=int, metavar="N", help="evaluate N images (a seeded shuffle's first N)")
    diagnose.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                          help=f"images per inference while answering (default {DEFAULT_BATCH_SIZE})")
    diagnose.add_argument("--speed", choices=("on", "off"), default="on",
                          help="on (default): time the fp32, all-lower-precision and mixed files at batch 1; off")
    diagnose.add_argument("--device", default="cpu", help=device_help())
    diagnose.add_argument("--threads", type=int, metavar="N", help="intra-op CPU threads of the runtime")
    diagnose.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                          help="processes decoding images (default: one per CPU)")
    diagnose.add_argument("--seed", type=int, default=0, help="seed of --split and --limit (default 0)")
    diagnose.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                          help=f"seconds for the export and for each timed file (default {DEFAULT_TIMEOUT_S:.0f})")
    diagnose.add_argument("--out", default="results", metavar="DIR", help="parent of the run folder (default results/)")
    diagnose.add_argument("--run-id", metavar="ID",
                          help="name of the run folder (default: the model, runtime, precision and a hash of "
                               "everything the answers depend on, so that the same command resumes it)")
    add_runtime_options(diagnose)
    add_export_options(diagnose)


# ---------------------------------------------------------------- checks

def _check_arguments(args: argparse.Namespace) -> None:
    """One line for each mistake that needs no file read."""
    if args.precision == "fp32":
        raise UserError("--precision fp32 leaves nothing to diagnose: diagnose compares int8 or fp16 with fp32; "
                        "pass --precision int8 or fp16")
    if args.precision not in PRECISIONS:
        raise UserError(f"diagnose takes --precision int8 or fp16, not '{args.precision}'")
    if not args.max_drop >= 0:
        raise UserError(f"bad --max-drop {args.max_drop:g}: give the points the mixed file may lose, 0 or more "
                        "(e.g. 1)")
    if not 0 < args.alpha < 1:
        raise UserError(f"bad --alpha {args.alpha:g}: give a significance level between 0 and 1 (e.g. 0.05)")
    for flag, value in (("--max-trials", args.max_trials), ("--batch-size", args.batch_size),
                        ("--workers", args.workers), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise UserError(f"bad {flag} {value}: give a positive number")
    if args.precision == "fp16" and (args.split or args.calibration or args.per_tensor):
        raise UserError("--split, --calibration and --per-tensor are for --precision int8: fp16 needs no "
                        "calibration; drop them")


def _check_runtime(args: argparse.Namespace) -> None:
    """One ONNX runtime that takes the precision."""
    if "," in args.runtime:
        raise UserError(f"diagnose compares answers through one runtime, not '{args.runtime}': e.g. --runtime ort")
    runtime = check_runtimes([args.runtime])[0]
    if runtime.consumes != ONNX_FILE:
        raise UserError(f"runtime '{args.runtime}' cannot run the quantized ONNX files diagnose makes (it runs "
                        f"{runtime.consumes.replace('-', ' ')}s): pass --runtime ort or ov")
    if args.precision not in runtime.precisions:
        raise UserError(f"runtime '{args.runtime}' does not run {args.precision}: pass --runtime ort")


def _one_model(catalogue: Catalogue, names: str) -> ModelSpec:
    specs = catalogue.select(names)
    if len(specs) != 1:
        raise UserError(f"diagnose takes one model; '{names}' names {len(specs)}: pass one name")
    check_sources(specs)
    return specs[0]


# ---------------------------------------------------------------- images

def _open_data(args: argparse.Namespace) -> LabelledImages:
    """--data with its labels where it has them; for the agreement metric, any folder of images will do."""
    data = Path(args.data)
    try:
        return open_images(data, Path(args.labels) if args.labels else None)
    except UserError:
        if args.metric == "accuracy" or args.labels:
            raise
        return open_unlabelled(data, "--data")


@dataclass(frozen=True)
class ImageSets:
    evaluation: EvaluationImages
    evaluation_key: str  # the crop cache's key: the files, their sizes and times, the labels, the geometry
    described: str
    calibration: CalibrationFeed | None
    calibration_identity: dict[str, Any] | None


def _image_sets(args: argparse.Namespace, spec: ModelSpec) -> ImageSets:
    images = _open_data(args)
    evaluated, calibration = _calibration_apart(args, [args.precision], images)
    evaluated = evaluated.limited(args.limit, args.seed)
    labelled = all(label != UNLABELLED for label in evaluated.labels)
    geometry, normalization = recipe_parts(spec.preprocessing.model_dump(), spec.input_size)
    cache = CropCache(cache_dir())
    console.print(f"[bold]data[/bold]: {escape(evaluated.describe())}")
    crop_set = _decoded(cache, evaluated, geometry, args.workers)
    crops, labels, valid = open_crops(crop_set.folder)
    indices = np.flatnonzero(valid)
    evaluation = EvaluationImages(crops, indices, labels[indices].astype(np.int64) if labelled else None,
                                  normalization)
    feed, identity = None, None
    if calibration is not None:
        calibration = replace(calibration, contents_sha256=contents_sha256(calibration))
        console.print(f"[bold]calibration[/bold]: {escape(calibration.describe())}")
        calibration_set = _decoded(cache, calibration, geometry, args.workers)
        cal_crops, _, cal_valid = open_crops(calibration_set.folder)
        feed = CalibrationFeed(cal_crops, np.flatnonzero(cal_valid), lambda batch: normalize(batch, normalization))
        identity = {"method": args.calibration_method, "images": len(calibration),
                    "files_sha256": files_sha256(calibration), "contents_sha256": calibration.contents_sha256,
                    "seed": args.seed, "layout": calibration.layout,
                    "preprocessing": {"geometry": geometry.as_dict(), "normalization": normalization.as_dict()}}
    return ImageSets(evaluation, crop_set.key, evaluated.describe(), feed, identity)


# ---------------------------------------------------------------- the fp32 file

def _fp32_file(args: argparse.Namespace, spec: ModelSpec, weights: str) -> dict[str, Any]:
    """The fp32 ONNX file's artifact (path under the cache, sha256), exported by a prepare job (cached)."""
    subjects = catalogue_subjects([spec])
    cells = plan_cells([spec.name], [EXPORT], ["fp32"], [1], "cpu")
    settings = BenchSettings(policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="export",
                             export=export_settings(args))
    sweep = Sweep(check_out_dir(str(cache_dir() / "export-logs"), "pass --cache-dir DIR"), new_run_id(), subjects,
                  settings)
    if run_sweep(sweep, cells, "exporting", "run the same diagnose command again") is None:
        raise KeyboardInterrupt
    record = read_records(sweep.records_path).typed[-1]
    artifact = record.prepared.artifact
    if record.status != "ok" or not artifact:
        raise UserError(f"{spec.name}: the fp32 ONNX export failed: {record.error}")
    return {**artifact, "path": str(cache_dir() / artifact["path"])}


# ---------------------------------------------------------------- outcomes

@dataclass
class Judge:
    """Turns a file's answers into per-image outcomes and compares them with the fp32 file's."""

    metric: str
    fp32_top1: np.ndarray
    labels: np.ndarray | None
    max_drop: float

    def right(self, top1: list[int] | np.ndarray) -> np.ndarray:
        target = self.fp32_top1 if self.metric == "agreement" else self.labels
        return np.asarray(top1) == target

    def against_fp32(self, trial: Trial) -> Paired:
        return paired(self.right(self.fp32_top1), self.right(trial.top1))

    def passes(self, trial: Trial) -> bool:
        return self.against_fp32(trial).drop_points <= self.max_drop + 1e-9


# ---------------------------------------------------------------- the command

def command_diagnose(args: argparse.Namespace, catalogue: Catalogue) -> int:
    _check_arguments(args)
    _check_runtime(args)
    check_common(args)
    weights = check_trained_weights(args.weights)
    spec = _one_model(catalogue, args.models)
    out_dir = check_out_dir(args.out)
    options = RuntimeOptions(device=args.device, threads=args.threads,
                             extra=runtime_options(args, [args.runtime]).get(args.runtime, {}),
                             input_shapes=((args.batch_size, 3, spec.input_size, spec.input_size),))
    sets = _image_sets(args, spec)
    fp32 = _fp32_file(args, spec, weights)
    runtime_class = check_runtimes([args.runtime])[0]
    flavor = runtime_class.onnx_precision(args.precision) if args.precision == "int8" else None
    identity = _identity(args, spec, fp32, sets, flavor)
    run_id = args.run_id or f"{spec.name}-{args.runtime}-{args.precision}-{key_of(identity)[:8]}"
    run_dir = out_dir / run_id
    lock = RunLock(run_dir)
    lock.acquire()  # one diagnose at a time writes a run folder's trials
    log = TrialLog(run_dir, identity)
    console.print(f"[bold]run folder[/bold]: {run_dir}" + (f" ({log.reused} trials of an earlier run reused)"
                                                            if log.reused else ""))
    store = Store(cache_dir())
    if flavor is not None:
        quantize_spec = QuantizeSpec(model=spec.name, fp32_sha256=fp32["sha256"], method=args.calibration_method,
                                     calibration=sets.calibration_identity or {}, flavor=flavor,
                                     per_channel=not args.per_tensor)
        assert sets.calibration is not None
        feed = sets.calibration
        files: Int8Files | Fp16Files = Int8Files(quantize_spec, Path(fp32["path"]), "input", lambda: feed, store)
    else:
        files = Fp16Files(spec.name, Path(fp32["path"]), store)
    answers = Answers(args.runtime, options, sets.evaluation, args.batch_size)
    try:
        return _diagnose(args, spec, run_dir, log, files, answers, fp32, sets)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: every finished trial is in {log.path}; run the same command again to go on "
                          "from there", highlight=False, soft_wrap=True)
        return 130
    finally:
        lock.release()


def _identity(args: argparse.Namespace, spec: ModelSpec, fp32: dict[str, Any], sets: ImageSets,
              flavor: str | None) -> dict[str, Any]:
    """What every trial's answers depend on: the run folder is named by it, and its trials are reused only with it."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    return {"model": spec.name, "fp32_sha256": fp32["sha256"], "precision": args.precision, "flavor": flavor,
            "per_channel": not args.per_tensor, "calibration": sets.calibration_identity,
            "evaluation_crops": sets.evaluation_key, "runtime": args.runtime, "device": args.device,
            "threads": args.threads, "runtime_options": runtime_options(args, [args.runtime]),
            "batch_size": args.batch_size,
            "versions": {p: installed(p) for p in ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")}}


def _diagnose(args: argparse.Namespace, spec: ModelSpec, run_dir: Path, log: TrialLog, files: Int8Files | Fp16Files,
              answers: Answers, fp32: dict[str, Any], sets: ImageSets) -> int:
    nodes = quantizable_nodes(Path(fp32["path"]))
    names = tuple(name for name, _ in nodes)
    if log.fp32 is None:
        log.set_fp32(_fp32_answers(Path(fp32["path"]), names, answers))
    assert log.fp32 is not None
    judge = Judge(args.metric, np.asarray(log.fp32.top1), sets.evaluation.labels, args.max_drop)
    lowered = _trial((), files, answers, log)
    drop = judge.against_fp32(lowered)
    console.print(f"all-{args.precision}: {_verdict(drop, args.metric)}")
    summary: dict[str, Any] = {"model": spec.name, "runtime": args.runtime, "precision": args.precision,
                               "metric": args.metric, "max_drop_points": args.max_drop, "alpha": args.alpha,
                               "images": drop.images, "data": sets.described, "nodes": len(names),
                               "fp32_file": fp32["path"], "lowered": _row(lowered, judge)}
    if drop.drop_points <= args.max_drop or drop.p_value >= args.alpha:
        why = (f"within --max-drop {args.max_drop:g}" if drop.drop_points <= args.max_drop
               else f"not real: McNemar p = {drop.p_value:.3g} >= --alpha {args.alpha:g}")
        console.print(f"[green]nothing to diagnose[/green]: the drop is {why}; no node needs fp32")
        _write_summary(run_dir, {**summary, "verdict": "no real drop", "why": why})
        return 0
    scores = weight_sqnr(Path(fp32["path"]), names, args.precision, per_channel=not args.per_tensor)
    result = _search(tuple(rank_nodes(scores, names)), files, answers, log, judge, args.max_trials)
    if result.kept is None:
        message = (f"even with all {len(names)} named nodes kept in fp32 the drop is over --max-drop "
                   f"{args.max_drop:g}: the loss is not in the nodes (unnamed nodes, the inputs or outputs), or "
                   "the bound is below the runtime's own noise")
        console.print(f"[red]not recovered[/red]: {message}")
        _write_summary(run_dir, {**summary, "verdict": "not recovered", "why": message})
        return EXIT_NOT_RECOVERED
    mixed = log.get(result.kept)
    assert mixed is not None
    kept = sorted(result.kept, key=names.index)
    mixed_path = _keep_file(Path(mixed.file), run_dir / f"{spec.name}-{args.precision}-mixed.onnx")
    ops = dict(nodes)
    console.print(f"[bold]kept in fp32[/bold] ({len(kept)} of {len(names)} nodes, {result.trials} trials"
                  f"{'' if result.complete else '; the search stopped at --max-trials, so it may not be minimal'}): "
                  + ", ".join(f"{name} ({ops[name]})" for name in kept), highlight=False, soft_wrap=True)
    speeds = _speeds(args, spec, run_dir, {"fp32": Path(fp32["path"]), args.precision: Path(lowered.file),
                                           "mixed": mixed_path}) if args.speed == "on" else {}
    rows = {"fp32": log.fp32, args.precision: lowered, "mixed": mixed}
    console.print(_table(rows, judge, speeds, args, len(names)))
    console.print(f"mixed-precision file: {mixed_path}", highlight=False, soft_wrap=True)
    _write_summary(run_dir, {**summary, "verdict": "recovered", "kept_in_fp32": [
        {"name": name, "op_type": ops[name], "weight_sqnr_db": scores[name]} for name in kept], "search": {
        "trials": result.trials, "complete": result.complete, "reused": log.reused, "max_trials": args.max_trials},
        "mixed": _row(mixed, judge), "mixed_file": str(mixed_path), "median_ms_batch1": speeds})
    return 0


def _fp32_answers(path: Path, names: tuple[str, ...], answers: Answers) -> Trial:
    """The fp32 file's answers, as a trial keeping every node."""
    import time

    from exporters.store import sha256_of

    start = time.perf_counter()
    top1 = answers.top1(path, "fp32")
    return Trial(names, [int(v) for v in top1], str(path), sha256_of(path), 0.0, time.perf_counter() - start)


def _trial(kept: tuple[str, ...], files: Int8Files | Fp16Files, answers: Answers, log: TrialLog) -> Trial:
    """The trial for `kept`, from the log or made now (and logged)."""
    found = log.get(kept)
    if found is not None:
        return found
    trial = run_trial(kept, files, answers)
    log.add(trial)
    return trial


def _search(names: tuple[str, ...], files: Int8Files | Fp16Files, answers: Answers, log: TrialLog, judge: Judge,
            max_trials: int) -> SearchResult:
    with progress_bar(console) as progress:
        task = progress.add_task("searching", total=max_trials)

        def passes(kept: tuple[str, ...]) -> bool:
            progress.update(task, description=f"trying {len(kept)} of {len(names)} nodes in fp32")
            trial = _trial(kept, files, answers, log)
            progress.advance(task)
            return judge.passes(trial)

        result = smallest_fp32_set(names, passes, max_trials)
        progress.update(task, total=result.trials, description=f"{result.trials} trials")
    return result


def _keep_file(source: Path, target: Path) -> Path:
    """A copy of a cached file in the run folder (written beside it, then renamed into place)."""
    staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, staged)
    staged.replace(target)
    return target


def _speeds(args: argparse.Namespace, spec: ModelSpec, run_dir: Path,
            paths: dict[str, Path]) -> dict[str, float | None]:
    """Median ms at batch 1 of each file, by a bench sweep of the harness (a cell per file, each in a process of its
    own, the quick policy), in a sub-run named by the files' hashes: a re-run reuses it."""
    from exporters.store import sha256_of

    folder = run_dir / "files"
    linked = {label: _linked(path, folder / f"{spec.name}-{label}.onnx") for label, path in paths.items()}
    subjects = {path.stem: Subject(onnx_file=inspect_onnx(str(path))) for path in linked.values()}
    precision_of = {"fp32": "fp32", args.precision: args.precision, "mixed": args.precision}
    cells = [Cell(path.stem, args.runtime, precision_of[label], 1, args.device) for label, path in linked.items()]
    settings = BenchSettings(policy=QUICK, threads=args.threads, timeout_s=args.timeout, seed=args.seed,
                             energy=False, runtime_options=runtime_options(args, [args.runtime]))
    sub_run = "speed-" + key_of({label: sha256_of(path) for label, path in linked.items()})[:8]
    sweep = Sweep(run_dir, sub_run, subjects, settings)
    if run_sweep(sweep, cells, "timing", "run the same diagnose command again") is None:
        raise KeyboardInterrupt
    records = {r.cell.model: r for r in latest_records(read_records(sweep.records_path).typed)}
    speeds: dict[str, float | None] = {}
    for label, path in linked.items():
        record = records.get(path.stem)
        ok = record is not None and record.status == "ok" and record.timing is not None
        speeds[label] = record.timing.host.median_ms if ok and record.timing else None
        if not ok:
            err_console.print(f"[yellow]{label}: not timed ({record.status if record else 'no record'}: "
                              f"{escape(str(record.error if record else ''))})[/yellow]", soft_wrap=True)
        elif record is not None and record.validity is not None and not record.validity.valid:
            console.print(f"[yellow]{label}: timing invalid ({escape('; '.join(record.validity.reasons))}): a busy "
                          "machine; time it again with bench --thorough[/yellow]", soft_wrap=True)
    console.print(f"timings: {sweep.records_path}", highlight=False, soft_wrap=True)
    return speeds


def _linked(source: Path, target: Path) -> Path:
    """`target` names `source` (a hard link where the file system allows, else a copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if target.samefile(source):
            return target
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        _keep_file(source, target)
    return target


# ---------------------------------------------------------------- output

def _verdict(drop: Paired, metric: str) -> str:
    what = "agreement with fp32" if metric == "agreement" else "top-1 accuracy"
    return (f"{what} {100 * drop.other_right / drop.images:.1f} % vs {100 * drop.reference_right / drop.images:.1f} "
            f"% ({drop.drop_points:+.1f} points lost; images worse {drop.worse}, better {drop.better}; McNemar "
            f"p = {drop.p_value:.3g})")


def _row(trial: Trial, judge: Judge) -> dict[str, Any]:
    top1 = np.asarray(trial.top1)
    row: dict[str, Any] = {"kept_in_fp32": len(trial.kept), "file": trial.file, "file_sha256": trial.file_sha256,
                           "agreement_top1": float((top1 == judge.fp32_top1).mean()),
                           "against_fp32": judge.against_fp32(trial).as_dict()}
    if judge.labels is not None:
        row["top1_accuracy"] = float((top1 == judge.labels).mean())
    return row


def _table(rows: dict[str, Trial], judge: Judge, speeds: dict[str, float | None], args: argparse.Namespace,
           nodes: int) -> Table:
    table = Table(title=f"diagnose {args.models} on {args.runtime} {args.precision}: {len(judge.fp32_top1)} images")
    for column in ("file", "nodes in fp32", "top-1 agreement with fp32", *(("top-1 accuracy",) if
                   judge.labels is not None else ()), "vs fp32 (worse/better)", "McNemar p", "median ms, batch 1"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for label, trial in rows.items():
        top1 = np.asarray(trial.top1)
        against = judge.against_fp32(trial)
        speed = speeds.get(label)
        reference = label == "fp32"
        table.add_row(label if label != args.precision else f"all-{label}",
                      f"{nodes if reference else len(trial.kept)} of {nodes}",
                      f"{100 * float((top1 == judge.fp32_top1).mean()):.1f} %",
                      *((f"{100 * float((top1 == judge.labels).mean()):.1f} %",) if judge.labels is not None else ()),
                      "-" if reference else f"{against.worse}/{against.better}",
                      "-" if reference else f"{against.p_value:.3g}",
                      "-" if speed is None else f"{speed:.2f}")
    return table


def _write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_atomically(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str))
    console.print(f"summary: {run_dir / SUMMARY_FILE}", highlight=False, soft_wrap=True)
