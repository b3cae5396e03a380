"""`python -m harness`: list, bench, export, verify, show, accuracy, diagnose, report, best, check, node.

User mistakes: one line, exit code 2."""

from __future__ import annotations

import argparse
import errno
import logging
from pathlib import Path
from typing import Any, Sequence

from rich.markup import escape

from harness import __version__
from harness.catalogue.bundles import read_bundle
from harness.catalogue.complexity import ComplexityCache, measure
from harness.catalogue.onnx_files import inspect_onnx, parse_input_shapes
from harness.catalogue.recipes import complexity_key_for, recipe_for
from harness.catalogue.registry import Catalogue, LazyCatalogue, ModelSpec
from harness.cli import accuracy as accuracy_command
from harness.cli import bundle as bundle_command
from harness.cli import fleet as fleet_command
from harness.cli.calibration import calibration_images, calibration_settings
from harness.cli import compare as compare_command
from harness.cli import diagnose as diagnose_command
from harness.cli import reports as report_commands
from harness.cli.common import (EXPORT_AGAIN, add_export_options, add_runtime_options, check_cache_dir,
                                check_common, check_device, check_out_dir, check_precisions, check_runtimes, check_scenarios,
                                check_sources, check_weights, comma_list, console, device_help, either, err_console,
                                export_settings, finish, json_only_stdout, parse_batch_sizes, precision_help,
                                print_json, progress_bar, resume_hint, resume_run_id, run_sweep, runtime_options)
from harness.cli.tables import (catalogue_table, cell_summary, cold_start_table, energy_table, engine_table,
                                export_table, largest_batches, memory_table, parity_table, run_table, scenario_table,
                                stages_table)
from harness.errors import UserError
from harness.execution.executor import StorageFailed
from harness.measure.timing import QUICK, THOROUGH
from harness.measure.validity import MAX_CV
from harness.paths import cache_dir
from harness.protocol import ExportSettings
from harness.records import RECORDS_FILE, Record, as_records, latest_records, read_records
from harness.sweep.planning import EXPORT, ORDERS, PAPER_BATCH_SIZES, plan_cells, plan_with_reference
from harness.sweep.sweep import (DEFAULT_PROCESS_START, PROCESS_STARTS, BenchSettings, Subject, Sweep, catalogue_subjects,
                           new_run_id)
from harness.units import parse_size
from runtimes import RUNTIMES, declared_classes, runtime_class
from runtimes.base import NOTHING, TORCH_MODULE, DeviceFamily

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
MODELS_HELP = "comma-separated names, globs or sets (@paper, @modern, @mobile, @detection, @segmentation)"
STRICT_RETRIES = 2
TABLES = ("time", "memory", "energy", "cold", "stages")
WEIGHTS_NOTE = {
    "random": "random-init weights (seeded, BatchNorm statistics re-estimated; speed, memory and MACs do not "
              "depend on weight values)",
    "pretrained": "the source library's pretrained weights",
}


