"""The CLI's `accuracy` command: labelled images -> cached crops per recipe -> one cell per model x
runtime x precision (PyTorch eager fp32 first, as the reference) -> records and a table."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.accuracy.crop_cache import CropCache, CropSet
from harness.accuracy.layouts import LabelledImages, open_images
from harness.accuracy.preprocess import recipe_parts
from harness.cli.accuracy_table import accuracy_table, data_lines
from harness.catalogue.registry import Catalogue, ModelSpec
from harness.cli.calibration import calibration_images, calibration_settings, split_halves
from harness.cli.common import (add_export_options, add_runtime_options, check_common, device_help,
                                check_out_dir, check_precisions, check_runtimes, check_sources, check_weights_file,
                                comma_list, console, err_console, export_settings, finish, progress_bar, resume_hint,
                                resume_run_id, run_sweep, runtime_options)
from harness.cli.fleet import add_executor_options, plan_devices
from harness.errors import UserError
from harness.measure.timing import QUICK
from harness.paths import cache_dir
from harness.records import Record, read_records
from harness.sweep.planning import REFERENCE, plan_with_reference
from harness.sweep.sweep import DEFAULT_PROCESS_START, PROCESS_STARTS, BenchSettings, Sweep, catalogue_subjects, new_run_id

DEFAULT_BATCH_SIZE = 64  # the paper's largest batch
DEFAULT_TIMEOUT_S = 6 * 3600.0  # one cell may evaluate 50,000 images on a CPU


def add_parser(commands: argparse._SubParsersAction) -> None:
    accuracy = commands.add_parser(
        "accuracy", help="top-1/top-5 on labelled images, per runtime and precision, against PyTorch eager fp32",
        description="Evaluate models on an ImageNet-style validation set. The images are decoded, resized and "
                    "cropped once per recipe (cached), then the same tensors go through every runtime and "
                    "precision; PyTorch eager fp32 always runs first as the reference.")
    accuracy.add_argument("--data", required=True, metavar="PATH",
                          help="a folder of WordNet-id class folders, a flat folder of images (ground truth beside "
                               "it or --labels), or a CSV of path,label")
    accuracy.add_argument("--labels", metavar="FILE",
                          help="ground truth of a flat folder: ILSVRC2012_validation_ground_truth.txt (meta.mat "
                               "beside it) or LOC_val_solution.csv")
    accuracy.add_argument("--models", required=True, metavar="NAMES",
                          help="comma-separated names, globs or sets (@paper, @modern, @mobile): classifiers only")
    accuracy.add_argument("--runtime", default="torch", metavar="NAMES",
                          help="comma-separated runtimes (default torch)")
    accuracy.add_argument("--precision", default="fp32", metavar="P",
                          help="fp32, fp16, bf16 and/or int8 (int8 needs --calibration DATA or --split), "
                               "comma-separated")
    accuracy.add_argument("--weights", default="pretrained",
                          help="pretrained (default: the library's weights, from its cache or downloaded) or a "
                               "state-dict path; random weights are refused")
    accuracy.add_argument("--limit", type=int, metavar="N", help="evaluate N images (a seeded shuffle's first N)")
    accuracy.add_argument("--split", action="store_true",
                          help="with --precision int8: divide --data into disjoint seeded halves, one to calibrate "
                               "on and one to evaluate (instead of --calibration)")
    accuracy.add_argument("--crop-pct", type=float, metavar="F",
                          help="resize the shorter side to input/F for every model (0.875 = the paper's protocol); "
                               "default: each model's own recipe")
    accuracy.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                          help=f"images per inference (default {DEFAULT_BATCH_SIZE}, as in the paper)")
    accuracy.add_argument("--device", default="cpu", help=device_help())
    accuracy.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                          help="processes decoding images (default: one per CPU)")
    accuracy.add_argument("--threads", type=int, metavar="N", help="intra-op CPU threads of the runtimes")
    accuracy.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default 0)")
    accuracy.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                          help=f"seconds per cell (default {DEFAULT_TIMEOUT_S:.0f})")
    accuracy.add_argument("--out", default="results", metavar="DIR", help="parent of the run folder (default results/)")
    accuracy.add_argument("--run-id", metavar="ID", help="name of the run folder (default: timestamp)")
    accuracy.add_argument("--resume", metavar="RUN-ID", help="continue that run, skipping finished cells; 'last' = "
                                                             "the newest run of the same plan")
    accuracy.add_argument("--process-start", choices=PROCESS_STARTS, default=DEFAULT_PROCESS_START,
                          help="fork (default) or exec: how each cell's fresh process starts")
    add_runtime_options(accuracy)
    add_executor_options(accuracy)
    add_export_options(accuracy)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise UserError(f"bad --batch-size {args.batch_size}: give a positive number of images")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"bad --limit {args.limit}: give a positive number of images")
    if args.crop_pct is not None and not 0 < args.crop_pct <= 1:
        raise UserError(f"bad --crop-pct {args.crop_pct:g}: give a fraction in (0, 1], e.g. 0.875")
    if args.workers < 1:
        raise UserError(f"bad --workers {args.workers}: give a positive number of processes")


def check_trained_weights(weights: str) -> str:
    if weights == "random":
        raise UserError("accuracy needs trained weights: random weights answer at chance (0.1 % top-1), so the "
                        "figure would say nothing; pass --weights pretrained or --weights PATH (a state dict)")
    if weights == "pretrained":
        return weights
    return check_weights_file(weights, "--weights pretrained or a state-dict path")


def check_classifiers(specs: list[ModelSpec]) -> list[ModelSpec]:
    """The models, when all are classifiers: accuracy scores ImageNet top-1/top-5, which a detector or a
    segmenter does not answer."""
    others = [spec for spec in specs if spec.task != "classification"]
    if others:
        if len(others) == 1:
            what = f"{others[0].name} is a {others[0].task} model: leave it out of --models (bench and verify run it)"
        else:
            named = ", ".join(spec.name for spec in others[:3]) + (", ..." if len(others) > 3 else "")
            what = f"{named} are not classifiers: leave them out of --models (bench and verify run them)"
        raise UserError(f"accuracy scores ImageNet classifiers (top-1/top-5), and {what}")
    return specs


def crop_sets(specs: list[ModelSpec], images: LabelledImages, crop_pct: float | None,
               workers: int) -> dict[str, dict[str, Any]]:
    """Per model: its cached crops (decoded now where missing) and the normalization that finishes them."""
    cache = CropCache(cache_dir())
    by_geometry: dict[Any, CropSet] = {}
    sets = {}
    for spec in specs:
        geometry, normalization = recipe_parts(spec.preprocessing.model_dump(), spec.input_size, crop_pct)
        if geometry not in by_geometry:
            by_geometry[geometry] = _decoded(cache, images, geometry, workers)
        crop_set = by_geometry[geometry]
        request = crop_set.as_request()
        if Path(request["folder"]).is_relative_to(cache.root):  # the executor says where the cache is
            request["folder"] = str(Path(request["folder"]).relative_to(cache.root))
        sets[spec.name] = {**request, "geometry": geometry.as_dict(),
                           "normalization": normalization.as_dict(),
                           "preprocessing_from": f"--crop-pct {crop_pct:g}" if crop_pct else "the model's recipe"}
    return sets


def _decoded(cache: CropCache, images: LabelledImages, geometry: Any, workers: int) -> CropSet:
    with progress_bar(console) as progress:
        task = progress.add_task(f"decoding {geometry.label()}", total=len(images))
        crop_set = cache.get(images, geometry, workers, lambda done, total: progress.update(task, completed=done))
    state = "cached" if crop_set.build_s is None else f"decoded in {crop_set.build_s:.1f} s"
    console.print(f"{geometry.label()}: {crop_set.valid_count:,} images {state} ({crop_set.folder})")
    if crop_set.bad_images:
        err_console.print(f"[yellow]{len(crop_set.bad_images)} image(s) could not be read and are left out "
                          f"(all listed in {crop_set.folder / 'meta.json'}):[/yellow]", soft_wrap=True)
        for path, reason in crop_set.bad_images[:5]:
            err_console.print(f"  {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
    if crop_set.valid_count == 0:
        raise UserError(f"none of the {crop_set.count} images could be read: check {images.flag}")
    return crop_set


def command_accuracy(args: argparse.Namespace, catalogue: Catalogue) -> int:
    runtime_names = comma_list(args.runtime)
    if not runtime_names:
        raise UserError("no runtime given: e.g. --runtime torch,ort")
    check_runtimes(sorted(set(runtime_names) | {REFERENCE[0]}), installed_here=args.executor == "local")
    precisions = check_precisions(args.precision)
    _check_numbers(args)
    check_common(args)
    devices, executor = plan_devices(args)
    specs = check_classifiers(catalogue.select(args.models))
    weights = check_trained_weights(args.weights)
    check_sources(specs)
    out_dir = check_out_dir(args.out)
    images = open_images(Path(args.data), Path(args.labels) if args.labels else None)
    images, calibration = _calibration_apart(args, precisions, images)
    images = images.limited(args.limit, args.seed)
    console.print(f"[bold]data[/bold]: {escape(images.describe())}")
    sets = crop_sets(specs, images, args.crop_pct, args.workers)
    export = export_settings(args, calibration_settings(args, calibration, specs, crop_sets)
                             if calibration is not None else None)
    if calibration is not None:
        console.print(f"[bold]calibration[/bold]: {escape(calibration.describe())}")

    cells = [cell for device in devices  # each device's cells against the reference on that device
             for cell in plan_with_reference([s.name for s in specs], runtime_names, precisions, args.batch_size,
                                             device)]
    data = {"path": str(Path(args.data).expanduser().resolve()), "layout": images.layout,
            "label_source": images.label_source, "selection": images.selection or f"all {len(images)} images"}
    settings = BenchSettings(policy=QUICK, weights=weights, threads=args.threads, timeout_s=args.timeout,
                             seed=args.seed, mode="accuracy", export=export,
                             process_start=args.process_start,
                             runtime_options=runtime_options(args, runtime_names),
                             accuracy={"sets": sets, "data": data,
                                       "reference": {"runtime": REFERENCE[0], "precision": REFERENCE[1]}})
    subjects = catalogue_subjects(specs)
    sweep = Sweep(out_dir, args.run_id or new_run_id(), subjects, settings, executor)
    if args.resume:
        sweep = Sweep(out_dir, resume_run_id(args, out_dir, sweep.signature(cells)), subjects, settings, executor)
    console.print(f"[bold]{len(cells)} cells[/bold] ({len(specs)} model(s), each with PyTorch eager fp32 first as "
                  f"the reference) on "
                  f"{', '.join(devices)}, batch size {args.batch_size}; weights: {weights}")
    records = run_sweep(sweep, cells, "evaluating")
    if records is None:
        err_console.print(f"resume with: {escape(resume_hint(sweep.run_id))}", highlight=False, soft_wrap=True)
        return 130
    everything = [r for r in read_records(sweep.records_path).typed if r.kind == "accuracy"]
    print_accuracy(everything, f"accuracy, run {sweep.run_id} ({', '.join(devices)})")
    return finish(everything, sweep.records_path)


def _calibration_apart(args: argparse.Namespace, precisions: list[str],
                       images: LabelledImages) -> tuple[LabelledImages, LabelledImages | None]:
    """(the images to evaluate, the calibration images): never one image in both. With --split, disjoint
    seeded halves of --data; else --calibration, refused when it shares images with --data."""
    if args.split:
        if "int8" not in precisions or args.calibration:
            raise UserError("--split divides --data into calibration and evaluation halves for --precision int8; "
                            "drop --calibration (or --split)")
        calibration, evaluated = split_halves(images, args.seed)
        return evaluated, calibration.limited(args.calibration_images, args.seed)
    calibration = calibration_images(args, precisions)
    if calibration is not None:
        shared = {p.resolve() for p in calibration.paths} & {p.resolve() for p in images.paths}
        if shared:
            raise UserError(f"--calibration shares {len(shared)} image(s) with --data (e.g. {sorted(shared)[0]}): int8 "
                            "accuracy on its own calibration images would flatter it; pass a disjoint --calibration, "
                            "or --split to divide --data into seeded halves")
    return images, calibration


def print_accuracy(records: list[Record], title: str) -> None:
    table, notes = accuracy_table(records, title)
    console.print(table)
    for line in notes + data_lines(records):
        console.print(escape(line), highlight=False, soft_wrap=True)
