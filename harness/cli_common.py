"""What the CLI's commands share: argument checks that turn user mistakes into one-line errors, the
progress bar, and running a sweep of cells with it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.bench import Sweep
from harness.errors import UserError
from harness.paths import CACHE_ENV
from harness.registry import ModelSpec
from harness.runs import last_run_of_plan, read_plan
from harness.summary import failures
from runtimes import RUNTIMES, RuntimeUnavailable, runtime_class

PRECISIONS = ("fp32", "fp16")

console = Console()
err_console = Console(stderr=True)


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_batch_sizes(text: str) -> list[int]:
    sizes = []
    for part in comma_list(text):
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"bad batch size '{part}': give positive whole numbers, e.g. --batch-sizes 1,2,4")
        sizes.append(int(part))
    if not sizes:
        raise UserError("no batch size given: e.g. --batch-sizes 1,2,4")
    return sorted(set(sizes))


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset for export (default 18)")
    parser.add_argument("--simplify", action="store_true", help="simplify exported graphs with onnxslim")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="artifact cache (default $HARNESS_CACHE_DIR or ~/.cache/dnn-harness)")


def check_device(device: str) -> None:
    if device == "cpu":
        return
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise UserError(f"unknown device '{device}': use cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but no CUDA device is visible here; use --device cpu")


def check_runtimes(names: list[str]) -> list[type]:
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


def check_sources(specs: list[ModelSpec]) -> None:
    for spec in specs:
        if not spec.source_installed:
            hint = "pip install 'dnn-harness[paper]'" if spec.source == "pretrainedmodels" else f"pip install {spec.source}"
            raise UserError(f"model '{spec.name}' needs {spec.source}, which is not installed: {hint}")


def check_weights(weights: str) -> str:
    if weights in ("random", "pretrained"):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"weights file '{weights}' does not exist: pass random, pretrained or a state-dict path")
    return str(path.resolve())


def check_out_dir(out: str) -> Path:
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder '{out}': {exc.strerror}; pass --out DIR") from None
    return path


def progress_bar(console_: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console_, transient=False)


def check_precisions(text: str) -> list[str]:
    precisions = comma_list(text)
    for precision in precisions:
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision '{precision}': choose from {', '.join(PRECISIONS)}")
    if not precisions:
        raise UserError("no precision given: e.g. --precision fp32")
    return precisions


def check_common(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise UserError(f"bad --threads {args.threads}: give a positive number of threads")
    if args.timeout <= 0:
        raise UserError(f"bad --timeout {args.timeout:g}: give a positive number of seconds")
    if not 7 <= args.opset <= 23:
        raise UserError(f"bad --opset {args.opset}: the exporters write opsets 7 to 23 (default 18)")
    if args.cache_dir:
        os.environ[CACHE_ENV] = str(Path(args.cache_dir).expanduser().resolve())


def run_sweep(sweep: Sweep, cells: list[Any], verb: str) -> list[dict[str, Any]] | None:
    with progress_bar(console) as progress:
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


def finish(records: list[dict[str, Any]], records_path: Path) -> int:
    for line in failures(records):
        console.print(f"[yellow]{escape(line)}[/yellow]")
    ok = sum(r["status"] == "ok" for r in records)
    console.print(f"{ok}/{len(records)} cells ok. Records: {records_path}")
    return 0 if ok == len(records) else 1


def export_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"opset": args.opset, "simplify": args.simplify}


def resume_run_id(args: argparse.Namespace, out_dir: Path, sweep_signature: dict[str, Any]) -> str:
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


def resume_hint(run_id: str) -> str:
    words = [w for w in sys.argv[1:]]
    if "--resume" in words:
        index = words.index("--resume")
        del words[index:index + 2]
    words = [w for i, w in enumerate(words) if not (w == "--run-id" or (i and words[i - 1] == "--run-id"))]
    return "python -m harness " + " ".join(words + ["--resume", run_id])
