"""The paper's figures (matplotlib, PNG and SVG), one set per runtime/device/precision series, plus what
the paper could not draw: the runtimes side by side, each runtime's speed-up over PyTorch eager, the
precision trade-off, and the fastest runtime per model on each device.

Each figure names its series and whether its accuracy is measured or published. Operations are FLOPs
as the paper counts them: a multiply-add is two FLOPs (FLOPs = 2 x the catalogue's MACs).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from exporters.tasks import CLASSIFICATION
from harness.reports.data import Dataset, Point, series_label
from harness.reports.fastest import ModelSpeeds, model_speeds
from harness.reports.fits import MB, Line, accuracy_speed_front, bound_curve, memory_fits, upper_bound
from harness.reports.tradeoff import tradeoffs
from harness.cells import REFERENCE

# matplotlib looks for the STIX and Computer Modern fonts of its mathtext once per machine and logs each one it
# falls back from as a warning: twenty lines of noise on a first `report`, about nothing the figures lose
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

FORMATS = ("png", "svg")


@dataclass
class FigureSet:
    """What was drawn: files, and the fitted lines with their numbers (for the report's text)."""

    files: list[Path] = field(default_factory=list)
    upper_bounds: dict[str, Line] = field(default_factory=dict)  # series label -> Fig. 3 bound
    memory_fits: dict[str, dict[str, Line]] = field(default_factory=dict)  # series label -> group -> line
    board_traces: dict[str, Path] = field(default_factory=dict)  # Jetson device -> its traces figure (SVG)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def accuracy_note(points: list[Point]) -> str:
    kinds = sorted({p.accuracy.kind for p in points if p.accuracy})
    if not kinds:
        return "no accuracy known"
    if kinds == ["published"]:
        return "accuracy: published (sources in models.yaml)"
    return "accuracy: " + " and ".join(kinds) + " (measured where an accuracy run exists)"


def _with_accuracy(points: list[Point]) -> list[Point]:
    return [p for p in points if p.accuracy is not None and p.accuracy.top1 is not None]


def _save(figure: Figure, out_dir: Path, name: str, files: list[Path]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        files.append(path)


def _titled(figure: Figure, title: str, series: str, points: list[Point]) -> None:
    figure.suptitle(f"{title}\n{series} · {accuracy_note(points)}", fontsize=10)


def _label(axes, points: list[Point], xs: list[float], ys: list[float]) -> None:
    for point, x, y in zip(points, xs, ys):
        axes.annotate(point.display_name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")


def figure_1(points: list[Point], series: str) -> Figure:
    """Top-1 and top-5 vs GFLOPs; ball area proportional to parameters."""
    points = [p for p in _with_accuracy(points) if p.macs is not None]
    figure = Figure(figsize=(12, 5))
    for index, (metric, label) in enumerate((("top1", "Top-1 accuracy (%)"), ("top5", "Top-5 accuracy (%)"))):
        axes = figure.add_subplot(1, 2, index + 1)
        shown = [p for p in points if getattr(p.accuracy, metric) is not None]
        xs = [2 * p.macs / 1e9 for p in shown]  # type: ignore[operator]
        ys = [getattr(p.accuracy, metric) for p in shown]
        sizes = [max(10.0, (p.params or 0) / 1e6 * 4) for p in shown]
        axes.scatter(xs, ys, s=sizes, alpha=0.5)
        _label(axes, shown, xs, ys)
        axes.set_xlabel("Operations (G-FLOPs; a multiply-add = 2 FLOPs)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    _titled(figure, "Fig. 1 — accuracy vs operations (ball area ∝ parameters)", series, points)
    return figure


def figure_2(points: list[Point], series: str) -> Figure:
    """(a) Top-1 accuracy density (top-1 / M params) per model; (b) top-1 vs that density."""
    points = sorted((p for p in _with_accuracy(points) if p.params), key=lambda p: p.display_name)
    density = [p.accuracy.top1 / (p.params / 1e6) for p in points]  # type: ignore[union-attr,operator]
    figure = Figure(figsize=(13, 5))
    bars = figure.add_subplot(1, 2, 1)
    bars.bar(range(len(points)), density)
    bars.set_xticks(range(len(points)), [p.display_name for p in points], rotation=90, fontsize=6)
    bars.set_ylabel("Top-1 accuracy density (% per M params)")
    scatter = figure.add_subplot(1, 2, 2)
    tops = [p.accuracy.top1 for p in points]  # type: ignore[union-attr]
    scatter.scatter(density, tops)
    _label(scatter, points, density, tops)
    scatter.set_xlabel("Top-1 accuracy density (% per M params)")
    scatter.set_ylabel("Top-1 accuracy (%)")
    scatter.grid(alpha=0.3)
    _titled(figure, "Fig. 2 — accuracy density", series, points)
    return figure


def _speed_axes(axes, points: list[Point], bound: Line | None) -> None:
    xs = [p.images_per_s for p in points]
    ys = [p.accuracy.top1 for p in points]  # type: ignore[union-attr]
    axes.scatter(xs, ys)
    _label(axes, points, xs, ys)  # type: ignore[arg-type]
    front = accuracy_speed_front(points)
    axes.plot([p.images_per_s for p in front], [p.accuracy.top1 for p in front], ":", color="grey",  # type: ignore[union-attr]
              label="frontier")
    if bound is not None:
        grid, line = bound_curve(bound, xs)  # type: ignore[arg-type]
        axes.plot(grid, line, "r--", label=f"upper bound: {bound.intercept:.2f} {bound.slope:+.4f} x images/s")
    axes.set_xscale("log")
    axes.set_xlabel("Images per second (batch 1, log scale)")
    axes.set_ylabel("Top-1 accuracy (%)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7, loc="lower left")


def figure_3(points: list[Point], series: str) -> tuple[Figure, Line | None]:
    """Top-1 vs images/s at batch 1 (log x), with the linear upper bound (a curve on the log axis)."""
    points = [p for p in _with_accuracy(points) if p.images_per_s]
    bound = upper_bound(points)
    figure = Figure(figsize=(8, 6))
    _speed_axes(figure.add_subplot(1, 1, 1), points, bound)
    _titled(figure, "Fig. 3 — accuracy vs speed", series, points)
    return figure, bound


def figure_4(points: list[Point], series: str) -> tuple[Figure, dict[str, Line]]:
    """Memory at batch 1 vs model size (fp32 parameters), with the linear fits (all, and per family)."""
    points = [p for p in points if p.memory_bytes is not None and p.model_bytes is not None]
    fits = memory_fits(points)
    figure = Figure(figsize=(8, 6))
    axes = figure.add_subplot(1, 1, 1)
    xs = [p.model_bytes / MB for p in points]  # type: ignore[operator]
    ys = [p.memory_bytes / MB for p in points]  # type: ignore[operator]
    axes.scatter(xs, ys)
    _label(axes, points, xs, ys)
    if xs:
        grid = np.linspace(0, max(xs), 50)
        for group, line in fits.items():
            style = "r--" if group == "all models" else ":"
            axes.plot(grid, line.at(grid), style, label=f"{group}: {line.slope:.2f} x + {line.intercept:.0f} MB")
        axes.legend(fontsize=6)
    source = points[0].memory_source if points else "memory"
    axes.set_xlabel("Model size (MB of fp32 parameters)")
    axes.set_ylabel(f"Memory at batch 1 (MB, {source} peak)")
    axes.grid(alpha=0.3)
    _titled(figure, "Fig. 4 — memory vs model size", series, points)
    return figure, fits


def runtimes_side_by_side(dataset: Dataset, device: str, precision: str) -> Figure | None:
    """Fig. 3 for every runtime on one device and precision, on shared axes."""
    runtimes = sorted({p.runtime for p in dataset.points if p.device == device and p.precision == precision})
    if len(runtimes) < 2:
        return None
    figure = Figure(figsize=(7 * len(runtimes), 6))
    shared = None
    for index, runtime in enumerate(runtimes):
        points = [p for p in _with_accuracy(dataset.of((runtime, device, precision), batch_size=1)) if p.images_per_s]
        axes = figure.add_subplot(1, len(runtimes), index + 1, sharex=shared, sharey=shared)
        shared = shared or axes
        if points:
            _speed_axes(axes, points, upper_bound(points))
        axes.set_title(runtime)
    figure.suptitle(f"Accuracy vs speed per runtime · {precision} · {device}", fontsize=10)
    return figure


def speedup_chart(dataset: Dataset, device: str, precision: str) -> Figure | None:
    """Each runtime's batch-1 speed-up over PyTorch eager fp32 (median ratio), per model."""
    reference_runtime, reference_precision = REFERENCE
    baseline = {p.model: p for p in dataset.of((reference_runtime, device, reference_precision), batch_size=1)}
    others = sorted({p.runtime for p in dataset.points if p.device == device and p.precision == precision}
                    - {reference_runtime if precision == reference_precision else ""})
    bars: dict[str, dict[str, float]] = {}
    for runtime in others:
        for point in dataset.of((runtime, device, precision), batch_size=1):
            reference = baseline.get(point.model)
            if reference and reference.batch_median_ms and point.batch_median_ms:
                bars.setdefault(runtime, {})[point.display_name] = reference.batch_median_ms / point.batch_median_ms
    if not bars:
        return None
    models = sorted({m for values in bars.values() for m in values})
    figure = Figure(figsize=(8, max(4.0, 0.22 * len(models) * len(bars))))
    axes = figure.add_subplot(1, 1, 1)
    height = 0.8 / len(bars)
    for index, (runtime, values) in enumerate(sorted(bars.items())):
        positions = np.arange(len(models)) + index * height
        axes.barh(positions, [values.get(m, 0.0) for m in models], height=height, label=runtime)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_yticks(np.arange(len(models)) + 0.4 - height / 2, models, fontsize=6)
    axes.set_xlabel("Speed-up over PyTorch eager fp32 at batch 1 (x; > 1 is faster)")
    axes.legend(fontsize=7)
    figure.suptitle(f"Speed-up over PyTorch eager · {precision} · {device}", fontsize=10)
    return figure


PRECISION_MARKERS = {"fp32": "o", "fp16": "D", "bf16": "^", "int8": "s"}
SPEEDUP_TICKS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def fastest_chart(device: str, rows: list[ModelSpeeds]) -> Figure | None:
    """Each model's speed-up over PyTorch eager fp32 for every runtime·precision pair (colour: runtime,
    marker: precision), the fastest ringed; models ordered by their fastest speed-up."""
    rows = [r for r in rows if r.reference_ms is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r.fastest.speedup or 0.0)
    runtimes = sorted({c.runtime for row in rows for c in row.contenders})
    colours = {runtime: f"C{index % 10}" for index, runtime in enumerate(runtimes)}
    figure = Figure(figsize=(8, max(4.0, 0.2 * len(rows) + 1.5)))
    axes = figure.add_subplot(1, 1, 1)
    shown: set[str] = set()
    for y, row in enumerate(rows):
        for contender in row.contenders:
            label = contender.label if contender.label not in shown else None
            shown.add(contender.label)
            axes.scatter(contender.speedup, y, color=colours[contender.runtime], s=22, label=label,
                         marker=PRECISION_MARKERS.get(contender.precision, "x"))
        axes.scatter(row.fastest.speedup, y, facecolors="none", edgecolors="black", s=90, linewidths=0.8)
    axes.set_xscale("log")
    speedups = [c.speedup for row in rows for c in row.contenders if c.speedup]
    ticks = [t for t in SPEEDUP_TICKS if min(speedups) / 1.5 <= t <= max(speedups) * 1.5]
    axes.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    axes.minorticks_off()
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_yticks(range(len(rows)), [r.display_name for r in rows], fontsize=6)
    axes.set_xlabel(f"Speed-up over PyTorch eager fp32 at batch {rows[0].batch_size} (x, log scale; ringed: fastest)")
    axes.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.suptitle(f"Fastest runtime per model on {device}", fontsize=10)
    return figure


def tradeoff_chart(dataset: Dataset, batch_size: int = 1) -> Figure | None:
    """Speed-up over fp32 (x) against Δ top-1 (y) for each fp16, bf16 and int8 cell whose accuracy was measured at
    both precisions: up and right is better."""
    rows = [r for r in tradeoffs(dataset, batch_size) if r.speedup is not None and r.delta_top1 is not None]
    if not rows:
        return None
    figure = Figure(figsize=(7, 5))
    axes = figure.add_subplot(1, 1, 1)
    for precision, marker in (("fp16", "o"), ("bf16", "^"), ("int8", "s")):
        chosen = [r for r in rows if r.precision == precision]
        if chosen:
            xs, ys = [r.speedup for r in chosen], [r.delta_top1 for r in chosen]
            axes.scatter(xs, ys, marker=marker, label=precision)
            for row, x, y in zip(chosen, xs, ys):
                axes.annotate(f"{row.display_name} ({row.runtime})", (x, y), fontsize=6, xytext=(3, 3),
                              textcoords="offset points")
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xlabel(f"Speed-up over fp32 on the same runtime and device at batch {batch_size} (x)")
    axes.set_ylabel("Δ top-1 vs fp32 (points, measured on real images)")
    axes.legend(fontsize=7)
    figure.suptitle("How much faster, for how much accuracy", fontsize=10)
    return figure


def board_traces(points: list[Point], device: str) -> Figure | None:
    """A Jetson's GPU clock and hottest zone over each cell's timed loop (one line per cell): throttling shows as
    a clock that falls while the temperature climbs."""
    traced = [p for p in points if p.device == device and p.board_trace]
    if not traced:
        return None
    figure = Figure(figsize=(8, 5))
    clock_axes, heat_axes = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    for point in traced:
        rows = point.board_trace or []
        label = f"{point.display_name} · {point.runtime} {point.precision} · bs {point.batch_size}"
        seconds = [r[0] for r in rows]
        clock_axes.plot(seconds, [r[1] for r in rows], label=label, linewidth=1)
        heat_axes.plot(seconds, [r[3] for r in rows], label=label, linewidth=1)
    clock_axes.set_ylabel("GPU clock (MHz)")
    heat_axes.set_ylabel("hottest zone (°C)")
    heat_axes.set_xlabel("seconds into the timed loop")
    clock_axes.legend(fontsize=6)
    figure.suptitle(f"{device}: clocks and temperature during each timed loop", fontsize=10)
    return figure


def draw_all(dataset: Dataset, out_dir: Path) -> FigureSet:
    drawn = FigureSet()
    for series in dataset.series():
        label = series_label(series)
        # the paper's figures compare classifiers: a detector's or segmenter's memory would skew Fig. 4's fits
        batch_1 = [p for p in dataset.of(series, batch_size=1) if p.task == CLASSIFICATION]
        name = slug(label)
        _save(figure_1(batch_1, label), out_dir, f"fig1-accuracy-vs-flops-{name}", drawn.files)
        _save(figure_2(batch_1, label), out_dir, f"fig2-accuracy-density-{name}", drawn.files)
        figure, bound = figure_3(batch_1, label)
        _save(figure, out_dir, f"fig3-accuracy-vs-speed-{name}", drawn.files)
        if bound is not None:
            drawn.upper_bounds[label] = bound
        figure, fits = figure_4(batch_1, label)
        _save(figure, out_dir, f"fig4-memory-vs-size-{name}", drawn.files)
        drawn.memory_fits[label] = fits
    for device, precision in sorted({(p.device, p.precision) for p in dataset.points}):
        for kind, figure in (("runtimes-side-by-side", runtimes_side_by_side(dataset, device, precision)),
                             ("speedup-over-torch", speedup_chart(dataset, device, precision))):
            if figure is not None:
                _save(figure, out_dir, f"{kind}-{slug(precision + ' ' + device)}", drawn.files)
    tradeoff = tradeoff_chart(dataset)
    if tradeoff is not None:
        _save(tradeoff, out_dir, "precision-tradeoff", drawn.files)
    for device, rows in model_speeds(dataset).items():
        figure = fastest_chart(device, rows)
        if figure is not None:
            _save(figure, out_dir, f"fastest-runtime-{slug(device)}", drawn.files)
    for device in sorted({p.device for p in dataset.points if p.board_trace}):
        figure = board_traces(dataset.points, device)
        if figure is not None:
            _save(figure, out_dir, f"board-traces-{slug(device)}", drawn.files)
            drawn.board_traces[device] = out_dir / f"board-traces-{slug(device)}.svg"
    return drawn
