"""Sweeps across machines on Ray. Without a cluster: device names, resources, file carrying and the plan's
devices. With one: `ray.cluster_utils.Cluster` on this machine, a head and worker nodes with their own
resources and their own artifact caches, running null-runtime and ort cells through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.errors import UserError
from harness.fleet.devices import SLOT, NodeResources, check_device_name, check_node_name
from harness.fleet.fleet import Node, resolve_devices
from harness.fleet.files import FileArrivedDamaged, NeededFile, needed_files, place_files
from harness.records import read_records
from harness.sweep.planning import Cell
from harness.sweep.runs import finished_cell_ids
from tests import onnx_graphs
from tests.helpers import BOARDS, BOARD_ENV, ESPRESSO, TIGER_CAT, WITH_TRT, harness, one_error_line, run_cli

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'dnn-harness[ray]')")

ROOT = Path(__file__).resolve().parents[1]
NODES = [Node("ws1", "id1", "10.0.0.1", True, ("cpu", "cuda:0"), 1),
         Node("orin", "id2", "10.0.0.2", True, ("cpu", "cuda:0", "dla:0", "dla:1"), 1)]


# ---------------------------------------------------------------- without a cluster

def test_a_node_advertises_each_device_once_a_slot_and_its_name():
    assert NodeResources("ws1", ("cpu", "cuda:0")).as_ray() == {
        "harness-device:cpu": 1.0, "harness-device:cuda:0": 1.0, SLOT: 1.0, "harness-node:ws1": 1.0}
    assert NodeResources("ws1", ("cpu", "cuda:0", "cuda:1"), per_device=True).as_ray()[SLOT] == 3.0
    with pytest.raises(ValueError, match="node name"):
        check_node_name("my node")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        check_device_name("gpu")


def test_the_plans_devices_map_onto_the_fleet_or_are_refused_with_what_it_has():
    assert resolve_devices(["cuda:0"], NODES) == ["cuda:0"]
    assert resolve_devices(["cuda", "cuda@orin"], NODES) == ["cuda:0", "cuda:0@orin"]  # a fleet names the first GPU
    assert resolve_devices(["cuda:0@*", "dla:1@orin"], NODES) == ["cuda:0@ws1", "cuda:0@orin", "dla:1@orin"]
    with pytest.raises(UserError, match=r"no node of the fleet offers cuda:1; the fleet: ws1 \(cpu, cuda:0\); orin"):
        resolve_devices(["cuda:1"], NODES)
    with pytest.raises(UserError, match="node 'ws1' does not offer dla:0"):
        resolve_devices(["dla:0@ws1"], NODES)
    with pytest.raises(UserError, match="the fleet has no node named 'nano'"):
        resolve_devices(["cpu@nano"], NODES)
    with pytest.raises(UserError, match="no node of the fleet offers npu"):
        resolve_devices(["npu@*"], NODES)


def _request(tmp_path: Path) -> tuple[dict, Path]:
    cache = tmp_path / "driver-cache"
    (cache / "onnx" / "m").mkdir(parents=True)
    (cache / "weights" / "m").mkdir(parents=True)
    onnx, weights = cache / "onnx" / "m" / "model.onnx", cache / "weights" / "m" / "weights.pt"
    onnx.write_bytes(b"onnx bytes")
    weights.write_bytes(b"weights bytes")
    from exporters.store import sha256_of

    prepared = {"weights": {"kind": "random", "path": "weights/m/weights.pt", "sha256": sha256_of(weights)},
                "artifact": {"kind": "onnx", "path": "onnx/m/model.onnx", "sha256": sha256_of(onnx)}}
    return {"prepared": prepared, "model": {"name": "m"}}, cache


def test_files_arrive_once_checked_by_hash_and_damaged_ones_are_refused(tmp_path):
    request, driver_cache = _request(tmp_path)
    assert [n.relative_path for n, _ in needed_files(request, driver_cache, with_weights=False)] == \
        ["onnx/m/model.onnx"]
    needed = needed_files(request, driver_cache, with_weights=True)
    node_cache = tmp_path / "node-cache"
    handles = [(n, path) for n, path in needed]
    fetched = place_files(request, node_cache, handles, fetch=lambda path: path.read_bytes())
    assert fetched == ["weights/m/weights.pt", "onnx/m/model.onnx"]
    assert (node_cache / "onnx/m/model.onnx").read_bytes() == b"onnx bytes"
    assert place_files(request, node_cache, handles, fetch=lambda path: path.read_bytes()) == []  # already there
    (node_cache / "onnx/m/model.onnx").write_bytes(b"stale")  # a different file at the path: fetched again
    assert place_files(request, node_cache, handles, fetch=lambda path: path.read_bytes()) == ["onnx/m/model.onnx"]
    (node_cache / "onnx/m/model.onnx").unlink()
    with pytest.raises(FileArrivedDamaged, match="arrived with SHA-256"):
        place_files(request, node_cache, handles, fetch=lambda path: b"damaged in transit")
    assert not (node_cache / "onnx/m/model.onnx").exists()  # nothing damaged is left where a cell would read it


def test_an_outside_onnx_file_is_carried_and_the_request_points_at_the_nodes_copy(tmp_path):
    outside = tmp_path / "mine.onnx"
    outside.write_bytes(b"user's graph")
    request = {"prepared": {}, "model": {"name": "mine", "onnx_path": str(outside)}}
    [(needed, source)] = needed_files(request, tmp_path / "cache", with_weights=False)
    assert needed == NeededFile(needed.relative_path, needed.sha256, "model") and source == outside
    place_files(request, tmp_path / "node", [(needed, source)], fetch=lambda path: path.read_bytes())
    assert request["model"]["onnx_path"] == str(tmp_path / "node" / needed.relative_path)
    assert Path(request["model"]["onnx_path"]).read_bytes() == b"user's graph"


def test_an_outside_files_npz_of_inputs_travels_with_it(tmp_path):
    outside, arrays = tmp_path / "mine.onnx", tmp_path / "inputs.npz"
    outside.write_bytes(b"user's graph")
    arrays.write_bytes(b"user's arrays")
    request = {"prepared": {}, "model": {"name": "mine", "onnx_path": str(outside), "inputs_file": str(arrays)}}
    needed = needed_files(request, tmp_path / "cache", with_weights=False)
    assert [n.role for n, _ in needed] == ["model", "inputs"]
    place_files(request, tmp_path / "node", needed, fetch=lambda path: path.read_bytes())
    assert Path(request["model"]["inputs_file"]).read_bytes() == b"user's arrays"
    assert Path(request["model"]["inputs_file"]).is_relative_to(tmp_path / "node")


def test_a_lost_cell_runs_again_on_resume(tmp_path):
    records = tmp_path / "records.jsonl"
    base = {"schema_version": 2, "run_id": "r", "host": "h", "kind": "bench", "error": None, "started_at": "t",
            "wall_s": 0.0, "model": {"name": "m"}, "runtime": None, "policy": None}
    for status, batch in (("lost", 1), ("error", 2)):
        cell = {"model": "m", "runtime": "null", "precision": "fp32", "batch_size": batch, "device": "cpu@a"}
        records.open("a").write(json.dumps({**base, "cell": cell, "status": status,
                                            "cell_id": f"m|null|fp32|bs{batch}|cpu@a"}) + "\n")
    assert finished_cell_ids(tmp_path) == {"m|null|fp32|bs2|cpu@a"}


def test_fleet_mistakes_get_one_line(capsys):
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--device",
                                  "cpu,cuda:0"))
    assert "need --executor ray" in line
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--ray-address",
                                  "x:1"))
    assert "--ray-address is for --executor ray" in line
    line = one_error_line(run_cli(capsys, "node"))
    assert "--ray-address HEAD:PORT to join it, or --head" in line
    line = one_error_line(run_cli(capsys, "node", "--head", "--devices", "cpu,gpu", "--dry-run"))
    assert "unknown device 'gpu'" in line
    line = one_error_line(run_cli(capsys, "node", "--head", "--port", "70000", "--dry-run"))
    assert "--port 70000: give a TCP port from 1 to 65535" in line
    # 'cpu@' read as 'cpu' (any node) would run a pinned plan anywhere: refused before the fleet is asked
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--executor",
                                  "ray",
                                  "--device", "cpu@", "--ray-address", f"127.0.0.1:{_closed_port()}"))
    assert "--device cpu@: name the node after '@'" in line


def test_a_cell_queued_for_a_node_that_died_is_lost_while_other_cells_keep_finishing(tmp_path, catalogue):
    """The node table is read again every poll even when Ray never makes the driver wait that long (cells on
    other nodes finishing one after another): the cell queued for the dead node is lost early, not at the end."""
    from harness.fleet.devices import node_resource
    from tests.ray_double import PENDING, FakeRay, Later

    def on_submit(fake: FakeRay, options: dict) -> object:
        if node_resource("c") in options["resources"]:
            fake.kill("c")  # before its task started: Ray reports nothing, ever
            return PENDING
        return Later(0.02, fake.answer("a", {"status": "error", "error": "measured on a (the double)"}))

    fake = FakeRay({"a": ("cpu",), "c": ("cpu",)}, on_submit)
    cells = [Cell("resnet18", "null", "fp32", 1, "cpu@c")] + [Cell("resnet18", "null", "fp32", batch, "cpu@a")
                                                              for batch in range(1, 41)]
    records, took_s = _sweep_on(fake, tmp_path, catalogue, cells)
    order = [r["cell"]["device"] for r in records]
    assert len(records) == 41 and records[order.index("cpu@c")]["status"] == "lost"
    assert order.index("cpu@c") < 20, order  # within a poll or two of 0.05 s, while a's cells take 0.8 s in all


def test_nodes_that_do_not_answer_cost_one_timeout_together_not_one_each():
    """Describing the fleet (at a sweep's start, `node --list`) and forgetting a run (at its end, after Ctrl-C)
    wait for every node at once: ten silent nodes used to cost ten timeouts in a row."""
    from harness.fleet import tasks
    from harness.fleet.fleet import on_each_node, read_nodes
    from tests.ray_double import PENDING, FakeRay

    fake = FakeRay({name: ("cpu",) for name in "abcd"}, on_submit=lambda fake, options: PENDING,
                   on_other=lambda fake, name, options: PENDING)
    nodes = read_nodes(fake)
    started = time.monotonic()
    answers = on_each_node(fake, nodes, tasks.versions, 1.0)
    took_s = time.monotonic() - started
    assert len(answers) == 4 and all(isinstance(a, TimeoutError) for a in answers.values())
    assert took_s < 2.5  # one timeout for the four (it was four, one after the other)


def _closed_port() -> int:
    """A port of this machine nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fleet_command(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI run with a deadline well under Ray's own retries (minutes); its result and seconds taken."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=90)
    return result, time.monotonic() - started


@needs_ray
def test_a_wrong_ray_address_is_one_line_within_the_bound():
    """Ray retries an address where no head answers for minutes, printing reconnect lines; the harness gives up
    within --ray-timeout (default 30 s) with one line naming the address and the fix."""
    dead = f"127.0.0.1:{_closed_port()}"
    plan = ("--models", "squeezenet1_1", "--runtime", "null", "--device", "cpu", "--executor", "ray")
    result, took_s = _fleet_command("bench", *plan, "--ray-address", dead)
    line = one_error_line(result)
    assert f"no Ray cluster at {dead}" in line and "connection refused" in line and "--ray-address" in line
    assert took_s < 30
    for command in (("node", "--list", "--ray-address", dead), ("node", "--ray-address", dead, "--devices", "cpu")):
        result, took_s = _fleet_command(*command)  # listing the fleet, or joining it (`ray start` retries too)
        assert f"no Ray cluster at {dead}" in one_error_line(result) and took_s < 30
    # no address: the one Ray finds ($RAY_ADDRESS here; else the cluster last started here, perhaps long gone)
    result, took_s = _fleet_command("bench", *plan, env={"RAY_ADDRESS": dead})
    assert f"no Ray cluster at {dead} ($RAY_ADDRESS)" in one_error_line(result) and took_s < 30


@needs_ray
def test_an_address_that_accepts_but_is_no_ray_head_fails_at_the_timeout():
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("", 0))  # every interface: Ray dials this machine's address for 127.0.0.1
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        result, took_s = _fleet_command("bench", "--models", "squeezenet1_1", "--runtime", "null", "--device", "cpu",
                                        "--executor", "ray", "--ray-address", address, "--ray-timeout", "3")
    line = one_error_line(result)
    assert f"no Ray cluster at {address}" in line and "no Ray head answered within 3 s" in line
    assert took_s < 20


def test_ray_timeout_is_checked_and_is_for_the_ray_executor(capsys):
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--ray-timeout",
                                  "5"))
    assert "--ray-timeout is for --executor ray" in line
    line = one_error_line(run_cli(capsys, "node", "--list", "--ray-timeout", "0"))
    assert "bad --ray-timeout 0" in line
    line = one_error_line(run_cli(capsys, "bench", "--models", "squeezenet1_1", "--runtime", "null", "--executor",
                                  "ray",
                                  "--ray-address", "head-without-port"))
    assert "give the head's HOST:PORT" in line


