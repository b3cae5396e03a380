"""The harness from Python (a notebook, a script): run a sweep, load run folders into a pandas DataFrame.

    from harness import api

    run = api.bench(models=["resnet18", "mobilenet_v2"], runtimes=["torch", "ort"], batch_sizes=[1, 8])
    frame = api.frame(run.run_dir)          # one row per cell: model, runtime, ..., median_ms, images_per_s, ...
    frame.pivot_table(index="model", columns="runtime", values="images_per_s")

`bench`, `verify` and `accuracy` take the command's options as keyword arguments (`threads=4`,
`energy="off"`, `runtime_option=["ort.graph_optimization=basic"]`) and go through the command line's own
parser and checks, so they accept and refuse exactly what the CLI does: a mistake raises
`harness.errors.UserError` with the CLI's one line. They return the run's folder, its exit code (0 when
every cell is ok) and its typed records. Nothing here measures anything itself.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from harness.errors import UserError
from harness.records import RECORDS_FILE, Record, latest_records, read_records

if TYPE_CHECKING:
    import pandas

__all__ = ["Run", "bench", "verify", "accuracy", "records", "frame", "UserError"]


@dataclass(frozen=True)
class Run:
    """A run the API just made (or resumed): where it is, how it ended, and what it recorded."""

    run_dir: Path
    exit_code: int  # 0: every planned cell has an ok record; 1: some did not; 130: interrupted
    records: list[Record]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def frame(self) -> "pandas.DataFrame":
        """This run's cells as a DataFrame (see `frame`)."""
        return frame(self.run_dir)


def _flags(options: dict[str, Any]) -> list[str]:
    """Keyword arguments as the command's flags: `batch_sizes=[1, 8]` -> `--batch-sizes 1,8`, `strict=True` ->
    `--strict`, a list under a repeatable flag (`runtime_option=[...]`) -> the flag once per item."""
    argv: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif name in REPEATED:
            for item in value:
                argv += [flag, str(item)]
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


REPEATED = {"runtime_option"}  # flags the CLI takes several times (action="append")


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """The CLI's tables and progress bars silenced while `enabled` (its error lines still raise)."""
    from harness.cli.common import console, err_console

    before = console.quiet, err_console.quiet
    console.quiet = err_console.quiet = enabled
    try:
        yield
    finally:
        console.quiet, err_console.quiet = before


def _parse(argv: list[str]) -> Any:
    """The CLI's own parser; its usage errors become UserError (not SystemExit) with argparse's message."""
    from harness.cli.main import build_parser

    parser = build_parser()
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(argv)
    except SystemExit:
        lines = [line for line in said.getvalue().splitlines() if line.strip()]
        message = lines[-1].split("error: ", 1)[-1] if lines else f"bad arguments: {argv}"
        if message.startswith("unrecognized arguments"):
            message = (f"{argv[0]}(): {message.replace('unrecognized arguments', 'unknown options')}; its keyword "
                       f"arguments are the CLI's flags (python -m harness {argv[0]} --help), e.g. batch_sizes=[1, 8]")
        raise UserError(message) from None


def _run(command: str, models: Sequence[str] | str | None, options: dict[str, Any], quiet: bool) -> Run:
    """The command run in this process; `models` None leaves --models out (a bundle's, with `bundle=`). The run
    folder is the one the command wrote: a new run id, or the run `resume=` resumed."""
    from harness.catalogue.registry import load_catalogue
    from harness.cli.main import COMMANDS
    from harness.sweep.sweep import new_run_id

    if models is not None:
        options = {**options, "models": models if isinstance(models, str) else list(models)}
    if not options.get("resume"):  # resuming: the command finds the run (and says it in args.run_id)
        options["run_id"] = options.get("run_id") or new_run_id()
    args = _parse([command, *_flags(options)])
    with _quiet(quiet):
        code = COMMANDS[command](args, load_catalogue(args.catalogue))
    run_dir = Path(args.out) / args.run_id
    return Run(run_dir, code, records(run_dir) if (run_dir / RECORDS_FILE).is_file() else [])


def bench(models: Sequence[str] | str | None, runtimes: Sequence[str] | str, *, quiet: bool = True,
          **options: Any) -> Run:
    """`python -m harness bench`: time `models` (names, globs or @sets; None with `bundle=DIR`: the bundle's) on
    `runtimes`. Options as the CLI's (`batch_sizes=[1, 8]`, `precision=["fp32", "fp16"]`, `device="cuda"`,
    `out="results"`, `thorough=True`, `resume="last"`...)."""
    return _run("bench", models, {**options, "runtime": runtimes if isinstance(runtimes, str) else list(runtimes)},
                quiet)


