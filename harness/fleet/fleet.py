"""The fleet as the driver sees it: the Ray cluster's live harness nodes and their devices, how a plan's
devices map onto them, and connecting to the cluster."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.fleet.devices import DEVICE_PREFIX, NODE_PREFIX, SLOT, canonical_device

INSTALL_HINT = "pip install 'dnn-harness[ray]'"
NAMESPACE = "dnn-harness"
ANY_NODE = "*"


@dataclass(frozen=True)
class Node:
    name: str
    node_id: str
    address: str
    alive: bool
    devices: tuple[str, ...]
    slots: int

    def label(self) -> str:
        return f"{self.name} ({', '.join(self.devices)})"


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UserError(f"--executor ray needs Ray: {INSTALL_HINT}") from None


def connect(address: str | None) -> Any:
    """Join the cluster at `address` ('auto': the one this machine's node belongs to) as a driver."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address or "auto", namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    except (ConnectionError, RuntimeError) as exc:
        raise UserError(f"no Ray cluster at {address or 'auto'} ({str(exc).splitlines()[0]}): start one with "
                        "`python -m harness node --head` and pass its address with --ray-address") from None
    return ray


def read_nodes(ray: Any, alive_only: bool = True) -> list[Node]:
    """The cluster's harness nodes (those started by `harness node`), from Ray's node table."""
    nodes = []
    for entry in ray.nodes():
        resources = entry.get("Resources") or {}
        names = [key[len(NODE_PREFIX):] for key in resources if key.startswith(NODE_PREFIX)]
        if not names or (alive_only and not entry.get("Alive")):
            continue
        devices = tuple(sorted(key[len(DEVICE_PREFIX):] for key in resources if key.startswith(DEVICE_PREFIX)))
        nodes.append(Node(name=names[0], node_id=entry["NodeID"], address=entry.get("NodeManagerAddress", ""),
                          alive=bool(entry.get("Alive")), devices=devices, slots=int(resources.get(SLOT, 0))))
    return sorted(nodes, key=lambda n: n.name)


def on_each_node(ray: Any, nodes: list[Node], function: Any, timeout_s: float, *args: Any) -> dict[str, Any]:
    """`function(*args)` run by a task pinned to each node; node id -> its answer, or the exception that came
    back instead (a busy or dying node)."""
    remote = ray.remote(function)
    strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
    refs = {n.node_id: remote.options(num_cpus=0, scheduling_strategy=strategy(n.node_id, soft=False)).remote(*args)
            for n in nodes}
    answers: dict[str, Any] = {}
    for node_id, ref in refs.items():
        try:
            answers[node_id] = ray.get(ref, timeout=timeout_s)
        except Exception as exc:  # kept for the caller to say which node did not answer
            answers[node_id] = exc
    return answers


def split_device(device: str) -> tuple[str, str | None]:
    """'cuda:0@ws1' -> ('cuda:0', 'ws1'); 'cpu' -> ('cpu', None)."""
    local, _, node = device.partition("@")
    return local, node or None


def offering(nodes: list[Node], device: str) -> list[Node]:
    """The nodes that can run a cell of `device` ('cuda:0', or 'cuda:0@ws1' for that node only)."""
    local, name = split_device(device)
    return [n for n in nodes if local in n.devices and (name is None or n.name == name)]


def fleet_summary(nodes: list[Node]) -> str:
    return "; ".join(n.label() for n in nodes) or "no harness nodes (start one with `python -m harness node`)"


def resolve_devices(specs: list[str], nodes: list[Node]) -> list[str]:
    """The plan's devices: DEVICE (any node offering it), DEVICE@NODE (that node), DEVICE@* (each node offering
    it, as separate devices); `cuda` is `cuda:0`. Refused up front, with what the fleet has, when no node
    offers one."""
    devices: list[str] = []
    for spec in specs:
        local, name = split_device(spec)
        local = canonical_device(local)
        spec = f"{local}@{name}" if name else local
        if name == ANY_NODE:
            expanded = [f"{local}@{n.name}" for n in nodes if local in n.devices]
            if not expanded:
                raise UserError(f"no node of the fleet offers {local}; the fleet: {fleet_summary(nodes)}")
            devices += [d for d in expanded if d not in devices]
            continue
        if not offering(nodes, spec):
            raise UserError(_not_offered(spec, nodes))
        if spec not in devices:
            devices.append(spec)
    return devices


def _not_offered(spec: str, nodes: list[Node]) -> str:
    local, name = split_device(spec)
    if name is None:
        why = f"no node of the fleet offers {local}"
    elif not any(n.name == name for n in nodes):
        why = f"the fleet has no node named '{name}'"
    else:
        why = f"node '{name}' does not offer {local}"
    return f"{why}; the fleet: {fleet_summary(nodes)}"
