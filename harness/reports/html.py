"""One self-contained, offline HTML page: interactive charts (plotly.js, inlined) with hover details and
filters by runtime, device and family, and the paper's tables.

The page embeds the points as JSON and draws the charts in the browser from them, so filtering is a
redraw of the same data; nothing is fetched from the network.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path

from plotly.offline import get_plotlyjs

from harness import __version__
from harness.reports.data import Dataset, Point, series_label
from harness.reports.fits import Line, bound_curve
from harness.reports.tables import ReportTable, to_html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
.filters { display: flex; gap: 2em; flex-wrap: wrap; padding: .8em; background: #f4f4f4; border-radius: 6px; }
.filters fieldset { border: none; padding: 0; } .filters legend { font-weight: bold; }
.chart { width: 100%; height: 520px; }
table.report { border-collapse: collapse; font-size: .8em; margin: 1em 0 .3em; }
table.report caption { text-align: left; font-weight: bold; padding: .3em 0; }
table.report td, table.report th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
table.report td:first-child, table.report th:first-child { text-align: left; }
td.missing { color: #888; } p.caption { font-size: .75em; color: #555; margin-top: 0; }
"""

SCRIPT = """
const POINTS = JSON.parse(document.getElementById('points').textContent);
const BOUNDS = JSON.parse(document.getElementById('bounds').textContent);
function chosen(name) {
  return new Set([...document.querySelectorAll('input[name="' + name + '"]:checked')].map(e => e.value));
}
function seriesOf(p) { return p.runtime + ' · ' + p.precision + ' · ' + p.device; }
function hover(p) {
  return '<b>' + p.display_name + '</b><br>' + seriesOf(p) + '<br>batch ' + p.batch_size +
    '<br>median ' + (p.batch_median_ms == null ? '—' : p.batch_median_ms.toFixed(2) + ' ms') +
    ', p90 ' + (p.batch_p90_ms == null ? '— (needs 50 samples)' : p.batch_p90_ms.toFixed(2) + ' ms') +
    '<br>' + (p.images_per_s == null ? '' : p.images_per_s.toFixed(1) + ' images/s') +
    '<br>memory ' + (p.memory_bytes == null ? '—' : (p.memory_bytes / 1e6).toFixed(0) + ' MB') +
    ' (' + p.memory_source + ')' + '<br>top-1 ' + (p.top1 == null ? '—' : p.top1.toFixed(2) + ' %') +
    ' (' + p.accuracy_kind + ')' + '<br>' + (p.valid ? 'valid' : 'invalid: ' + p.invalid_reasons.join('; '));
}
function traces(points, x, y) {
  const groups = {};
  for (const p of points) {
    const key = seriesOf(p);
    (groups[key] = groups[key] || []).push(p);
  }
  return Object.entries(groups).map(([name, ps]) => ({
    type: 'scatter', mode: 'markers', name: name, x: ps.map(x), y: ps.map(y),
    text: ps.map(hover), hoverinfo: 'text',
    marker: {size: 9, symbol: ps.map(p => p.valid ? 'circle' : 'circle-open')}}));
}
function layout(title, xTitle, yTitle, xType) {
  return {title: {text: title}, xaxis: {type: xType, title: {text: xTitle}}, yaxis: {title: {text: yTitle}},
          hovermode: 'closest'};
}
function draw() {
  const runtimes = chosen('runtime'), devices = chosen('device'), families = chosen('family');
  const shown = POINTS.filter(p => p.status === 'ok' && runtimes.has(p.runtime) && devices.has(p.device)
                                   && families.has(p.family) && p.batch_size === 1);
  const withTop1 = shown.filter(p => p.top1 != null && p.images_per_s != null);
  const speed = traces(withTop1, p => p.images_per_s, p => p.top1);
  for (const [label, bound] of Object.entries(BOUNDS)) {
    if (!withTop1.some(p => seriesOf(p) === label) || !bound.x.length) continue;
    // drawn over the series' images/s range and within 0-100 % top-1 (computed with the report)
    speed.push({type: 'scatter', mode: 'lines', name: 'upper bound, ' + label, x: bound.x, y: bound.y,
                line: {dash: 'dash'}, hoverinfo: 'name'});
  }
  Plotly.react('chart-speed', speed, layout('Top-1 vs images/s at batch 1 (dashed: upper bound)',
    'images per second (log scale)', 'top-1 (%)', 'log'));
  const withMemory = shown.filter(p => p.memory_bytes != null && p.params != null);
  Plotly.react('chart-memory', traces(withMemory, p => p.params * 4 / 1e6, p => p.memory_bytes / 1e6),
    layout('Memory at batch 1 vs model size', 'model size (MB of fp32 parameters)',
           "peak memory (MB; the device's primary source)", 'linear'));
  const withOps = shown.filter(p => p.top1 != null && p.macs != null);
  Plotly.react('chart-flops', traces(withOps, p => 2 * p.macs / 1e9, p => p.top1),
    layout('Top-1 vs operations', 'G-FLOPs (a multiply-add = 2 FLOPs)', 'top-1 (%)', 'linear'));
  for (const section of document.querySelectorAll('section.series')) {
    section.hidden = !(runtimes.has(section.dataset.runtime) && devices.has(section.dataset.device));
  }
}
document.querySelectorAll('.filters input').forEach(e => e.addEventListener('change', draw));
draw();
"""