def verify(models: Sequence[str] | str | None, runtimes: Sequence[str] | str, *, quiet: bool = True,
           **options: Any) -> Run:
    """`python -m harness verify`: each runtime's outputs against PyTorch eager fp32's (None with `bundle=DIR`:
    the bundle's models, against its reference outputs)."""
    return _run("verify", models, {**options, "runtime": runtimes if isinstance(runtimes, str) else list(runtimes)},
                quiet)


def accuracy(models: Sequence[str] | str, runtimes: Sequence[str] | str, data: str | Path, *, quiet: bool = True,
             **options: Any) -> Run:
    """`python -m harness accuracy`: top-1/top-5 on the labelled images under `data`."""
    return _run("accuracy", models, {**options, "data": str(data),
                                     "runtime": runtimes if isinstance(runtimes, str) else list(runtimes)}, quiet)


def records(*run_dirs: str | Path) -> list[Record]:
    """Every cell's latest record in the run folders, typed (harness.records.Record)."""
    found: list[Record] = []
    for run_dir in _folders(run_dirs):
        path = Path(run_dir) / RECORDS_FILE
        if not path.is_file():
            raise UserError(f"no {RECORDS_FILE} in '{run_dir}': pass a run folder such as results/<run-id>")
        found += read_records(path).check_readable(Path(run_dir)).typed
    return latest_records(found)


def _folders(run_dirs: Iterable[str | Path]) -> list[Path]:
    folders = [Path(d) for d in run_dirs]
    if not folders:
        raise UserError("which runs? pass one or more run folders, e.g. frame('results/my-run')")
    return folders


COLUMNS = ("run_id", "model", "display_name", "family", "runtime", "precision", "device", "device_kind",
           "batch_size", "status", "valid", "median_ms", "p90_ms", "per_image_ms", "images_per_s", "samples",
           "memory_bytes", "memory_source", "params", "macs", "top1", "top5", "accuracy_kind", "joules_per_image",
           "average_watts", "onnx_opset", "scenario", "p99_ms", "rate_qps", "scenario_images_per_s", "started_at",
           "error", "invalid_reasons")


def frame(*run_dirs: str | Path) -> "pandas.DataFrame":
    """The bench cells of one or many run folders (or a parent of run folders, e.g. `results`) as a pandas
    DataFrame, one row per cell (the newest record where a cell was run again), with flat columns: COLUMNS,
    then `memory_<source>_bytes` for every memory source read. Accuracy measured by `accuracy` runs among
    the folders fills `top1`/`top5` (kind `measured`), else the published figure (kind `published`).
    Write it with `.to_csv(path)`, or `.to_parquet(path)` where pyarrow is installed."""
    try:
        import pandas
    except ImportError:
        raise UserError("frame() needs pandas: pip install 'dnn-harness[notebook]'") from None
    from harness.reports import data

    dataset = data.load(_folders(run_dirs))
    sources = sorted({source for point in dataset.every_point for source in point.memory_peak_bytes})
    rows = [_row(point, sources) for point in dataset.every_point]
    columns = [*COLUMNS, *(f"memory_{source}_bytes" for source in sources)]
    return pandas.DataFrame(rows, columns=columns)


def _row(point: Any, sources: list[str]) -> dict[str, Any]:
    accuracy = point.accuracy
    return {"run_id": point.run_id, "model": point.model, "display_name": point.display_name,
            "family": point.family, "runtime": point.runtime, "precision": point.precision, "device": point.device,
            "device_kind": point.device_kind, "batch_size": point.batch_size, "status": point.status,
            "valid": point.valid, "median_ms": point.batch_median_ms, "p90_ms": point.batch_p90_ms,
            "per_image_ms": point.per_image_ms, "images_per_s": point.images_per_s, "samples": point.samples,
            "memory_bytes": point.memory_bytes, "memory_source": point.memory_source if point.memory_bytes else None,
            "params": point.params, "macs": point.macs,
            "top1": accuracy.top1 if accuracy else None, "top5": accuracy.top5 if accuracy else None,
            "accuracy_kind": accuracy.kind if accuracy else None, "joules_per_image": point.joules_per_image,
            "average_watts": point.average_watts, "onnx_opset": point.onnx_opset, "scenario": point.scenario,
            "p99_ms": point.p99_ms, "rate_qps": point.rate_qps, "scenario_images_per_s": point.scenario_images_per_s,
            "started_at": point.started_at,
            "error": point.error, "invalid_reasons": "; ".join(point.invalid_reasons) or None,
            **{f"memory_{source}_bytes": point.memory_peak_bytes.get(source) for source in sources}}
