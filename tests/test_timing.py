"""The timed loop and its statistics, driven by a fake clock: no real time passes."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from harness.measure.timing import Policy, percentile, sample, summarize, warm_up
from runtimes.base import Runtime, RuntimeOptions


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


class SteppingRuntime(Runtime):
    """Each run() advances the fake clock by the next duration (ms), cycling."""

    name = "stepping"

    def __init__(self, clock: FakeClock, durations_ms: list[float]) -> None:
        super().__init__(RuntimeOptions())
        self.clock, self.durations, self.calls, self.syncs = clock, durations_ms, 0, 0

    def load(self, artifact) -> None: ...

    def prepare(self, inputs: np.ndarray) -> None: ...

    def run(self) -> None:
        self.clock.now_ns += int(self.durations[self.calls % len(self.durations)] * 1e6)
        self.calls += 1

    def synchronize(self) -> None:
        self.syncs += 1

    def outputs(self) -> list[np.ndarray]:
        return []

    def info(self) -> dict:
        return {"name": self.name}


def _policy(**overrides) -> Policy:
    base = dict(warmup_min_iters=0, warmup_min_s=0.0, warmup_stable_rel=None, min_samples=5, min_duration_s=1.0, max_samples=1000,
                max_duration_s=100.0)
    return Policy(**{**base, **overrides})


def test_stops_only_when_both_minimums_are_met():
    clock = FakeClock()
    # 10 ms per run: 5 samples take 50 ms, so the 1 s minimum duration decides: 100 samples.
    result = sample(SteppingRuntime(clock, [10.0]), _policy(), clock)
    assert len(result.host_ms) == 100 and result.stop_reason == "minimums met"
    # 500 ms per run: 1 s is reached after 2 samples, so the minimum count of 5 decides.
    clock = FakeClock()
    result = sample(SteppingRuntime(clock, [500.0]), _policy(), clock)
    assert len(result.host_ms) == 5 and result.stop_reason == "minimums met"


def test_caps_stop_the_loop():
    clock = FakeClock()
    result = sample(SteppingRuntime(clock, [1.0]), _policy(min_samples=50, min_duration_s=10, max_samples=200,
                                                           max_duration_s=100), clock)
    assert len(result.host_ms) == 200 and result.stop_reason == "sample cap"
    clock = FakeClock()
    result = sample(SteppingRuntime(clock, [3000.0]), _policy(min_samples=50, min_duration_s=1, max_duration_s=10),
                    clock)
    assert len(result.host_ms) == 4 and result.stop_reason == "time cap"


def test_every_sample_is_kept_and_each_is_run_plus_synchronize():
    clock = FakeClock()
    runtime = SteppingRuntime(clock, [1.0, 2.0, 3.0])
    result = sample(runtime, _policy(min_samples=6, min_duration_s=0.0), clock)
    assert result.host_ms == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    assert runtime.calls == runtime.syncs == 6


def test_warm_up_needs_count_and_duration():
    clock = FakeClock()
    runtime = SteppingRuntime(clock, [100.0])
    warmup = warm_up(runtime, _policy(warmup_min_iters=3, warmup_min_s=1.0), clock)
    assert (warmup.iters, warmup.stop) == (10, "minimums met") and warmup.seconds == pytest.approx(1.0)
    clock = FakeClock()
    warmup = warm_up(SteppingRuntime(clock, [1000.0]), _policy(warmup_min_iters=3, warmup_min_s=1.0), clock)
    assert warmup.iters == 3


def test_warm_up_stops_once_stable_counting_the_first_run():
    stable = dict(warmup_min_iters=1, warmup_min_s=0.0, warmup_stable_rel=0.10)
    # The first run (3000 ms) was already at speed: one warm-up run within 10 % of it is enough.
    clock = FakeClock()
    warmup = warm_up(SteppingRuntime(clock, [2900.0]), _policy(**stable), clock, previous_ms=3000.0)
    assert (warmup.iters, warmup.stop) == (1, "stable")
    # A slow first run: warm-up goes on until two runs in a row agree within 10 %.
    clock = FakeClock()
    runtime = SteppingRuntime(clock, [2000.0, 1300.0, 1000.0, 950.0, 950.0])
    warmup = warm_up(runtime, _policy(**stable), clock, previous_ms=5000.0)
    assert (warmup.iters, warmup.stop) == (4, "stable") and warmup.seconds == pytest.approx(5.25)
    # Without a first run the first warm-up run has nothing to agree with.
    clock = FakeClock()
    assert warm_up(SteppingRuntime(clock, [100.0]), _policy(**stable), clock).iters == 2


def test_unsteady_warm_up_stops_at_its_cap_and_minimums_still_apply():
    clock = FakeClock()
    unsteady = SteppingRuntime(clock, [100.0, 300.0])
    warmup = warm_up(unsteady, _policy(warmup_min_iters=1, warmup_stable_rel=0.10, warmup_max_s=2.0), clock,
                     previous_ms=300.0)
    assert warmup.stop == "time cap" and warmup.seconds == pytest.approx(2.0) and warmup.iters == 10
    clock = FakeClock()
    warmup = warm_up(SteppingRuntime(clock, [100.0]), _policy(warmup_min_iters=1, warmup_min_s=0.5,
                                                              warmup_stable_rel=0.10), clock, previous_ms=100.0)
    assert (warmup.iters, warmup.stop) == (5, "stable")


def test_warm_up_runs_are_not_samples():
    clock = FakeClock()
    runtime = SteppingRuntime(clock, [50.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    result = sample(runtime, _policy(warmup_min_iters=1, min_samples=5, min_duration_s=0.0), clock)
    assert result.warmup_iters == 1 and 50.0 not in result.host_ms


def test_statistics():
    times = [float(v) for v in range(1, 101)]  # 1..100 ms
    stats = summarize(times, batch_size=4)
    assert stats.samples == 100
    assert stats.median_ms == 50.5 and stats.mean_ms == 50.5
    assert stats.std_ms == pytest.approx(statistics.stdev(times))
    assert stats.cv == pytest.approx(stats.std_ms / 50.5)
    assert (stats.min_ms, stats.max_ms) == (1.0, 100.0)
    assert stats.p90_ms == pytest.approx(np.percentile(times, 90))
    assert stats.p95_ms == pytest.approx(np.percentile(times, 95))
    assert stats.p99_ms is None  # 100 samples cannot support a 99th percentile (needs 500)
    assert stats.per_image_median_ms == pytest.approx(50.5 / 4)
    assert stats.images_per_s == pytest.approx(4 * 1000 / 50.5)


@pytest.mark.parametrize("n, present", [(49, set()), (50, {"p90"}), (100, {"p90", "p95"}),
                                        (500, {"p90", "p95", "p99"})])
def test_tail_percentiles_need_enough_samples(n, present):
    stats = summarize([1.0] * n, batch_size=1)
    shown = {key for key in ("p90", "p95", "p99") if getattr(stats, f"{key}_ms") is not None}
    assert shown == present


def test_percentile_matches_numpy():
    values = sorted(np.random.default_rng(1).random(37).tolist())
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q * 100))


def test_policy_rejects_inconsistent_limits():
    with pytest.raises(ValueError):
        Policy(min_samples=10, max_samples=5)
    with pytest.raises(ValueError):
        Policy(min_duration_s=10, max_duration_s=5)


class FakeDeviceClock:
    """A device clock whose every reading is the fake host clock's time between its marks, less 0.25 ms of
    launch overhead: what CUDA events on the runtime's stream report, without a GPU."""

    source = "fake CUDA events"

    def __init__(self, clock: FakeClock, events: list[str]) -> None:
        self.clock, self.events = clock, events

    def mark_start(self) -> None:
        self.events.append("start")
        self.start_ns = self.clock.now_ns

    def mark_end(self) -> None:
        self.events.append("end")
        self.end_ns = self.clock.now_ns

    def elapsed_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6 - 0.25


