"""The fleet as the driver sees it: the Ray cluster's live harness nodes and their devices, how a plan's
devices map onto them, and connecting to the cluster."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.fleet.devices import DEVICE_PREFIX, NODE_PREFIX, SLOT, canonical_device

INSTALL_HINT = "pip install 'dnn-harness[ray]'"
NAMESPACE = "dnn-harness"
ANY_NODE = "*"
CONNECT_TIMEOUT_S = 30.0  # the default of --ray-timeout: how long the head has to answer
TIMEOUT_FLAG = "--ray-timeout"
# Run in an interpreter of its own: the head's GCS answers (what ray.init needs first). A wrong address makes
# Ray's client retry for minutes, printing reconnect lines; there, they stay in a pipe and end at the deadline.
GCS_CHECK = """import sys
try:
    from ray._raylet import GcsClient
except ImportError:
    sys.exit(3)  # a Ray without this client: not checked here
GcsClient(address=sys.argv[1]).cluster_id
"""
GCS_CHECK_NOT_AVAILABLE = 3


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


def connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """Join the cluster at `address` ('auto': the one this machine's node belongs to) as a driver; a head that
    does not answer within `timeout_s` is one line naming the address, not minutes of Ray's retries."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    reach_head(address, timeout_s)
    try:
        ray.init(address=address or "auto", namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    except (ConnectionError, RuntimeError) as exc:
        raise UserError(f"no Ray cluster at {address or 'auto'} ({str(exc).splitlines()[0]}): start one with "
                        "`python -m harness node --head` and pass its address with --ray-address") from None
    return ray


def head_address(address: str | None) -> str:
    """HOST:PORT of the head as Ray will dial it: the address given (a local name as this machine's address,
    as Ray does), or for none/'auto' the one Ray finds ($RAY_ADDRESS, else the cluster this machine last started
    or joined)."""
    if address and address.startswith("ray://"):
        raise UserError(f"--ray-address {address}: Ray Client (ray://) is not supported; run the driver on a node of "
                        "the fleet and pass the head's HOST:PORT (6379 by default)")
    if address and address != "auto" and _split_address(address) is None:
        raise UserError(f"--ray-address {address}: give the head's HOST:PORT, e.g. 10.0.0.1:6379")
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address(address or "auto")
    except ConnectionError:  # 'auto' and no cluster was started or joined here
        raise UserError("no Ray cluster on this machine: start one with `python -m harness node --head`, or pass "
                        "the head's HOST:PORT with --ray-address") from None
    except Exception:  # a Ray without this helper, or a host it cannot resolve: the address as given
        found = None
    return found or address or "auto"


def _split_address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() and 0 < int(port) < 65536 else None


def reach_head(given: str | None, timeout_s: float) -> None:
    """UserError, within `timeout_s`, unless a Ray head answers at the address `given` (HOST:PORT; none or
    'auto': the one Ray finds): first a TCP connection (a refused port or an unknown host fail at once), then
    the head's GCS in an interpreter of its own (a port that is not Ray's, or a head that hangs, fails at the
    deadline). The error names the address as given, and the one dialled where they differ."""
    dialled = head_address(given)
    parts = _split_address(dialled)
    if parts is None:  # 'auto' that Ray could not resolve here: ray.init says why
        return
    if (not given or given == "auto") and os.environ.get("RAY_ADDRESS"):
        address = f"{os.environ['RAY_ADDRESS']} ($RAY_ADDRESS)"
    elif not given or given == "auto":
        address = f"{dialled}, the cluster this machine last started or joined"
    else:
        address = given if dialled == given else f"{given} (dialled as {dialled})"
    deadline = time.monotonic() + timeout_s
    try:
        socket.create_connection(parts, timeout=timeout_s).close()
    except socket.timeout:
        _unreachable(address, f"no answer within {timeout_s:g} s", timeout_s)
    except OSError as exc:
        _unreachable(address, _why(exc), timeout_s)
    try:
        checked = subprocess.run([sys.executable, "-c", GCS_CHECK, dialled], capture_output=True, text=True,
                                 timeout=max(0.5, deadline - time.monotonic()), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        _unreachable(address, f"it accepts connections, but no Ray head answered within {timeout_s:g} s (the GCS "
                              "port, 6379 by default, not the dashboard's or Ray Client's?)", timeout_s)
    if checked.returncode not in (0, GCS_CHECK_NOT_AVAILABLE):
        last = (checked.stderr.strip().splitlines() or [f"exit code {checked.returncode}"])[-1][:200]
        _unreachable(address, f"it is not a Ray head that this Ray can talk to: {last}", timeout_s)


def _why(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or str(exc) or type(exc).__name__


def _unreachable(address: str, why: str, timeout_s: float) -> None:
    raise UserError(f"no Ray cluster at {address}: {why}. Start the head with `python -m harness node --head` and "
                    f"pass the HOST:PORT it prints with --ray-address; a slow network may need {TIMEOUT_FLAG} S "
                    f"(now {timeout_s:g})")


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
    """`function(*args)` run by a task pinned to each node, all within `timeout_s` together (not each: ten
    silent nodes must not make ten timeouts); node id -> its answer, or the exception that came back instead
    (a busy or dying node, or a timeout)."""
    remote = ray.remote(function)
    strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
    refs = {n.node_id: remote.options(num_cpus=0, scheduling_strategy=strategy(n.node_id, soft=False)).remote(*args)
            for n in nodes}
    deadline = time.monotonic() + timeout_s
    answers: dict[str, Any] = {}
    for node_id, ref in refs.items():
        try:
            answers[node_id] = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
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