def test_a_fleets_driver_plans_runtimes_it_has_not_installed(capsys):
    """The driver needs a runtime's class (what it consumes, whether it builds engines), not its library: a
    laptop without TensorRT drives a Jetson's trt cells; each node's cells say if the library is missing."""
    from runtimes import RuntimeUnavailable, runtime_class

    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeUnavailable, match="TensorRT"):
        runtime_class("trt")
    assert runtime_class("trt", installed_here=False).builds_engine
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "trt", "--models", "squeezenet1_1", "--device", "cuda"))
    assert "needs TensorRT" in line  # on this machine (the local executor) it must be installed


def test_without_ray_the_fleet_says_how_to_install_it(monkeypatch):
    from harness.fleet import fleet as fleet_module

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    with pytest.raises(UserError, match=r"--executor ray needs Ray: pip install 'dnn-harness\[ray\]'"):
        fleet_module.connect("10.0.0.1:6379")


def test_node_dry_run_prints_the_ray_start_command_it_would_run():
    board = {**BOARD_ENV, "TRT_DOUBLE_DRIVER_DEVICES": "1", "HARNESS_JETSON_ROOT": str(BOARDS / "xavier-nx")}
    result = harness("node", "--ray-address", "10.0.0.1:6379", "--name", "orin", "--devices", "cpu,cuda:0,dla:0",
                     "--dry-run", env=board)  # a board with one GPU and two DLA cores (the fixture and doubles)
    assert result.returncode == 0, result.stderr
    assert "node orin offers cpu, cuda:0, dla:0 (one cell at a time)" in result.stdout
    import shlex

    words = shlex.split(result.stdout.split("\n", 1)[1])  # pasted into a shell, it is these words
    assert words[1:2] == ["start"] and words[-1] == "--address=10.0.0.1:6379"
    resources = json.loads(words[2].removeprefix("--resources="))
    assert resources == {"harness-cell-slot": 1.0, "harness-device:cpu": 1.0, "harness-device:cuda:0": 1.0,
                         "harness-device:dla:0": 1.0, "harness-node:orin": 1.0}


