"""The paper's tables as data (`ReportTable`), rendered for the terminal (rich), Markdown, CSV and HTML.

Table 1: per-image time at each batch size, banded by frames per second. Table 2: peak memory at each
batch size, per memory source. Table 3: the most accurate model under memory x speed limits. Beyond the
paper: the precision trade-off, and the fastest runtime per model on each device.
Every empty cell says why: the run's status (oom, skipped, error, ...) or "not run".
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from rich.markup import escape
from rich.table import Table

from harness.reports.best import Constraints, best
from harness.reports.data import Dataset, Point, series_label
from harness.reports.fastest import Contender, ModelSpeeds, contender_labels, wins_by_family
from harness.reports.tradeoff import BASE_PRECISION, tradeoffs

# (name, lowest frames per second, rich style, HTML colour): the paper colour-codes Table 1 this way.
FPS_BANDS = (("super real-time", 60.0, "green", "#b7e1a1"), ("real-time", 30.0, "chartreuse3", "#e3f1a6"),
             ("half real-time", 15.0, "yellow", "#fbe8a6"), ("below 15 FPS", 0.0, "red", "#f5b7b1"))
MEMORY_LIMITS_GB = (0.7, 1.0, 1.4, None)
FPS_TARGETS = (15.0, 30.0, 60.0)
MISSING_STYLE = {"oom": "magenta", "skipped": "magenta", "not run": "dim"}
# a comparison's verdicts (harness.reports.compare): band -> (rich style, HTML colour)
VERDICT_BANDS = {"regression": ("bold red", "#f5b7b1"), "better": ("green", "#b7e1a1"),
                 "not judged": ("yellow", "#fbe8a6")}


@dataclass(frozen=True)
class Entry:
    text: str
    band: str | None = None  # an FPS band name, or "missing"
    note: str = ""  # hover text in HTML


@dataclass
class ReportTable:
    title: str
    columns: list[str]
    rows: list[list[Entry]] = field(default_factory=list)
    caption: str = ""


def fps_band(images_per_s: float | None) -> str | None:
    if images_per_s is None:
        return None
    return next(name for name, low, _, _ in FPS_BANDS if images_per_s >= low)


def _missing(point: Point | None) -> Entry:
    if point is None:
        return Entry("not run", "missing")
    return Entry(point.status, "missing", (point.error or "").splitlines()[0] if point.error else "")


def _by_model(points: list[Point]) -> dict[str, dict[int, Point]]:
    rows: dict[str, dict[int, Point]] = {}
    for point in sorted(points, key=lambda p: p.model):
        rows.setdefault(point.display_name, {})[point.batch_size] = point
    return rows


def time_table(dataset: Dataset, series: tuple[str, str, str]) -> ReportTable:
    """Table 1: median per-image ms per model (rows) and batch size (columns)."""
    points = dataset.of(series, ok_only=False)
    batch_sizes = sorted({p.batch_size for p in points})
    table = ReportTable(f"Table 1 — per-image inference time (ms), {series_label(series)}",
                        ["model", *(f"bs {b}" for b in batch_sizes)],
                        caption="median batch time / batch size; colour: " + ", ".join(
                            f"{name} (>= {low:g} FPS)" if low else name for name, low, _, _ in FPS_BANDS)
                        + "; * = invalid timing verdict")
    for name, by_batch in _by_model(points).items():
        row = [Entry(name)]
        for batch_size in batch_sizes:
            point = by_batch.get(batch_size)
            if point is None or not point.ok or point.per_image_ms is None:
                row.append(_missing(point))
                continue
            mark = "" if point.valid else "*"
            row.append(Entry(f"{point.per_image_ms:.2f}{mark}", fps_band(point.images_per_s),
                             f"{point.images_per_s:.1f} images/s" + ("" if point.valid else
                                                                      "; invalid: " + "; ".join(point.invalid_reasons))))
        table.rows.append(row)
    return table


def memory_sources(dataset: Dataset, series: tuple[str, str, str]) -> list[str]:
    return sorted({source for p in dataset.of(series) for source in p.memory_peak_bytes})


def memory_table(dataset: Dataset, series: tuple[str, str, str], source: str) -> ReportTable:
    """Table 2: peak memory (MB = 10^6 bytes) per model and batch size, from one memory source."""
    def entry(point: Point) -> Entry | None:
        peak = point.memory_peak_bytes.get(source)
        return None if peak is None else Entry(f"{peak / 1e6:,.0f}")

    return _by_batch_table(dataset.of(series, ok_only=False), f"Table 2 — memory (MB, {source}), "
                           f"{series_label(series)}", "peak during load and inference", source, entry)


def _by_batch_table(points: list[Point], title: str, caption: str, source: str,
                    entry: Callable[[Point], Entry | None]) -> ReportTable:
    """A row per model, a column per batch size; a finished cell's entry from `entry` (None: no `source` reading),
    others say why they are empty."""
    batch_sizes = sorted({p.batch_size for p in points})
    table = ReportTable(title, ["model", *(f"bs {b}" for b in batch_sizes)], caption=caption)
    for name, by_batch in _by_model(points).items():
        row = [Entry(name)]
        for batch_size in batch_sizes:
            point = by_batch.get(batch_size)
            made = entry(point) if point is not None and point.ok else None
            if point is None or not point.ok:
                row.append(_missing(point))
            else:
                row.append(made or Entry("—", "missing", f"no {source} reading"))
        table.rows.append(row)
    return table


def energy_table(dataset: Dataset, series: tuple[str, str, str]) -> ReportTable | None:
    """Images per joule beside images per second, per model and batch size, from the device's primary energy
    source; None where no cell of the series has an energy figure."""
    points = dataset.of(series, ok_only=False)
    if not any(p.average_watts is not None for p in points):
        return None
    source = next(p.energy_source for p in points)

    def entry(point: Point) -> Entry | None:
        if point.average_watts is None:
            return None
        per_joule = f"{point.images_per_joule:,.1f}" if point.images_per_joule else "≈ idle"
        return Entry(f"{per_joule} | {point.images_per_s or 0:,.1f}", fps_band(point.images_per_s),
                     f"{point.average_watts:.1f} W while running")

    return _by_batch_table(points, f"Energy — images/J and images/s ({source}), {series_label(series)}",
                           "images per joule of the inference itself (idle power subtracted) | images per second; "
                           "hover: average watts while running (idle included)", source, entry)


def _limit_label(limit_gb: float | None) -> str:
    return "no limit" if limit_gb is None else f"<= {limit_gb:g} GB"


def best_table(dataset: Dataset, series: tuple[str, str, str]) -> ReportTable:
    """Table 3: the most accurate model at batch 1 under each memory limit (rows) and speed target (columns)."""
    runtime, device, precision = series
    points = dataset.of(series)
    table = ReportTable(f"Table 3 — best model under memory x speed limits, batch 1, {series_label(series)}",
                        ["memory", *(f">= {fps:g} FPS" for fps in FPS_TARGETS)],
                        caption="most accurate model meeting both limits; GB = 10^9 bytes; accuracy: "
                                + _accuracy_kinds(points))
    for limit_gb in MEMORY_LIMITS_GB:
        row = [Entry(_limit_label(limit_gb))]
        for fps in FPS_TARGETS:
            constraints = Constraints(max_memory_bytes=None if limit_gb is None else int(limit_gb * 1e9),
                                      min_fps=fps, runtime=runtime, precision=precision)
            pick = best([p for p in points if p.device == device], constraints)
            if pick is None:
                row.append(Entry("none fits", "missing"))
            else:
                memory = f", {pick.memory_bytes / 1e9:.2f} GB" if pick.memory_bytes is not None else ""
                row.append(Entry(f"{pick.display_name} {pick.accuracy.top1:.2f} %", fps_band(pick.images_per_s),  # type: ignore[union-attr]
                                 f"{pick.images_per_s:.1f} images/s{memory}"))
        table.rows.append(row)
    return table


def _accuracy_kinds(points: list[Point]) -> str:
    kinds = sorted({p.accuracy.kind for p in points if p.accuracy})
    return " and ".join(kinds) + " top-1" if kinds else "none known"


# ------------------------------------------------------------------ renderers

def _rich_style(entry: Entry) -> str | None:
    for name, _, style, _ in FPS_BANDS:
        if entry.band == name:
            return style
    if entry.band in VERDICT_BANDS:
        return VERDICT_BANDS[entry.band][0]
    return MISSING_STYLE.get(entry.text, "red") if entry.band == "missing" else None


def to_rich(table: ReportTable) -> Table:
    """The table for the terminal; its texts are shown as written (a '[' in a run's or a model's name is not
    read as rich markup)."""
    rich_table = Table(title=escape(table.title), caption=escape(table.caption) if table.caption else None)
    for index, column in enumerate(table.columns):
        rich_table.add_column(escape(column), justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row in table.rows:
        texts = [f"[{style}]{escape(e.text)}[/{style}]" if (style := _rich_style(e)) else escape(e.text) for e in row]
        rich_table.add_row(*texts)
    return rich_table


def to_markdown(table: ReportTable) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {table.title}", "", "| " + " | ".join(map(cell, table.columns)) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(table.columns) - 1)) + "|"]
    lines += ["| " + " | ".join(cell(e.text) for e in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([e.text for e in row])
    return buffer.getvalue()


def to_html(table: ReportTable) -> str:
    colours = {name: colour for name, _, _, colour in FPS_BANDS} | {band: c for band, (_, c) in VERDICT_BANDS.items()}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for entry in row:
            colour = colours.get(entry.band or "")
            style = f' style="background:{colour}"' if colour else (' class="missing"' if entry.band == "missing"
                                                                     else "")
            title = f' title="{html.escape(entry.note)}"' if entry.note else ""
            cells.append(f"<td{style}{title}>{html.escape(entry.text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{html.escape(table.title)}</caption>"
    note = f'<p class="caption">{html.escape(table.caption)}</p>' if table.caption else ""
    return (f'<table class="report">{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f"{note}")


def tradeoff_table(dataset: Dataset, batch_size: int = 1) -> ReportTable | None:
    """fp16, bf16 and int8 against fp32 of the same model, runtime and device: speed-up beside Δ top-1 (measured)."""
    rows = tradeoffs(dataset, batch_size)
    if not rows:
        return None
    table = ReportTable(title=f"Precision trade-off — speed-up over fp32 at batch {batch_size} and Δ top-1",
                        columns=["model", "runtime", "device", "precision", "speed-up", "top-1 fp32", "top-1",
                                 "Δ top-1"],
                        caption="speed-up: fp32 batch median / this precision's, same runtime and device; top-1 "
                                "measured on real images (accuracy runs), — where not measured")
    for row in rows:
        def figure(value: float | None, text: str) -> Entry:
            return Entry(text if value is not None else "—", None if value is not None else "missing", row.note)

        table.rows.append([Entry(row.display_name), Entry(row.runtime), Entry(row.device), Entry(row.precision),
                           figure(row.speedup, f"x{row.speedup:.2f}" if row.speedup else ""),
                           figure(row.top1_fp32, f"{row.top1_fp32:.2f}" if row.top1_fp32 is not None else ""),
                           figure(row.top1, f"{row.top1:.2f}" if row.top1 is not None else ""),
                           figure(row.delta_top1, f"{row.delta_top1:+.2f}" if row.delta_top1 is not None else "")])
    return table


def _speedup_entry(contender: Contender | None, row: ModelSpeeds) -> Entry:
    if contender is None:
        return Entry("—", "missing", "not run, or not ok")
    text = f"x{contender.speedup:.2f}" if contender.speedup is not None else f"{contender.batch_median_ms:.2f} ms"
    note = f"{contender.batch_median_ms:.2f} ms a batch" + ("" if contender.valid else "; timing flagged invalid")
    return Entry(text + ("" if contender.valid else " *"), None, note)


def _winner_entry(contender: Contender | None, row: ModelSpeeds, with_drop: bool) -> Entry:
    if contender is None:
        return Entry("—", "missing")
    speedup = f" x{contender.speedup:.2f}" if contender.speedup is not None else ""
    text = f"{contender.label}{speedup}"
    if with_drop and contender.precision != BASE_PRECISION:
        drop = row.accuracy_drops.get(contender.label)
        text += f", Δ top-1 {-drop:+.2f}" if drop is not None else ", Δ top-1 not measured"
    return Entry(text, None, f"{contender.batch_median_ms:.2f} ms a batch")


def fastest_table(device: str, rows: list[ModelSpeeds]) -> ReportTable:
    """The fastest runtime per model on one device: at fp32, at any precision, and every pair's speed-up."""
    labels = contender_labels(rows)
    batch_size = rows[0].batch_size if rows else 1
    table = ReportTable(
        title=f"Fastest runtime per model on {device}, batch {batch_size}",
        columns=["model", "torch · fp32 ms", "fastest at fp32", "fastest at any precision", *labels],
        caption="x: speed-up over PyTorch eager fp32 on this device (ratio of batch medians); Δ top-1: measured "
                "on real images against fp32 on the same runtime (accuracy runs); * timing flagged invalid "
                "(noisy or throttled); — not run or not ok")
    for row in sorted(rows, key=lambda r: r.display_name.lower()):
        reference = f"{row.reference_ms:.2f}" if row.reference_ms is not None else "—"
        table.rows.append([Entry(row.display_name), Entry(reference),
                           _winner_entry(row.fastest_fp32, row, with_drop=False),
                           _winner_entry(row.fastest, row, with_drop=True),
                           *(_speedup_entry(row.of(label), row) for label in labels)])
    return table


def family_wins_table(device: str, rows: list[ModelSpeeds]) -> ReportTable:
    """How many models of each family each runtime·precision pair is the fastest for, at fp32 and at any."""
    at_fp32, at_any = wins_by_family(rows, fp32_only=True), wins_by_family(rows)
    table = ReportTable(title=f"Which runtime wins, by family, on {device}",
                        columns=["family", "models", "fastest at fp32", "fastest at any precision"],
                        caption="runtime · precision (number of the family's models it is fastest for)")

    def tally(counter: Counter[str]) -> str:
        return ", ".join(f"{label} ({count})" for label, count in counter.most_common())

    for family in sorted(at_any):
        models = sum(at_any[family].values())
        table.rows.append([Entry(family), Entry(str(models)), Entry(tally(at_fp32.get(family, Counter()))),
                           Entry(tally(at_any[family]))])
    return table
