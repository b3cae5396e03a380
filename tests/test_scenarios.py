"""Deployment scenarios (harness.measure.scenarios): the early-stopping statistic against LoadGen's published
minimums, the server's queue and rate search on a fake clock, offline's streams, and `bench --scenario` end to
end on a runtime whose service time is known."""

from __future__ import annotations

import json
import time

import pytest

from harness.measure import scenarios
from tests.helpers import run_main


def test_the_stated_percentiles_need_loadgens_minimum_queries():
    """LoadGen's early-stopping minimums at 99 % confidence: 459 queries for p99 with none over the latency,
    662 with one over; 44 for p90."""
    assert scenarios.queries_needed(0.99) == 459
    assert scenarios.queries_needed(0.99, over=1) == 662
    assert scenarios.queries_needed(0.90) == 44


def test_a_percentile_is_stated_only_where_enough_queries_back_it():
    assert scenarios.percentile_estimate([10.0] * 459, 0.99).latency_ms == 10.0
    short = scenarios.percentile_estimate([10.0] * 458, 0.99)
    assert short.latency_ms is None and short.queries_needed == 459 and short.empirical_ms == 10.0
    spread = [float(i) for i in range(1, 2001)]  # 1..2000 ms
    estimate = scenarios.percentile_estimate(spread, 0.99)
    # conservative: at or above the plain order statistic, and t queries really are over it
    assert estimate.latency_ms >= estimate.empirical_ms == 1980.0  # nearest rank: the 1980th of 2000
    assert sum(x > estimate.latency_ms for x in spread) == estimate.over > 0