# ---------------------------------------------------------------- argument parsing


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """How an ONNX file made elsewhere is fed (`--onnx`)."""
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME:DIMS",
                        help="--onnx: an input's shape as trtexec's --shapes, e.g. images:1x3x640x640 (repeatable, or "
                             "comma-separated); fixes its symbolic dimensions, the first (the batch) set by each cell")
    parser.add_argument("--inputs", metavar="FILE.npz",
                        help="--onnx: feed these arrays (numpy.savez, one per input name) instead of seeded random "
                             "ones; batched inputs are cut to each cell's batch size")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dnn-harness {__version__}")
    parser.add_argument("--catalogue", metavar="PATH", help="models.yaml to use (default: the one the package "
                        "ships, or $HARNESS_MODELS); commands on a bundle, runs or reports read none")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="show the model catalogue")
    listing.add_argument("--filter", metavar="GLOB", help="only these: names, globs or @sets, comma-separated "
                                                          "(e.g. 'resnet*' or @mobile)")
    listing.add_argument("--json", action="store_true", help="print JSON (exact params, MACs, conv MACs, file size)")
    listing.add_argument("--no-compute", action="store_true",
                         help="show only cached complexity; do not build models to count it")

    bench = commands.add_parser("bench", help="time models on runtimes, one fresh process per cell")
    chosen = bench.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--models", metavar="NAMES",
                        help="comma-separated names, globs or sets, e.g. 'resnet18,mobilenet_v2', 'vgg*' or "
                             "@mobile")
    chosen.add_argument("--onnx", metavar="PATH", help="an ONNX file made elsewhere (runtimes that run ONNX): any "
                        "number of inputs and outputs; symbolic dimensions fixed by --input-shape or --inputs")
    chosen.add_argument("--bundle", metavar="DIR", help="the models of a bundle made by export --bundle (on a board: "
                                                        "no torch needed)")
    bench.add_argument("--runtime", default="torch", metavar="NAMES",
                       help=f"comma-separated: {', '.join(RUNTIMES)}, or a plug-in 'module:Class' (default torch)")
    bench.add_argument("--batch-sizes", metavar="N,N",
                       help="default: the paper's 1,2,4,8,16,32,64 (--onnx: the batch --input-shape or --inputs "
                            "gives, or the graph's fixed one)")
    add_input_options(bench)
    bench.add_argument("--device", default="cpu", help=device_help())
    bench.add_argument("--precision", default="fp32", metavar="P", help=precision_help())
    bench.add_argument("--weights",
                       help="random (default), pretrained, or a path to a state dict (loaded with weights_only)")
    bench.add_argument("--threads", type=int, metavar="N", help="intra-op CPU threads (default: library default)")
    bench.add_argument("--channels-last", action="store_true", help="NHWC memory format (torch)")
    bench.add_argument("--thorough", action="store_true",
                       help="publication preset: >=100 samples and >=10 s per cell after >=2 s warm-up")
    bench.add_argument("--timeout", type=float, default=900.0, metavar="S", help="seconds per cell (default 900)")
    bench.add_argument("--out", default="results", metavar="DIR", help="parent of the run folder (default results/)")
    bench.add_argument("--run-id", metavar="ID", help="name of the run folder (default: timestamp)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the random input and weights (default 0)")
    bench.add_argument("--max-memory", metavar="SIZE",
                       help="cap each cell's private memory (e.g. 4GB); a cell over it is recorded as oom")
    bench.add_argument("--energy", choices=("on", "off"), default="on",
                       help="on (default): after the timed loop, an energy pass where RAPL, NVML or a Jetson's "
                            "power rails can be read (about 3 s per cell; nothing where none can); off: none")
    bench.add_argument("--strict", action="store_true",
                       help=f"re-run a cell whose timing verdict is invalid (up to {STRICT_RETRIES} more times)")
    bench.add_argument("--scenario", default="single-stream", metavar="NAMES",
                       help="how queries reach the runtime, comma-separated: single-stream (default: one after "
                            "another, p90), multi-stream (one after another, p99), server (Poisson arrivals: the "
                            "highest rate whose p99 holds --p99-bound), offline (--streams instances at once: "
                            "images/s)")
    bench.add_argument("--p99-bound", type=float, metavar="MS",
                       help="server: the p99 latency bound in ms (default: 5 x the cell's single-stream median)")
    bench.add_argument("--streams", type=int, default=2, metavar="N",
                       help="offline: inferences in flight at once (default 2): OpenVINO's async requests, TensorRT's "
                            "execution contexts, else runtime instances, each on its own thread and share of the CPU "
                            "cores")
    bench.add_argument("--order", choices=ORDERS, default="model",
                       help="model (default), interleaved (batch size by batch size across models) or random")
    bench.add_argument("--process-start", choices=PROCESS_STARTS, default=DEFAULT_PROCESS_START,
                       help="fork: each cell's fresh process is forked from one that imported its libraries once "
                            "(default); exec: a new interpreter per cell, which also pays the imports")
    bench.add_argument("--resume", metavar="RUN-ID",
                       help="continue that run in --out, skipping recorded cells; 'last' = the newest run of "
                            "the same plan")
    bench.add_argument("--retry-failed", action="store_true",
                       help="with --resume: run again the cells recorded as error, crashed or timeout")
    bench.add_argument("--show", default="time,memory,energy", metavar="TABLES",
                       help="tables to print at the end: time, memory, energy, cold (cold start and compilation), "
                            "stages (pre-processing, host-to-device, compute, device-to-host; default "
                            "time,memory,energy)")
    add_runtime_options(bench)
    fleet_command.add_executor_options(bench)
    add_export_options(bench)

    show = commands.add_parser("show", help="print the tables of recorded runs again")
    show.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, e.g. results/<run-id>")
    show.add_argument("--show", default="time,memory,energy", metavar="TABLES",
                      help="time, memory, energy, cold, stages (default time,memory,energy)")
    show.add_argument("--json", action="store_true", help="print one JSON object per cell (for scripts)")

    export = commands.add_parser("export", help="export models to ONNX once (cached by content); build engines; "
                                                "write a bundle for a board")
    export.add_argument("--models", required=True, metavar="NAMES", help=MODELS_HELP)
    export.add_argument("--bundle", metavar="DIR",
                        help="write a bundle to DIR: ONNX files, reference outputs of PyTorch eager fp32 at batch 1 and "
                             "the largest --batch-sizes, a manifest per model (int8: the file for ort and the one "
                             "for TensorRT); copy it to a board as it is")
    export.add_argument("--profile", metavar="NAME",
                        help="with --bundle: a device profile (e.g. jetson-orin-nano) whose TensorRT's newest opset "
                             "caps --opset")
    export.add_argument("--precision", default="fp32", metavar="P", help=precision_help())
    export.add_argument("--weights", default="random", help="random (default), pretrained, or a state-dict path")
    export.add_argument("--seed", type=int, default=0,
                        help="seed of the random weights and, with --bundle, of the reference inputs (default 0; "
                             "a bundle keeps the seed it was made with)")
    export.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="seconds per model (default 1800)")
    export.add_argument("--engine", action="store_true",
                        help="also build engines from the ONNX files ahead of a sweep (an engine runtime, e.g. trt, "
                             "on --device), one per batch size unless trt.profile=dynamic")
    engine_runtime, engine_device = engine_defaults()
    engine_names = [name for name, cls in declared_classes().items() if cls.builds_engine]
    export.add_argument("--runtime", metavar="NAMES",
                        help=f"with --engine: engine runtimes, {either(engine_names)} (default {engine_runtime})")
    export.add_argument("--device", help=f"with --engine: {either(engine_devices([engine_runtime]))} (default "
                                         f"{engine_device})")
    export.add_argument("--batch-sizes", metavar="N,N",
                        help="with --engine: the batch sizes the engines are for; with --bundle: the reference "
                             "outputs are at 1 and the largest of these (default 1)")
    add_runtime_options(export)
    add_export_options(export)

    verify = commands.add_parser("verify", help="numeric agreement of each runtime with PyTorch eager fp32 on the CPU "
                                                "(an ONNX file made elsewhere: with ONNX Runtime fp32)")
    checked = verify.add_mutually_exclusive_group(required=True)
    checked.add_argument("--models", metavar="NAMES", help=MODELS_HELP)
    checked.add_argument("--bundle", metavar="DIR",
                         help="a bundle's models, against the reference outputs it carries (no torch needed)")
    checked.add_argument("--onnx", metavar="PATH", help="an ONNX file made elsewhere, against ONNX Runtime fp32 on the "
                         "CPU, every output compared")
    add_input_options(verify)
    verify.add_argument("--runtime", default="ort", metavar="NAMES", help="runtimes to check (default ort)")
    verify.add_argument("--precision", default="fp32", metavar="P", help=precision_help())
    verify.add_argument("--batch-size", type=int, metavar="N",
                        help="images compared (default 4; with --bundle the largest batch of its references)")
    verify.add_argument("--device", default="cpu", help=device_help())
    verify.add_argument("--weights", help="random (default), pretrained, or a state-dict path (catalogue models; a "
                                           "bundle's are its own)")
    verify.add_argument("--threads", type=int, metavar="N", help="intra-op CPU threads")
    verify.add_argument("--seed", type=int, default=0, help="seed of the inputs and random weights (default 0)")
    verify.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="seconds per cell (default 1800)")
    verify.add_argument("--out", default="results", metavar="DIR", help="parent of the run folder (default results/)")
    verify.add_argument("--run-id", metavar="ID", help="name of the run folder (default: timestamp)")
    verify.add_argument("--strict", action="store_true",
                        help="count cells a runtime cannot run here (e.g. ort at bf16) as failures; by default they "
                             "are listed as unsupported and leave the exit code alone, unless nothing was compared")
    add_runtime_options(verify)
    add_export_options(verify)
    fleet_command.add_executor_options(verify)
    accuracy_command.add_parser(commands)
    diagnose_command.add_parser(commands)
    report_commands.add_parsers(commands)
    compare_command.add_parser(commands)
    fleet_command.add_node_parser(commands)
    return parser


