"""`python -m harness node`: join this machine to a fleet (or start its head, or list it), and the
`--executor ray` options the measuring commands share."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from rich.markup import escape
from rich.table import Table

from harness.cli.common import check_device, comma_list, console, print_json
from harness.errors import UserError
from harness.execution.executor import Executor, Placement
from harness.fleet import devices as fleet_devices
from harness.fleet.fleet import (ANY_NODE, CONNECT_TIMEOUT_S, INSTALL_HINT, TIMEOUT_FLAG, Node, connect, fleet_summary,
                                 import_ray, offering, on_each_node, reach_head, read_nodes,
                                 resolve_devices, split_device)
from harness.paths import cache_dir
from harness.units import check_seconds
from runtimes import runtime_packages

EXECUTORS = ("local", "ray")
DEFAULT_PORT = 6379
PROBE_TIMEOUT_S = 60.0


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: every cell on this machine (default); ray: cells as Ray tasks on the fleet's "
                             "nodes (see `node`), each on a node offering its --device")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="with --executor ray: the cluster's head, HOST:PORT (default: the cluster this "
                             "machine's node belongs to)")
    add_ray_timeout(parser, "with --executor ray: ")


def add_ray_timeout(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(TIMEOUT_FLAG, type=float, metavar="S",
                        help=f"{prefix}seconds the fleet's head has to answer before the command gives up with one "
                             f"line (default {CONNECT_TIMEOUT_S:g})")


def ray_timeout_s(args: argparse.Namespace) -> float:
    """The --ray-timeout given (checked), or its default."""
    value = getattr(args, "ray_timeout", None)
    return CONNECT_TIMEOUT_S if value is None else check_seconds(value, TIMEOUT_FLAG)


def plan_devices(args: argparse.Namespace,
                 also: tuple[str, ...] = ()) -> tuple[list[str], Callable[[Path], Executor] | None]:
    """The devices the plan's cells run on, and the executor factory (None: the sweep's local default).

    Local: one device of this machine. Ray: a comma list of DEVICE (any node offering it), DEVICE@NODE or
    DEVICE@* (each node offering it), refused up front where the fleet offers none, as are the devices `also`
    names (a command's own cells, such as verify's reference on a CPU)."""
    specs = comma_list(args.device)
    if not specs:
        raise UserError("no device given: e.g. --device cpu")
    if args.executor == "local":
        for flag, value in (("--ray-address", args.ray_address), (TIMEOUT_FLAG, getattr(args, "ray_timeout", None))):
            if value is not None:
                raise UserError(f"{flag} is for --executor ray; add --executor ray, or drop {flag}")
        if len(specs) > 1 or "@" in args.device:
            raise UserError(f"--device {args.device}: several devices, or DEVICE@NODE, need --executor ray (a fleet); "
                            "here one device of this machine is measured")
        check_device(specs[0])
        return specs, None
    for spec in specs:
        local, at, node = spec.partition("@")
        try:
            fleet_devices.check_device_name(local)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if at and not node:  # 'cpu@' would otherwise mean any node: not what a pin says
            raise UserError(f"--device {spec}: name the node after '@' ({local}@NODE), or {local}@* for each node "
                            f"offering {local}, or {local} for any")
    ray = connect(args.ray_address, ray_timeout_s(args))
    nodes = read_nodes(ray)
    devices = resolve_devices(specs, nodes)
    resolve_devices(list(also), nodes)  # devices the command adds (verify's CPU reference) must be offered too

    def executor(run_dir: Path) -> Executor:
        from harness.fleet.ray_executor import RayExecutor

        return RayExecutor(Placement(cache_dir=cache_dir(), run_dir=run_dir), ray, run_dir.name)

    return devices, executor


def one_board(args: argparse.Namespace) -> tuple[str, dict[str, Any], Callable[[Path], Executor] | None]:
    """`check --on-device` on a fleet: the one node `args.device` names (a check answers for one board), as
    DEVICE@NODE, its environment (read by a task on it: a Jetson's power mode and clocks) and the executor."""
    from harness.fleet import tasks

    if ANY_NODE in args.device or "," in args.device:
        raise UserError(f"--device {args.device}: a check answers for one board; name one device of one node, "
                        "e.g. --device cuda@orin1")
    [device], executor = plan_devices(args)
    ray = connect(args.ray_address, ray_timeout_s(args))
    boards = offering(read_nodes(ray), device)
    local, _ = split_device(device)
    if len(boards) > 1:
        raise UserError(f"--device {args.device}: {len(boards)} nodes offer it ({', '.join(n.name for n in boards)}) "
                        f"and a check answers for one board: name it, e.g. --device {local}@{boards[0].name}")
    board = boards[0]
    answer = on_each_node(ray, [board], tasks.probe, PROBE_TIMEOUT_S)[board.node_id]
    if isinstance(answer, Exception):
        raise UserError(f"node {board.name} did not describe itself ({type(answer).__name__}: "
                        f"{str(answer).strip().splitlines()[-1][:200] if str(answer).strip() else ''}); is it busy "
                        "or leaving the fleet? (python -m harness node --list)")
    return f"{local}@{board.name}", answer["environment"], executor


# ---------------------------------------------------------------- the node command

def add_node_parser(commands: Any) -> None:
    node = commands.add_parser(
        "node", help="join this machine to a fleet (Ray), start its head, or list it",
        description="Start a Ray node that advertises this machine's devices to the fleet (or the head, with "
                    "--head), or print the fleet (--list). Leave the fleet with `ray stop`.")
    action = node.add_mutually_exclusive_group()
    action.add_argument("--head", action="store_true", help="start the fleet's head on this machine (a node too)")
    action.add_argument("--list", action="store_true", help="print the fleet: nodes, devices, versions")
    node.add_argument("--ray-address", metavar="ADDRESS", help="the head, HOST:PORT, to join (or to list)")
    add_ray_timeout(node)
    node.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"with --head: its port (default {DEFAULT_PORT})")
    node.add_argument("--name", help="this node's name in the fleet (default: the host name)")
    node.add_argument("--devices", metavar="LIST",
                      help="the devices to offer, e.g. cpu,cuda:0, each one this machine has (default: every "
                           "device found here)")
    node.add_argument("--per-device", action="store_true",
                      help="measure one cell per device at once (default: one cell at a time on this machine)")
    node.add_argument("--dry-run", action="store_true", help="print the `ray start` command and do not run it")
    node.add_argument("--json", action="store_true", help="with --list: one JSON object per node")


