"""`python -m harness compare BASELINE CANDIDATE [...]`: the same cells in two runs, and whether the candidate
regressed (exit 1 if so, for CI)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import console, print_json, writable_dir
from harness.errors import UserError
from harness.paths import write_atomically
from harness.reports.compare import (DEFAULT_THRESHOLD, INVALID, NO_SAMPLES, WITHIN_NOISE, Comparison, Limits,
                                     compare, comparison_tables, read_run)
from harness.reports.tables import to_markdown, to_rich


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare", help="did a change make anything slower, hungrier or less accurate? runs compared cell by cell",
        description="Match the cells of each CANDIDATE run with the BASELINE run's (model, runtime, precision, "
                    "batch size, device kind); list what differs between their environments; per cell the ratio "
                    "of median times with a bootstrap interval, memory per source and top-1. Exit 1 when any "
                    "cell regressed, so it can gate CI.")
    parser.add_argument("baseline", metavar="BASELINE_RUN", help="the run to compare with (results/<run-id>)")
    parser.add_argument("candidates", nargs="+", metavar="CANDIDATE_RUN", help="the run(s) to judge")
    parser.add_argument("--threshold", default=f"{DEFAULT_THRESHOLD:.0%}", metavar="PCT",
                        help="a slowdown is a regression only above this and outside its interval (default "
                             f"{DEFAULT_THRESHOLD:.0%})".replace("%", "%%"))
    parser.add_argument("--memory-threshold", metavar="PCT",
                        help="also a regression: a memory peak up by more than this (default: memory not judged)")
    parser.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                        help="also a regression: top-1 down by more than this many points, where both runs "
                             "measured it (default: not judged)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the tables as Markdown (e.g. a CI job summary)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON (for scripts)")


def parse_percent(text: str, flag: str) -> float:
    """'5%' or '5' -> 0.05."""
    number = text.strip().removesuffix("%").strip()
    try:
        value = float(number)
    except ValueError:
        raise UserError(f"bad {flag} '{text}': give a percentage, e.g. {flag} 5%") from None
    if not 0 < value < 1000:
        raise UserError(f"bad {flag} '{text}': give a percentage above 0, e.g. {flag} 5%")
    return value / 100


def command_compare(args: argparse.Namespace, catalogue: Any = None) -> int:
    limits = Limits(parse_percent(args.threshold, "--threshold"),
                    parse_percent(args.memory_threshold, "--memory-threshold") if args.memory_threshold else None,
                    _drop(args.max_accuracy_drop))
    markdown = Path(args.markdown) if args.markdown else None
    if markdown is not None:
        problem = writable_dir(markdown.parent if str(markdown.parent) else Path("."))
        if problem:
            raise UserError(f"cannot write --markdown '{args.markdown}': {problem}")
    baseline = read_run(Path(args.baseline))
    comparisons = [compare(baseline, read_run(Path(candidate)), limits) for candidate in args.candidates]
    regressions = sum(len(c.regressions) for c in comparisons)
    if args.json:
        print_json({"baseline": str(baseline.path), "regressions": regressions,
                    "comparisons": [_as_json(c) for c in comparisons]})
    else:
        for comparison in comparisons:
            for table in comparison_tables(comparison):
                console.print(to_rich(table))
            for run in (comparison.baseline, comparison.candidate):
                for line in run.skipped:
                    console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
            console.print(escape(summary(comparison)), highlight=False)
    if markdown is not None:
        write_atomically(markdown, "\n".join(f"## {summary(c)}\n\n" + "\n".join(map(to_markdown, comparison_tables(c)))
                                             for c in comparisons))
    return 1 if regressions else 0


def _drop(points: float | None) -> float | None:
    if points is not None and not 0 <= points < 100:
        raise UserError(f"bad --max-accuracy-drop {points:g}: give points of top-1 from 0 to 100, e.g. 0.5")
    return points


def summary(comparison: Comparison) -> str:
    changes = comparison.changes
    count = {verdict: sum(c.verdicts[0] == verdict for c in changes) for verdict in (WITHIN_NOISE, INVALID, NO_SAMPLES)}
    unmatched = len(comparison.only_baseline) + len(comparison.only_candidate)
    regressed = len(comparison.regressions)
    head = (f"{regressed} regression{'s' if regressed != 1 else ''}" if regressed else "no regression")
    return (f"{comparison.candidate.path.name} against {comparison.baseline.path.name}: {head} in "
            f"{_count(len(changes), 'compared cell')} ({count[WITHIN_NOISE]} within noise, {count[INVALID]} "
            f"invalid and {count[NO_SAMPLES]} without samples not judged); {_count(unmatched, 'cell')} in one run "
            f"only; "
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
                "top1": {"baseline": change.top1[0], "candidate": change.top1[1]} if change.top1 else None}

    def key(match: tuple) -> dict[str, Any]:
        return dict(zip(("model", "runtime", "precision", "batch_size", "device"), match))

    return {"candidate": str(comparison.candidate.path), "regressions": len(comparison.regressions),
            "environment": [{"what": k, "baseline": b, "candidate": c} for k, b, c in comparison.environment],
            "cells": [cell(c) for c in comparison.changes],
            "only_baseline": [key(m) for m in comparison.only_baseline],
            "only_candidate": [key(m) for m in comparison.only_candidate]}