# ---------------------------------------------------------------- list

def _complexity_rows(catalogue: Catalogue, specs: list[ModelSpec], compute: bool) -> list[dict[str, Any]]:
    cache = ComplexityCache()
    keys = {spec.name: complexity_key_for(spec) for spec in specs}
    missing = [s for s in specs if cache.get(keys[s.name]) is None and s.source_installed]
    if compute and missing:
        _compute_complexity(missing, keys, cache)
    rows = []
    for spec in specs:
        complexity = cache.get(keys[spec.name])
        rows.append({
            "name": spec.name, "task": spec.task, "paper_name": spec.paper_name, "display_name": spec.display_name,
            "family": spec.family, "year": spec.year, "sets": list(spec.all_sets), "source": spec.source,
            "builder": spec.builder, "input_size": spec.input_size,
            "published_top1": spec.published.top1, "published_top5": spec.published.top5,
            "published_box_map": spec.published.box_map, "published_miou": spec.published.miou,
            "published_source": spec.published.accuracy_source, "source_installed": spec.source_installed,
            "complexity": complexity.as_dict() if complexity else None,
        })
    return rows


def _compute_complexity(specs: list[ModelSpec], keys: dict[str, str], cache: ComplexityCache) -> None:
    from exporters.torch_models import build_module

    with progress_bar(err_console) as progress:
        task = progress.add_task("counting params and MACs (once; cached)", total=len(specs))
        for spec in specs:
            progress.update(task, description=f"counting {spec.name}")
            try:
                cache.put(keys[spec.name], measure(build_module(recipe_for(spec)), spec.input_size))
            except Exception as exc:  # a model that cannot be built is shown with '?', not fatal to list
                err_console.print(f"[yellow]could not count {spec.name}: {escape(f'{type(exc).__name__}: {exc}')}[/yellow]")
            progress.advance(task)


