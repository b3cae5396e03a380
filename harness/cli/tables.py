"""Tables for the terminal: the catalogue, a run's per-image times (model x batch size), and the readiness
checks' verdicts (check, check --on-device and its GPU + DLA run)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from rich.markup import escape
from rich.table import Table

from harness.catalogue.bundles import precision_label
from harness.cells import REFERENCE
from harness.parts import MemoryReading, Missing
from harness.records import Record
from harness.reports.check import FAIL, PASS, UNKNOWN, ModelCheck

STATUS_STYLE = {"error": "red", "crashed": "red", "timeout": "yellow", "oom": "magenta", "unsupported": "dim",
                "skipped": "magenta", "parity_failed": "red", "lost": "yellow"}
MEMORY_SOURCES = {"host_rss": "host peak RSS", "cuda_nvml": "GPU memory of the process (NVML, context included)",
                  "torch_allocator": "PyTorch CUDA allocator peak reserved",
                  "jetson_unified": "Jetson NvMapMemUsed (system-wide)",
                  "jetson_process": "Jetson: the process's host RSS + its GPU buffers"}


def _status_text(record: Record) -> str:
    style = STATUS_STYLE.get(record.status, "red")
    return f"[{style}]{record.status}[/{style}]"


def _is_reference(record: Record) -> bool:
    return (record.cell.runtime, record.cell.precision) == REFERENCE


def _cell_text(record: Record, baseline: Record | None) -> str:
    if not record.ok:
        return _status_text(record)
    host = record.host_timing
    fps = host.images_per_s
    text = f"{host.per_image_median_ms:.2f} ms\n[dim]{fps:,.0f} img/s[/dim]" if fps else "—"
    device = record.timing.device if record.timing else None
    if device is not None:
        text += f"\n[dim]{device.per_image_median_ms:.2f} ms own clock[/dim]"
    if baseline is not None and baseline.ok and record is not baseline:
        speedup = baseline.host_timing.median_ms / host.median_ms
        style = "green" if speedup >= 1 else "red"
        text += f"\n[{style}]x{speedup:.2f} vs torch[/{style}]"
    if not record.valid:
        text += "\n[yellow]invalid[/yellow]"
    return text


def run_table(records: list[Record], title: str) -> Table:
    """Median per-image ms (and images/s) per model/runtime/precision row and batch-size column, with each
    runtime's speed-up over the reference, PyTorch eager fp32 (same model and batch size), where both ran."""
    batch_sizes = sorted({r.cell.batch_size for r in records})
    rows = _grouped(records)
    baselines = {(r.cell.model, r.cell.batch_size, r.cell.device): r for r in records if _is_reference(r)}
    caption = ("median per-image time (batch time / batch size), images per second, and speed-up over PyTorch "
               "eager fp32 (batch median ratio)")
    if any(r.timing and r.timing.device for r in records):
        caption += ("; 'own clock': the median by the runtime library's clock (CUDA events, OpenVINO's request "
                    "latency)")
    table = Table(title=title, caption=caption)
    for column in _row_columns(records):
        table.add_column(column, no_wrap=True)
    for batch_size in batch_sizes:
        table.add_column(f"bs {batch_size}", justify="right")
    for key, by_batch in rows.items():
        cells = [_cell_text(by_batch[b], baselines.get((key[0], b, by_batch[b].cell.device)))
                 if b in by_batch else "[dim]not run[/dim]" for b in batch_sizes]
        table.add_row(*key, *cells)
    return table


def cell_summary(record: Record) -> dict[str, Any]:
    """One cell's headline figures, flat, for scripts (`show --json`)."""
    host = record.timing.host if record.timing else None
    return {**record.cell.model_dump(), "kind": record.kind, "host": record.host, "status": record.status,
            "error": record.error,
            "batch_median_ms": host.median_ms if host else None,
            "per_image_median_ms": host.per_image_median_ms if host else None,
            "images_per_s": host.images_per_s if host else None, "samples": host.samples if host else None,
            "own_clock_per_image_median_ms": record.timing.device.per_image_median_ms
            if record.timing and record.timing.device else None,
            "own_clock": record.timing.device_clock if record.timing else None,
            "valid": record.validity.valid if record.validity else None,
            "invalid_reasons": record.validity.reasons if record.validity else None,
            "memory_peak_bytes": {source: record.peak_bytes(source) for source in record.readable_sources()},
            "energy": {source: {k: getattr(record.energy_figures(source), k)
                                for k in ("joules_per_image", "average_watts", "idle_watts")}
                       for source in record.measured_energy_sources()},
            "accuracy": {k: getattr(record.accuracy, k) for k in ("top1", "top5", "images")}
            if record.kind == "accuracy" and record.accuracy is not None else None,
            "parity": record.parity.to_json() if record.parity else None, "run_id": record.run_id}


