"""Tables for the terminal: the catalogue, and a run's per-image times (model x batch size)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.table import Table

STATUS_STYLE = {"error": "red", "crashed": "red", "timeout": "yellow", "oom": "magenta", "unsupported": "dim"}


def _cell_text(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        style = STATUS_STYLE.get(record["status"], "red")
        return f"[{style}]{record['status']}[/{style}]"
    host = record["timing"]["host"]
    fps = host["images_per_s"]
    return f"{host['per_image_median_ms']:.2f} ms\n[dim]{fps:,.0f} img/s[/dim]" if fps else "—"


def run_table(records: list[dict[str, Any]], title: str) -> Table:
    """Median per-image ms (and images/s) per model/runtime/precision row and batch-size column."""
    batch_sizes = sorted({r["cell"]["batch_size"] for r in records})
    rows: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        cell = record["cell"]
        rows[(cell["model"], cell["runtime"], cell["precision"])][cell["batch_size"]] = record
    table = Table(title=title, caption="median per-image time (batch time / batch size) and images per second")
    for column in ("model", "runtime", "precision"):
        table.add_column(column, no_wrap=True)
    for batch_size in batch_sizes:
        table.add_column(f"bs {batch_size}", justify="right")
    for (model, runtime, precision), by_batch in rows.items():
        cells = [_cell_text(by_batch[b]) if b in by_batch else "[dim]not run[/dim]" for b in batch_sizes]
        table.add_row(model, runtime, precision, *cells)
    return table


def failures(records: list[dict[str, Any]]) -> list[str]:
    return [f"{r['cell_id']}: {r['status']}: {(r.get('error') or '').splitlines()[0] if r.get('error') else ''}"
            for r in records if r["status"] != "ok"]


def catalogue_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Model catalogue", caption="GMACs: 1 multiply-add = 1, all ops, at the input size "
                                                   "(FLOPs = 2 x MACs); '?' = not computed yet")
    table.add_column("name", no_wrap=True)
    table.add_column("paper name")
    table.add_column("source")
    table.add_column("input", justify="right")
    table.add_column("params (M)", justify="right")
    table.add_column("GMACs", justify="right")
    table.add_column("top-1 (pub.)", justify="right")
    table.add_column("installed", justify="center")
    for row in rows:
        complexity = row.get("complexity")
        params = f"{complexity['params'] / 1e6:.2f}" if complexity else "?"
        gmacs = f"{complexity['macs'] / 1e9:.2f}" if complexity else "?"
        top1 = f"{row['published_top1']:.2f}" if row.get("published_top1") is not None else "—"
        installed = "[green]yes[/green]" if row["source_installed"] else "[red]no[/red]"
        table.add_row(row["name"], row.get("paper_name") or "[dim]—[/dim]", row["source"], str(row["input_size"]),
                      params, gmacs, top1, installed)
    return table