class DeviceClockRuntime(SteppingRuntime):
    def __init__(self, clock: FakeClock, durations_ms: list[float]) -> None:
        super().__init__(clock, durations_ms)
        self.events: list[str] = []

    def run(self) -> None:
        self.events.append("run")
        super().run()

    def synchronize(self) -> None:
        self.events.append("sync")
        super().synchronize()

    def device_clock(self) -> FakeDeviceClock:
        return FakeDeviceClock(self.clock, self.events)


def test_the_device_clock_is_read_around_run_inside_the_host_clock():
    """The CUDA branch of the timer, on the CPU: marks just around run(), before synchronize(); device
    samples kept beside the host samples."""
    clock = FakeClock()
    runtime = DeviceClockRuntime(clock, [2.0, 4.0])
    measurement = sample(runtime, _policy(min_samples=4, min_duration_s=0.0), clock=clock)
    assert measurement.host_ms == [2.0, 4.0, 2.0, 4.0]
    assert measurement.device_ms == [1.75, 3.75, 1.75, 3.75]
    assert runtime.events[:4] == ["start", "run", "end", "sync"]
    assert measurement.device_clock == "fake CUDA events"


class SimulatedGpu(Runtime):
    """A runtime on a pretend GPU with a timeline of its own: each run() costs the host `enqueue_ms` and the
    device `compute_ms`; its clock's events fire when the device reaches them, as CUDA events do."""

    name = "simulated-gpu"

    def __init__(self, clock: FakeClock, enqueue_ms: float, compute_ms: float) -> None:
        super().__init__(RuntimeOptions(device="cuda"))
        self.clock, self.enqueue_ns, self.compute_ns = clock, int(enqueue_ms * 1e6), int(compute_ms * 1e6)
        self.free_at_ns = 0  # when the device has done everything queued so far

    def _queue(self, work_ns: int) -> int:
        self.free_at_ns = max(self.clock.now_ns, self.free_at_ns) + work_ns
        return self.free_at_ns

    def load(self, artifact) -> None: ...

    def prepare(self, inputs: np.ndarray) -> None: ...

    def run(self) -> None:
        self.clock.now_ns += self.enqueue_ns  # the host's enqueue, before the kernels reach the device
        self._queue(self.compute_ns)

    def synchronize(self) -> None:
        self.clock.now_ns = max(self.clock.now_ns, self.free_at_ns)

    def outputs(self) -> list[np.ndarray]:
        return []

    def info(self) -> dict:
        return {"name": self.name}

    def device_clock(self):
        gpu = self

        class Events:
            source = "simulated CUDA events"

            def mark_start(self) -> None:
                self.start_ns = gpu._queue(0)

            def mark_end(self) -> None:
                self.end_ns = gpu._queue(0)

            def wait_end(self) -> None:
                gpu.clock.now_ns = max(gpu.clock.now_ns, self.end_ns)

            def elapsed_ms(self) -> float:
                return (self.end_ns - self.start_ns) / 1e6

        return Events()