def failures(records: list[Record]) -> list[str]:
    lines = [f"{r.cell_id}: {r.status}: {r.error.splitlines()[0] if r.error else ''}" for r in records if not r.ok]
    lines += [f"{r.cell_id}: invalid: {'; '.join(r.validity.reasons)}"  # type: ignore[union-attr]
              for r in records if r.ok and not r.valid]
    return lines


def _spans_devices(records: list[Record]) -> bool:
    return len({r.cell.device for r in records}) > 1


def _spans_scenarios(records: list[Record]) -> bool:
    return len({r.cell.scenario for r in records}) > 1


def _grouped(records: list[Record]) -> dict[tuple[str, ...], dict[int, Record]]:
    """Rows by (model, runtime, precision), and device and scenario where the records span several."""
    devices, scenarios = _spans_devices(records), _spans_scenarios(records)
    rows: dict[tuple[str, ...], dict[int, Record]] = defaultdict(dict)
    for record in records:
        cell = record.cell
        key = ((cell.model, cell.runtime, cell.precision) + ((cell.device,) if devices else ())
               + ((cell.scenario,) if scenarios else ()))
        rows[key][cell.batch_size] = record
    return rows


def _row_columns(records: list[Record]) -> tuple[str, ...]:
    return (("model", "runtime", "precision") + (("device",) if _spans_devices(records) else ())
            + (("scenario",) if _spans_scenarios(records) else ()))


STAGE_NAMES = ("preprocess", "enqueue", "host_to_device", "compute", "device_to_host")


def stages_table(records: list[Record], title: str) -> Table | str:
    """Median ms of each stage of one query (harness.measure.stages), one row per stage of each model/runtime/
    precision, a column per batch size."""
    present = [s for s in STAGE_NAMES if any(r.stages and s in r.stages.medians_ms for r in records)]
    if not present:
        return "no stage times in these records (made before stages were measured, or no cell finished)"
    return _per_source_table(records, title, "median ms per query (a batch) of each stage, each timed on its own "
                             "with the device synchronized at its end; compute is the timed loop's median",
                             present, _stage_text, label="stage")


def _stage_text(record: Record | None, stage: str) -> str:
    if record is None:
        return "[dim]not run[/dim]"
    if not record.ok:
        return _status_text(record)
    if record.stages is None:
        return "[dim]—[/dim]"
    value = record.stages.medians_ms.get(stage)
    return f"{value:.3f}" if value is not None else "[dim]—[/dim]"


def scenario_table(records: list[Record], title: str) -> Table | None:
    """Each cell's scenario figure per row and batch-size column; None where every cell ran single-stream
    (the time table says it all)."""
    if all(r.cell.scenario == "single-stream" for r in records):
        return None
    batch_sizes = sorted({r.cell.batch_size for r in records})
    table = Table(title=title, caption="p90/p99: the latency that percentile stays within with 99 % confidence "
                                       "(LoadGen's early-stopping estimate); server: the highest Poisson arrival "
                                       "rate whose p99 held the bound; offline: images/s of all streams at once")
    keyed = {tuple(k): v for k, v in _grouped(records).items()}
    columns = _row_columns(records)
    for column in columns + (() if "scenario" in columns else ("scenario",)):
        table.add_column(column, no_wrap=True)
    for batch_size in batch_sizes:
        table.add_column(f"bs {batch_size}", justify="right")
    for key, by_batch in keyed.items():
        scenario = next(iter(by_batch.values())).cell.scenario
        extra = () if "scenario" in columns else (scenario,)
        table.add_row(*key, *extra, *[_scenario_text(by_batch.get(b)) for b in batch_sizes])
    return table