def command_list(args: argparse.Namespace, catalogue: Catalogue) -> int:
    specs = catalogue.select(args.filter)
    if not args.no_compute:
        check_cache_dir()  # counted figures are cached there
    rows = _complexity_rows(catalogue, specs, compute=not args.no_compute)
    if args.json:
        print_json(rows)
    else:
        console.print(catalogue_table(rows))
        console.print(f"{len(rows)} models from {catalogue.path}")
        console.print("sets (--models @name, unions with commas, e.g. @mobile,resnet50): " + ", ".join(
            f"@{name} ({len(names)})" for name, names in catalogue.sets.items()))
    return 0


# ---------------------------------------------------------------- bench

def _subjects(args: argparse.Namespace, catalogue: Catalogue, classes: list[type]) -> dict[str, Subject]:
    if getattr(args, "bundle", None):
        torch_like = [cls.name for cls in classes if cls.consumes == TORCH_MODULE]
        if torch_like:
            raise UserError(f"a bundle carries ONNX files; {', '.join(torch_like)} runs catalogue models: use "
                            "--runtime ort or trt")
        bundle = read_bundle(args.bundle)
        return {name: Subject(bundle_model=model) for name, model in bundle.models.items()}
    _check_onnx_only_options(args)
    if getattr(args, "onnx", None):
        onnx_file = inspect_onnx(args.onnx, parse_input_shapes(getattr(args, "input_shape", [])),
                                 getattr(args, "inputs", None))
        torch_like = [cls.name for cls in classes if cls.consumes == TORCH_MODULE]
        if torch_like:
            raise UserError(f"--onnx runs on ONNX runtimes; {', '.join(torch_like)} runs catalogue models: "
                            "use --runtime ort")
        return {onnx_file.name: Subject(onnx_file=onnx_file)}
    specs = catalogue.select(args.models)
    if any(cls.consumes != NOTHING for cls in classes):
        check_sources(specs)
    return catalogue_subjects(specs)


def _check_onnx_only_options(args: argparse.Namespace) -> None:
    """--input-shape and --inputs describe an outside ONNX file's inputs: beside --models or --bundle they would
    be planned and ignored."""
    given = [flag for flag, value in (("--input-shape", getattr(args, "input_shape", None)),
                                      ("--inputs", getattr(args, "inputs", None))) if value]
    if given and not getattr(args, "onnx", None):
        verb = "describe" if len(given) > 1 else "describes"
        raise UserError(f"{' and '.join(given)} {verb} the inputs of an ONNX file: use them with --onnx PATH "
                        "(catalogue models and bundles feed their own image input)")