def _point_json(point: Point) -> dict:
    data = asdict(point)
    accuracy = data.pop("accuracy") or {}
    data.update(top1=accuracy.get("top1"), top5=accuracy.get("top5"), accuracy_kind=accuracy.get("kind", "none"),
                memory_bytes=point.memory_bytes, memory_source=point.memory_source,
                invalid_reasons=list(point.invalid_reasons))
    return data


def _checkboxes(name: str, values: list[str]) -> str:
    boxes = "".join(f'<label><input type="checkbox" name="{name}" value="{html.escape(v)}" checked> '
                    f"{html.escape(v)}</label><br>" for v in values)
    return f"<fieldset><legend>{name}</legend>{boxes}</fieldset>"


def _json_script(element_id: str, value: object) -> str:
    text = json.dumps(value).replace("</", "<\\/")  # a model name can never close the script element
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def render(dataset: Dataset, tables: dict[tuple[str, str, str], list[ReportTable]],
           upper_bounds: dict[str, Line], fit_lines: list[str], title: str,
           overall: list[ReportTable] | None = None, board_traces: dict[str, str] | None = None,
           compared: list[tuple[str, list[ReportTable]]] | None = None) -> str:
    """The self-contained page; `compared`: (heading, tables) per run compared with a baseline, the heading
    saying the summary and, where there is one, why there is no verdict."""
    points = [_point_json(p) for p in dataset.points]
    filters = "".join(_checkboxes(name, sorted({getattr(p, name) for p in dataset.points}))
                      for name in ("runtime", "device", "family"))
    sections = []
    for series, series_tables in tables.items():
        runtime, device, _ = series
        body = "".join(to_html(table) for table in series_tables)
        sections.append(f'<section class="series" data-runtime="{html.escape(runtime)}" '
                        f'data-device="{html.escape(device)}"><h2>{html.escape(series_label(series))}</h2>'
                        f"{body}</section>")
    bounds = {}
    for label, line in upper_bounds.items():
        xs = [p.images_per_s for p in dataset.points if series_label(p.series) == label and p.ok
              and p.batch_size == 1 and p.images_per_s and p.accuracy and p.accuracy.top1 is not None]
        grid, ys = bound_curve(line, xs)
        bounds[label] = {"intercept": line.intercept, "slope": line.slope, "x": grid, "y": ys}
    fits = "".join(f"<li>{html.escape(line)}</li>" for line in fit_lines)
    runs = ", ".join(html.escape(Path(run).name) for run in dataset.runs)
    comparisons = "".join(f"<section><h2>{html.escape(heading)}</h2>{''.join(map(to_html, compared_tables))}"
                          "</section>" for heading, compared_tables in compared or [])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>
<p>Runs: {runs}. dnn-harness {__version__}. Hover a point for its figures; open circles are cells whose
timing verdict is invalid.</p>
<div class="filters">{filters}</div>
<div id="chart-speed" class="chart"></div><div id="chart-memory" class="chart"></div>
<div id="chart-flops" class="chart"></div>
<h2>Fitted lines</h2><ul>{fits}</ul>
{''.join(f"<section><h2>{html.escape(t.title)}</h2>{to_html(t)}</section>" for t in overall or [])}
{comparisons}
{''.join(f'<section><h2>{html.escape(device)}: clocks and temperature during each timed loop</h2>'
         f'<img src="{html.escape(name)}" alt="GPU clock and hottest zone over each timed loop on '
         f'{html.escape(device)}"></section>' for device, name in (board_traces or {}).items())}
{''.join(sections)}
{_json_script('points', points)}{_json_script('bounds', bounds)}
<script>{SCRIPT}</script></body></html>
"""