def _scenario_text(record: Record | None) -> str:
    if record is None:
        return "[dim]not run[/dim]"
    if not record.ok:
        return _status_text(record)
    figures = record.scenario
    if figures is None:
        return "[dim]not recorded[/dim]"
    if figures.name == "offline":
        return f"{figures.images_per_s:,.1f} img/s\n{figures.streams} streams"
    stated = f"p{round(100 * (figures.percentile or 0))}"
    if figures.name == "server":
        if figures.rate_qps is None:
            return f"[red]none held[/red]\n{stated} <= {figures.bound_ms:.1f} ms"
        return (f"{figures.rate_qps:,.1f} q/s\n{figures.images_per_s:,.1f} img/s\n"
                f"{stated} {figures.latency_ms:.1f} <= {figures.bound_ms:.1f} ms")
    if figures.latency_ms is None:
        return f"[dim]{stated}: needs {figures.queries_needed} queries ({figures.queries} ran)[/dim]"
    return f"{stated} {figures.latency_ms:.2f} ms\n{figures.queries} queries"


def memory_table(records: list[Record], title: str) -> Table | str:
    """Peak memory per model/runtime/precision and batch size, one column group per readable source."""
    present = [s for s in MEMORY_SOURCES if any(isinstance(r.memory.readings.get(s), MemoryReading) for r in records)]
    if not present:
        return "no memory readings in these records"
    return _per_source_table(records, title, "MB = 10^6 bytes; " + "; ".join(f"{s}: {MEMORY_SOURCES[s]}"
                                                                          for s in present), present, _memory_text)


def _per_source_table(records: list[Record], title: str, caption: str, sources: list[str],
                      text: Callable[[Record | None, str], str], label: str = "source") -> Table:
    """Rows of model/runtime/precision (and device) x source, a column per batch size, cells from `text`."""
    batch_sizes = sorted({r.cell.batch_size for r in records})
    table = Table(title=title, caption=caption)
    for column in (*_row_columns(records), label):
        table.add_column(column, no_wrap=True)
    for batch_size in batch_sizes:
        table.add_column(f"bs {batch_size}", justify="right")
    for key, by_batch in _grouped(records).items():
        for source in sources:
            table.add_row(*key, source, *[text(by_batch.get(b), source) for b in batch_sizes])
    return table


def energy_table(records: list[Record], title: str) -> Table | str | None:
    """Images per joule (net of idle) and average watts per model/runtime/precision and batch size, one row per
    measured source; None for records made before energy was measured; a line naming why where none could be."""
    with_pass = [r for r in records if r.energy is not None]
    if not with_pass:
        return None
    present = sorted({s for r in with_pass for s in r.measured_energy_sources()})
    if not present:
        reasons = {name: reading.reason for r in with_pass if r.energy
                   for name, reading in r.energy.sources.items() if isinstance(reading, Missing)}
        skipped = next((r.energy.skipped for r in with_pass if r.energy and r.energy.skipped), None)
        why = skipped or "; ".join(f"{name}: {reason}" for name, reason in sorted(reasons.items()) if reason)
        return f"no energy readings ({why})"
    return _per_source_table(records, title, "images per joule of the inference itself (idle power subtracted), "
                             "and in brackets the average watts drawn while it ran (idle included)", present,
                             _energy_text)


def _energy_text(record: Record | None, source: str) -> str:
    if record is None:
        return "[dim]not run[/dim]"
    if not record.ok:
        return _status_text(record)
    figures = record.energy_figures(source)
    if figures is None:
        return "[dim]—[/dim]"
    per_image = figures.joules_per_image
    images = f"{1 / per_image:,.1f} img/J" if per_image else "≈ idle"
    return f"{images} ({figures.average_watts:.1f} W)"


def _memory_text(record: Record | None, source: str) -> str:
    if record is None:
        return "[dim]not run[/dim]"
    if not record.ok:
        return _status_text(record)
    peak = record.peak_bytes(source)
    return "[dim]—[/dim]" if peak is None else f"{peak / 1e6:,.0f}"


def _compile_notes(options: dict[str, Any]) -> str:
    """What a compiling runtime did in its cold start: torch.compile's graphs, breaks and recompiles, OpenVINO's
    compiles and shape."""
    if options.get("compiled"):
        notes = (f"{options['graphs']} graph(s), {options['graph_breaks']} break(s), "
                 f"{options['recompiles']} recompile(s)")
        reasons = options.get("graph_break_reasons") or []
        return notes + (f"; first break: {reasons[0][:60]}" if reasons else "")
    if "compiles" in options:
        return f"{options['compiles']} compile(s), input {options.get('input_shape')}"
    return ""