def command_node(args: argparse.Namespace, catalogue: Any = None) -> int:
    timeout_s = ray_timeout_s(args)
    if args.list:
        return _list_fleet(args)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: give a TCP port from 1 to 65535 (default {DEFAULT_PORT})")
    if not args.head and not args.ray_address:
        raise UserError("say where the fleet is: --ray-address HEAD:PORT to join it, or --head to start it here")
    resources = _resources(args)
    argv = [_ray_cli(), "start", f"--resources={json.dumps(resources.as_ray(), sort_keys=True)}"]
    argv += ["--head", f"--port={args.port}"] if args.head else [f"--address={args.ray_address}"]
    console.print(f"node [bold]{resources.name}[/bold] offers {', '.join(resources.devices)} "
                  f"({'one cell per device' if resources.per_device else 'one cell at a time'})", highlight=False)
    console.print(escape(shlex.join(argv)), highlight=False, soft_wrap=True)
    if args.dry_run:
        return 0
    if not args.head:  # `ray start --address` retries a wrong address for minutes: checked first, within the bound
        reach_head(args.ray_address, timeout_s)
    completed = subprocess.run(argv, check=False)
    if completed.returncode != 0:
        raise UserError(f"`ray start` failed (exit code {completed.returncode}); its output is above")
    joined = f"--ray-address {shlex.quote(args.ray_address) if args.ray_address else f'<this host>:{args.port}'}"
    console.print(f"joined. On the driver: python -m harness node --list {joined}; leave with: ray stop",
                  highlight=False)
    return 0


def _resources(args: argparse.Namespace) -> fleet_devices.NodeResources:
    try:
        name = fleet_devices.check_node_name(args.name or fleet_devices.default_node_name())
        found = comma_list(args.devices) if args.devices else fleet_devices.discover()
        found = [fleet_devices.canonical_device(fleet_devices.check_device_name(d)) for d in found]
        if args.devices:  # named by the user: each must be on this machine (a node never offers what it lacks)
            found = [fleet_devices.check_present(d) for d in found]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if ANY_NODE in name:
        raise UserError("a node name cannot hold '*'")
    return fleet_devices.NodeResources(name, tuple(dict.fromkeys(found)), args.per_device)


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        import_ray()  # says how to install Ray when it is missing
        raise UserError(f"Ray is installed but its `ray` command is not on PATH: {INSTALL_HINT}")
    return found


def _list_fleet(args: argparse.Namespace) -> int:
    ray = connect(args.ray_address, ray_timeout_s(args))
    nodes = read_nodes(ray)
    described = _describe(ray, nodes)
    if args.json:
        print_json([{"name": n.name, "node_id": n.node_id, "address": n.address, "devices": list(n.devices),
                     "slots": n.slots, "versions": described.get(n.node_id)} for n in nodes])
        return 0
    if not nodes:
        console.print(fleet_summary(nodes))
        return 1
    table = Table(title=f"fleet: {len(nodes)} node(s)")
    listed = ("dnn-harness", *runtime_packages(main_only=True), "ray")  # each runtime's main library
    for column in ("node", "address", "devices", "cells at once", *listed):
        table.add_column(column)
    for node in nodes:
        versions = described.get(node.node_id) or {}
        table.add_row(node.name, node.address, ", ".join(node.devices), str(node.slots),
                      *[versions.get(p) or ("?" if node.node_id not in described else "—") for p in listed])
    console.print(table)
    differing = [p for p in listed if len({(described.get(n.node_id) or {}).get(p) for n in nodes}) > 1]
    if differing:
        console.print(f"[yellow]versions differ between nodes: {', '.join(differing)}[/yellow]")
    return 0


def _describe(ray: Any, nodes: list[Node]) -> dict[str, dict[str, str | None]]:
    """Each node's package versions, read by a task on it (a node that does not answer is left out: '?')."""
    from harness.fleet import tasks

    answers = on_each_node(ray, nodes, tasks.versions, PROBE_TIMEOUT_S)
    return {node_id: answer for node_id, answer in answers.items() if not isinstance(answer, Exception)}