class FakeClock:
    """Seconds that move only when the code under test sleeps or a query runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def runner(self, service_s: float):
        def run_once() -> None:
            self.now += service_s
        return run_once


def test_the_server_queues_queries_that_arrive_while_it_is_busy():
    clock = FakeClock()
    latencies = scenarios.serve(clock.runner(0.010), [0.0, 0.005, 0.010, 0.100], clock, clock.sleep)
    # 10 ms each: the second waits 5 ms, the third 10 ms; the fourth finds the server idle
    assert latencies == pytest.approx([10.0, 15.0, 20.0, 10.0])


def test_the_rate_search_keeps_the_highest_rate_that_held_the_bound():
    clock = FakeClock()
    found = scenarios.highest_rate(clock.runner(0.010), 100.0, 40.0, seed=1, clock=clock, sleep=clock.sleep)
    held = [t.rate_qps for t in found.trials if t.held]
    failed = [t.rate_qps for t in found.trials if not t.held]
    assert held and failed and max(held) < min(failed)
    assert found.rate_qps == max(held) and found.p99_ms <= 40.0
    assert all(t.queries >= 459 for t in found.trials) and len(found.trials) == 5
    assert [t.rate_qps for t in found.trials][0] == 50.0  # half the capacity first


def test_a_bound_below_the_service_time_holds_at_no_rate():
    clock = FakeClock()
    found = scenarios.highest_rate(clock.runner(0.010), 100.0, 5.0, seed=1, clock=clock, sleep=clock.sleep)
    assert found.rate_qps is None and not any(t.held for t in found.trials)
    assert min(t.rate_qps for t in found.trials) >= 100.0 / 8  # it stops going down at an eighth


def test_offline_runs_every_stream_at_once():
    started = []

    def stream(index: int):
        def run_once() -> None:
            started.append(index)
            time.sleep(0.005)
        return run_once

    found = scenarios.offline([stream(0), stream(1), stream(2)], batch_size=4, duration_s=0.3,
                              clock=time.perf_counter)
    assert found.streams == 3 and all(count > 0 for count in found.queries_per_stream)
    assert found.images == 4 * found.queries == 4 * len(started)
    assert found.images_per_s == pytest.approx(found.images / found.wall_s)


def test_offline_on_the_runtimes_own_requests_keeps_them_all_busy():
    """A pool of 3 requests of 10 ms each: start blocks only while all 3 are busy, so about 3 queries finish per
    10 ms, and the wait for the ones in flight is inside the window."""
    import threading

    pool = threading.Semaphore(3)
    in_flight: list[threading.Thread] = []

    def serve() -> None:
        time.sleep(0.01)
        pool.release()

    def start() -> None:
        pool.acquire()
        in_flight.append(threading.Thread(target=serve))
        in_flight[-1].start()

    def wait_all() -> None:
        for thread in in_flight:
            thread.join()

    found = scenarios.offline_queued(start, wait_all, streams=3, batch_size=2, duration_s=0.3, clock=time.perf_counter)
    assert all(not t.is_alive() for t in in_flight) and found.queries == len(in_flight)
    assert found.images == 2 * found.queries and found.images_per_s == pytest.approx(found.images / found.wall_s)
    assert found.queries / found.wall_s > 1.5 / 0.01  # well above one request's 100 queries/s


@pytest.mark.skipif(__import__("importlib").util.find_spec("openvino") is None, reason="openvino not installed")
def test_offline_on_openvino_runs_its_own_async_streams(capsys, tmp_path):
    from harness.records import read_records
    from tests import onnx_graphs

    path = onnx_graphs.classifier(tmp_path / "c.onnx")
    code, output = run_main(capsys, "bench", "--runtime", "ov,ort", "--onnx", str(path), "--batch-sizes", "2",
                            "--scenario", "offline", "--streams", "2", "--out", str(tmp_path), "--run-id", "o")
    assert code == 0, output
    figures = {r["cell"]["runtime"]: r["scenario"] for r in read_records(tmp_path / "o" / "records.jsonl").records}
    assert figures["ov"]["parallelism"].startswith("OpenVINO AsyncInferQueue of 2 requests")
    assert figures["ov"]["images_per_s"] > 0 and "queries_per_stream" not in figures["ov"]
    assert figures["ort"]["parallelism"] == "2 instances of the runtime, each on a thread of its own"


def test_bench_runs_every_scenario_and_records_its_figures(capsys, tmp_path):
    code, output = run_main(capsys, "bench", "--runtime", "tests.scenario_double:FixedServiceTime", "--models",
                            "resnet18", "--batch-sizes", "2", "--scenario",
                            "single-stream,multi-stream,server,offline", "--p99-bound", "50", "--streams", "3",
                            "--energy", "off", "--out", str(tmp_path), "--run-id", "s")
    assert code in (0, 1), output  # 1: a timing verdict may be invalid on a busy machine
    records = {json.loads(line)["cell"].get("scenario", "single-stream"): json.loads(line)
               for line in (tmp_path / "s" / "records.jsonl").read_text().splitlines()}
    assert set(records) == set(scenarios.SCENARIOS)
    assert records["server"]["cell_id"].endswith("|server") and "scenario" not in records["single-stream"]["cell"]
    server = records["server"]["scenario"]
    assert server["bound_ms"] == 50.0 and server["bound_from"] == "--p99-bound"
    assert server["rate_qps"] is not None and server["rate_qps"] < server["capacity_qps"]  # 2 ms: ~500 q/s
    assert server["images_per_s"] == pytest.approx(2 * server["rate_qps"])
    multi = records["multi-stream"]["scenario"]
    assert multi["percentile"] == 0.99 and multi["queries"] >= 459 and multi["latency_ms"] >= 2.0
    offline = records["offline"]["scenario"]
    assert offline["streams"] == 3 and len(offline["queries_per_stream"]) == 3
    assert "scenarios" in output and "q/s" in output and "img/s" in output


@pytest.mark.parametrize("flags, problem", [
    (["--scenario", "burst"], "unknown scenario 'burst': choose from single-stream, multi-stream, server, offline"),
    (["--scenario", "server", "--p99-bound", "-3"], "bad --p99-bound -3"),
    (["--p99-bound", "20"], "--p99-bound is the server scenario's bound: add --scenario server"),
    (["--scenario", "offline", "--streams", "0"], "bad --streams 0"),
    (["--scenario", "offline", "--streams", "1000"], "bad --streams 1000: give how many runtime instances offline runs at once, 1 to 64"),
])
def test_a_scenario_mistake_is_one_line(capsys, tmp_path, flags, problem):
    code, output = run_main(capsys, "bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1",
                            "--out", str(tmp_path), *flags)
    assert code == 2 and problem in output


def _scenario_record(scenario: str, **figures) -> dict:
    cell = {"model": "resnet18", "runtime": "ort", "precision": "fp32", "batch_size": 1, "device": "cpu"}
    if scenario != "single-stream":
        cell["scenario"] = scenario
    from harness.cells import cell_id_of

    return {"run_id": "r", "host": "vm", "kind": "bench", "cell_id": cell_id_of(cell), "cell": cell, "status": "ok",
            "error": None, "started_at": "2026-12-05T10:00:00+00:00",
            "timing": {"host": {"median_ms": 10.0, "per_image_median_ms": 10.0, "images_per_s": 100.0,
                                "samples": 50}},
            "samples_ms": {"host": [10.0] * 50},
            "model": {"name": "resnet18", "display_name": "ResNet-18", "published": {"top1": 69.76}},
            "scenario": {"name": scenario, **figures}}


def test_best_and_the_frame_read_the_scenario(capsys, tmp_path):
    """best --at-rate takes server cells whose highest held rate reaches it; --max-p99 their stated p99; the
    reports' charts keep to single-stream cells; the frame has a row per scenario."""
    from harness.records import append_record

    run = tmp_path / "r"
    run.mkdir()
    (run / "env-vm.json").write_text(json.dumps({"hostname": "vm", "cpu_model": "EPYC"}))
    for record in (_scenario_record("single-stream", percentile=0.9, latency_ms=11.0, queries=50),
                   _scenario_record("server", percentile=0.99, latency_ms=40.0, bound_ms=50.0, rate_qps=60.0,
                                    images_per_s=60.0, capacity_qps=100.0),
                   _scenario_record("multi-stream", percentile=0.99, latency_ms=14.0, queries=459)):
        append_record(run / "records.jsonl", record)
    code, output = run_main(capsys, "best", str(run), "--at-rate", "50")
    assert code == 0 and "server" in output and "60.0" in output
    code, output = run_main(capsys, "best", str(run), "--at-rate", "80")
    assert code == 1 and "No model meets" in output
    code, output = run_main(capsys, "best", str(run), "--max-p99", "20")
    assert code == 0 and "multi-stream" in output and "14.00" in output
    from harness.api import frame
    from harness.reports.data import load

    assert sorted(frame(run)["scenario"]) == ["multi-stream", "server", "single-stream"]
    dataset = load([run])
    assert [p.scenario for p in dataset.points] == ["single-stream"] and len(dataset.scenario_points) == 2