def cold_start_table(records: list[Record], title: str) -> Table:
    """Per cell: building the runtime (load) and the first run, which holds torch.compile's compilation."""
    table = Table(title=title, caption="load: what the runtime's load() holds (records say what: "
                                       "cold_start.load_includes); first run: the cell's first inference, "
                                       "compilation included for torch-compile")
    for column in ("model", "runtime", "precision", "bs", "load s", "first run ms", "compile"):
        table.add_column(column, justify="right" if column in ("bs", "load s", "first run ms") else "left")
    for record in records:
        cold = getattr(record, "cold_start", None) or {}
        if not record.ok or not cold:
            continue
        options = (getattr(record, "runtime", None) or {}).get("options") or {}
        table.add_row(record.cell.model, record.cell.runtime, record.cell.precision, str(record.cell.batch_size),
                      f"{cold['load_s']:.2f}", f"{cold['first_run_ms']:,.1f}", _compile_notes(options))
    return table


def largest_batches(records: list[Record]) -> list[str]:
    """Where some batch size ran out of memory: the largest that fit."""
    lines = []
    for key, by_batch in _grouped(records).items():
        oom = [b for b, r in by_batch.items() if r.status in ("oom", "skipped")]
        if oom:
            fit = [b for b, r in by_batch.items() if r.ok and b < min(oom)]
            lines.append(f"{' '.join(key)}: largest batch that fit {max(fit) if fit else 'none'}, "
                         f"out of memory from {min(oom)}")
    return lines


def catalogue_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Model catalogue", caption="GMACs: 1 multiply-add = 1, all ops, at the input size "
                                                   "(FLOPs = 2 x MACs); '?' = not computed yet")
    table.add_column("name", no_wrap=True)
    table.add_column("task")
    table.add_column("paper name")
    table.add_column("source")
    table.add_column("year", justify="right")
    table.add_column("sets")
    table.add_column("input", justify="right")
    table.add_column("params (M)", justify="right")
    table.add_column("GMACs", justify="right")
    table.add_column("top-1 (pub.)", justify="right")
    table.add_column("installed", justify="center")
    for row in rows:
        complexity = row.get("complexity")
        params = f"{complexity['params'] / 1e6:.2f}" if complexity else "?"
        gmacs = f"{complexity['macs'] / 1e9:.2f}" if complexity else "?"
        top1 = _published_top1(row)
        installed = "[green]yes[/green]" if row["source_installed"] else "[red]no[/red]"
        sets = " ".join(f"@{name}" for name in row.get("sets", ()))
        table.add_row(row["name"], row.get("task", "classification"), row.get("paper_name") or "[dim]—[/dim]",
                      row["source"], str(row.get("year", "")), sets, str(row["input_size"]), params, gmacs, top1,
                      installed)
    return table


def _published_top1(row: dict[str, Any]) -> str:
    """The published top-1; n/a for a detector or segmenter (no top-1: its figure is in `list --json`)."""
    if row.get("task", "classification") != "classification":
        return "n/a"
    return f"{row['published_top1']:.2f}" if row.get("published_top1") is not None else "—"


def _mb(value: int | None) -> str:
    return f"{value / 1e6:.1f}" if value else "—"


def export_table(records: list[Record]) -> Table:
    table = Table(title="ONNX export", caption="export s: time of the export that made the file (cached later)")
    for column in ("model", "precision", "status", "exporter", "opset", "export s", "MB", "cache"):
        table.add_column(column, no_wrap=column in ("model", "exporter"))
    for record in records:
        artifact = record.artifact
        exporter = artifact.get("exporter", "—")
        if artifact.get("fallback_reason"):
            exporter += f"\n[dim]{escape(artifact['fallback_reason'][:80])}[/dim]"
        table.add_row(record.cell.model, precision_label(record.cell.precision),
                      "ok" if record.ok else _status_text(record), exporter,
                      str(artifact.get("opset", "—")),
                      f"{artifact['export_s']:.1f}" if "export_s" in artifact else "—", _mb(artifact.get("file_bytes")),
                      "hit" if artifact.get("cache_hit") else ("new" if artifact else "—"))
    return table