def _check_bundle_precisions(subject: Subject, precisions: list[str], classes: list[type]) -> None:
    """Every runtime and precision asked for has its file in the bundle (one line naming the fix if not)."""
    if subject.bundle_model is None:
        return
    for runtime in classes:
        for precision in precisions:
            subject.bundle_model.request_model(runtime.onnx_precision(precision))


def _check_weights_for(args: argparse.Namespace) -> str:
    """--weights (default random) for catalogue models. A bundle or an outside ONNX file carries the weights it
    was exported with: --weights beside one would be planned and printed as if it applied, so it is refused."""
    carrier = "bundle" if getattr(args, "bundle", None) else "ONNX file" if getattr(args, "onnx", None) else None
    if carrier and args.weights is not None:
        raise UserError(f"--weights applies to catalogue models (--models): a {carrier}'s weights are those it was "
                        f"exported with; drop --weights {args.weights}")
    return check_weights(args.weights or "random")


def _weights_note(weights: str, subjects: dict[str, Subject]) -> str:
    """What the cells' weights are, for the plan's line: a bundle's as exported, an ONNX file's own."""
    exported = sorted({str(s.bundle_model.manifest["summary"].get("weights", "?")) for s in subjects.values()
                       if s.bundle_model is not None})
    if exported:
        return f"the bundle's, as exported ({', '.join(exported)})"
    if any(s.onnx_file is not None for s in subjects.values()):
        return "those in the ONNX file"
    return WEIGHTS_NOTE.get(weights, f"from {weights}")


def _check_tables(text: str) -> list[str]:
    tables = comma_list(text)
    for table in tables:
        if table not in TABLES:
            raise UserError(f"unknown table '{table}' for --show: choose from {', '.join(TABLES)}")
    return tables


def _print_tables(records: list[Record], tables: list[str], title: str) -> None:
    if "time" in tables:
        console.print(run_table(records, title=title))
    if "memory" in tables:
        console.print(memory_table(records, title=f"{title}: memory"))
    energy = energy_table(records, title=f"{title}: energy") if "energy" in tables else None
    if energy is not None:
        console.print(energy)
    if "cold" in tables:
        console.print(cold_start_table(records, title=f"{title}: cold start"))
    if "stages" in tables:
        console.print(stages_table(records, title=f"{title}: where the time goes"))
    scenarios = scenario_table(records, title=f"{title}: scenarios")
    if scenarios is not None:
        console.print(scenarios)
    for line in largest_batches(records):
        console.print(line)


def command_bench(args: argparse.Namespace, catalogue: Catalogue) -> int:
    runtime_names = comma_list(args.runtime)
    if not runtime_names:
        raise UserError("no runtime given: e.g. --runtime torch")
    classes = check_runtimes(runtime_names, installed_here=args.executor == "local")
    precisions = check_precisions(args.precision)
    tables = _check_tables(args.show)
    check_common(args)
    scenarios, scenario_settings = check_scenarios(args)
    devices, executor = fleet_command.plan_devices(args)
    max_memory = parse_size(args.max_memory) if args.max_memory else None
    subjects = _subjects(args, catalogue, classes)
    if args.retry_failed and not args.resume:
        raise UserError("--retry-failed re-runs the failed cells of a recorded run: add --resume RUN-ID (or last)")
    batch_sizes = _bench_batch_sizes(args, subjects)
    for subject in subjects.values():
        if subject.onnx_file:
            subject.onnx_file.check_batch_sizes(batch_sizes)
            subject.onnx_file.check_precisions(precisions, classes)
        _check_bundle_precisions(subject, precisions, classes)
    weights = _check_weights_for(args)
    out_dir = check_out_dir(args.out)
    export = _export_with_calibration(args, precisions, subjects)

    cells = [cell for device in devices
             for cell in plan_cells(list(subjects), runtime_names, precisions, batch_sizes, device, args.order, args.seed,
                                    scenarios)]
    preset = "thorough" if args.thorough else "quick"
    settings = BenchSettings(policy=THOROUGH if args.thorough else QUICK, weights=weights, threads=args.threads,
                             channels_last=args.channels_last, timeout_s=args.timeout, seed=args.seed,
                             export=export, max_memory_bytes=max_memory,
                             strict_retries=STRICT_RETRIES if args.strict else 0, max_cv=MAX_CV[preset],
                             order=args.order, process_start=args.process_start,
                             runtime_options=runtime_options(args, runtime_names), retry_failed=args.retry_failed,
                             energy=args.energy == "on", scenario=scenario_settings)
    sweep = Sweep(out_dir, args.run_id or new_run_id(), subjects, settings, executor)
    if args.resume:
        sweep = Sweep(out_dir, resume_run_id(args, out_dir, sweep.signature(cells)), subjects, settings, executor)
    pending = sweep.pending(cells)
    console.print(f"[bold]{len(cells)} cells[/bold] ({len(subjects)} models x {len(runtime_names)} runtimes x "
                  f"{len(precisions)} precisions x {len(batch_sizes)} batch sizes"
                  + (f" x {len(scenarios)} scenarios" if len(scenarios) > 1 else "")
                  + (f"; scenario {scenarios[0]}" if scenarios != ("single-stream",) and len(scenarios) == 1 else "")
                  + f") on {', '.join(devices)}"
                  + (f", {len(cells) - len(pending)} already recorded in {sweep.run_id}" if args.resume else "")
                  + f"; weights: {_weights_note(weights, subjects)}; policy: {preset}"
                  + (f"; memory cap {max_memory:,} bytes per cell" if max_memory else ""))
    records = run_sweep(sweep, cells, "timing")
    if records is None:
        err_console.print(f"resume with: {escape(resume_hint(sweep.run_id))}", highlight=False, soft_wrap=True)
        return 130
    everything = latest_records(read_records(sweep.records_path).typed)
    _print_tables(everything, tables, f"run {sweep.run_id} ({', '.join(devices)})")
    return finish(everything, sweep.records_path, planned=cells)