def _sweep_on(fake, tmp_path: Path, catalogue, cells: list) -> tuple[list[dict], float]:
    """The cells swept through the Ray executor on the double's fleet; the records and the seconds it took."""
    from harness.execution.executor import Placement
    from harness.fleet.ray_executor import RayExecutor
    from harness.measure.timing import Policy
    from harness.sweep.sweep import BenchSettings, Sweep, catalogue_subjects

    def executor(run_dir: Path) -> RayExecutor:
        return RayExecutor(Placement(cache_dir=tmp_path / "cache", run_dir=run_dir), fake, run_dir.name,
                           liveness_poll_s=0.05)

    sweep = Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=Policy()),
                  executor_factory=executor)
    started = time.monotonic()
    records = sweep.run(cells)
    return records, time.monotonic() - started


def _node_died(fake, name: str) -> Exception:
    """What Ray raises for a task whose node died: a NodeDiedError naming the node's id."""
    from tests.ray_double import NodeDiedError

    return NodeDiedError(f"Task failed because the node it was running on is dead or unavailable. Node IP: "
                         f"10.0.0.3, node ID: {fake.node_id(name)}. This can happen if ...")


# how the pinned node goes: Ray names it dead in the task's error while its table lists it alive a while longer;
# or the task's worker crashes (no node named) and the table says the node died only after the retry was sent;
# or the node goes before the task started (Ray reports nothing for a task it cannot place)
NODE_GOES = ("named-before-the-table-says", "worker-crash-then-the-table-says", "silently-before-it-started")


