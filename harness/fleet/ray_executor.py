"""The Ray executor: each job a Ray task on a fleet node that offers the job's device; inside the task the
job runs as the local executor runs it, in a fresh process with its timeout and memory cap.

Where jobs run:
- a cell (and an engine build) asks for one unit of its device's resource and one cell slot, so one cell
  at a time runs on each device (and, by default, on each machine); `DEVICE@NODE` adds that node's own
  resource, pinning it there. A cell of an engine runtime runs on the node that built its engine
  (engines are not portable).
- a prepare job (weights, ONNX export, quantization) runs on the driver's node, in the driver's cache,
  taking that node's cell slot where it has one so that an export never runs beside a measurement.
  Other nodes receive the files through Ray's object store, checked by hash (harness.fleet.files).

Faults: a task whose node (or worker) dies is `lost`; it is submitted once more where another live node
offers the device, else recorded `lost` with the node it was on. A node Ray names in a NodeDiedError counts as
dead from then on, though Ray's node table may list it alive for seconds more: nothing is sent to it again.
`wait()` reads the node table again every `liveness_poll_s` (waiting on Ray no longer than that): a job
whose device no live node offers any more (its pinned node left, queued or running) is `lost` then, instead
of waiting forever for a node that will not come back; one submitted for such a device is not sent.
`close()` cancels what is in flight (Ctrl-C): finished records are already appended, the rest run again on
--resume.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.catalogue.complexity import ComplexityCache
from harness.execution.executor import Executor, Job, Outcome, Placement, StorageFailed
from harness.execution.local import _result
from harness.fleet import tasks
from harness.fleet.devices import SLOT, device_resource, node_resource
from harness.fleet.fleet import Node, offering, on_each_node, read_nodes, split_device
from harness.fleet.files import needed_files
from harness.measure.environment import package_versions
from harness.paths import write_atomically, write_bytes_atomically
from harness.protocol import CellResult
from harness.records import env_file_for
from runtimes import RuntimeUnavailable, runtime_class, runtime_packages
from runtimes.base import TORCH_MODULE

log = logging.getLogger(__name__)

NODE_ID_IN_ERROR = re.compile(r"node ID: ([0-9a-f]{16,})")
PINNED_SHARE = 0.001  # of a node's own resource: enough to pin a task there, never enough to block another
KEPT_OBJECTS = 16  # files kept in the object store at once, most recently used first
PROBE_TIMEOUT_S = 120.0
LIVENESS_POLL_S = 5.0  # how often, while jobs are in flight, the driver reads which nodes are alive
FORGET_TIMEOUT_S = 30.0
# the packages whose versions must agree across the fleet for its numbers to be compared
def compared_packages() -> tuple[str, ...]:
    """Whose versions must agree between the driver and each node: every runtime's declared packages
    (runtimes.Runtime.packages), beside the harness's own."""
    return ("dnn-harness", *runtime_packages(), "numpy", "ray")


@dataclass
class _Flight:
    job: Job
    device: str  # as planned: 'cpu', 'cuda:0@ws1'
    attempt: int = 1
    lost: list[dict[str, Any]] = field(default_factory=list)
    pinned_node_id: str | None = None


