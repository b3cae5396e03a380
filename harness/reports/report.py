"""A whole report of some runs: figures (PNG, SVG), tables (Markdown, CSV), fitted lines, and the HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.paths import write_atomically
from harness.reports import html
from harness.reports.data import Dataset, series_label
from harness.reports.figures import FigureSet, draw_all, slug
from harness.reports.fastest import model_speeds
from harness.reports.tables import (ReportTable, best_table, energy_table, family_wins_table, fastest_table,
                                    memory_sources,
                                    memory_table, time_table, to_csv, to_markdown, tradeoff_table)


@dataclass
class Report:
    out_dir: Path
    tables: dict[tuple[str, str, str], list[ReportTable]]
    figures: FigureSet
    fit_lines: list[str]
    files: list[Path] = field(default_factory=list)
    overall: list[ReportTable] = field(default_factory=list)  # tables across series (trade-off, fastest runtime)
    compared: list[ReportTable] = field(default_factory=list)  # against a baseline run (report --baseline)

    @property
    def html_path(self) -> Path:
        return self.out_dir / "report.html"


def build_tables(dataset: Dataset) -> dict[tuple[str, str, str], list[ReportTable]]:
    return {series: [time_table(dataset, series),
                     *(memory_table(dataset, series, source) for source in memory_sources(dataset, series)),
                     *([energy] if (energy := energy_table(dataset, series)) else []),
                     best_table(dataset, series)]
            for series in dataset.series()}


def overall_tables(dataset: Dataset) -> dict[str, ReportTable]:
    """Tables across series, by file name: the precision trade-off, and per device the fastest runtime per model
    and which runtime wins in each family."""
    tables: dict[str, ReportTable] = {}
    tradeoff = tradeoff_table(dataset)
    if tradeoff is not None:
        tables["precision-tradeoff"] = tradeoff
    for device, rows in model_speeds(dataset).items():
        tables[f"fastest-runtime-{slug(device)}"] = fastest_table(device, rows)
        tables[f"fastest-runtime-by-family-{slug(device)}"] = family_wins_table(device, rows)
    return tables


def describe_fits(figures: FigureSet) -> list[str]:
    lines = [f"Fig. 3 upper bound, {label}: top-1 = {line.intercept:.2f} {line.slope:+.4f} x images/s "
             f"(slope of the least-squares line through {line.points} frontier points, raised to bound all)"
             for label, line in figures.upper_bounds.items()]
    for label, fits in figures.memory_fits.items():
        lines += [f"Fig. 4 memory fit, {label}, {group}: memory MB = {line.slope:.2f} x model MB + "
                  f"{line.intercept:.0f} (n = {line.points}, R² = {line.r2:.3f})" for group, line in fits.items()]
    return lines


def write_report(dataset: Dataset, out_dir: Path, title: str,
                 compared: list[tuple[str, list[ReportTable]]] | None = None) -> Report:
    """Figures, tables, tables.md and report.html; `compared`: (heading, tables) of comparisons with a
    baseline run (harness.reports.compare), a section of their own."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = draw_all(dataset, out_dir / "figures")
    tables = build_tables(dataset)
    report = Report(out_dir, tables, figures, describe_fits(figures), files=list(figures.files))
    markdown = [f"# {title}", "", "Runs: " + ", ".join(dataset.runs), ""]
    for series, series_tables in tables.items():
        markdown += [f"## {series_label(series)}", ""]
        for index, table in enumerate(series_tables):
            markdown.append(to_markdown(table))
            csv_path = out_dir / "tables" / f"{slug(series_label(series))}-{index + 1}-{slug(table.title.split(' —')[0])}.csv"
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(csv_path, to_csv(table))
            report.files.append(csv_path)
    overall = overall_tables(dataset)
    if overall:
        markdown += ["## Across runtimes and precisions", ""]
    for name, table in overall.items():
        markdown.append(to_markdown(table))
        csv_path = out_dir / "tables" / f"{name}.csv"
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(csv_path, to_csv(table))
        report.files.append(csv_path)
    report.overall = list(overall.values())
    for heading, comparison_tables in compared or []:
        markdown += [f"## {heading}", ""] + [to_markdown(table) for table in comparison_tables]
        report.compared += comparison_tables
    markdown += ["## Fitted lines", ""] + [f"- {line}" for line in report.fit_lines]
    for path, text in ((out_dir / "tables.md", "\n".join(markdown) + "\n"),
                       (report.html_path, html.render(dataset, tables, figures.upper_bounds, report.fit_lines,
                                                      title, report.overall,
                                                      {device: path.relative_to(out_dir).as_posix()
                                                       for device, path in figures.board_traces.items()},
                                                      compared or []))):
        write_atomically(path, text)
        report.files.append(path)
    return report
