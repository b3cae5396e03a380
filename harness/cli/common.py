"""What the CLI's commands share: argument checks that turn user mistakes into one-line errors, the
progress bar, and running a sweep of cells with it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.catalogue.registry import ModelSpec
from harness.cli.tables import failures
from harness.errors import UserError
from harness.execution.executor import StorageFailed
from harness.paths import CACHE_ENV, cache_dir
from harness.cells import SCENARIOS
from harness.protocol import ExportSettings, ScenarioSettings
from harness.records import Record
from harness.sweep.runs import last_run_of_plan, read_plan, same_plan
from harness.sweep.sweep import Sweep
from harness.units import check_seconds, check_seed
from runtimes import (RUNTIMES, OfferedFamily, RuntimeUnavailable, cuda_driver, declared_classes, device_families,
                      device_family, device_patterns, precision_takers, runtime_class)
from runtimes.base import PRECISIONS, BadOption

UNWRAPPED_WIDTH = 400  # outside a terminal (a pipe, a CI log, tee): tables at their full width, never cut


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; elsewhere $COLUMNS if set, else wide enough that no cell is cut to '…'
    (rich would fall back to 80 columns and print 'Mobile…' for the model it recommends)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=UNWRAPPED_WIDTH if wide else None)


console = make_console()
err_console = make_console(stderr=True)


_json_stdout: list[TextIO] = []  # the real stdout while a --json command runs (json_only_stdout)


def print_json(value: Any) -> None:
    """JSON for scripts on stdout, nothing else (tables and notes are for people)."""
    stream = _json_stdout[-1] if _json_stdout else sys.stdout
    stream.write(json.dumps(value, indent=2, default=str) + "\n")
    stream.flush()


@contextlib.contextmanager
def json_only_stdout(active: bool) -> Iterator[None]:
    """With --json, stdout carries the JSON alone: whatever else this process prints while the command runs
    (progress bars, mode lines, tables, notes, a library's print) goes to stderr; `print_json` writes to the
    real stdout. The consoles follow, since rich looks sys.stdout up at each print."""
    if not active:
        yield
        return
    real = sys.stdout
    real.flush()
    _json_stdout.append(real)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = real
        _json_stdout.pop()


def either(words: list[str]) -> str:
    """'a, b or c'."""
    return " or ".join(filter(None, [", ".join(words[:-1]), words[-1] if words else ""]))


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


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a runtime's own option, repeatable, e.g. ort.graph_optimization=basic, "
                             "torch.cudnn_benchmark=off (recorded with every result)")


def runtime_options(args: argparse.Namespace, runtime_names: list[str]) -> dict[str, dict[str, Any]]:
    """--runtime-option PREFIX.NAME=VALUE, validated by each requested runtime whose prefix it names:
    {runtime: {name: value}}. An option no requested runtime takes is one clear line."""
    classes = {name: runtime_class(name, installed_here=False) for name in runtime_names}  # checked before
    raw: dict[str, dict[str, str]] = {name: {} for name in runtime_names}
    for text in getattr(args, "runtime_option", None) or []:
        key, sep, value = text.partition("=")
        prefix, dot, name = key.strip().partition(".")
        if not sep or not dot or not name or not value.strip():
            raise UserError(f"bad --runtime-option '{text}': write RUNTIME.NAME=VALUE, "
                            "e.g. ort.graph_optimization=basic")
        takers = [runtime for runtime, cls in classes.items() if cls.option_prefix and cls.option_prefix == prefix]
        if not takers:
            prefixes = sorted({cls.option_prefix for cls in classes.values() if cls.option_prefix})
            raise UserError(f"--runtime-option '{text}': no requested runtime takes '{prefix}.' options "
                            f"(these take: {', '.join(prefixes) or 'none'})")
        for runtime in takers:
            raw[runtime][name] = value.strip()
    try:
        return {runtime: classes[runtime].parse_options(values) for runtime, values in raw.items() if values}
    except BadOption as exc:
        raise UserError(f"--runtime-option: {exc}") from None


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset for export (default 18)")
    parser.add_argument("--simplify", action="store_true", help="simplify exported graphs with onnxslim")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="artifact cache (default $HARNESS_CACHE_DIR or ~/.cache/dnn-harness)")
    from harness.cli.calibration import add_calibration_options

    add_calibration_options(parser)


def _family_line(offered: OfferedFamily) -> str:
    """'dla:N: a Jetson's DLA core, beside its GPU cuda:0 (trt, trtexec)'."""
    return f"{offered.family.pattern}: {offered.family.description} ({', '.join(offered.runtimes)})"


def device_help() -> str:
    """--device's help: each device family the registered runtimes declare, what it is and which runtimes take it."""
    return "; ".join(_family_line(offered) for offered in device_families()) + "; default cpu"


def _grouped(takers: dict[str, str]) -> str:
    """'ort, trt; torch, torch-compile: CUDA only': runtimes with the same condition together, unconditional first."""
    conditions: dict[str, list[str]] = {}
    for name, condition in sorted(takers.items(), key=lambda item: item[1] != ""):
        conditions.setdefault(condition, []).append(name)
    return "; ".join(", ".join(names) + (f": {condition}" if condition else "")
                     for condition, names in conditions.items())


def precision_help() -> str:
    """--precision's help: each precision and the registered runtimes that take it, with their conditions."""
    offered = [(precision, precision_takers(precision)) for precision in PRECISIONS]
    return ", ".join(f"{precision} ({_grouped(takers)})" for precision, takers in offered if takers) + \
        "; comma-separated"


def default_runtime_help(kinds: tuple[str, ...]) -> str:
    """check --on-device --runtime's default per device profile kind, from what the runtimes declare:
    'jetson and cuda profiles: trt, else trtexec where trt is not installed; cpu profiles: ort'."""
    chosen: dict[tuple[str, ...], list[str]] = {}
    for kind in kinds:
        names = tuple(name for name, cls in declared_classes().items() if kind in cls.default_for)
        chosen.setdefault(names, []).append(kind)
    parts = []
    for names, group in chosen.items():
        choice = "".join(f", else {name} where {names[0]} is not installed" for name in names[1:])
        parts.append(f"{' and '.join(group)} profiles: {names[0] + choice if names else 'none (pass --runtime)'}")
    return "; ".join(parts)


def check_device(device: str) -> None:
    """A device of a family a registered runtime declares; a CUDA GPU (or the GPU a DLA core sits beside) the driver
    sees. Whether each runtime can reach it is the runtime's to say, in its cell (`unsupported` with the reason):
    ONNX Runtime or TensorRT may reach a GPU that a CPU-only torch cannot."""
    offered = device_family(device)
    if offered is None:
        raise UserError(f"unknown device '{device}': use {either(device_patterns())} (--help says which runtimes "
                        "take each)")
    gpu = offered.family.cuda_device(device)
    if gpu is None:
        return  # not a CUDA device: a cell says `unsupported` where its runtime finds none
    beside = f" ({offered.family.description}; {', '.join(offered.runtimes)} only)" if gpu != device else ""
    count = cuda_driver.device_count()  # the driver's own count: no torch, so a CPU-only torch does not matter
    if count == 0:
        raise UserError(f"device '{device}'{beside} asked for, but no CUDA device is visible here; use --device cpu")
    if cuda_driver.device_index(gpu) >= count:
        raise UserError(f"device '{device}' asked for, but the driver sees {count} CUDA device(s): use cuda:0 to "
                        f"cuda:{count - 1}")


def check_runtimes(names: list[str], installed_here: bool = True) -> list[type]:
    """The runtimes' classes; `installed_here=False` on a fleet's driver: each node's cells find out whether
    the library is installed where they run (their records say so), and the driver need not have it."""
    classes = []
    for name in names:
        try:
            classes.append(runtime_class(name, installed_here))
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


TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy pickle format


def check_weights_file(weights: str, choices: str = "random, pretrained or a state-dict path") -> str:
    """An existing, non-empty file in a format torch.save writes; its absolute path."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"weights file '{weights}' does not exist: pass {choices}")
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise UserError(f"weights file '{weights}' is empty (0 bytes): pass {choices}")
    if not head.startswith(TORCH_SAVE_MAGIC):
        raise UserError(f"weights file '{weights}' is not a PyTorch state dict (torch.save writes a zip archive): "
                        f"pass {choices}")
    return str(path.resolve())


def check_weights(weights: str) -> str:
    if weights in ("random", "pretrained"):
        return weights
    return check_weights_file(weights)


def writable_dir(path: Path) -> str | None:
    """None when `path` is (or can be made) a folder this process can write in; else the reason."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_out_dir(out: str, fix: str = "pass --out DIR") -> Path:
    path = Path(out)
    problem = writable_dir(path)
    if problem:
        raise UserError(f"cannot write to output folder '{out}': {problem}; {fix}")
    return path


RUN_ID_MAX_CHARS = 128
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_id(run_id: str | None, flag: str = "--run-id") -> str | None:
    """A run id names one folder inside --out: letters, digits, '.', '_' and '-', no path, at most
    RUN_ID_MAX_CHARS characters."""
    if run_id is not None and len(run_id) > RUN_ID_MAX_CHARS:
        raise UserError(f"bad {flag}: {len(run_id)} characters ('{run_id[:24]}...'), more than the "
                        f"{RUN_ID_MAX_CHARS} a run id may have; give a shorter one")
    if run_id is not None and (not RUN_ID.match(run_id) or run_id.endswith(".")):
        raise UserError(f"bad {flag} '{run_id}': use 1 to {RUN_ID_MAX_CHARS} letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit (a folder name inside --out, not a path)")
    return run_id


def check_cache_dir() -> Path:
    """The artifact cache must be a writable folder before any cell needs it."""
    path = cache_dir()
    problem = writable_dir(path)
    if problem:
        raise UserError(f"cannot write to the artifact cache '{path}': {problem}; pass --cache-dir DIR or set "
                        f"{CACHE_ENV}")
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


MAX_STREAMS = 64  # offline's runtime instances: each holds its own copy of the model


def check_scenarios(args: argparse.Namespace) -> tuple[tuple[str, ...], ScenarioSettings]:
    """The scenarios asked for (comma-separated) and their settings; one line for each mistake."""
    scenarios = tuple(comma_list(args.scenario))
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise UserError(f"unknown scenario '{scenario}': choose from {', '.join(SCENARIOS)}")
    if not scenarios:
        raise UserError("no scenario given: e.g. --scenario single-stream")
    bound = args.p99_bound
    if bound is not None and not (bound > 0 and bound != float("inf")):
        raise UserError(f"bad --p99-bound {bound:g}: give the server's latency bound in milliseconds, e.g. 50")
    if not 1 <= args.streams <= MAX_STREAMS:
        raise UserError(f"bad --streams {args.streams}: give how many runtime instances offline runs at once, 1 to "
                        f"{MAX_STREAMS} (each holds the model in memory), e.g. 2")
    if bound is not None and "server" not in scenarios:
        raise UserError("--p99-bound is the server scenario's bound: add --scenario server")
    return scenarios, ScenarioSettings(p99_bound_ms=bound, streams=args.streams)


def check_common(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise UserError(f"bad --threads {args.threads}: give a positive number of threads")
    check_seconds(args.timeout, "--timeout")
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    if not 7 <= args.opset <= 23:
        raise UserError(f"bad --opset {args.opset}: the exporters write opsets 7 to 23 (default 18)")
    check_run_id(getattr(args, "run_id", None))
    if getattr(args, "resume", None) not in (None, "last"):
        check_run_id(args.resume, "--resume")
    if args.cache_dir:
        os.environ[CACHE_ENV] = str(Path(args.cache_dir).expanduser().resolve())
    check_cache_dir()


EXPORT_AGAIN = "run the same export command again (finished files are cached)"


def run_sweep(sweep: Sweep, cells: list[Any], verb: str, go_on: str | None = None) -> list[dict[str, Any]] | None:
    """The sweep with a progress bar; None when Ctrl-C ended it. A full disk is StorageFailed saying how to go
    on: `go_on` (default: resume with the command and --resume RUN-ID, for commands that take --resume)."""
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
        except StorageFailed as exc:
            progress.stop()
            raise StorageFailed(f"{exc}; no cell is blamed for it: make room, then "
                                f"{go_on or 'resume with: ' + resume_hint(sweep.run_id)}") from None
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted: the running cell's process was ended; every finished record is "
                              f"in {sweep.records_path}", highlight=False, soft_wrap=True)
            return None
        progress.update(task, description="done")
    return records


def finish(records: list[Record], records_path: Path, planned: list[Any] | None = None,
           not_counted: list[Record] | None = None) -> int:
    """Failures, the count of ok cells, and exit code 0 only when every planned cell has an ok record, or is
    one of `not_counted` (listed, and said to be left out of the exit code)."""
    for line in failures(records):
        console.print(f"[yellow]{escape(line)}[/yellow]")
    recorded = {r.cell_id for r in records}
    missing = [c.cell_id for c in planned or [] if c.cell_id not in recorded]
    if missing:
        console.print(f"[yellow]{len(missing)} planned cell(s) have no record: {', '.join(missing[:5])}"
                      f"{' ...' if len(missing) > 5 else ''}; run the command again with --resume[/yellow]")
    ok = sum(r.ok for r in records)
    total = len(records) + len(missing)
    left_out = len(not_counted or [])
    console.print(f"{ok}/{total} cells ok"
                  + (f", {left_out} that their runtime cannot run here not counted as failures (--strict counts "
                     "them)" if left_out else "") + f". Records: {records_path}")
    return 0 if ok + left_out == total else 1


def export_settings(args: argparse.Namespace, calibration: dict[str, Any] | None = None) -> ExportSettings:
    return ExportSettings(opset=args.opset, simplify=args.simplify, calibration=calibration)


def resume_run_id(args: argparse.Namespace, out_dir: Path, sweep_signature: dict[str, Any]) -> str:
    """The run --resume names (the newest run of this plan for 'last'), checked to have this plan; also left in
    `args.run_id`, where a caller of the command (the Python API) finds the run that was resumed."""
    if args.resume == "last":
        run_id = last_run_of_plan(out_dir, sweep_signature)
        if run_id is None:
            raise UserError(f"no run in {out_dir} has this plan; drop --resume to start one")
    else:
        plan = read_plan(out_dir / args.resume)
        if not same_plan(plan, sweep_signature):
            raise UserError(f"run {args.resume} was planned with other models, runtimes, batch sizes or settings; "
                            "repeat its own command with --resume, or drop --resume to start a new run")
        run_id = args.resume
    args.run_id = run_id
    return run_id


RESUME_DROPPED = ("--resume", "--run-id")  # replaced by --resume RUN-ID in the command printed


def resume_hint(run_id: str, argv: list[str] | None = None, resume_flag: str = "--resume") -> str:
    """The command that resumes this run: this one's words (`argv`, default sys.argv[1:]) without --run-id and
    --resume (apart, with '=', or abbreviated as argparse takes them), then --resume RUN-ID (`resume_flag`:
    --run-id for a command that goes on in a run named again); every word shell-quoted, so a path with spaces or
    a device such as cpu@* pastes as it is."""
    words, kept, skip_value = list(sys.argv[1:] if argv is None else argv), [], False
    for word in words:
        if skip_value:
            skip_value = False
            continue
        flag = word.split("=", 1)[0]
        if len(flag) > 3 and any(option.startswith(flag) for option in RESUME_DROPPED):
            skip_value = "=" not in word
            continue
        kept.append(word)
    return shlex.join(["python", "-m", "harness", *kept, resume_flag, run_id])
