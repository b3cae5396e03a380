"""A timing cell whose inferences a library's own tool runs and times (`Runtime.timed_by`: trtexec).

The tool runs in a process of its own, so what the harness reads is that process's: its peak RSS (from wait4
when it ends), its nvmap rows on a Jetson (sampled while it runs), and the board's facts and clock trace
around it. The tool's per-run records get the harness's warm-up and stopping rules and statistics
(harness.measure.timing.from_trace); its latency plays the host samples (the headline) and its GPU compute
time the device clock's, each named in the record. Energy is not measured: the energy pass needs run() in
this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.measure import jetson as board, memory, stages, validity
from harness.measure.periodic import Periodic
from harness.measure.timing import from_trace, summarize
from harness.parts import Energy, Memory, StageTimes, memory_reading

if TYPE_CHECKING:
    from harness.cell.worker import CellContext
    from runtimes.base import Runtime

HOST_CLOCK = "trtexec --exportTimes latencyMs (host-to-device + compute + device-to-host by CUDA events; with " \
             "trtexec's inputs on the device, compute alone)"
DEVICE_CLOCK = "trtexec --exportTimes computeMs (its GPU Compute Time)"
DEVICE_METHOD = "queued ahead by trtexec (one inference enqueued behind the timed one), read from its exported times"


class _ProcessNvmap:
    """The tool process's nvmap rows (a Jetson's per-process GPU memory, root only), sampled while it runs."""

    def __init__(self) -> None:
        self.peak_bytes: int | None = None
        self.missing: str | None = None
        self._pid: int | None = None
        self._periodic = Periodic(self._read, 0.05, "tool-nvmap")

    def _read(self) -> None:
        if self._pid is None or self.missing is not None:
            return
        reading = board.process_gpu_memory(self._pid)
        if "missing" in reading:
            self.missing = reading["missing"]
        else:
            self.peak_bytes = max(self.peak_bytes or 0, int(reading["bytes"]))

    def watch(self, pid: int) -> None:
        self._pid = pid
        self._periodic.start()

    def stop(self) -> dict[str, Any]:
        if self._pid is not None:
            self._periodic.stop()
        if self.peak_bytes is None:
            return {"missing": self.missing or "the tool's process was not seen"}
        return {"bytes": self.peak_bytes, "source": "the tool process's rows of nvmap's iovmm maps, sampled"}


def run_tool_timed_bench(context: "CellContext", runtime: "Runtime") -> dict[str, Any]:
    """load -> the tool's timing run (board facts, clock trace and memory around it) -> the harness's rules."""
    cell, policy = context.cell, context.request.policy
    result: dict[str, Any] = {"status": "ok", "error": None}
    runtime.load(context.artifact(runtime))
    unified, nvmap = memory.JetsonUnified(), _ProcessNvmap()
    frequency_before, board_before = validity.cpu_frequencies_khz(), board.facts()
    trace = board.ClockTrace() if board_before.get("is_jetson") else None
    unified.start()
    if trace is not None:
        trace.start()
    try:
        run = runtime.measure(policy.as_dict(), on_start=nvmap.watch)  # type: ignore[attr-defined]
    finally:
        if trace is not None:
            trace.stop()
        unified.stop()
        process_nvmap = nvmap.stop()
    frequency_after, board_after = validity.cpu_frequencies_khz(), board.facts()
    records = run.records
    measurement = from_trace([r["latencyMs"] for r in records], [r["computeMs"] for r in records],
                             [r["startComputeMs"] for r in records], policy, DEVICE_CLOCK, DEVICE_METHOD)
    host_stats = summarize(measurement.host_ms, cell.batch_size).__dict__
    result["runtime"] = runtime.info()
    result["prepared"] = context.prepared
    result["cold_start"] = {"library_import_s": None, "load_s": run.load_s, "first_run_ms": records[0]["latencyMs"],
                            "load_includes": "trtexec's own 'Engine deserialized in' figure"}
    result["timing"] = {
        "clock": HOST_CLOCK, "warmup_iters": measurement.warmup_iters, "warmup_s": measurement.warmup_s,
        "warmup_stop": measurement.warmup_stop, "stop_reason": measurement.stop_reason, "loop_s": measurement.loop_s,
        "host": host_stats, "device": summarize(measurement.device_ms, cell.batch_size).__dict__,  # type: ignore
        "device_clock": measurement.device_clock, "device_method": measurement.device_method,
        "tool": {"command": run.command, "records": len(records), **run.facts}}
    result["samples_ms"] = {"host": measurement.host_ms, "device": measurement.device_ms}
    host_reading = {"peak_bytes": run.peak_rss_bytes,
                    "source": "the trtexec process's peak RSS (wait4's ru_maxrss when it ended)"} \
        if run.peak_rss_bytes else memory.missing("the tool's peak RSS was not reported")
    unified_reading = unified.reading()
    if "missing" not in unified_reading:
        unified_reading["process_nvmap"] = process_nvmap
    in_tool = memory.missing("the inferences ran in trtexec's process, which this reading does not follow")
    readings = {"host_rss": host_reading, "cuda_nvml": in_tool, "torch_allocator": in_tool,
                "jetson_unified": unified_reading, "jetson_process": memory.jetson_process(host_reading, unified_reading)}
    result["memory"] = Memory({source: memory_reading(reading) for source, reading in readings.items()}, 0)
    result["energy"] = Energy(skipped="the inferences ran in trtexec's process: the energy pass needs them here")
    result["stages"] = StageTimes(stages.from_tool_records(records), "trtexec", len(records),
                                  dict(stages.TOOL_INCLUDES),
                                  {"preprocess": "the inferences ran in trtexec's process, on its own inputs"})
    board_during = trace.summary() if trace is not None else None
    result["validity"] = validity.verdict(host_stats, policy.min_samples, context.request.max_cv, frequency_before,
                                          frequency_after, None, board_before, board_after, board_during)
    if board_after.get("is_jetson"):
        result["jetson"] = {"before": board_before, "after": board_after, "during_timed_loop": board_during}
    result["input"] = {"generator": run.facts.get("inputs")}
    result["complexity"] = context.complexity()
    return result