def test_device_time_is_trtexecs_gpu_compute_time_not_host_enqueue_plus_compute():
    """Host enqueue 3 ms, device work 5 ms: the host sample is 8 ms (run + synchronize), and the device clock,
    with the next run queued behind each timed one, is 5 ms: the enqueue is hidden, as in trtexec's GPU
    Compute Time. Marks around run() in the host loop would say 8 ms."""
    from harness.measure.timing import QUEUED_AHEAD

    clock = FakeClock()
    result = sample(SimulatedGpu(clock, enqueue_ms=3.0, compute_ms=5.0), _policy(min_samples=20, min_duration_s=0.0),
                    clock)
    assert statistics.median(result.host_ms) == pytest.approx(8.0)
    assert len(result.device_ms) == len(result.host_ms) == 20
    assert statistics.median(result.device_ms) == pytest.approx(5.0) and result.device_ms[0] == pytest.approx(8.0)
    assert result.device_method == QUEUED_AHEAD and result.device_clock == "simulated CUDA events"


def test_a_device_slower_to_feed_than_to_run_shows_the_gaps():
    """Enqueue 6 ms, device work 2 ms: the device waits for the host; queued ahead still counts from the previous
    run's end, so the device time holds the wait (6 ms), never less than the real work."""
    clock = FakeClock()
    result = sample(SimulatedGpu(clock, enqueue_ms=6.0, compute_ms=2.0), _policy(min_samples=10, min_duration_s=0.0),
                    clock)
    assert statistics.median(result.device_ms) == pytest.approx(6.0)


def test_a_clock_that_stamps_itself_is_read_in_the_host_loop():
    from harness.measure.timing import IN_LOOP

    class Stamped(SteppingRuntime):
        def device_clock(self):
            class Latency:
                source = "library latency"

                def mark_start(self) -> None: ...

                def mark_end(self) -> None: ...

                def elapsed_ms(self) -> float:
                    return 1.5

            return Latency()

    clock = FakeClock()
    result = sample(Stamped(clock, [2.0]), _policy(min_samples=5, min_duration_s=0.0), clock)
    assert result.device_ms == [1.5] * 5 and result.device_method == IN_LOOP


def test_a_tools_trace_gets_the_harness_rules():
    """trtexec runs with its warm-up off; the harness drops warm-up runs by its own rule (count, time,
    stability) and keeps runs until both minimums are met."""
    from harness.measure.timing import from_trace

    latency = [9.0, 6.0, 5.0, 5.0] + [5.0] * 200
    starts = [i * 5.0 for i in range(len(latency))]
    policy = Policy(warmup_min_iters=1, warmup_min_s=0.0, warmup_stable_rel=0.10, min_samples=20, min_duration_s=0.5,
                    max_samples=1000, max_duration_s=60)
    result = from_trace(latency, [x - 1 for x in latency], starts, policy, "trtexec computeMs", "tool")
    assert result.warmup_iters == 4 and result.warmup_stop == "stable"  # 9, 6, 5, 5: the second 5 is within 10 %
    assert result.host_ms[0] == 5.0 and result.device_ms[0] == 4.0
    assert len(result.host_ms) == 100 and result.stop_reason == "minimums met"  # 100 x 5 ms = 0.5 s
    short = from_trace(latency[:10], latency[:10], starts[:10], policy, "c", "m")
    assert short.stop_reason == "trace ended" and len(short.host_ms) == 6
    with pytest.raises(ValueError):
        from_trace([], [], [], policy, "c", "m")