def command_show(args: argparse.Namespace, catalogue: Catalogue) -> int:
    tables = _check_tables(args.show)
    records = []
    for run in args.runs:
        path = Path(run) / RECORDS_FILE
        if not path.is_file():
            raise UserError(f"no {RECORDS_FILE} in '{run}': pass a run folder such as results/<run-id>")
        records += read_records(path).check_readable(Path(run)).typed
    records = latest_records(records)
    if args.json:
        print_json([cell_summary(r) for r in records])
        return 0
    title = ", ".join(Path(run).name for run in args.runs)
    bench = [r for r in records if r.kind == "bench"]
    accuracy = [r for r in records if r.kind == "accuracy"]
    builds = [r for r in records if r.kind == "build"]
    if bench or not (accuracy or builds):
        _print_tables(bench, tables, title)
    if builds:
        console.print(engine_table(builds))
    if accuracy:
        accuracy_command.print_accuracy(accuracy, f"accuracy, {title}")
    return 0


def command_export(args: argparse.Namespace, catalogue: Catalogue) -> int:
    if args.bundle:
        if args.engine or args.runtime or args.device or args.runtime_option:
            raise UserError("--bundle writes ONNX files and references for a board; engines are built there: drop "
                            "--engine, --runtime, --device and --runtime-option")
        return bundle_command.command_export_bundle(args, catalogue)
    if args.profile:
        raise UserError("--profile applies to --bundle: add --bundle DIR")
    precisions = check_precisions(args.precision)
    if "bf16" in precisions and not args.engine:
        raise UserError("bf16 has no ONNX file of its own: ov reads the fp32 file with a bf16 hint, torch autocasts; "
                        "export --precision fp32")
    engine_runtimes, batch_sizes = _check_engine_options(args)
    check_common(args)
    if args.engine:
        check_device(args.device)
    specs = catalogue.select(args.models)
    check_sources(specs)
    weights = check_weights(args.weights)
    subjects = catalogue_subjects(specs)
    if args.engine:
        cells = plan_cells(list(subjects), engine_runtimes, precisions, batch_sizes, args.device)
        settings = BenchSettings(policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="build",
                                 export=_export_with_calibration(args, precisions, subjects),
                                 runtime_options=runtime_options(args, engine_runtimes))
    else:
        cells = plan_cells(list(subjects), [EXPORT], precisions, [1], "cpu")
        settings = BenchSettings(policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="export",
                                 export=_export_with_calibration(args, precisions, subjects))
    sweep = Sweep(check_out_dir(str(Path(cache_dir()) / "export-logs"), "pass --cache-dir DIR"), new_run_id(),
                  subjects, settings)
    records = run_sweep(sweep, cells, "building engines" if args.engine else "exporting", EXPORT_AGAIN)
    if records is None:
        err_console.print("run the same export command again to go on: finished files are cached")
        return 130
    console.print(engine_table(as_records(records)) if args.engine else export_table(as_records(records)))
    console.print(f"artifacts in {cache_dir() / ('engines' if args.engine else 'onnx')}")
    return finish(as_records(records), sweep.records_path)


