"""The accuracy run's terminal table: measured top-1/top-5 per model x runtime x precision, beside the
reference (PyTorch eager fp32 on the same images) and the published figure with its source."""

from __future__ import annotations


from rich.markup import escape
from rich.table import Table

from harness.cli.tables import STATUS_STYLE
from harness.parts import AccuracyFigures
from harness.records import Record


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _delta(figures: AccuracyFigures) -> str:
    if figures.reference_top1 is None or figures.top1 is None or figures.is_reference:
        return "—"
    delta = figures.top1 - figures.reference_top1
    style = "green" if abs(delta) < 0.005 else ("red" if delta < 0 else "yellow")
    return f"[{style}]{delta:+.2f}[/{style}]"


def _agreement(figures: AccuracyFigures) -> str:
    if figures.is_reference:
        return "reference"
    share = figures.agreement_top1
    return "—" if share is None else f"{100 * share:.2f} %"


def accuracy_table(records: list[Record], title: str) -> tuple[Table, list[str]]:
    """The table and its numbered notes (published sources, data and preprocessing)."""
    table = Table(title=title, caption="top-1/top-5 in %; agree: share of images with the same top-1 class as the "
                                       "reference (torch fp32); Δ top-1: points against it; published: top-1 with its "
                                       "source below; img/s: the whole evaluation loop")
    table.add_column("model", no_wrap=True)
    table.add_column("runtime", no_wrap=True)
    for column in ("top-1", "top-5", "images", "agree", "Δ top-1", "published", "img/s"):
        table.add_column(column, justify="right", no_wrap=True)
    sources: dict[str, int] = {}
    several_devices = len({r.cell.device for r in records}) > 1
    for record in records:
        cell, figures, published = record.cell, record.accuracy, record.model.published
        source = published.accuracy_source
        note = ""
        if published.top1 is not None and source:
            note = f" [{sources.setdefault(source, len(sources) + 1)}]"
        published_text = _pct(published.top1) + note
        runtime = f"{cell.runtime} {cell.precision}" + (f" on {cell.device}" if several_devices else "")
        if not record.ok or figures is None:
            style = STATUS_STYLE.get(record.status, "red")
            table.add_row(cell.model, runtime, f"[{style}]{record.status}[/{style}]", "", "", "", "",
                          escape(published_text), "")
            continue
        table.add_row(cell.model, runtime, _pct(figures.top1), _pct(figures.top5),
                      f"{figures.images or 0:,}", _agreement(figures), _delta(figures), escape(published_text),
                      f"{figures.images_per_s:,.1f}" if figures.images_per_s else "—")
    notes = [f"[{number}] {source}" for source, number in sources.items()]
    return table, notes


def data_lines(records: list[Record]) -> list[str]:
    """One line per distinct data set and preprocessing the records used."""
    lines: dict[str, None] = {}
    for record in records:
        figures = record.accuracy
        if not figures:
            continue
        data, preprocessing = figures.details["data"], figures.details["preprocessing"]
        geometry = preprocessing["geometry"]
        lines[f"{record.cell.model}: {data['layout']} data, {data['selection']}, labels from "
              f"{data['label_source']}; {data['bad_images']} unreadable; {geometry['interpolation']} resize of the "
              f"shorter side to {geometry['resize_shorter_to']}, center crop {geometry['input_size']} "
              f"({preprocessing['from']})"] = None
    return list(lines)