def engine_table(records: list[Record]) -> Table:
    """Engines built ahead of a sweep: one row per model, runtime, precision, shapes and device."""
    table = Table(title="Engines", caption="build s: time of the build that made the engine (0 when cached); "
                                           "device MB: what the engine needs on the device beyond its plan")
    for column in ("model", "runtime", "precision", "device", "shapes", "status", "build s", "plan MB", "context MB",
                   "cache"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("model", "runtime", "status") else "right")
    for record in records:
        engine, cell = record.prepared.engine or {}, record.cell
        cache = "—"
        if engine:
            cache = "hit" if engine.get("cache_hit") else "new"
            if engine.get("rebuilt_because"):
                cache = f"rebuilt: {escape(engine['rebuilt_because'][:60])}"
        table.add_row(cell.model, cell.runtime, cell.precision, cell.device,
                      (engine.get("shapes") or {}).get("label", "—"),
                      "ok" if record.ok else f"{_status_text(record)}\n[dim]{escape((record.error or '')[:100])}[/dim]",
                      f"{engine['build_s']:.1f}" if engine and not engine.get("cache_hit") else ("0" if engine else "—"),
                      _mb(engine.get("plan_file_bytes", engine.get("plan_bytes"))),  # older records: plan_bytes
                      _mb(engine.get("context_device_memory_bytes", engine.get("device_memory_bytes"))), cache)
    return table


def parity_table(records: list[Record]) -> Table:
    """One row per cell: its verdict and errors against the reference (the worst output's, for several)."""
    references = [f"{r.cell.runtime} {r.cell.precision}" for r in records if r.parity and r.parity.is_reference]
    references += [r.parity.reference for r in records if r.parity and r.parity.reference and not references]
    named = ", ".join(dict.fromkeys(references)) or "the reference"
    table = Table(title=f"Parity with {named} (same weights, same seeded inputs)",
                  caption="rel err = max |diff| / max |reference|; cosine: worst row; several outputs: the worst "
                          "output's figures")
    for column in ("model", "runtime", "precision", "verdict", "max abs err", "rel err", "cosine", "top-1 agree",
                   "top-5 overlap"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("model", "runtime") else "right")
    for record in records:
        cell, parity = record.cell, record.parity
        verdict = "[green]ok[/green]" if record.ok else _status_text(record)
        if parity and parity.is_reference:
            verdict = "[bold]reference[/bold]" if record.ok else verdict
            parity = None
        errors = parity.figures if parity else {}
        figures = ["—"] * 5 if not errors else [
            f"{errors['max_abs_err']:.2e}", f"{errors['max_rel_err']:.2e}", f"{errors['min_cosine']:.6f}",
            f"{errors['top1_agreement']:.2f}", f"{errors['top5_overlap']:.2f}"]
        table.add_row(cell.model, cell.runtime, cell.precision, verdict, *figures)
    return table


VERDICT_STYLE = {PASS: "green", FAIL: "red", UNKNOWN: "yellow"}


def checks_table(title: str, caption: str, checks: list[ModelCheck]) -> Table:
    """One row per criterion of each model: verdict, figure, limit (estimate and on-device checks alike)."""
    table = Table(title=title, caption=caption)
    for column in ("model", "criterion", "verdict", "figure", "limit"):
        table.add_column(column)
    for check in checks:
        for index, criterion in enumerate(check.criteria):
            style = VERDICT_STYLE[criterion.verdict]
            table.add_row(check.model if index == 0 else "", criterion.name,
                          f"[{style}]{criterion.verdict}[/{style}]", escape(criterion.figure), escape(criterion.limit))
    return table


def at_once_table(at_once: dict[str, Any]) -> Table:
    """Each model's engines alone and all at once (check --on-device --with-dla): images/s, and their sum."""
    table = Table(title="GPU and DLA cores at once", caption="images/s over a common window past warm-up, each "
                  "engine in its own trtexec; alone = the same engine with the others idle")
    for column, justify in (("model", "left"), ("engine", "left"), ("alone img/s", "right"),
                            ("at once img/s", "right"), ("note", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for model, result in at_once.items():
        if "skipped" in result:
            table.add_row(model, "", "", "", escape(f"not run: {result['skipped']}"))
            continue
        together = result["at_once"]
        for index, (engine, alone) in enumerate(result["alone"].items()):
            table.add_row(model if index == 0 else "", engine, f"{alone['images_per_s'].get(engine, 0):.1f}",
                          f"{together['images_per_s'].get(engine, 0):.1f}", escape(alone["why"] or ""))
        summed = sum(a["images_per_s"].get(e, 0) for e, a in result["alone"].items())
        table.add_row("", "[bold]all[/bold]", f"{summed:.1f}", f"[bold]{together['aggregate_images_per_s']:.1f}[/bold]",
                      escape(together["why"] or f"over {together['window_s']:.1f} s together"))
    return table
