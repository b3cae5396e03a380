"""`python -m harness`: list the catalogue, benchmark cells. User mistakes: one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness import __version__, report_commands
from harness.bench import (DEFAULT_PROCESS_START, PROCESS_STARTS, BenchSettings, Subject, Sweep, catalogue_subjects,
                           new_run_id)
from harness.onnx_files import inspect_onnx
from harness.complexity import ComplexityCache, measure
from harness.errors import UserError
from harness.paths import CACHE_ENV, cache_dir
from harness.models import complexity_key_for, recipe_for
from harness.planning import ORDERS, PAPER_BATCH_SIZES, plan_cells
from harness.records import RECORDS_FILE, read_records
from harness.runs import last_run_of_plan, read_plan
from harness.units import parse_size
from harness.validity import MAX_CV
from harness.registry import Catalogue, ModelSpec, load_catalogue
from harness.summary import (catalogue_table, export_table, failures, largest_batches, memory_table, parity_table,
                             run_table)
from harness.timing import QUICK, THOROUGH
from runtimes import RUNTIMES, RuntimeUnavailable, runtime_class

EXIT_USER_ERROR = 2
STRICT_RETRIES = 2
TABLES = ("time", "memory")
PRECISIONS = ("fp32", "fp16")
WEIGHTS_NOTE = {
    "random": "random-init weights (seeded, BatchNorm statistics re-estimated; speed, memory and MACs do not "
              "depend on weight values)",
    "pretrained": "the source library's pretrained weights",
}

console = Console()
err_console = Console(stderr=True)


# ---------------------------------------------------------------- argument parsing

def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_batch_sizes(text: str) -> list[int]:
    sizes = []
    for part in _comma_list(text):
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"bad batch size '{part}': give positive whole numbers, e.g. --batch-sizes 1,2,4")
        sizes.append(int(part))
    if not sizes:
        raise UserError("no batch size given: e.g. --batch-sizes 1,2,4")
    return sorted(set(sizes))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dnn-harness {__version__}")
    parser.add_argument("--catalogue", metavar="PATH", help="models.yaml to use (default: the project's; "
                                                            "or $HARNESS_MODELS)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="show the model catalogue")
    listing.add_argument("--filter", metavar="GLOB", help="only names matching, e.g. 'resnet*' (comma-separated)")
    listing.add_argument("--json", action="store_true", help="print JSON (exact params, MACs, conv MACs, file size)")
    listing.add_argument("--no-compute", action="store_true",
                         help="show only cached complexity; do not build models to count it")

    bench = commands.add_parser("bench", help="time models on runtimes, one fresh process per cell")
    chosen = bench.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--models", metavar="NAMES",
                        help="comma-separated names or globs, e.g. 'resnet18,mobilenet_v2' or 'vgg*'")
    chosen.add_argument("--onnx", metavar="PATH", help="an ONNX file made elsewhere (runtimes that run ONNX)")
    bench.add_argument("--runtime", default="torch", metavar="NAMES",
                       help=f"comma-separated: {', '.join(RUNTIMES)}, or a plug-in 'module:Class' (default torch)")
    bench.add_argument("--batch-sizes", default=",".join(map(str, PAPER_BATCH_SIZES)), metavar="N,N",
                       help="default: the paper's 1,2,4,8,16,32,64")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    bench.add_argument("--precision", default="fp32", metavar="P", help="fp32 and/or fp16, comma-separated")
    bench.add_argument("--weights", default="random",
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
    bench.add_argument("--strict", action="store_true",
                       help=f"re-run a cell whose timing verdict is invalid (up to {STRICT_RETRIES} more times)")
    bench.add_argument("--order", choices=ORDERS, default="model",
                       help="model (default), interleaved (batch size by batch size across models) or random")
    bench.add_argument("--process-start", choices=PROCESS_STARTS, default=DEFAULT_PROCESS_START,
                       help="fork: each cell's fresh process is forked from one that imported its libraries once "
                            "(default); exec: a new interpreter per cell, which also pays the imports")
    bench.add_argument("--resume", metavar="RUN-ID",
                       help="continue that run in --out, skipping recorded cells; 'last' = the newest run of "
                            "the same plan")
    bench.add_argument("--show", default="time,memory", metavar="TABLES",
                       help="tables to print at the end: time, memory (default both)")
    _add_export_options(bench)

    show = commands.add_parser("show", help="print the tables of recorded runs again")
    show.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, e.g. results/<run-id>")
    show.add_argument("--show", default="time,memory", metavar="TABLES", help="time, memory (default both)")

    export = commands.add_parser("export", help="export models to ONNX once (cached by content)")
    export.add_argument("--models", required=True, metavar="NAMES", help="comma-separated names or globs")
    export.add_argument("--precision", default="fp32", metavar="P", help="fp32 and/or fp16, comma-separated")
    export.add_argument("--weights", default="random", help="random (default), pretrained, or a state-dict path")
    export.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    export.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="seconds per model (default 1800)")
    _add_export_options(export)

    verify = commands.add_parser("verify", help="numeric agreement of each runtime with PyTorch eager")
    verify.add_argument("--models", required=True, metavar="NAMES", help="comma-separated names or globs")
    verify.add_argument("--runtime", default="ort", metavar="NAMES", help="runtimes to check (default ort)")
    verify.add_argument("--precision", default="fp32", metavar="P", help="fp32 and/or fp16, comma-separated")
    verify.add_argument("--batch-size", type=int, default=4, metavar="N", help="images compared (default 4)")
    verify.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    verify.add_argument("--weights", default="random", help="random (default), pretrained, or a state-dict path")
    verify.add_argument("--threads", type=int, metavar="N", help="intra-op CPU threads")
    verify.add_argument("--seed", type=int, default=0, help="seed of the inputs and random weights (default 0)")
    verify.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="seconds per cell (default 1800)")
    verify.add_argument("--out", default="results", metavar="DIR", help="parent of the run folder (default results/)")
    verify.add_argument("--run-id", metavar="ID", help="name of the run folder (default: timestamp)")
    _add_export_options(verify)
    report_commands.add_parsers(commands)
    return parser


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset for export (default 18)")
    parser.add_argument("--simplify", action="store_true", help="simplify exported graphs with onnxslim")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="artifact cache (default $HARNESS_CACHE_DIR or ~/.cache/dnn-harness)")


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
            "name": spec.name, "paper_name": spec.paper_name, "display_name": spec.display_name,
            "family": spec.family, "source": spec.source, "builder": spec.builder, "input_size": spec.input_size,
            "published_top1": spec.published.top1, "published_top5": spec.published.top5,
            "published_source": spec.published.accuracy_source, "source_installed": spec.source_installed,
            "complexity": complexity.as_dict() if complexity else None,
        })
    return rows


def _compute_complexity(specs: list[ModelSpec], keys: dict[str, str], cache: ComplexityCache) -> None:
    from exporters.torch_models import build_module

    with _progress(err_console) as progress:
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
    rows = _complexity_rows(catalogue, specs, compute=not args.no_compute)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        console.print(catalogue_table(rows))
        console.print(f"{len(rows)} models from {catalogue.path}")
    return 0


# ---------------------------------------------------------------- bench

def _check_device(device: str) -> None:
    if device == "cpu":
        return
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise UserError(f"unknown device '{device}': use cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but no CUDA device is visible here; use --device cpu")


def _check_runtimes(names: list[str]) -> list[type]:
    classes = []
    for name in names:
        try:
            classes.append(runtime_class(name))
        except KeyError:
            raise UserError(f"unknown runtime '{name}': choose from {', '.join(RUNTIMES)} "
                            "(or a plug-in 'module:Class')") from None
        except RuntimeUnavailable as exc:
            raise UserError(f"{exc}; install it or choose another --runtime") from None
    return classes


def _check_sources(specs: list[ModelSpec]) -> None:
    for spec in specs:
        if not spec.source_installed:
            hint = "pip install 'dnn-harness[paper]'" if spec.source == "pretrainedmodels" else f"pip install {spec.source}"
            raise UserError(f"model '{spec.name}' needs {spec.source}, which is not installed: {hint}")


def _check_weights(weights: str) -> str:
    if weights in ("random", "pretrained"):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"weights file '{weights}' does not exist: pass random, pretrained or a state-dict path")
    return str(path.resolve())


def _check_out_dir(out: str) -> Path:
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder '{out}': {exc.strerror}; pass --out DIR") from None
    return path


def _progress(console_: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console_, transient=False)


def _check_precisions(text: str) -> list[str]:
    precisions = _comma_list(text)
    for precision in precisions:
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision '{precision}': choose from {', '.join(PRECISIONS)}")
    if not precisions:
        raise UserError("no precision given: e.g. --precision fp32")
    return precisions


def _check_common(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise UserError(f"bad --threads {args.threads}: give a positive number of threads")
    if args.timeout <= 0:
        raise UserError(f"bad --timeout {args.timeout:g}: give a positive number of seconds")
    if not 7 <= args.opset <= 23:
        raise UserError(f"bad --opset {args.opset}: the exporters write opsets 7 to 23 (default 18)")
    if args.cache_dir:
        os.environ[CACHE_ENV] = str(Path(args.cache_dir).expanduser().resolve())


def _subjects(args: argparse.Namespace, catalogue: Catalogue, classes: list[type]) -> dict[str, Subject]:
    if getattr(args, "onnx", None):
        onnx_file = inspect_onnx(args.onnx)
        torch_like = [cls.name for cls in classes if cls.builds_model and cls.artifact_kind != "onnx"]
        if torch_like:
            raise UserError(f"--onnx runs on ONNX runtimes; {', '.join(torch_like)} runs catalogue models: "
                            "use --runtime ort")
        return {onnx_file.name: Subject(onnx_file=onnx_file)}
    specs = catalogue.select(args.models)
    if any(cls.builds_model for cls in classes):
        _check_sources(specs)
    return catalogue_subjects(specs)


def _run_sweep(sweep: Sweep, cells: list[Any], verb: str) -> list[dict[str, Any]] | None:
    with _progress(console) as progress:
        task = progress.add_task("starting", total=len(cells))

        def on_start(cell: Any) -> None:
            progress.update(task, description=f"{verb} {cell.model} {cell.runtime} {cell.precision} "
                                              f"bs{cell.batch_size}")

        def on_done(cell: Any, record: dict[str, Any]) -> None:
            progress.advance(task)
            if record["status"] != "ok":
                progress.console.print(f"[yellow]{escape(cell.cell_id)}: {record['status']}[/yellow]")

        try:
            records = sweep.run(cells, on_done=on_done, on_start=on_start)
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted: the running cell's process was ended; every finished record is "
                              f"in {sweep.records_path}")
            return None
        progress.update(task, description="done")
    return records


def _finish(records: list[dict[str, Any]], records_path: Path) -> int:
    for line in failures(records):
        console.print(f"[yellow]{escape(line)}[/yellow]")
    ok = sum(r["status"] == "ok" for r in records)
    console.print(f"{ok}/{len(records)} cells ok. Records: {records_path}")
    return 0 if ok == len(records) else 1


def _export_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"opset": args.opset, "simplify": args.simplify}


def _check_tables(text: str) -> list[str]:
    tables = _comma_list(text)
    for table in tables:
        if table not in TABLES:
            raise UserError(f"unknown table '{table}' for --show: choose from {', '.join(TABLES)}")
    return tables


def _print_tables(records: list[dict[str, Any]], tables: list[str], title: str) -> None:
    if "time" in tables:
        console.print(run_table(records, title=title))
    if "memory" in tables:
        console.print(memory_table(records, title=f"{title}: memory"))
    for line in largest_batches(records):
        console.print(line)


def _resume_run_id(args: argparse.Namespace, out_dir: Path, sweep_signature: dict[str, Any]) -> str:
    if args.resume == "last":
        run_id = last_run_of_plan(out_dir, sweep_signature)
        if run_id is None:
            raise UserError(f"no run in {out_dir} has this plan; drop --resume to start one")
        return run_id
    plan = read_plan(out_dir / args.resume)
    if plan.get("signature") != sweep_signature:
        raise UserError(f"run {args.resume} was planned with other models, runtimes, batch sizes or settings; "
                        "repeat its own command with --resume, or drop --resume to start a new run")
    return args.resume


def _resume_hint(run_id: str) -> str:
    words = [w for w in sys.argv[1:]]
    if "--resume" in words:
        index = words.index("--resume")
        del words[index:index + 2]
    words = [w for i, w in enumerate(words) if not (w == "--run-id" or (i and words[i - 1] == "--run-id"))]
    return "python -m harness " + " ".join(words + ["--resume", run_id])


def command_bench(args: argparse.Namespace, catalogue: Catalogue) -> int:
    runtime_names = _comma_list(args.runtime)
    if not runtime_names:
        raise UserError("no runtime given: e.g. --runtime torch")
    classes = _check_runtimes(runtime_names)
    precisions = _check_precisions(args.precision)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    tables = _check_tables(args.show)
    _check_common(args)
    _check_device(args.device)
    max_memory = parse_size(args.max_memory) if args.max_memory else None
    subjects = _subjects(args, catalogue, classes)
    for subject in subjects.values():
        if subject.onnx_file:
            subject.onnx_file.check_batch_sizes(batch_sizes)
    weights = _check_weights(args.weights)
    out_dir = _check_out_dir(args.out)

    cells = plan_cells(list(subjects), runtime_names, precisions, batch_sizes, args.device, args.order, args.seed)
    preset = "thorough" if args.thorough else "quick"
    settings = BenchSettings(policy=THOROUGH if args.thorough else QUICK, weights=weights, threads=args.threads,
                             channels_last=args.channels_last, timeout_s=args.timeout, seed=args.seed,
                             export=_export_settings(args), max_memory_bytes=max_memory,
                             strict_retries=STRICT_RETRIES if args.strict else 0, max_cv=MAX_CV[preset],
                             order=args.order, process_start=args.process_start)
    sweep = Sweep(out_dir, args.run_id or new_run_id(), subjects, settings)
    if args.resume:
        sweep = Sweep(out_dir, _resume_run_id(args, out_dir, sweep.signature(cells)), subjects, settings)
    pending = sweep.pending(cells)
    console.print(f"[bold]{len(cells)} cells[/bold] ({len(subjects)} models x {len(runtime_names)} runtimes x "
                  f"{len(precisions)} precisions x {len(batch_sizes)} batch sizes) on {args.device}"
                  + (f", {len(cells) - len(pending)} already recorded in {sweep.run_id}" if args.resume else "")
                  + f"; weights: {WEIGHTS_NOTE.get(weights, f'from {weights}')}; policy: {preset}"
                  + (f"; memory cap {max_memory:,} bytes per cell" if max_memory else ""))
    records = _run_sweep(sweep, cells, "timing")
    if records is None:
        err_console.print(f"resume with: {escape(_resume_hint(sweep.run_id))}", highlight=False, soft_wrap=True)
        return 130
    everything = read_records(sweep.records_path).records
    _print_tables(everything, tables, f"run {sweep.run_id} ({args.device})")
    return _finish(everything, sweep.records_path)


def command_show(args: argparse.Namespace, catalogue: Catalogue) -> int:
    tables = _check_tables(args.show)
    records = []
    for run in args.runs:
        path = Path(run) / RECORDS_FILE
        if not path.is_file():
            raise UserError(f"no {RECORDS_FILE} in '{run}': pass a run folder such as results/<run-id>")
        records += [r for r in read_records(path).records if r.get("kind", "bench") == "bench"]
    _print_tables(records, tables, ", ".join(Path(run).name for run in args.runs))
    return 0


def command_export(args: argparse.Namespace, catalogue: Catalogue) -> int:
    precisions = _check_precisions(args.precision)
    _check_common(args)
    specs = catalogue.select(args.models)
    _check_sources(specs)
    weights = _check_weights(args.weights)
    subjects = catalogue_subjects(specs)
    cells = plan_cells(list(subjects), ["ort"], precisions, [1], "cpu")
    settings = BenchSettings(policy=QUICK, weights=weights, timeout_s=args.timeout, seed=args.seed, mode="export",
                             export=_export_settings(args))
    sweep = Sweep(_check_out_dir(str(Path(cache_dir()) / "export-logs")), new_run_id(), subjects, settings)
    records = _run_sweep(sweep, cells, "exporting")
    if records is None:
        err_console.print("run the same export command again to go on: finished files are cached")
        return 130
    console.print(export_table(records))
    console.print(f"artifacts in {cache_dir() / 'onnx'}")
    return _finish(records, sweep.records_path)


def command_verify(args: argparse.Namespace, catalogue: Catalogue) -> int:
    runtime_names = _comma_list(args.runtime)
    classes = _check_runtimes(runtime_names)
    precisions = _check_precisions(args.precision)
    if args.batch_size < 1:
        raise UserError(f"bad --batch-size {args.batch_size}: give a positive number of images")
    _check_common(args)
    _check_device(args.device)
    subjects = _subjects(args, catalogue, classes)
    weights = _check_weights(args.weights)
    cells = plan_cells(list(subjects), runtime_names, precisions, [args.batch_size], args.device)
    settings = BenchSettings(policy=QUICK, weights=weights, threads=args.threads, timeout_s=args.timeout,
                             seed=args.seed, mode="parity", export=_export_settings(args))
    sweep = Sweep(_check_out_dir(args.out), args.run_id or new_run_id(), subjects, settings)
    records = _run_sweep(sweep, cells, "verifying")
    if records is None:
        err_console.print("run the same verify command again to check the remaining cells")
        return 130
    console.print(parity_table(records))
    return _finish(records, sweep.records_path)


# ---------------------------------------------------------------- entry point

COMMANDS = {"list": command_list, "bench": command_bench, "export": command_export, "verify": command_verify,
            "show": command_show, **report_commands.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        catalogue = load_catalogue(args.catalogue)
        return COMMANDS[args.command](args, catalogue)
    except UserError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