def test_compare_pairs_cells_of_the_same_scenario(tmp_path):
    from harness.reports.compare import compare, read_run
    from harness.records import append_record

    runs = []
    for name, server_ms in (("a", 10.0), ("b", 30.0)):
        run = tmp_path / name
        run.mkdir()
        (run / "env-vm.json").write_text(json.dumps({"hostname": "vm", "cpu_model": "EPYC"}))
        append_record(run / "records.jsonl", _scenario_record("single-stream"))
        server = _scenario_record("server", rate_qps=60.0)
        server["timing"]["host"]["median_ms"] = server_ms
        server["samples_ms"]["host"] = [server_ms] * 50
        append_record(run / "records.jsonl", server)
        runs.append(read_run(run))
    changes = {change.match[4]: change for change in compare(*runs).changes}
    assert set(changes) == {"cpu", "cpu server"}
    assert changes["cpu"].time.ratio == pytest.approx(1.0) and changes["cpu server"].time.ratio == pytest.approx(3.0)


def test_compare_judges_a_scenarios_own_figure_where_asked(capsys, tmp_path):
    """The server's highest rate within its bound fell from 60 to 40 queries/s with the same single-stream time:
    with --scenario-threshold 10% that is a regression (exit 1) named with both figures; without it, not judged."""
    from harness.records import append_record

    for name, rate in (("a", 60.0), ("b", 40.0)):
        run = tmp_path / name
        run.mkdir()
        (run / "env-vm.json").write_text(json.dumps({"hostname": "vm", "cpu_model": "EPYC"}))
        server = _scenario_record("server", rate_qps=rate)
        server["samples_ms"]["host"] = [10.0 + 0.01 * (i % 7) for i in range(50)]
        server["started_at"] = f"2026-12-05T10:00:0{len(name)}+00:00" if name == "a" else "2026-12-05T11:00:00+00:00"
        server["run_id"] = name
        append_record(run / "records.jsonl", server)
    code, output = run_main(capsys, "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--scenario-threshold", "10%")
    assert code == 1 and "scenario regression" in output and "60 → 40" in output, output
    code, output = run_main(capsys, "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    assert code == 0, output
    [cell] = json.loads(output)["comparisons"][0]["cells"]
    assert cell["scenario"] == {"figure": "queries/s within the p99 bound", "baseline": 60.0, "candidate": 40.0}
    assert "scenario regression" not in cell["verdicts"]


def test_best_on_records_without_the_scenario_says_how_to_measure_it(capsys, tmp_path):
    from harness.records import append_record

    run = tmp_path / "r"
    run.mkdir()
    (run / "env-vm.json").write_text(json.dumps({"hostname": "vm", "cpu_model": "EPYC"}))
    append_record(run / "records.jsonl", _scenario_record("single-stream"))
    code, output = run_main(capsys, "best", str(run), "--at-rate", "50")
    assert code == 2 and "--at-rate reads server cells, and these records have none" in output
    assert "bench --scenario server" in output and len(output.strip().splitlines()) == 1
