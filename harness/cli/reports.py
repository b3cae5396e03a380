"""The CLI's report, best and check commands: argument parsing and terminal output around `harness.reports`."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.catalogue.complexity import ComplexityCache
from harness.catalogue.recipes import complexity_key_for
from harness.catalogue.registry import Catalogue, ModelSpec
from harness.cli import fleet as fleet_command
from harness.cli.common import default_runtime_help, make_console, print_json, writable_dir
from harness.cli.tables import checks_table
from harness.errors import UserError
from harness.profiles import PROFILE_KINDS
from harness.reports import data
from harness.reports.best import (LATENCY_STATS, Constraints, best, in_scope, pareto_front, ranked,
                                  unmeasured_lower_precision)
from harness.reports.check import available_profiles, check_models, load_profile
from harness.reports.tables import to_rich
from harness.units import check_positive, parse_size

console = make_console()
DEFAULT_RESULTS = "results"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="figures, tables and an HTML page from recorded runs")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (results/<run-id>) or folders of runs; several merge")
    report.add_argument("--out", metavar="DIR", help="where to write (default reports/<run-id> or reports/merged-<time>)")
    report.add_argument("--quiet", action="store_true", help="do not print the tables, only where the files are")
    report.add_argument("--baseline", metavar="RUN_DIR",
                        help="add a section comparing each run with this one (as `compare` does, default threshold)")

    best_parser = commands.add_parser("best", help="the most accurate model under memory/speed limits, from records")
    best_parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help=f"run folders (default: all of {DEFAULT_RESULTS}/)")
    best_parser.add_argument("--max-memory", metavar="SIZE", help="e.g. 700MB, 1.4GB (the device's primary memory source)")
    best_parser.add_argument("--min-fps", type=float, metavar="N", help="images per second at the batch size")
    best_parser.add_argument("--max-latency", type=float, metavar="MS", help="batch latency limit in ms")
    best_parser.add_argument("--max-watts", type=float, metavar="W",
                             help="average power while running, from the device's energy source (NVML on a GPU, "
                                  "the module's input rail on a Jetson, RAPL on a CPU): records without it do not fit")
    best_parser.add_argument("--max-p99", type=float, metavar="MS",
                             help="the stated p99 latency of multi-stream and server cells (bench --scenario)")
    best_parser.add_argument("--at-rate", type=float, metavar="QPS",
                             help="server cells whose highest rate holding their p99 bound is at least this many "
                                  "queries per second")
    best_parser.add_argument("--latency-stat", choices=LATENCY_STATS, default="median",
                             help="which latency --max-latency limits (p90 needs >= 50 samples)")
    best_parser.add_argument("--min-top1", type=float, metavar="PCT", help="minimum top-1 accuracy in %%")
    best_parser.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                             help="at most this many points of measured top-1 below the model's fp32 on the same "
                                  "runtime (fp16 and int8 cells need accuracy runs at both precisions)")
    best_parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="default 1")
    best_parser.add_argument("--runtime", help="only this runtime")
    best_parser.add_argument("--device", help="only devices whose name contains this, e.g. H200 or EPYC")
    best_parser.add_argument("--precision", help="fp32, fp16, bf16 or int8 (default: every precision measured)")
    best_parser.add_argument("--json", action="store_true", help="print the pick, the next five and the Pareto front "
                                                                 "as JSON (for scripts)")

    check = commands.add_parser("check", help="deployment readiness of models against a device profile")
    check.add_argument("runs", nargs="*", metavar="RUN_DIR", help=f"run folders (default: all of {DEFAULT_RESULTS}/, "
                                                                  "if any)")
    check.add_argument("--profile", required=True, metavar="YAML",
                       help=f"a profile file, or one of: {', '.join(available_profiles())}")
    check.add_argument("--models", metavar="NAMES", help="comma-separated names, globs or @sets (with --on-device: "
                                                         "models of the bundle; default all)")
    check.add_argument("--json", action="store_true", help="print each model's criteria and verdicts as JSON")
    check.add_argument("--on-device", action="store_true",
                       help="measure now, on this device: each model of --bundle is built, checked against the "
                            "bundle's reference outputs and timed at the profile's batch size")
    check.add_argument("--bundle", metavar="DIR", help="with --on-device: a bundle made by export --bundle")
    check.add_argument("--runtime", metavar="NAME",
                       help=f"with --on-device: {default_runtime_help(PROFILE_KINDS)}")
    check.add_argument("--precision", metavar="P", help="with --on-device: fp16 on Jetson and GPU profiles, fp32 on CPU")
    check.add_argument("--out", default="results", metavar="DIR", help="with --on-device: parent of the run folders")
    check.add_argument("--run-id", metavar="ID", help="with --on-device: name of the run folder")
    check.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="with --on-device: seconds per cell")
    check.add_argument("--opset", type=int, default=18, help=argparse.SUPPRESS)
    check.add_argument("--cache-dir", metavar="DIR", help="with --on-device: the artifact cache (engines)")
    check.add_argument("--runtime-option", action="append", default=[], metavar="NAME=VALUE",
                       help="with --on-device: a runtime's own option, e.g. trt.cuda_graph=on")
    check.add_argument("--device", metavar="DEVICE",
                       help="with --on-device: the device measured (default: cuda for Jetson and GPU profiles, cpu "
                            "for CPU ones; dla:N for a Jetson's DLA); on a fleet DEVICE@NODE names the board")
    check.add_argument("--sustained", type=float, metavar="SECONDS",
                       help="with --on-device: time each model for at least SECONDS (e.g. 180) so the board reaches "
                            "the temperature and clocks it holds under steady load; speed is judged on the last half "
                            "of the run, beside the rate of its first tenth")
    check.add_argument("--power-mode", metavar="NAME",
                       help="with --on-device on a Jetson: set this nvpmodel mode (as root) for the check and restore "
                            "the board's own after; 'profile' sets the profile's")
    check.add_argument("--pin-clocks", action="store_true",
                       help="with --on-device on a Jetson: run jetson_clocks (as root) before measuring and restore "
                            "the board's clock settings after, even on Ctrl-C")
    check.add_argument("--with-dla", action="store_true",
                       help="with --on-device on a Jetson with DLA cores: also check each model on every DLA core, "
                            "then time the GPU and every DLA core alone and all at once (aggregate images/s, as "
                            "jetson_benchmarks); runs through trtexec")
    fleet_command.add_executor_options(check)


def _dataset(runs: list[str], required: bool = True) -> data.Dataset | None:
    paths = [Path(r) for r in runs]
    if not paths:
        default = Path(DEFAULT_RESULTS)
        if not default.is_dir():
            if required:
                raise UserError(f"no run folders given and no {DEFAULT_RESULTS}/ here: pass results/<run-id>")
            return None
        paths = [default]
    return data.load(paths)


def command_report(args: argparse.Namespace, catalogue: Catalogue) -> int:
    from harness.reports.report import write_report  # matplotlib and plotly: only when a report is drawn

    dataset = _dataset(args.runs)
    assert dataset is not None
    names = [Path(run).name for run in dataset.runs]
    out = Path(args.out) if args.out else Path("reports") / (
        names[0] if len(names) == 1 else f"merged-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    compared = _compared(args.baseline, dataset.runs)  # a baseline refused before anything is written
    problem = writable_dir(out)
    if problem:
        raise UserError(f"cannot write the report to '{out}': {problem}; pass --out DIR")
    title = "Benchmark report: " + ", ".join(names)
    report = write_report(dataset, out, title, compared)
    if not args.quiet:
        for series_tables in report.tables.values():
            for table in series_tables:
                console.print(to_rich(table))
        for table in report.overall:
            console.print(to_rich(table))
        for line in report.fit_lines:
            console.print(escape(line))
    for note in dataset.notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    console.print(f"{len(report.files)} files in {out}/ (figures/, tables/, tables.md)")
    console.print(f"HTML report: {report.html_path.resolve()}")
    return 0


def _compared(baseline: str | None, runs: list[str]) -> list[tuple[str, list[Any]]]:
    """Each run against the baseline: (heading, tables), for the report's comparison section. The baseline
    among the reported runs is not compared with itself; a baseline that is every reported run is refused."""
    if baseline is None:
        return []
    from harness.cli.compare import summary
    from harness.reports.compare import NoBenchRecords, compare, comparison_tables, problems, read_run

    base = read_run(Path(baseline))
    others = [run for run in runs if Path(run).resolve() != base.path.resolve()]
    if not others:
        raise UserError(f"--baseline '{baseline}' is the only run reported: nothing to compare it with; pass the "
                        f"run(s) to compare, e.g. report results/<new-run> --baseline {baseline}")
    sections = []
    for run in others:
        try:
            candidate = read_run(Path(run))
        except NoBenchRecords:  # an accuracy run reported beside: its top-1 is in the report's tables
            continue
        comparison = compare(base, candidate)
        no_verdict = "; ".join(problems(comparison))
        sections.append((f"Compared with {base.path.name}: {summary(comparison)}"
                         + (f" — no verdict: {no_verdict}" if no_verdict else ""), comparison_tables(comparison)))
    return sections


def _constraints(args: argparse.Namespace) -> Constraints:
    if args.batch_size < 1:
        raise UserError(f"bad --batch-size {args.batch_size}: give a positive number")
    return Constraints(max_memory_bytes=parse_size(args.max_memory) if args.max_memory else None,
                       min_fps=check_positive(args.min_fps, "--min-fps"),
                       max_latency_ms=check_positive(args.max_latency, "--max-latency"),
                       latency_stat=args.latency_stat, min_top1=check_positive(args.min_top1, "--min-top1"),
                       max_accuracy_drop=_check_drop(args.max_accuracy_drop), batch_size=args.batch_size,
                       runtime=args.runtime, device=args.device, precision=args.precision,
                       max_watts=check_positive(args.max_watts, "--max-watts"),
                       max_p99_ms=check_positive(args.max_p99, "--max-p99"),
                       at_rate_qps=check_positive(args.at_rate, "--at-rate"))


def _points_table(title: str, points: list[data.Point]) -> Table:
    table = Table(title=title)
    powered = any(p.average_watts is not None for p in points)  # records with an energy pass
    served = any(p.scenario != "single-stream" for p in points)
    for column in ("model", "runtime", "precision", "device", "top-1 %", "images/s", "median ms", "memory",
                   *(("images/J", "W") if powered else ()), *(("scenario", "p99 ms", "q/s") if served else ())):
        table.add_column(column, justify="left" if column in ("model", "runtime", "precision", "device") else "right")
    for p in points:
        memory = f"{p.memory_bytes / 1e9:.2f} GB ({p.memory_source})" if p.memory_bytes is not None else "—"
        energy = (f"{p.images_per_joule:.1f}" if p.images_per_joule else "—",
                  f"{p.average_watts:.1f}" if p.average_watts is not None else "—") if powered else ()
        served_figures = (p.scenario, f"{p.p99_ms:.2f}" if p.p99_ms is not None else "—",
                          f"{p.rate_qps:.1f}" if p.rate_qps is not None else "—") if served else ()
        table.add_row(p.display_name, p.runtime, p.precision, p.device,
                      f"{p.accuracy.top1:.2f}{'' if p.accuracy.kind == 'measured' else ' (pub.)'}",  # type: ignore[union-attr]
                      f"{p.images_per_s:.1f}" if p.images_per_s else "—",
                      f"{p.batch_median_ms:.2f}" if p.batch_median_ms else "—", memory, *energy, *served_figures)
    return table


def _no_top1_hint(points: list[data.Point]) -> str:
    """What to check when no cell can be ranked: the filters, or that the records hold no classifier (a
    detector or segmenter has no top-1 to rank by)."""
    if points and all(p.task != "classification" for p in points):
        tasks = " and ".join(sorted({p.task for p in points}))
        return (f"best ranks classifiers by top-1, and these records hold {tasks} models only: compare their speed "
                "with `python -m harness report` or `compare`")
    return "check --runtime, --device, --precision and --batch-size against the records"


def command_best(args: argparse.Namespace, catalogue: Catalogue) -> int:
    constraints = _constraints(args)
    dataset = _dataset(args.runs)
    assert dataset is not None
    scope = [p for p in dataset.every_point if in_scope(p, constraints)]
    if not any(p.scenario in constraints.scenarios for p in dataset.every_point):
        flag = "--at-rate" if constraints.at_rate_qps is not None else "--max-p99"
        raise UserError(f"{flag} reads {' or '.join(constraints.scenarios)} cells, and these records have none: "
                        f"measure them with `python -m harness bench --scenario {constraints.scenarios[-1]} ...`")
    if not scope:
        raise UserError(f"no finished cell with a known top-1 matches {constraints.describe()}: "
                        f"{_no_top1_hint(dataset.every_point)}")
    _check_power_readings(scope, constraints)
    pick = best(scope, constraints)
    left_out = _unmeasured_note(dataset.every_point, constraints)
    if args.json:
        print_json({"constraints": constraints.describe(), "cells_in_scope": len(scope),
                    "best": asdict(pick) if pick else None,
                    "next": [asdict(p) for p in (ranked(scope, constraints)[1:6] if pick else [])],
                    "pareto_front": [asdict(p) for p in pareto_front(scope)], "left_out": left_out})
        return 0 if pick is not None else 1
    console.print(f"Constraints: {constraints.describe()} ({len(scope)} cells in scope)")
    if left_out:
        console.print(f"[yellow]{escape(left_out)}[/yellow]")
    if pick is None:
        console.print("[red]No model meets these constraints.[/red]")
    else:
        console.print(_points_table("Best model", [pick]))
        runners_up = ranked(scope, constraints)[1:6]
        if runners_up:
            console.print(_points_table("Next best", runners_up))
    console.print(_points_table("Pareto front: top-1 vs images/s vs memory (in scope, before the limits)",
                                pareto_front(scope)))
    return 0 if pick is not None else 1


def _check_power_readings(scope: list[data.Point], constraints: Constraints) -> None:
    """--max-watts over cells none of which has a power reading can pick nothing: say why, not 'no model'."""
    if constraints.max_watts is None or any(p.average_watts is not None for p in scope):
        return
    reasons = sorted({p.energy_missing or f"no {p.energy_source} reading" for p in scope})
    raise UserError(f"--max-watts {constraints.max_watts:g}: none of the {len(scope)} cells in scope has a power "
                    f"reading ({'; '.join(reasons[:2])}{'; ...' if len(reasons) > 2 else ''}): measure them with "
                    f"`python -m harness bench --energy on` on a machine where RAPL, NVML or a Jetson's power rails "
                    f"can be read")


def _unmeasured_note(points: list[data.Point], constraints: Constraints) -> str:
    """One line on the lower-precision cells left out of a ranking across precisions, and how to bring them in."""
    left_out = [p for p in points if p.ok and p.batch_size == constraints.batch_size
                and unmeasured_lower_precision(p, constraints)]
    if not left_out:
        return ""
    precisions = sorted({p.precision for p in left_out})
    return (f"{len(left_out)} {'/'.join(precisions)} cells left out: their top-1 is not measured (published figures "
            f"are fp32's); run `harness accuracy --precision {precisions[0]} ...` on them, or pass --precision "
            f"{precisions[0]} to rank that precision alone by the published figures")


def _check_drop(value: float | None) -> float | None:
    if value is not None and not 0 <= value < 100:
        raise UserError(f"bad --max-accuracy-drop {value:g}: give points of top-1 from 0 to 100, e.g. 1.0")
    return value


def command_check(args: argparse.Namespace, catalogue: Catalogue) -> int:
    if args.on_device:
        from harness.cli.on_device import command_check_on_device

        return command_check_on_device(args)
    measuring_only = [flag for flag, value in (("--bundle", args.bundle), ("--runtime", args.runtime),
                                               ("--precision", args.precision), ("--run-id", args.run_id),
                                               ("--device", args.device), ("--ray-address", args.ray_address),
                                               ("--ray-timeout", args.ray_timeout))
                      if value is not None] + (["--executor ray"] if args.executor == "ray" else []) + \
        (["--pin-clocks"] if args.pin_clocks else []) + (["--sustained"] if args.sustained is not None else []) + \
        (["--power-mode"] if args.power_mode else []) + (["--with-dla"] if args.with_dla else [])
    if measuring_only:
        verb = "apply" if len(measuring_only) > 1 else "applies"
        raise UserError(f"{', '.join(measuring_only)} {verb} to measuring: add --on-device")
    if not args.models:
        raise UserError("which models? pass --models NAMES (or --on-device --bundle DIR to measure a bundle's)")
    profile = load_profile(args.profile)
    specs = catalogue.select(args.models)
    dataset = _dataset(args.runs, required=bool(args.runs))
    params = {p.model: p.params for p in (dataset.points if dataset else []) if p.params}
    checks = check_models(profile, [(s.name, params.get(s.name) or _cached_params(s)) for s in specs], dataset)
    ready = sum(c.passed for c in checks)
    if args.json:
        print_json({"profile": profile.name, "ready": ready, "models": len(checks),
                    "checks": [{"model": c.model, "passed": c.passed, "criteria": [asdict(k) for k in c.criteria]}
                               for c in checks]})
        return 0 if ready == len(checks) else 1
    console.print("mode: estimate — figures from recorded runs on this profile's device where they exist, a Fig. 4 "
                  "fit otherwise (check --on-device --bundle DIR measures on the board)")
    console.print(checks_table(f"Deployment check: {profile.name}",
                               "ESTIMATE = not measured on this device; UNKNOWN counts as not ready", checks))
    console.print(f"{ready}/{len(checks)} models ready for {profile.name}")
    return 0 if ready == len(checks) else 1


def _cached_params(spec: ModelSpec) -> int | None:
    cached = ComplexityCache().get(complexity_key_for(spec))
    return cached.params if cached else None


COMMANDS = {"report": command_report, "best": command_best, "check": command_check}