def _check_engine_options(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """(engine runtimes, batch sizes) of `export --engine`; the engine flags without --engine are a mistake."""
    given = [flag for flag, value in (("--runtime", args.runtime), ("--device", args.device),
                                      ("--batch-sizes", args.batch_sizes)) if value is not None]
    if not args.engine:
        if given or args.runtime_option:
            raise UserError(f"{', '.join(given) or '--runtime-option'} only apply to engines: add --engine")
        return [], [1]
    engine_runtime, engine_device = engine_defaults()
    args.runtime, args.device = args.runtime or engine_runtime, args.device or engine_device
    names = comma_list(args.runtime)
    if not names:
        raise UserError(f"no runtime given: e.g. --engine --runtime {engine_runtime}")
    for name, runtime in zip(names, check_runtimes(names)):
        if not runtime.builds_engine:
            raise UserError(f"runtime '{name}' builds no engine: --engine takes an engine runtime such as "
                            f"{engine_runtime}")
    if not any(family.matches(args.device) for family in takes_families(names)):
        raise UserError(f"--engine --device {args.device}: engines of {', '.join(names)} are built for "
                        f"{either(engine_devices(names))}; pass one of those")
    return names, parse_batch_sizes(args.batch_sizes or "1")


def engine_defaults() -> tuple[str, str]:
    """export --engine's runtime and device where none is given: the first registered engine runtime and the first
    device family it declares (trt, cuda)."""
    name = next(name for name, cls in declared_classes().items() if cls.builds_engine)
    family = declared_classes()[name].devices[0]
    return name, family.name if family.index != "required" else f"{family.name}:0"


def takes_families(names: list[str]) -> list[DeviceFamily]:
    """The device families every one of the runtimes `names` declares (an engine is built on each)."""
    classes = [runtime_class(name, installed_here=False) for name in names]
    return [family for family in classes[0].devices if all(family in cls.devices for cls in classes[1:])]


def engine_devices(names: list[str]) -> list[str]:
    """The --device forms every one of the runtimes `names` takes: cuda[:N], dla:N."""
    return [family.pattern for family in takes_families(names)]


def command_verify(args: argparse.Namespace, catalogue: Catalogue) -> int:
    runtime_names = comma_list(args.runtime)
    classes = check_runtimes(runtime_names, installed_here=args.executor == "local")
    precisions = check_precisions(args.precision)
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"bad --batch-size {args.batch_size}: give a positive number of images")
    check_common(args)
    devices, executor = fleet_command.plan_devices(args, also=("cpu",) if not args.bundle else ())
    subjects = _subjects(args, catalogue, classes)
    weights = _check_weights_for(args)
    seed = args.seed
    if args.bundle:
        batch_size, seed = _bundle_batch_and_seed(args, subjects)
        for subject in subjects.values():
            _check_bundle_precisions(subject, precisions, classes)
        cells = [cell for device in devices
                 for cell in plan_cells(list(subjects), runtime_names, precisions, [batch_size], device)]
    else:  # the reference on a CPU (on a fleet: any node's), once per model for every device
        reference = next(iter(subjects.values())).reference
        batch_size = args.batch_size or _onnx_batch(subjects) or 4
        planned = [cell for device in devices
                   for cell in plan_with_reference(list(subjects), runtime_names, precisions, batch_size,
                                                   device, reference_device="cpu", reference=reference)]
        for subject in subjects.values():
            if subject.onnx_file:
                subject.onnx_file.check_batch_sizes([batch_size])
                subject.onnx_file.check_precisions(precisions, classes)
        cells = list({cell.cell_id: cell for cell in planned}.values())
    settings = BenchSettings(policy=QUICK, weights=weights, threads=args.threads, timeout_s=args.timeout,
                             seed=seed, mode="parity", export=_export_with_calibration(args, precisions, subjects),
                             runtime_options=runtime_options(args, runtime_names))
    sweep = Sweep(check_out_dir(args.out), args.run_id or new_run_id(), subjects, settings, executor)
    go_on = resume_hint(sweep.run_id, resume_flag="--run-id")  # verify goes on in a run named again
    records = run_sweep(sweep, cells, "verifying", f"run: {go_on}")
    if records is None:
        err_console.print(f"to check the remaining cells: {escape(go_on)}", highlight=False, soft_wrap=True)
        return 130
    typed = latest_records(read_records(sweep.records_path).typed)  # a run id given again: its earlier cells too
    console.print(parity_table(typed))
    return finish(typed, sweep.records_path, planned=cells, not_counted=[] if args.strict else _not_runnable(typed))


