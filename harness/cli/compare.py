"""`python -m harness compare BASELINE CANDIDATE [...]`: the same cells in two runs, and whether the candidate
regressed (exit 1 if so, for CI)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import console, print_json, writable_dir
from harness.errors import UserError
from harness.paths import write_atomically
from harness.records import RECORDS_FILE
from harness.reports.compare import (BAD_TIMING, DEFAULT_THRESHOLD, INVALID, NO_SAMPLES, SETTINGS_DIFFER, WITHIN_NOISE,
                                     Comparison, Limits, compare, comparison_tables, problems, read_run, with_accuracy)
from harness.reports.tables import to_markdown, to_rich
from harness.sweep.runs import PLAN_FILE


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare", help="did a change make anything slower, hungrier or less accurate? runs compared cell by cell",
        description="Match the cells of each CANDIDATE run with the BASELINE run's (model, runtime, precision, "
                    "batch size, device kind); list what differs between their environments; per cell the ratio "
                    "of median times with a bootstrap interval, memory per source and top-1. Exit 1 when any "
                    "cell regressed, so it can gate CI; exit 2 when there is no verdict to give (nothing "
                    "compared, a timing that cannot be compared, a limit with nothing to judge).")
    parser.add_argument("baseline", metavar="BASELINE_RUN", help="the run to compare with (results/<run-id>)")
    parser.add_argument("candidates", nargs="+", metavar="CANDIDATE_RUN", help="the run(s) to judge")
    parser.add_argument("--threshold", default=f"{DEFAULT_THRESHOLD:.0%}", metavar="SIZE",
                        help="a slowdown is a regression only above this and outside its interval: a percentage "
                             "(5%%) or a fraction (0.05 = 5%%); a bare number of 1 or more is refused as ambiguous "
                             "(default " + f"{DEFAULT_THRESHOLD:.0%}".replace("%", "%%") + ")")
    parser.add_argument("--memory-threshold", metavar="SIZE",
                        help="also a regression: a memory peak up by more than this, as --threshold (10%% or 0.1; "
                             "default: memory not judged)")
    parser.add_argument("--scenario-threshold", metavar="SIZE",
                        help="also a regression: a scenario's figure worse by more than this, as --threshold (a "
                             "server's rate within its p99 bound or offline images/s down, a multi-stream p99 up; "
                             "default: not judged)")
    parser.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                        help="also a regression: top-1 down by more than this many points, where both runs "
                             "measured it (top-1 comes from accuracy runs: see --accuracy; default: not judged)")
    parser.add_argument("--accuracy", nargs="+", metavar="ACCURACY_RUN",
                        help="top-1 from runs made by `harness accuracy`: one for the baseline, then one per "
                             "candidate, in the same order")
    parser.add_argument("--allow-different-settings", action="store_true",
                        help="also judge pairs measured with different settings (threads, --runtime-option, "
                             "channels-last, weights, ONNX opset or int8 calibration); by default they are shown "
                             "with what differs and not judged")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the tables as Markdown (e.g. a CI job summary)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON (for scripts)")


def parse_fraction(text: str, flag: str) -> float:
    """A size of change as a fraction: '5%' (a percentage) or '0.05' (a fraction) -> 0.05. A bare number of 1
    or more is refused: '5' could mean 5 % or 500 %."""
    stripped = text.strip()
    percent = stripped.endswith("%")
    try:
        value = float(stripped.removesuffix("%").strip())
    except ValueError:
        raise UserError(f"bad {flag} '{text}': give a percentage or a fraction, e.g. {flag} 5% or 0.05") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"bad {flag} '{text}': give a change of 0 or more, e.g. {flag} 5% or 0.05")
    if not percent and value >= 1:
        raise UserError(f"bad {flag} '{text}': a bare number is a fraction (0.05 = 5%); for {value:g} percent "
                        f"write {flag} {value:g}%")
    return value / 100 if percent else value


def command_compare(args: argparse.Namespace, catalogue: Any = None) -> int:
    optional = {flag: parse_fraction(value, flag) if value else None for flag, value in
                (("--memory-threshold", args.memory_threshold), ("--scenario-threshold", args.scenario_threshold))}
    limits = Limits(threshold=parse_fraction(args.threshold, "--threshold"),
                    memory_threshold=optional["--memory-threshold"], max_accuracy_drop=_drop(args.max_accuracy_drop),
                    scenario_threshold=optional["--scenario-threshold"],
                    allow_different_settings=args.allow_different_settings)
    markdown = _markdown_file(args.markdown)
    baseline_path, candidate_paths = _distinct_runs(args.baseline, args.candidates)
    runs = [read_run(path) for path in (baseline_path, *candidate_paths)]
    if args.accuracy is not None:
        runs = [with_accuracy(run, path) for run, path in zip(runs, _accuracy_runs(args.accuracy, len(runs)))]
    baseline = runs[0]
    comparisons = [compare(baseline, candidate, limits) for candidate in runs[1:]]
    regressions = sum(len(c.regressions) for c in comparisons)
    found = [problem for comparison in comparisons for problem in problems(comparison)]
    if args.json:
        print_json({"baseline": str(baseline.path), "regressions": regressions, "problems": found,
                    "comparisons": [_as_json(c) for c in comparisons]})
    else:
        _print(comparisons)
    if markdown is not None:
        write_atomically(markdown, "\n".join(f"## {summary(c)}\n\n" + "\n".join(map(to_markdown, comparison_tables(c)))
                                             for c in comparisons))
    if found:
        raise UserError("no verdict: " + "; ".join(found))
    return 1 if regressions else 0


def _print(comparisons: list[Comparison]) -> None:
    for comparison in comparisons:
        for table in comparison_tables(comparison):
            console.print(to_rich(table))
        for run in (comparison.baseline, comparison.candidate):
            for line in run.skipped:
                console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
        console.print(escape(summary(comparison)), highlight=False)


def _markdown_file(text: str | None) -> Path | None:
    """Where --markdown writes, once it is known that it can: a file in a folder this process can write in."""
    if not text:
        return None
    markdown = Path(text)
    if _run_data(markdown.name):
        raise UserError(f"cannot write --markdown '{text}': {markdown.name} is a run's own file, which the tables "
                        f"would replace; name another file, e.g. --markdown {markdown.with_name('compare.md')}")
    if markdown.is_dir():
        raise UserError(f"cannot write --markdown '{text}': it is a folder; name a file, e.g. "
                        f"--markdown {markdown / 'compare.md'}")
    problem = writable_dir(markdown.parent if str(markdown.parent) else Path("."))
    if problem:
        raise UserError(f"cannot write --markdown '{text}': {problem}")
    return markdown


def _run_data(name: str) -> bool:
    """A name the harness reads as part of a run folder (records, plan, environment)."""
    return name in (RECORDS_FILE, PLAN_FILE) or (name.startswith("env") and name.endswith(".json"))


def _distinct_runs(baseline: str, candidates: list[str]) -> tuple[Path, list[Path]]:
    """The run folders, refused where one is given twice: a run compared with itself always passes."""
    seen: dict[Path, int] = {}
    for index, text in enumerate((baseline, *candidates)):
        key = Path(text).resolve()
        if key in seen:
            what = "both the baseline and a candidate" if seen[key] == 0 else "a candidate twice"
            raise UserError(f"'{text}' is {what}: a run compared with itself says nothing; compare two different "
                            f"runs")
        seen[key] = index
    return Path(baseline), [Path(c) for c in candidates]


def _accuracy_runs(texts: list[str], runs: int) -> list[Path]:
    if len(texts) != runs:
        raise UserError(f"--accuracy takes one accuracy run per compared run, baseline first: {runs} expected, "
                        f"{len(texts)} given")
    return [Path(text) for text in texts]


def _drop(points: float | None) -> float | None:
    if points is not None and not 0 <= points < 100:
        raise UserError(f"bad --max-accuracy-drop {points:g}: give points of top-1 from 0 to 100, e.g. 0.5")
    return points


def summary(comparison: Comparison) -> str:
    """One line: how many regressions in how many pairs, what was not judged and why, what did not match."""
    changes = comparison.changes
    unmatched = len(comparison.only_baseline) + len(comparison.only_candidate)
    regressed = len(comparison.regressions)
    head = (f"{regressed} regression{'s' if regressed != 1 else ''}" if regressed else
            "no regression" if comparison.judged else "nothing judged")
    unjudged = ", ".join(f"{comparison.counted(verdict)} {what}" for verdict, what in (
        (INVALID, "invalid"), (NO_SAMPLES, "without samples"), (SETTINGS_DIFFER, "with different settings"),
        (BAD_TIMING, "with unusable timings")) if comparison.counted(verdict))
    return (f"{comparison.candidate.path.name} against {comparison.baseline.path.name}: {head} in "
            f"{_count(len(changes), 'compared cell')} ({comparison.counted(WITHIN_NOISE)} within noise"
            f"{'; not judged: ' + unjudged if unjudged else ''}); {_count(unmatched, 'cell')} in one run only; "
            f"{_count(len(comparison.environment), 'environment difference')}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _as_json(comparison: Comparison) -> dict[str, Any]:
    def cell(change: Any) -> dict[str, Any]:
        model, runtime, precision, batch_size, device = change.match
        time = change.time
        return {"model": model, "runtime": runtime, "precision": precision, "batch_size": batch_size,
                "device": device, "verdicts": change.verdicts, "regressed": change.regressed,
                "baseline_status": change.baseline.status, "candidate_status": change.candidate.status,
                "time_ratio": time.ratio if time else None, "interval": [time.low, time.high] if time else None,
                "baseline_per_image_ms": time.baseline_ms if time else None,
                "candidate_per_image_ms": time.candidate_ms if time else None,
                "memory_peak_bytes": {s: {"baseline": b, "candidate": c} for s, (b, c) in change.memory.items()},
                "top1": {"baseline": change.top1[0], "candidate": change.top1[1]} if change.top1 else None,
                "settings_differ": [{"setting": n, "baseline": b, "candidate": c} for n, b, c in change.settings],
                "scenario": {"figure": change.scenario[0], "baseline": change.scenario[1],
                             "candidate": change.scenario[2]} if change.scenario else None,
                "problem": change.problem}

    def key(match: tuple) -> dict[str, Any]:
        return dict(zip(("model", "runtime", "precision", "batch_size", "device"), match))

    return {"candidate": str(comparison.candidate.path), "regressions": len(comparison.regressions),
            "environment": [{"what": k, "baseline": b, "candidate": c} for k, b, c in comparison.environment],
            "cells": [cell(c) for c in comparison.changes],
            "only_baseline": [key(m) for m in comparison.only_baseline],
            "only_candidate": [key(m) for m in comparison.only_candidate]}