@pytest.mark.parametrize("how", NODE_GOES)
def test_a_cell_pinned_to_a_node_that_dies_is_lost_in_bounded_time_and_the_sweep_goes_on(tmp_path, catalogue, how):
    from harness.fleet.devices import node_resource
    from tests.ray_double import PENDING, FakeRay, WorkerCrashedError

    def on_submit(fake: FakeRay, options: dict) -> object:
        if node_resource("c") not in options["resources"]:
            return fake.answer("a", {"status": "error", "error": "measured on a (the double)"})
        if not fake.alive("c"):
            return PENDING  # queued for a node that is gone: Ray's scheduler keeps it forever
        if how == "named-before-the-table-says":
            fake.kill("c", listed_alive_reads=3)
            return _node_died(fake, "c")
        if how == "worker-crash-then-the-table-says":
            fake.kill("c", listed_alive_reads=1)
            return WorkerCrashedError("The worker died unexpectedly while executing this task.")
        fake.kill("c")
        return PENDING

    fake = FakeRay({"a": ("cpu",), "c": ("cpu",)}, on_submit)
    cells = [Cell("resnet18", "null", "fp32", batch, device) for device in ("cpu@c", "cpu@a") for batch in (1, 2)]
    records, took_s = _sweep_on(fake, tmp_path, catalogue, cells)
    by_id = {r["cell_id"]: r for r in records}
    assert sorted(by_id) == sorted(c.cell_id for c in cells)  # every cell recorded: nothing waits forever
    for batch in (1, 2):
        lost = by_id[f"resnet18|null|fp32|bs{batch}|cpu@c"]
        assert lost["status"] == "lost" and lost["host"] == "c", lost
        assert by_id[f"resnet18|null|fp32|bs{batch}|cpu@a"]["status"] == "error"  # the double's answer, recorded
    sent_to_c = [s for s in fake.run_jobs() if node_resource("c") in s.options["resources"]]
    if how == "named-before-the-table-says":  # Ray said c died: nothing is sent there again
        assert len(sent_to_c) == 1 and "no other live node offers it" in by_id["resnet18|null|fp32|bs1|cpu@c"]["error"]
    assert all(s.cancelled for s in sent_to_c if s.answer is PENDING)  # nothing left queued in Ray
    assert took_s < 10


def test_a_node_refuses_to_offer_a_device_it_does_not_have(capsys):
    """A node that advertised cuda:99 on a CPU-only machine drew GPU cells that could never run there."""
    for devices, why in (("cpu,cuda:99", "(no CUDA device is visible here)"), ("dla:0", "(it is not a Jetson)"),
                         ("intel-gpu:3", "")):
        line = one_error_line(run_cli(capsys, "node", "--head", "--devices", devices, "--dry-run"))
        assert f"this machine has no {devices.split(',')[-1]} {why}" in line, line
    board = {**BOARD_ENV, "TRT_DOUBLE_DRIVER_DEVICES": "1", "HARNESS_JETSON_ROOT": str(BOARDS / "xavier-nx")}
    line = one_error_line(harness("node", "--head", "--devices", "cuda:1", "--dry-run", env=board))
    assert "this machine has no cuda:1 (the CUDA driver sees cuda:0)" in line
    line = one_error_line(harness("node", "--head", "--devices", "dla:2", "--dry-run", env=board))
    assert "this machine has no dla:2 (its module has 2 DLA core(s))" in line
    found = harness("node", "--head", "--devices", "cuda,dla:1", "--dry-run", env=board)
    assert found.returncode == 0 and "offers cuda:0, dla:1" in found.stdout, found.stderr