def _onnx_batch(subjects: dict[str, Subject]) -> int | None:
    """An ONNX file's own batch size (fixed, or given by --input-shape or --inputs), where it has one."""
    own = next((s.onnx_file.default_batch_sizes() for s in subjects.values() if s.onnx_file), None)
    return own[0] if own else None


def _bench_batch_sizes(args: argparse.Namespace, subjects: dict[str, Subject]) -> list[int]:
    """--batch-sizes; where left out, an ONNX file's own (its fixed batch, or the one --input-shape or --inputs
    gave), else the paper's."""
    if args.batch_sizes is not None:
        return parse_batch_sizes(args.batch_sizes)
    own = _onnx_batch(subjects)
    return [own] if own else list(PAPER_BATCH_SIZES)


def _not_runnable(records: list[Record]) -> list[Record]:
    """The cells whose runtime cannot run here at all (this precision or device, whatever the model): verify
    leaves them out of its exit code, unless no other cell was compared (then nothing was verified)."""
    unable = [r for r in records if r.status == "unsupported" and r.error_type == "CannotRunHere"]
    left_out = {id(r) for r in unable}
    compared = [r for r in records if id(r) not in left_out and not (r.parity and r.parity.is_reference)]
    if unable and not compared:
        console.print("[yellow]no cell was compared: every runtime and precision asked for cannot run here[/yellow]")
        return []
    return unable


def _export_with_calibration(args: argparse.Namespace, precisions: list[str],
                             subjects: dict[str, Subject]) -> ExportSettings:
    """The export settings, with the calibration set of int8 (crops decoded now) when int8 is asked for; a
    bundle carries its int8 files, calibrated on the workstation."""
    if getattr(args, "bundle", None):
        if getattr(args, "calibration", None):
            raise UserError("--calibration makes int8 files on the workstation; a bundle carries them already: "
                            "drop --calibration")
        return export_settings(args)
    images = calibration_images(args, precisions)
    specs = [s.spec for s in subjects.values() if s.spec is not None]
    if images is not None and specs:
        return export_settings(args, calibration_settings(args, images, specs, accuracy_command.crop_sets))
    return export_settings(args)


def _bundle_batch_and_seed(args: argparse.Namespace, subjects: dict[str, Subject]) -> tuple[int, int]:
    """The batch size its references were made at (the largest by default) and the bundle's seed."""
    models = [s.bundle_model for s in subjects.values() if s.bundle_model is not None]
    batches = sorted(set.intersection(*(set(m.reference_batch_sizes) for m in models)))
    batch_size = args.batch_size if args.batch_size is not None else batches[-1]
    if batch_size not in batches:
        raise UserError(f"the bundle's reference outputs are at batch sizes {', '.join(map(str, batches))}: pass "
                        f"--batch-size {batches[-1]}")
    seeds = {m.seed for m in models}
    if args.seed not in (0, *seeds) or len(seeds) != 1:
        raise UserError(f"the bundle's references were made with seed {', '.join(map(str, sorted(seeds)))}; "
                        "verify --bundle regenerates those inputs: drop --seed")
    return batch_size, seeds.pop()


# ---------------------------------------------------------------- entry point

COMMANDS = {"list": command_list, "bench": command_bench, "export": command_export, "verify": command_verify,
            "show": command_show, "accuracy": accuracy_command.command_accuracy,
            "diagnose": diagnose_command.command_diagnose, "node": fleet_command.command_node,
            "compare": compare_command.command_compare,
            **report_commands.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        with json_only_stdout(getattr(args, "json", False)):
            return COMMANDS[args.command](args, LazyCatalogue(args.catalogue))  # read only by commands that need it
    except UserError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except StorageFailed as exc:  # the harness's own writes failed (a full disk): not a cell's failure
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside a sweep (which says what it kept and how to go on)
        err_console.print("interrupted (Ctrl-C)", highlight=False)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk while writing a report, a --markdown file...: one line, not a traceback
        if exc.errno not in FULL_DISK:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(f"[red]error:[/red] cannot write{escape(where)}: {exc.strerror}; make room, then run the "
                          "same command again", highlight=False, soft_wrap=True)
        return 1


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


if __name__ == "__main__":
    raise SystemExit(main())
