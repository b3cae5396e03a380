"""A test double of the parts of Ray's API the fleet's driver calls (tests only): a node table whose entries
can die, tasks whose answer the test decides when they are submitted, and a `wait` that never blocks for
real — a wait without a timeout on tasks that can never finish fails the test instead of hanging it.

Like Ray, the double may name a node dead in a task's error before its node table says so: `kill(name,
listed_alive_reads=N)` keeps the node listed alive for N more reads of `nodes()`."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

from harness.fleet import tasks
from harness.fleet.devices import NodeResources


class RayError(Exception):
    pass


class RayTaskError(RayError):
    pass


class NodeDiedError(RayError):
    pass


class WorkerCrashedError(RayError):
    pass


class GetTimeoutError(RayError, TimeoutError):
    pass


class WouldWaitForever(AssertionError):
    """The driver waited without a timeout on tasks none of which can finish: a hang, in real Ray."""


PENDING = object()  # a task's answer: queued where no live node can run it, it never finishes


@dataclass(frozen=True)
class Later:
    """A task's answer that is ready `after_s` seconds after it was submitted."""

    after_s: float
    answer: Any


@dataclass
class _Node:
    name: str
    node_id: str
    resources: dict[str, float]
    alive: bool = True
    listed_alive_reads: int = 0  # reads of nodes() that still list it alive after it died


@dataclass
class Submitted:
    function: str
    options: dict[str, Any]
    answer: Any  # a dict (the task's return), an exception (raised by get), or PENDING
    cancelled: bool = False
    at_s: float = field(default_factory=time.monotonic)


class _Ref:
    def __init__(self, number: int) -> None:
        self.number = number

    def __repr__(self) -> str:
        return f"Ref({self.number})"


class FakeRay:
    """`on_submit(fake, options)` decides each run_job task's answer when it is submitted; `on_other(fake,
    function_name, options)` the answer of any other task (probe, versions, forget_run: by default an error,
    as from nodes that do not describe themselves)."""

    def __init__(self, nodes: dict[str, tuple[str, ...]], on_submit: Callable[[FakeRay, dict[str, Any]], Any],
                 on_other: Callable[[FakeRay, str, dict[str, Any]], Any] | None = None) -> None:
        self.head = _Node("head", "f" * 40, {"CPU": 1.0})  # the driver's node: no harness resources
        self._nodes = [self.head] + [_Node(name, f"{index:02x}" * 20, NodeResources(name, devices).as_ray())
                                     for index, (name, devices) in enumerate(nodes.items(), start=1)]
        self.on_submit = on_submit
        self.on_other = on_other or (lambda fake, name, options: RayError(f"{name} is not answered by the double"))
        self.submitted: dict[_Ref, Submitted] = {}
        self._numbers = itertools.count()
        self.exceptions = SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError, NodeDiedError=NodeDiedError,
                                          WorkerCrashedError=WorkerCrashedError, GetTimeoutError=GetTimeoutError)
        self.util = SimpleNamespace(scheduling_strategies=SimpleNamespace(
            NodeAffinitySchedulingStrategy=lambda node_id, soft: {"node_id": node_id, "soft": soft}))

    # ------------------------------------------------------------ what the test does

    def node_id(self, name: str) -> str:
        return next(n.node_id for n in self._nodes if n.name == name)

    def alive(self, name: str) -> bool:
        return next(n.alive for n in self._nodes if n.name == name)

    def kill(self, name: str, listed_alive_reads: int = 0) -> None:
        node = next(n for n in self._nodes if n.name == name)
        node.alive, node.listed_alive_reads = False, listed_alive_reads

    def answer(self, name: str, result: dict[str, Any]) -> dict[str, Any]:
        """What run_job returns when it ran on node `name`."""
        now = time.time()
        return {"node_id": self.node_id(name), "started_unix": now, "ended_unix": now, "fetched": [], "log": "",
                "result": result, "wall_s": 0.0}

    def run_jobs(self) -> list[Submitted]:
        return [s for s in self.submitted.values() if s.function == "run_job"]

    # ------------------------------------------------------------ Ray's API

    def nodes(self) -> list[dict[str, Any]]:
        table = []
        for node in self._nodes:
            listed = node.alive or node.listed_alive_reads > 0
            if not node.alive and node.listed_alive_reads > 0:
                node.listed_alive_reads -= 1
            table.append({"NodeID": node.node_id, "Alive": listed, "Resources": dict(node.resources),
                          "NodeManagerAddress": "10.0.0.1"})
        return table

    def get_runtime_context(self) -> Any:
        return SimpleNamespace(get_node_id=lambda: self.head.node_id)

    def remote(self, function: Callable[..., Any]) -> Any:
        fake = self

        class _Remote:
            def __init__(self, options: dict[str, Any] | None = None) -> None:
                self._options = options or {}

            def options(self, **options: Any) -> _Remote:
                return _Remote(options)

            def remote(self, *args: Any) -> _Ref:
                ref = _Ref(next(fake._numbers))
                if function is tasks.run_job:
                    answer = fake.on_submit(fake, self._options)
                else:
                    answer = fake.on_other(fake, function.__name__, self._options)
                fake.submitted[ref] = Submitted(function.__name__, self._options, answer)
                return ref

        return _Remote()

    def put(self, data: bytes) -> _Ref:
        ref = _Ref(next(self._numbers))
        self.submitted[ref] = Submitted("put", {}, data)
        return ref

    def _ready(self, ref: _Ref) -> bool:
        submitted = self.submitted[ref]
        if submitted.answer is PENDING or submitted.cancelled:
            return False
        return not isinstance(submitted.answer, Later) or time.monotonic() >= submitted.at_s + submitted.answer.after_s

    def get(self, ref: _Ref, timeout: float | None = None) -> Any:
        if isinstance(self.submitted[ref].answer, Later):
            time.sleep(max(0.0, self.submitted[ref].at_s + self.submitted[ref].answer.after_s - time.monotonic()))
            return self.submitted[ref].answer.answer
        answer = self.submitted[ref].answer
        if answer is PENDING:
            if timeout is None:
                raise WouldWaitForever("get() without a timeout on a task that never finishes")
            time.sleep(timeout)
            raise GetTimeoutError(f"{ref} did not finish within {timeout} s")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def wait(self, refs: list[_Ref], num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready = [r for r in refs if self._ready(r)]
            if len(ready) >= num_returns:
                return ready[:num_returns], [r for r in refs if r not in ready[:num_returns]]
            later = [s.at_s + s.answer.after_s for s in (self.submitted[r] for r in refs)
                     if isinstance(s.answer, Later) and not s.cancelled]
            if deadline is None and not later:
                raise WouldWaitForever(f"wait() without a timeout on {len(refs)} task(s) that can never finish")
            wake = min([*later, *([deadline] if deadline is not None else [])])
            time.sleep(max(0.0, wake - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline and not any(self._ready(r) for r in refs):
                return [], refs

    def cancel(self, ref: _Ref, force: bool = False) -> None:
        self.submitted[ref].cancelled = True