# ---------------------------------------------------------------- on a local cluster



class LocalFleet:
    """A head (the driver's node: no devices) and worker nodes, each with its own artifact cache."""

    def __init__(self, root: Path, names: tuple[str, ...]) -> None:
        from ray.cluster_utils import Cluster

        self.root = root
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        self.nodes: dict[str, object] = {}
        for name in names:
            self.add(name, ("cpu",))

    def add(self, name: str, devices: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        """A node offering `devices`, with its own cache and `env` in its workers (a board's doubles)."""
        self.nodes[name] = self.cluster.add_node(num_cpus=1, resources=NodeResources(name, devices).as_ray(),
                                                 env_vars={"HARNESS_CACHE_DIR": str(self.root / f"cache-{name}"),
                                                           **(env or {})})
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    def bench(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "harness", "bench", "--executor", "ray", "--ray-address", self.address,
                "--out", str(self.root / "runs"), *args]

    def running_on(self, name: str, run_id: str) -> bool:
        cells = self.root / f"cache-{name}" / "fleet-runs" / run_id / "cells"
        return cells.exists() and any(p.name.endswith(".request.json") for p in cells.iterdir())

    def shutdown(self) -> None:
        self.cluster.shutdown()


def _records(fleet: LocalFleet, run_id: str) -> list[dict]:
    return read_records(fleet.root / "runs" / run_id / "records.jsonl").records


def _overlap(records: list[dict]) -> list[tuple[str, str]]:
    """Pairs of cells that ran on the same node at the same time."""
    spans = [(r["process"]["node"], r["process"]["started_unix"], r["process"]["ended_unix"], r["cell_id"])
             for r in records if "started_unix" in r.get("process", {})]
    return [(a[3], b[3]) for i, a in enumerate(spans) for b in spans[i + 1:]
            if a[0] == b[0] and a[1] < b[2] and b[1] < a[2]]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    local = LocalFleet(tmp_path_factory.mktemp("fleet"), ("a", "b"))
    yield local
    local.shutdown()


def _env(fleet: LocalFleet) -> dict[str, str]:
    return {**os.environ, "HARNESS_CACHE_DIR": str(fleet.root / "cache-driver")}


@pytest.mark.slow
@needs_ray
def test_cells_run_on_nodes_offering_their_device_one_at_a_time_with_files_carried(fleet):
    result = subprocess.run(fleet.bench("--device", "cpu@*", "--runtime", "null,ort", "--models", "squeezenet1_1",
                                        "--batch-sizes", "1,2", "--run-id", "f"),
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr + result.stdout  # 1: cells sharing 2 cores may be invalid
    records = _records(fleet, "f")
    assert sorted(r["cell_id"] for r in records) == sorted(
        f"squeezenet1_1|{rt}|fp32|bs{b}|cpu@{n}" for rt in ("null", "ort") for b in (1, 2) for n in ("a", "b"))
    for record in records:
        assert record["status"] == "ok", record
        node = record["cell"]["device"].split("@")[1]
        assert record["host"] == record["process"]["node"] == node
        assert record["process"]["versions"]["dnn-harness"]
    assert _overlap(records) == []
    ort_first = [r for r in records if r["cell"]["runtime"] == "ort" and r["cell"]["batch_size"] == 1]
    for record in ort_first:  # each node received the ONNX file once (not the weights: ort does not build torch)
        assert record["process"]["fetched_files"] == [record["prepared"]["artifact"]["path"]]
        node = record["process"]["node"]
        assert (fleet.root / f"cache-{node}" / record["prepared"]["artifact"]["path"]).is_file()
    assert not list((fleet.root / "cache-a").glob("weights/*"))
    assert not (fleet.root / "cache-a" / "fleet-runs" / "f").exists()  # the nodes forgot the finished run
    run = fleet.root / "runs" / "f"
    assert {"env-a.json", "env-b.json"} <= {p.name for p in run.glob("env-*.json")}
    assert json.loads((run / "env-a.json").read_text())["fleet_node"] == "a"
    listed = subprocess.run([sys.executable, "-m", "harness", "node", "--list", "--ray-address", fleet.address,
                             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    nodes = [n for n in json.loads(listed.stdout) if n["name"] in ("a", "b")]  # (GPU-like nodes join later)
    assert [(n["name"], n["devices"], n["slots"]) for n in nodes] == [("a", ["cpu"], 1), ("b", ["cpu"], 1)]
    assert all(n["versions"]["ray"] == ray.__version__ for n in nodes)


@pytest.mark.slow
@needs_ray
def test_the_same_plan_gives_the_same_records_on_the_local_executor(fleet):
    """What a record holds does not depend on where it ran: same cells, statuses, keys, model summary and
    artifacts; only where and when differ (process, host, times)."""
    plan = ["--device", "cpu", "--runtime", "null,ort", "--models", "squeezenet1_1", "--batch-sizes", "1"]
    local_run = [sys.executable, "-m", "harness", "bench", *plan, "--out", str(fleet.root / "runs")]
    # first a run that fills the driver's cache (params and MACs are counted by the first export), so that
    # neither compared run depends on which of its cells happened to finish first
    subprocess.run([*local_run, "--run-id", "same-warm"], cwd=ROOT, env=_env(fleet), capture_output=True, timeout=600)
    on_fleet = subprocess.run(fleet.bench(*plan, "--run-id", "same"), cwd=ROOT, env=_env(fleet),
                              capture_output=True, text=True, timeout=600)
    local = subprocess.run([*local_run, "--run-id", "same-local"], cwd=ROOT, env=_env(fleet), capture_output=True,
                           text=True, timeout=600)
    assert on_fleet.returncode in (0, 1) and local.returncode in (0, 1), on_fleet.stderr + local.stderr
    fleet_records = {r["cell_id"]: r for r in _records(fleet, "same")}
    local_records = {r["cell_id"]: r for r in _records(fleet, "same-local")}
    assert sorted(fleet_records) == sorted(local_records) == ["squeezenet1_1|null|fp32|bs1|cpu",
                                                              "squeezenet1_1|ort|fp32|bs1|cpu"]
    where_and_when = {"process", "host", "wall_s", "started_at", "run_id"}
    for cell_id, record in fleet_records.items():
        other = local_records[cell_id]
        assert record["status"] == other["status"] == "ok"
        assert set(record) - where_and_when == set(other) - where_and_when
        assert record["model"] == other["model"] and record["cell"] == other["cell"]
        assert set(record["timing"]) == set(other["timing"])
        assert (record.get("prepared") or {}).get("artifact", {}).get("sha256") == \
            (other.get("prepared") or {}).get("artifact", {}).get("sha256")


@pytest.mark.slow
@needs_ray
def test_verify_on_a_fleet_carries_the_reference_outputs_to_the_compared_cells(fleet):
    result = subprocess.run([sys.executable, "-m", "harness", "verify", "--models", "squeezenet1_1", "--runtime",
                             "ort", "--executor", "ray", "--ray-address", fleet.address, "--device", "cpu@*",
                             "--out", str(fleet.root / "runs"), "--run-id", "v"],
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    records = {r["cell_id"]: r for r in _records(fleet, "v")}
    assert sorted(records) == ["squeezenet1_1|ort|fp32|bs4|cpu@a", "squeezenet1_1|ort|fp32|bs4|cpu@b",
                               "squeezenet1_1|torch|fp32|bs4|cpu"]
    reference = records["squeezenet1_1|torch|fp32|bs4|cpu"]
    assert reference["parity"]["is_reference"]
    assert (fleet.root / "runs" / "v" / reference["parity"]["outputs_file"]).is_file()
    assert any(path.startswith("weights/") for path in reference["process"]["fetched_files"])  # torch builds the module
    for node in ("a", "b"):
        compared = records[f"squeezenet1_1|ort|fp32|bs4|cpu@{node}"]
        assert compared["status"] == "ok" and compared["parity"]["max_rel_err"] < 1e-4
        if reference["process"]["node"] != node:  # the reference ran elsewhere: its outputs travelled here
            assert reference["parity"]["outputs_file"] in compared["process"]["fetched_files"]


@pytest.mark.slow
@needs_ray
def test_accuracy_on_a_fleet_carries_the_crops_and_the_weights_file(fleet, lite0_weights, photos):
    """Real ImageNet weights and photographs: each node's cells read the crops decoded on the driver and the
    user's weights file, both carried and checked by hash; the figures match across nodes."""
    data = fleet.root / "val"
    for wnid, name in ((TIGER_CAT, "chelsea"), (ESPRESSO, "coffee")):
        (data / wnid).mkdir(parents=True, exist_ok=True)
        (data / wnid / f"{name}.JPEG").write_bytes(photos[name].read_bytes())
    result = subprocess.run([sys.executable, "-m", "harness", "accuracy", "--data", str(data), "--models",
                             "tf_efficientnet_lite0", "--runtime", "ort", "--weights", str(lite0_weights),
                             "--workers", "1", "--executor", "ray", "--ray-address", fleet.address, "--device",
                             "cpu@*", "--out", str(fleet.root / "runs"), "--run-id", "acc"],
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr + result.stdout
    records = _records(fleet, "acc")
    assert sorted((r["cell"]["runtime"], r["cell"]["device"]) for r in records) == [
        ("ort", "cpu@a"), ("ort", "cpu@b"), ("torch", "cpu@a"), ("torch", "cpu@b")]
    assert {r["accuracy"]["images"] for r in records} == {2}
    assert len({(r["accuracy"]["top1"], r["accuracy"]["top5"]) for r in records}) == 1
    for record in records:
        fetched = record["process"]["fetched_files"]
        if record["cell"]["runtime"] == "torch":  # each node's first cell: the weights and the crops arrive
            assert any(path.endswith(lite0_weights.name) for path in fetched)
            assert any(path.startswith("crops/") for path in fetched), fetched
    assert "on cpu@a" in result.stdout and "on cpu@b" in result.stdout


@pytest.mark.slow
@needs_ray
def test_a_device_no_node_offers_is_refused_up_front(fleet):
    result = subprocess.run(fleet.bench("--device", "npu", "--runtime", "null", "--models", "squeezenet1_1"),
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no node of the fleet offers npu; the fleet: a (cpu); b (cpu)" in result.stderr


@pytest.mark.slow
@needs_ray
def test_the_driver_killed_mid_sweep_resumes_and_finishes(fleet):
    args = fleet.bench("--device", "cpu", "--runtime", "null", "--models", "squeezenet1_1,resnet18,mobilenet_v2",
                       "--batch-sizes", "1", "--thorough", "--run-id", "k")
    driver = subprocess.Popen(args, cwd=ROOT, env=_env(fleet), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (fleet.running_on("a", "k") or fleet.running_on("b", "k")) and time.time() < deadline:
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = _records(fleet, "k") if (fleet.root / "runs" / "k" / "records.jsonl").exists() else []
    result = subprocess.run([*args, "--resume", "k"], cwd=ROOT, env=_env(fleet), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode in (0, 1), result.stderr + result.stdout
    records = _records(fleet, "k")
    assert len(records) == 3 and len({r["cell_id"] for r in records}) == 3  # each cell once
    assert all(r["status"] == "ok" for r in records)
    assert [r["cell_id"] for r in records[:len(before)]] == [r["cell_id"] for r in before]


@pytest.mark.slow
@needs_ray
def test_ctrl_c_cancels_the_fleets_cells_and_keeps_finished_records(fleet):
    args = fleet.bench("--device", "cpu", "--runtime", "null", "--models",
                       "squeezenet1_1,resnet18,mobilenet_v2,resnet50", "--batch-sizes", "1", "--thorough",
                       "--run-id", "c")
    # a shell's background job starts with SIGINT ignored, and Python keeps that: restore Ctrl-C in the driver
    driver = subprocess.Popen(args, cwd=ROOT, env=_env(fleet), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (fleet.running_on("a", "c") or fleet.running_on("b", "c")) and time.time() < deadline:
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep ended before Ctrl-C could be sent"
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err + out
    assert "interrupted" in err and "resume with" in err
    result = subprocess.run([*args, "--resume", "c"], cwd=ROOT, env=_env(fleet), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode in (0, 1), result.stderr + result.stdout
    records = _records(fleet, "c")
    assert sorted(r["cell_id"] for r in records) == [f"{m}|null|fp32|bs1|cpu" for m in
                                                     ("mobilenet_v2", "resnet18", "resnet50", "squeezenet1_1")]


# ---------------------------------------------------------------- bundles, boards and engines on a fleet
# Two GPU-like nodes join the module's fleet here: `orin` (the Orin Nano fixture tree, TensorRT's double and no
# torch, as a board's venv) and `ws` (TensorRT's double, not a Jetson), each offering cuda:0.


@pytest.fixture(scope="module")
def gpu_nodes(fleet) -> LocalFleet:
    fleet.add("orin", ("cuda:0",), {**WITH_TRT, "HARNESS_JETSON_ROOT": str(BOARDS / "orin-nano")})
    fleet.add("ws", ("cuda:0",), WITH_TRT)
    return fleet


@pytest.mark.slow
@needs_ray
def test_verify_bundle_on_a_fleet_carries_the_bundles_reference_outputs(fleet, board_bundle):
    result = subprocess.run([sys.executable, "-m", "harness", "verify", "--bundle", str(board_bundle), "--runtime",
                             "ort", "--executor", "ray", "--ray-address", fleet.address, "--device", "cpu@*",
                             "--out", str(fleet.root / "runs"), "--run-id", "vb"],
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    records = {r["cell"]["device"]: r for r in _records(fleet, "vb")}
    assert sorted(records) == ["cpu@a", "cpu@b"]
    for node, record in (("a", records["cpu@a"]), ("b", records["cpu@b"])):
        assert record["status"] == "ok" and record["process"]["node"] == node
        assert record["parity"]["reference"].endswith("from the bundle") and record["parity"]["max_rel_err"] < 1e-4
        fetched = record["process"]["fetched_files"]
        assert any(path.startswith("fleet-files/") and path.endswith(".npz") for path in fetched), fetched
        assert any(path.startswith("fleet-files/") and path.endswith(".onnx") for path in fetched), fetched


@pytest.mark.slow
@needs_ray
def test_check_on_device_on_a_fleet_reads_the_board_and_measures_there(gpu_nodes, board_bundle, tmp_path):
    fleet = gpu_nodes
    profile = yaml.safe_load((ROOT / "harness" / "data" / "profiles" / "jetson-orin-nano.yaml").read_text())
    profile["targets"] = {"batch_size": 1}  # no speed target: the verdict must not hang on a shared machine's timing
    (tmp_path / "orin.yaml").write_text(yaml.safe_dump(profile))
    check = [sys.executable, "-m", "harness", "check", "--on-device", "--bundle", str(board_bundle), "--profile",
             str(tmp_path / "orin.yaml"), "--executor", "ray", "--ray-address", fleet.address,
             "--out", str(fleet.root / "runs")]
    result = subprocess.run([*check, "--device", "cuda@orin", "--run-id", "od", "--json"], cwd=ROOT, env=_env(fleet),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    answer = json.loads(result.stdout)  # stdout is the JSON alone
    assert answer["measured_on"] == "node orin" and answer["ready"] == 1
    assert {c["name"]: c["verdict"] for c in answer["checks"][0]["criteria"]} == {
        "memory": "PASS", "numerics": "PASS", "opset/ops": "PASS"}
    [timed] = _records(fleet, "od")
    [checked] = _records(fleet, "od-verify")
    for record in (timed, checked):
        assert record["process"]["node"] == "orin" and record["cell"]["device"] == "cuda:0@orin"
        assert record["cell"]["runtime"] == "trt" and record["cell"]["precision"] == "fp16"
    assert timed["jetson"]["after"]["module"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert (fleet.root / "runs" / "od" / "env-orin.json").is_file()
    not_a_board = one_error_line(subprocess.run([*check, "--device", "cuda@ws"], cwd=ROOT, env=_env(fleet),
                                                capture_output=True, text=True, timeout=300))
    assert "node ws is not a Jetson" in not_a_board
    which = one_error_line(subprocess.run([*check, "--device", "cuda"], cwd=ROOT, env=_env(fleet),
                                          capture_output=True, text=True, timeout=300))
    assert "2 nodes offer it (orin, ws)" in which and "--device cuda:0@orin" in which
    cpu = one_error_line(subprocess.run([*check, "--device", "cpu@a"], cwd=ROOT, env=_env(fleet),
                                        capture_output=True, text=True, timeout=300))
    assert "is a jetson profile, checked on cuda, cuda:N or dla:N" in cpu


@pytest.mark.slow
@needs_ray
def test_an_engines_cells_run_on_the_node_that_built_it(gpu_nodes, tmp_path):
    """Engines are not portable: each batch size's engine is built on whichever node offering cuda:0 is free,
    and its cells follow it there (elsewhere the engine is missing and the cell would fail)."""
    fleet = gpu_nodes
    onnx_path = onnx_graphs.classifier(tmp_path / "c.onnx")
    result = subprocess.run(fleet.bench("--onnx", str(onnx_path), "--runtime", "trt", "--device", "cuda:0",
                                        "--batch-sizes", "1,2,4,8", "--run-id", "engines"),
                            cwd=ROOT, env=_env(fleet), capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr + result.stdout  # 1: CV on a shared machine
    records = _records(fleet, "engines")
    assert len(records) == 4
    for record in records:
        assert record["status"] == "ok", record
        node, engine = record["process"]["node"], record["prepared"]["engine"]
        assert node in ("orin", "ws")
        assert (fleet.root / f"cache-{node}" / engine["folder"]).is_dir()  # built here ...
        other = "ws" if node == "orin" else "orin"
        assert not (fleet.root / f"cache-{other}" / engine["folder"]).exists()  # ... and only here


@pytest.mark.slow
@needs_ray
def test_a_node_lost_mid_cell_is_retried_elsewhere_or_recorded_lost(tmp_path):
    fleet = LocalFleet(tmp_path, ("a", "b", "c"))
    driver = None
    try:
        # any cpu node: the cell on b, lost with b, runs again on a or c
        args = fleet.bench("--device", "cpu", "--runtime", "null", "--models", "squeezenet1_1,resnet18,mobilenet_v2",
                           "--batch-sizes", "1", "--thorough", "--run-id", "any")
        driver = subprocess.Popen(args, cwd=ROOT, env=_env(fleet), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.time() + 120
        while not fleet.running_on("b", "any") and time.time() < deadline:
            time.sleep(0.2)
        assert fleet.running_on("b", "any"), "no cell started on node b"
        fleet.cluster.remove_node(fleet.nodes.pop("b"))
        out, err = driver.communicate(timeout=600)
        records = _records(fleet, "any")
        assert len(records) == 3 and all(r["status"] == "ok" for r in records), err + out
        [retried] = [r for r in records if r["process"].get("lost_attempts")]
        assert retried["process"]["lost_attempts"][0]["node"] == "b" and retried["process"]["node"] in ("a", "c")
        # pinned to c: nowhere else to go, so it is recorded lost, with its node
        args = fleet.bench("--device", "cpu@c", "--runtime", "null", "--models", "squeezenet1_1", "--batch-sizes",
                           "1", "--thorough", "--run-id", "pinned")
        driver = subprocess.Popen(args, cwd=ROOT, env=_env(fleet), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.time() + 120
        while not fleet.running_on("c", "pinned") and time.time() < deadline:
            time.sleep(0.2)
        # killed, not stopped: Ray names c dead in the task's error at once but lists it alive for seconds more;
        # a retry sent to c then would have waited forever (c's resource is gone for good)
        fleet.cluster.remove_node(fleet.nodes.pop("c"), allow_graceful=False)
        killed = time.monotonic()
        out, err = driver.communicate(timeout=300)
        assert time.monotonic() - killed < 60, "the lost cell was not recorded within Ray's time to declare c dead"
        assert driver.returncode == 1, err + out
        [record] = _records(fleet, "pinned")
        assert record["status"] == "lost" and record["host"] == "c"
        assert "no other live node offers it" in record["error"]
    finally:
        if driver is not None and driver.poll() is None:  # a driver left waiting: ended with the test
            driver.kill()
        fleet.shutdown()