class RayExecutor(Executor):
    """Jobs as Ray tasks across the fleet; results come back in whatever order they finish."""

    capacity = 1_000_000  # Ray queues what the fleet cannot run yet; `slots` keeps each device's queue short

    def __init__(self, placement: Placement, ray: Any, run_id: str, liveness_poll_s: float = LIVENESS_POLL_S) -> None:
        self.placement, self.ray, self.run_id = placement, ray, run_id
        self.liveness_poll_s = liveness_poll_s
        self._run_job = ray.remote(tasks.run_job)
        self._flights: dict[Any, _Flight] = {}
        self._unsent: list[_Flight] = []  # submitted for a device no live node offers: lost at the next wait()
        self._objects: OrderedDict[str, Any] = OrderedDict()
        self._engine_nodes: dict[str, str] = {}  # engine sha256 -> the node id that built it (and holds it)
        self._versions: dict[str, dict[str, str | None]] = {}
        self._closed = False
        self.driver_node_id = ray.get_runtime_context().get_node_id()
        self.nodes: list[Node] = []  # alive
        self._every: list[Node] = []  # dead ones included
        self._names: dict[str, str] = {}  # node id -> name, dead nodes included
        self._died: set[str] = set()  # node ids Ray named in a NodeDiedError (its table may still say alive)
        self._nodes_read_s = 0.0  # time.monotonic() of the last read of the node table
        self.refresh_nodes()
        self.warnings = self._probe_nodes()
        for warning in self.warnings:
            log.warning(warning)

    # ---------------------------------------------------------------- the fleet

    def refresh_nodes(self) -> None:
        """Read Ray's node table; a node Ray said died is dead here even while the table lists it alive."""
        self._every = [replace(n, alive=False) if n.node_id in self._died else n
                       for n in read_nodes(self.ray, alive_only=False)]
        self._nodes_read_s = time.monotonic()
        self._names.update({n.node_id: n.name for n in self._every})
        self.nodes = [n for n in self._every if n.alive]

    def _probe_nodes(self) -> list[str]:
        """Each node's environment into env-<node>.json of the run folder; warnings for versions that differ
        from the driver's."""
        answers = on_each_node(self.ray, self.nodes, tasks.probe, PROBE_TIMEOUT_S)
        driver = package_versions()
        warnings = []
        for node in self.nodes:
            answer = answers[node.node_id]
            if isinstance(answer, Exception):  # a node that cannot answer now: its cells will say so if they fail
                warnings.append(f"node {node.name} did not describe itself ({type(answer).__name__}); its env file "
                                "is missing")
                continue
            environment = answer["environment"]
            write_atomically(self.placement.run_dir / env_file_for(node.name),
                             json.dumps({**environment, "fleet_node": node.name}, indent=2, default=str))
            compared = compared_packages()
            versions = {name: environment["packages"].get(name) for name in compared}
            self._versions[node.name] = versions
            differ = [f"{name} {versions[name]} (driver {driver.get(name)})" for name in compared
                      if versions[name] != driver.get(name) and versions[name] is not None]
            if differ:
                warnings.append(f"node {node.name} runs other versions than the driver: {', '.join(differ)}; "
                                "its records hold its versions")
        return warnings

    def versions_for(self, device: str) -> dict[str, str | None] | None:
        """The versions the nodes offering `device` agree on (a package they differ on is left out: its
        runtime decides on the node, and the warning above says they differ)."""
        described = [self._versions[n.name] for n in offering(self.nodes, device) if n.name in self._versions]
        if not described:
            return None
        return {name: version for name, version in described[0].items()
                if all(other.get(name) == version for other in described[1:])}

    def slots(self, device: str | None) -> int:
        """How many of the device's jobs may be in flight: one per node that offers it."""
        if device is None:
            return 1
        return max(1, len(offering(self.nodes, device)))

    # ---------------------------------------------------------------- submitting

    def submit(self, job: Job) -> None:
        self._start(_Flight(job, job.request.cell.device))

    def _start(self, flight: _Flight) -> None:
        if self._where_gone(flight) is not None:  # Ray would queue it for good: not sent
            self._unsent.append(flight)
            return
        request = flight.job.request.to_json()
        local, _ = split_device(flight.device)
        request["cell"]["device"] = local
        prepare = flight.job.kind == "prepare"
        if not prepare:
            self._add_cached_complexity(request)
        files = [] if prepare else [(needed, self._object(path, needed.sha256)) for needed, path in
                                    needed_files(request, self.placement.cache_dir, _builds_module(request),
                                                 self.placement.run_dir)]
        options = self._options(flight, request, prepare)
        ref = self._run_job.options(**options).remote(
            {"request": request}, files, self.run_id, flight.job.log_name, flight.job.timeout_s,
            flight.job.max_memory_bytes, str(self.placement.cache_dir) if prepare else None)
        self._flights[ref] = flight

    def _add_cached_complexity(self, request: dict[str, Any]) -> None:
        """A cell that needs no preparation (the null runtime) reads params and MACs from the cache; a node's
        cache may lack them, so the driver's cached figure travels in the request."""
        prepared = request.setdefault("prepared", {})
        key = request.get("complexity_key")
        if "complexity" in prepared or not key:
            return
        cached = ComplexityCache(self.placement.cache_dir / "complexity.json").get(key)
        if cached is not None:
            prepared["complexity"] = cached.as_dict()

    def _options(self, flight: _Flight, request: dict[str, Any], prepare: bool) -> dict[str, Any]:
        strategy = self.ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
        options: dict[str, Any] = {"num_cpus": 0, "max_retries": 0}
        if prepare:
            driver_node = next((n for n in self.nodes if n.node_id == self.driver_node_id), None)
            options["resources"] = {SLOT: 1} if driver_node is not None and driver_node.slots else {}
            options["scheduling_strategy"] = strategy(self.driver_node_id, soft=False)
            return options
        local, name = split_device(flight.device)
        resources = {device_resource(local): 1, SLOT: 1}
        if name:
            resources[node_resource(name)] = PINNED_SHARE
        options["resources"] = resources
        engine = (request.get("prepared") or {}).get("engine") or {}
        node_id = self._engine_nodes.get(engine.get("sha256", ""))
        if node_id:
            flight.pinned_node_id = node_id
            options["scheduling_strategy"] = strategy(node_id, soft=False)
        return options

    def _object(self, path: Path, sha256: str) -> Any:
        """The file in the object store (put once, kept while recently used)."""
        if sha256 in self._objects:
            self._objects.move_to_end(sha256)
            return self._objects[sha256]
        ref = self.ray.put(path.read_bytes())
        self._objects[sha256] = ref
        while len(self._objects) > KEPT_OBJECTS:
            self._objects.popitem(last=False)
        return ref

    # ---------------------------------------------------------------- results

    def wait(self) -> tuple[Job, Outcome]:
        """The next job to finish, or to be found stranded: the node table is read again once it is
        `liveness_poll_s` old (and Ray waited on no longer than that), so a job no live node can run ends `lost`
        within Ray's own time to declare a node dead plus one poll, whether or not other jobs keep finishing."""
        while True:
            if time.monotonic() - self._nodes_read_s >= self.liveness_poll_s:  # also while other jobs keep finishing
                self.refresh_nodes()
            stranded = self._stranded()
            if stranded is not None:
                return stranded
            ready, _ = self.ray.wait(list(self._flights), num_returns=1, timeout=self.liveness_poll_s)
            if ready:
                finished = self._finished(ready[0])
                if finished is not None:
                    return finished

    def _finished(self, ref: Any) -> tuple[Job, Outcome] | None:
        """The outcome of a job Ray says is done; None when it was lost and submitted again."""
        flight = self._flights.pop(ref)
        try:
            answer = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # the harness's own task code failed on the node
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            result = CellResult(status="crashed", error=f"the harness's task failed on its node: {first}")
            return flight.job, Outcome(result, 0.0, {"executor": "ray"})
        except self.ray.exceptions.RayError as exc:  # the node or the task's worker died
            outcome = self._lost(flight, exc)
            return None if outcome is None else (flight.job, outcome)
        return flight.job, self._outcome(flight, answer)

    def _stranded(self) -> tuple[Job, Outcome] | None:
        """A job that no live node can run any more (its node left the fleet), cancelled and recorded `lost`;
        None when every job in flight still has a node."""
        if self._unsent:
            flight = self._unsent.pop(0)
            return flight.job, self._left(flight, self._where_gone(flight) or "unknown", sent=False)
        for ref, flight in list(self._flights.items()):
            where = self._where_gone(flight)
            if where is not None:
                del self._flights[ref]
                self._cancel(ref)
                return flight.job, self._left(flight, where, sent=True)
        return None

    def _where_gone(self, flight: _Flight) -> str | None:
        """None while a live node can run the job; else the node(s) that could and left the fleet."""
        if flight.job.kind == "prepare":
            return None  # on the driver's own node: while the driver runs, so does its node
        alive = {n.node_id for n in self.nodes}
        if flight.pinned_node_id is not None:  # an engine's cell: only the node that built the engine
            node_id = flight.pinned_node_id
            return None if node_id in alive else self._names.get(node_id, node_id[:12])
        if offering(self.nodes, flight.device):
            return None
        gone = {n.name for n in offering(self._every, flight.device) if n.node_id not in alive}
        return ", ".join(sorted(gone)) or "unknown"

    def _left(self, flight: _Flight, where: str, sent: bool) -> Outcome:
        """The outcome of a job whose node left the fleet: lost, with where it was bound."""
        flight.lost.append({"node": where, "error": "its node left the fleet", "at_unix": time.time()})
        what = f"{flight.device} with its engine" if flight.pinned_node_id else flight.device
        why = "left the fleet before the job finished" if sent else "had left the fleet; the job was not sent"
        error = f"its node ({where}) {why}, and no live node offers {what}"
        result = CellResult(status="lost", host=where, error=error)
        return Outcome(result, 0.0, {"executor": "ray", "node": where, "lost_attempts": flight.lost})

    def _outcome(self, flight: _Flight, answer: dict[str, Any]) -> Outcome:
        name = self._node_name(answer["node_id"])
        result = replace(_result(answer["result"]), host=name)
        returned = dict(answer.get("run_files") or {})  # a verify reference's outputs
        if answer.get("log"):  # already cut to its head and tail on the node
            returned[f"cells/{flight.job.log_name}.log"] = answer["log"].encode()
        for relative, data in returned.items():
            try:
                write_bytes_atomically(self.placement.run_dir / relative, data)
            except OSError as exc:
                raise StorageFailed(f"cannot write in {self.placement.run_dir}: {exc.strerror or exc}") from None
        engine = result.prepared.engine if flight.job.kind == "build" else None
        if engine and result.status == "ok":
            self._engine_nodes[engine["sha256"]] = answer["node_id"]
        process: dict[str, Any] = {"start": "exec", "executor": "ray", "node": name,
                                   "started_unix": answer["started_unix"], "ended_unix": answer["ended_unix"],
                                   "fetched_files": answer.get("fetched", []), "versions": self._versions.get(name)}
        if flight.lost:
            process["lost_attempts"] = flight.lost
        return Outcome(result, answer["wall_s"], process)

    def _node_name(self, node_id: str) -> str:
        if node_id not in self._names:
            self.refresh_nodes()
        return self._names.get(node_id, node_id[:12])

    def _lost(self, flight: _Flight, exc: BaseException) -> Outcome | None:
        """A node or worker died under the job: once more on another live node offering the device, if any."""
        alive_before = {n.node_id for n in self.nodes}
        named = NODE_ID_IN_ERROR.search(str(exc))  # Ray's NodeDiedError names the node it was running on
        if named:  # dead from now on, though Ray's table may list it alive a while longer: never sent work again
            self._died.add(named.group(1))
        self.refresh_nodes()
        if named and named.group(1) in self._names:
            where = self._names[named.group(1)]
        else:  # a worker crash: the nodes that went away since, and offer the device
            gone = [self._names[i] for i in alive_before - {n.node_id for n in self.nodes}]
            offer = {o.name for o in offering(self._every, flight.device)}
            where = ", ".join(n for n in gone if n in offer) or "unknown"
        flight.lost.append({"node": where, "error": f"{type(exc).__name__}: {_first_line(exc)}",
                            "at_unix": time.time()})
        others = offering(self.nodes, flight.device)
        if flight.attempt == 1 and others and flight.pinned_node_id is None:
            flight.attempt += 1
            self._start(flight)
            return None
        retry = "no other live node offers it" if not others else "it was lost twice" if flight.attempt > 1 \
            else "its engine lives on that node"
        result = CellResult(status="lost", host=where,
                            error=f"the node running it ({where}) was lost mid-cell ({type(exc).__name__}); not "
                                  f"retried: {retry}")
        return Outcome(result, 0.0, {"executor": "ray", "node": where, "lost_attempts": flight.lost})

    def close(self) -> None:
        """Cancel what is in flight (Ctrl-C, or a storage failure): their cells run again on --resume. Then
        each node forgets the run's folder (what the run needs is in the driver's run folder)."""
        for ref in list(self._flights):
            self._cancel(ref)
        self._flights.clear()
        self._unsent.clear()
        self._objects.clear()
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self.placement.cache_dir / tasks.RUNS_FOLDER / self.run_id, ignore_errors=True)  # prepare jobs'
        try:
            on_each_node(self.ray, self.nodes, tasks.forget_run, FORGET_TIMEOUT_S, self.run_id)
        except Exception as exc:  # a fleet going away under us: the folders stay until the next run of that id
            log.debug("forget_run: %s", exc)

    def _cancel(self, ref: Any) -> None:
        """Cancel a task (ended where it runs, dropped where it waits); one already gone needs nothing."""
        try:
            self.ray.cancel(ref, force=True)
        except Exception as exc:  # a task already gone: nothing to cancel
            log.debug("cancel: %s", exc)


def _builds_module(request: dict[str, Any]) -> bool:
    """Whether the job's runtime builds the PyTorch module (and so needs the weights file)."""
    try:
        return runtime_class(request["cell"]["runtime"], installed_here=False).consumes == TORCH_MODULE
    except (KeyError, RuntimeUnavailable):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
