"""`check --on-device --bundle DIR --profile P`: on the board, measure each bundle model and say PASS or FAIL.

On a fleet (`--executor ray --device cuda@BOARD`) the board is a node: its facts (is it a Jetson, its power
mode and clocks) are read by a task on it, and both runs' cells run there.

For each model of the bundle: the engine is built (or reused) and its outputs are checked against the
bundle's reference (`verify --bundle`, at batch 1 where the bundle has it), then it is timed at the
profile's batch size with memory read from the device's primary source (`bench --bundle`). Both are
ordinary runs — records in --out, so `report` and `best` use them afterwards — and the verdicts come from
those records: memory within the profile's budget, speed at its target, numerics, opset and ops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from exporters.store import Store
from harness.catalogue.bundles import Bundle, read_bundle
from harness.cli import fleet as fleet_command
from harness.cli.common import (check_common, check_out_dir, check_precisions, check_runtimes,
                                comma_list, console, err_console, print_json, resume_hint, run_sweep,
                                runtime_options)
from harness.cli.tables import at_once_table, checks_table
from harness.errors import UserError
from harness.measure import jetson
from harness.measure.timing import QUICK, Policy
from harness.measure.validity import MAX_CV
from harness.records import Record, latest_records, read_records
from harness.profiles import DeviceProfile, available_profiles, load_profile
from harness.reports.check import ModelCheck, on_device_checks
from harness.reports.data import PRIMARY_MEMORY_SOURCE
from harness.sweep.planning import plan_cells
from harness.sweep.sweep import BenchSettings, Subject, Sweep, new_run_id

DEVICE_OF_KIND = {"jetson": "cuda", "cuda": "cuda", "cpu": "cpu"}
TOOL_RUNTIME = "trtexec"  # --with-dla times every engine at once, each in a trtexec process of its own
PRECISION_OF_KIND = {"jetson": "fp16", "cuda": "fp16", "cpu": "fp32"}
STRICT_RETRIES = 2  # a timing cell whose verdict is invalid runs again, up to twice (as bench --strict)


def refuse_off_board(profile: DeviceProfile, board: dict[str, Any], where: str) -> None:
    """A Jetson profile is answered on a Jetson. `board`: the Jetson facts of the machine measured
    (`jetson.facts()`, read there), `where`: how to name it."""
    if profile.kind == "jetson" and not board.get("is_jetson"):
        raise UserError(f"{where} is not a Jetson (no /etc/nv_tegra_release), so it cannot answer for "
                        f"{profile.name}: run check --on-device on the board (or, on a fleet, --device cuda@BOARD), "
                        "or pass a --profile of this machine (kind cuda or cpu)")


# The newest ONNX opset each TensorRT's parser reads (shared/reference/tensorrt-notes.md: JetPack's TensorRT
# versions and their parsers); a board's own TensorRT decides, not the profile's assumption.
TENSORRT_MAX_OPSET = {(8, 0): 13, (8, 2): 13, (8, 5): 17, (8, 6): 17, **{(10, minor): 20 for minor in range(9)}}
MEMORY_MISMATCH = 0.25  # a board whose MemTotal differs from the profile's memory by more is another module


def _major_minor(text: str | None) -> tuple[int, int] | None:
    numbers = re.findall(r"\d+", text or "")
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def refuse_other_module(profile: DeviceProfile, board: dict[str, Any], where: str) -> None:
    """A Jetson profile answers for its module: a board with another amount of memory (a 2 GB Nano against the
    4 GB Nano's profile) is refused, since every memory verdict would be against the wrong budget."""
    if profile.kind != "jetson":
        return
    part = (board.get("part_number") or {}).get("part")
    if part and profile.part_numbers and part not in profile.part_numbers:
        fitting = [name for name in available_profiles() if part in load_profile(name).part_numbers]
        advice = f"pass --profile {fitting[0]}" if fitting else "write a profile for this module (see profiles/)"
        raise UserError(f"{where} is a {board.get('module_name') or 'Jetson module'} ({part}, from "
                        f"{board['part_number']['from']}), not a module {profile.name} answers for "
                        f"({', '.join(profile.part_numbers)}): {advice}")
    total = board.get("mem_total_bytes")
    if not total:
        return
    if abs(total - profile.memory_total_bytes) > MEMORY_MISMATCH * profile.memory_total_bytes:
        others = [name for name in available_profiles() if name != profile.name and name.startswith("jetson")]
        raise UserError(f"{where} has {total / 1e9:.1f} GB of memory (MemTotal) but {profile.name} is for a "
                        f"{profile.memory_total_bytes / 1e9:g} GB module: pass the profile of this module "
                        f"({', '.join(others)}, or a YAML of your own)")


def profile_for_board(profile: DeviceProfile, board: dict[str, Any]) -> tuple[DeviceProfile, list[str]]:
    """The profile with the board's own parser opset limit where its TensorRT is known, and warnings where the
    board's JetPack or TensorRT is not the one the profile assumes."""
    if profile.kind != "jetson":
        return profile, []
    warnings = []
    ours, assumed = _major_minor(board.get("tensorrt")), _major_minor(profile.tensorrt)
    if ours and assumed and ours != assumed:
        warnings.append(f"warning: the board's TensorRT is {board['tensorrt']}, the profile assumes "
                        f"{profile.tensorrt}; verdicts are for the board's")
    jetpack = _major_minor(board.get("jetpack"))
    listed = {tuple(int(n) for n in m) for m in re.findall(r"(\d+)\.(\d+)", profile.jetpack or "")}
    if jetpack and listed and jetpack not in listed:
        warnings.append(f"warning: the board runs JetPack {board['jetpack']}, the profile assumes {profile.jetpack}")
    limit = TENSORRT_MAX_OPSET.get(ours) if ours else None
    if limit is not None and limit != profile.onnx_max_opset:
        profile = profile.model_copy(update={"onnx_max_opset": limit,
                                             "onnx_max_opset_source": f"this board's TensorRT {board['tensorrt']}"})
    return profile, warnings


def board_warnings(profile: DeviceProfile, board: dict[str, Any]) -> list[str]:
    """Warnings (not errors) about how the board is set up: its power mode, unpinned clocks."""
    if profile.kind != "jetson":
        return []
    warnings = []
    mode = board.get("power_mode") or {}
    if profile.power_mode and mode.get("name") != profile.power_mode:
        current = mode.get("name") or mode.get("missing") or \
            f"mode {mode.get('id')} (no name for it in {mode.get('conf')})"
        warnings.append(f"warning: the board's power mode is {current}, the profile "
                        f"assumes {profile.power_mode} (sudo nvpmodel -m <id> to match it); verdicts are for the "
                        "board as it is")
    clocks = board.get("clocks") or {}
    if clocks.get("pinned") is not True:
        state = "are not pinned" if clocks.get("pinned") is False else "may not be pinned: unknown"
        warnings.append(f"note: clocks {state} ({clocks.get('pinned_why', 'unreadable')}); each cell records the "
                        "clock range it saw, and figures may vary between runs (--pin-clocks, or sudo jetson_clocks, "
                        "pins them)")
    return warnings


JETSON_CLOCKS = "/usr/bin/jetson_clocks"


def _is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def pinned_clocks(board: dict[str, Any]) -> Iterator[None]:
    """jetson_clocks' settings stored, the clocks pinned (min = max for CPU, GPU and EMC), and the stored settings
    restored afterwards, whatever ends the check (Ctrl-C included)."""
    if not board.get("is_jetson"):
        raise UserError("--pin-clocks runs jetson_clocks, which only a Jetson has")
    tool = jetson.root() / JETSON_CLOCKS.lstrip("/")
    if not tool.is_file():
        raise UserError(f"--pin-clocks: no {JETSON_CLOCKS} on this board (JetPack's nvidia-l4t-tools brings it)")
    if not _is_root():
        raise UserError("--pin-clocks runs jetson_clocks, which needs root: run the check with sudo, or pin the "
                        "clocks yourself (sudo jetson_clocks) and leave --pin-clocks out")
    with tempfile.TemporaryDirectory(prefix="harness-clocks-") as scratch:
        stored = Path(scratch) / "jetson_clocks.conf"
        _board_tool(tool, "--store", str(stored))
        try:
            _board_tool(tool)
            err_console.print("clocks pinned with jetson_clocks; they are restored when the check ends",
                              highlight=False)
            yield
        finally:
            _board_tool(tool, "--restore", str(stored))


def _board_tool(tool: Path, *args: str) -> None:
    done = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise UserError(f"{tool.name} {' '.join(args)} failed: {said[0][:200]}")


NVPMODEL = "/usr/sbin/nvpmodel"


@contextlib.contextmanager
def power_mode_set(board: dict[str, Any], wanted: str) -> Iterator[None]:
    """The board in nvpmodel mode `wanted` (a name of the conf nvpmodel uses) for the check, and back in its
    own mode afterwards, whatever ends the check."""
    if not board.get("is_jetson"):
        raise UserError("--power-mode sets an nvpmodel mode, which only a Jetson has")
    mode = board.get("power_mode") or {}
    if "missing" in mode:
        raise UserError(f"--power-mode: {mode['missing']}")
    modes = jetson.power_modes(mode.get("conf"))
    if wanted not in modes:
        raise UserError(f"--power-mode {wanted}: this board's nvpmodel has {', '.join(modes) or 'no modes'} "
                        f"({mode.get('conf')})")
    tool = jetson.root() / NVPMODEL.lstrip("/")
    if not tool.is_file():
        raise UserError(f"--power-mode: no {NVPMODEL} on this board")
    if not _is_root():
        raise UserError("--power-mode runs nvpmodel, which needs root: run the check with sudo, or set the mode "
                        f"yourself (sudo nvpmodel -m {modes[wanted]}) and leave --power-mode out")
    previous = mode.get("id")
    _board_tool(tool, "-m", str(modes[wanted]))
    try:
        now = jetson.power_mode()
        if now.get("id") != modes[wanted]:
            raise UserError(f"nvpmodel -m {modes[wanted]} did not take (the board reports mode {now.get('id')}; some "
                            "modes need a reboot)")
        err_console.print(f"power mode set to {wanted} (nvpmodel -m {modes[wanted]}); mode {previous} is restored "
                          "when the check ends", highlight=False)
        yield
    finally:
        if previous is not None and previous != modes[wanted]:
            _board_tool(tool, "-m", str(previous))


def sustained_policy(seconds: float) -> Policy:
    """QUICK's warm-up, then at least `seconds` of timed runs (no sample cap), so the board reaches the temperature
    and clocks it holds under steady load; the speed verdict reads the last half (harness.reports.check)."""
    return replace(QUICK, min_duration_s=seconds, max_duration_s=seconds * 1.5 + 60, max_samples=10_000_000)


def _default_runtime(profile: DeviceProfile, executor: str) -> str:
    """The runtime the registry declares the default for the profile's kind (`Runtime.default_for`): the first
    installed here (on a GPU or Jetson trt where TensorRT's Python bindings import, else trtexec where the board
    has it), or the first where none is, whose one line then says what to install; on a fleet the first (the
    driver cannot see a node's libraries: pass --runtime for such a node)."""
    from runtimes import RuntimeUnavailable, default_runtime, runtime_class

    def installed(name: str) -> bool:
        try:
            runtime_class(name)
        except RuntimeUnavailable:
            return False
        return True

    name = default_runtime(profile.kind, installed if executor == "local" else None)
    if name is None:
        raise UserError(f"no registered runtime is the default for {profile.kind} profiles: pass --runtime NAME")
    return name


def _check_with_dla(args: argparse.Namespace, profile: DeviceProfile) -> None:
    """--with-dla: a Jetson profile with DLA cores, checked here on its GPU (the DLA cores are added), through
    trtexec (the at-once run starts one trtexec per engine)."""
    if profile.kind != "jetson" or not profile.dla_cores:
        raise UserError(f"--with-dla: {profile.name} has no DLA cores (dla_cores: {profile.dla_cores}); leave "
                        "--with-dla out")
    if args.executor != "local":
        raise UserError("--with-dla runs every engine at once on one board: run the check on the board itself")
    if args.runtime not in (None, TOOL_RUNTIME):
        raise UserError(f"--with-dla times the engines at once in trtexec processes: use --runtime {TOOL_RUNTIME} "
                        "(or leave --runtime out)")
    if args.device not in (None, "cuda", "cuda:0"):
        raise UserError(f"--with-dla checks the GPU and then every DLA core: leave --device {args.device} out")
    if args.precision == "fp32":
        raise UserError("--with-dla: the DLA runs fp16 or int8, not fp32: use --precision fp16 (the default)")


def _device_for(profile: DeviceProfile, asked: str | None) -> str:
    """The device measured: --device, or the profile's kind's (cuda, cpu); a CPU profile is checked on a CPU and
    a GPU or Jetson profile on a GPU or DLA."""
    device = asked or DEVICE_OF_KIND[profile.kind]
    local = device.split("@", 1)[0]
    if (local == "cpu") != (profile.kind == "cpu"):
        wanted = "cpu" if profile.kind == "cpu" else "cuda, cuda:N or dla:N"
        raise UserError(f"--device {device}: {profile.name} is a {profile.kind} profile, checked on {wanted}")
    return device


@dataclass(frozen=True)
class Board:
    """The machine a check measures: this one, or a fleet's node."""

    device: str  # the cells' device ('cuda', or 'cuda:0@orin1' on a fleet)
    where: str  # how to name it: 'this machine', 'node orin1'
    jetson: dict[str, Any]  # its Jetson facts, read there
    versions: dict[str, str | None] | None  # its package versions (None: this machine's)
    executor: Any  # the sweeps' executor factory (None: this machine)


def _board(args: argparse.Namespace, profile: DeviceProfile) -> Board:
    args.device = _device_for(profile, args.device)
    if args.executor == "ray":
        device, environment, executor = fleet_command.one_board(args)
        board = Board(device, f"node {device.split('@', 1)[1]}", environment.get("jetson") or {},
                      environment.get("packages"), executor)
        refuse_off_board(profile, board.jetson, board.where)
        refuse_other_module(profile, board.jetson, board.where)
        return board
    facts = jetson.facts()
    refuse_off_board(profile, facts, "this machine")  # before the device check: the reason that matters more
    refuse_other_module(profile, facts, "this machine")
    [device], executor = fleet_command.plan_devices(args)
    return Board(device, "this machine", facts, None, executor)


def command_check_on_device(args: argparse.Namespace) -> int:
    if not args.bundle:
        raise UserError("--on-device measures a bundle's models: add --bundle DIR (made by export --bundle)")
    if args.sustained is not None and not 10 <= args.sustained <= 24 * 3600:
        raise UserError(f"bad --sustained {args.sustained:g}: give seconds from 10 to 86400, e.g. 180")
    profile = load_profile(args.profile)
    if args.precision == "int8" and profile.kind != "cpu" and profile.fast_int8 is False:
        raise UserError(f"--precision int8: {profile.name}'s GPU (compute capability {profile.compute_capability}) "
                        "has no fast int8 (TensorRT needs 6.1 or newer), so int8 would not run faster than fp16 "
                        "there: check --precision fp16")
    if args.with_dla:
        _check_with_dla(args, profile)
    runtime = args.runtime or (TOOL_RUNTIME if args.with_dla else _default_runtime(profile, args.executor))
    classes = check_runtimes(comma_list(runtime), installed_here=args.executor == "local")
    if len(classes) != 1:
        raise UserError("--on-device checks one runtime at a time: e.g. --runtime trt")
    precision = check_precisions(args.precision or PRECISION_OF_KIND[profile.kind])
    if len(precision) != 1:
        raise UserError("--on-device checks one precision at a time: e.g. --precision fp16")
    check_common(args)
    bundle = read_bundle(args.bundle)
    if args.models:
        unknown = sorted(set(comma_list(args.models)) - set(bundle.models))
        if unknown:
            raise UserError(f"not in the bundle: {', '.join(unknown)} (it holds {', '.join(bundle.models)})")
    names = comma_list(args.models) if args.models else list(bundle.models)
    subjects = {name: Subject(bundle_model=bundle.models[name]) for name in names}
    board = _board(args, profile)
    if (args.pin_clocks or args.power_mode) and args.executor == "ray":
        raise UserError("--pin-clocks and --power-mode set this machine up: run the check on the board itself, or "
                        "set the node up there (sudo jetson_clocks, sudo nvpmodel -m ID)")
    wanted_mode = profile.power_mode if args.power_mode == "profile" else args.power_mode
    if args.power_mode == "profile" and not wanted_mode:
        raise UserError(f"--power-mode profile: {profile.name} names no power mode; give a mode's name")
    with contextlib.ExitStack() as setup:
        if wanted_mode:
            setup.enter_context(power_mode_set(board.jetson, wanted_mode))
        if args.pin_clocks:
            setup.enter_context(pinned_clocks(board.jetson))
        if wanted_mode or args.pin_clocks:
            board = Board(board.device, board.where, jetson.facts(), board.versions, board.executor)
        return _check(args, profile, bundle, names, subjects, classes, precision, runtime, board)


def _check(args: argparse.Namespace, profile: DeviceProfile, bundle: Bundle, names: list[str],
           subjects: dict[str, Subject], classes: list[Any], precision: list[str], runtime: str, board: Board) -> int:
    onnx_precision = classes[0].onnx_precision(precision[0], board.versions)  # the board's TensorRT decides
    for subject in subjects.values():
        subject.bundle_model.request_model(onnx_precision)  # type: ignore[union-attr]
    profile, mismatches = profile_for_board(profile, board.jetson)
    for line in [*mismatches, *board_warnings(profile, board.jetson)]:
        err_console.print(line, highlight=False, soft_wrap=True)
    engines = [board.device] + [f"dla:{core}" for core in range(profile.dla_cores if args.with_dla else 0)]
    console.print(f"mode: measured now on {board.where} ({runtime} {precision[0]} on "
                  f"{', '.join(e.split('@', 1)[0] for e in engines)}, batch {profile.targets.batch_size}; references "
                  f"from {bundle.folder})")
    out_dir = check_out_dir(args.out)
    run_id = args.run_id = args.run_id or new_run_id()  # named in the command that goes on after an interrupt
    options = runtime_options(args, [runtime])
    opsets = {name: bundle.models[name].manifest["files"][onnx_precision]["opset"] for name in names}
    checks, runs, timed = [], [], {}
    for device in engines:
        suffix = "" if device == board.device else f"-{device.replace(':', '')}"
        parity = _sweep(out_dir, f"{run_id}{suffix}-verify", subjects, bundle, names, runtime, precision[0], device,
                        _reference_batch(bundle, names), "parity", options, args, board.executor)
        if parity is None:
            return _interrupted(run_id)
        bench = _sweep(out_dir, f"{run_id}{suffix}", subjects, bundle, names, runtime, precision[0], device,
                       profile.targets.batch_size, "bench", options, args, board.executor)
        if bench is None:
            return _interrupted(run_id)
        found = on_device_checks(profile, opsets, bench, parity, bool(args.sustained),
                                 PRIMARY_MEMORY_SOURCE[profile.kind])
        checks += found if not suffix else [replace(c, model=f"{c.model} on {device}") for c in found]
        runs += [out_dir / f"{run_id}{suffix}", out_dir / f"{run_id}{suffix}-verify"]
        timed[device] = bench
    try:
        at_once = _at_once(args, profile, names, timed, precision[0], options.get(runtime, {}), out_dir / run_id) \
            if len(engines) > 1 else None
    except KeyboardInterrupt:
        err_console.print(f"interrupted: the engines' run at once was stopped; every cell's records are in "
                          f"{out_dir / run_id}*", highlight=False, soft_wrap=True)
        return _interrupted(run_id)
    return _report(profile, checks, args.json, runs, board.where, at_once)


def _interrupted(run_id: str) -> int:
    """Says the command that goes on from the records kept (this run named again: a new run id would measure
    every cell anew); the exit code of an interrupt."""
    err_console.print(f"to go on: {resume_hint(run_id, resume_flag='--run-id')}", highlight=False, soft_wrap=True)
    return 130


AT_ONCE_WINDOW_S = 10.0  # seconds of all engines running together past warm-up (--sustained makes it longer)
AT_ONCE_FILE = "at-once.json"


def _at_once(args: argparse.Namespace, profile: DeviceProfile, names: list[str], timed: dict[str, list[Any]],
             precision: str, options: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """For each model whose engines all passed their cells: each engine alone, then all at once (harness.cell
    .at_once), written to the run folder's at-once.json. A model with a failed engine says which."""
    from harness.cell.at_once import alone_and_at_once
    from harness.cell.worker import ENGINE_FILE
    from harness.paths import cache_dir, write_atomically
    from runtimes import create_runtime
    from runtimes.base import EngineArtifact, RuntimeOptions

    window_s = max(AT_ONCE_WINDOW_S, args.sustained or 0)
    store, results = Store(cache_dir()), {}
    for name in names:
        records = {device: next((r for r in found if r.cell.model == name), None) for device, found in timed.items()}
        failed = [device for device, record in records.items() if record is None or not record.ok]
        if failed:
            results[name] = {"skipped": f"{', '.join(failed)} did not pass its timing cell"}
            continue
        runtimes = {}
        for device, record in records.items():
            engine = record.prepared.engine
            entry = store.lookup(cache_dir() / engine["folder"], ENGINE_FILE)
            if entry is None or entry.meta.get("sha256") != engine["sha256"]:
                results[name] = {"skipped": f"the {device} engine changed or vanished after its cell; run again"}
                break
            runtime = create_runtime(TOOL_RUNTIME, RuntimeOptions(device=device.split("@", 1)[0],
                                                                  precision=precision, extra=options))
            runtime.load(EngineArtifact(name, str(entry.path), engine["sha256"]))
            runtimes[device.split("@", 1)[0]] = runtime
        else:
            with console.status(f"{name}: engines alone, then at once") as status:
                results[name] = alone_and_at_once(runtimes, profile.targets.batch_size, window_s,
                                                  lambda step: status.update(f"{name}: {step}"))
    write_atomically(run_dir / AT_ONCE_FILE, json.dumps(results, indent=1))
    return results


def _reference_batch(bundle: Bundle, names: list[str]) -> int:
    """Batch 1 where every model has a reference there (a board's usual case), else their largest common one."""
    common = sorted(set.intersection(*(set(bundle.models[n].reference_batch_sizes) for n in names)))
    return 1 if 1 in common else common[-1]


def _sweep(out_dir: Any, run_id: str, subjects: dict[str, Subject], bundle: Bundle, names: list[str], runtime: str,
           precision: str, device: str, batch_size: int, mode: str, options: dict[str, Any],
           args: argparse.Namespace, executor: Any) -> list[Record] | None:
    seed = bundle.models[names[0]].seed
    policy = sustained_policy(args.sustained) if args.sustained and mode == "bench" else QUICK
    settings = BenchSettings(policy=policy, timeout_s=args.timeout + (args.sustained or 0), seed=seed, mode=mode,
                             max_cv=MAX_CV["quick"],
                             runtime_options=options, strict_retries=STRICT_RETRIES)
    cells = plan_cells(names, [runtime], [precision], [batch_size], device)
    sweep = Sweep(out_dir, run_id, subjects, settings, executor)
    go_on = f"run: {resume_hint(args.run_id, resume_flag='--run-id')}"  # the check's own run id: it names every run
    if run_sweep(sweep, cells, "checking numerics" if mode == "parity" else "timing", go_on) is None:
        return None
    planned = {cell.cell_id for cell in cells}  # this call's and, resuming a --run-id, the earlier calls' records
    return [r for r in latest_records(read_records(sweep.records_path).typed) if r.cell_id in planned]


def _report(profile: DeviceProfile, checks: list[ModelCheck], as_json: bool, runs: list[Any], where: str,
            at_once: dict[str, Any] | None) -> int:
    ready = sum(c.passed for c in checks)
    if as_json:
        print_json({"profile": profile.name, "mode": "on-device", "measured_on": where, "ready": ready,
                    "models": len(checks),
                    "runs": [str(r) for r in runs],
                    "checks": [{"model": c.model, "passed": c.passed, "criteria": [asdict(k) for k in c.criteria]}
                               for c in checks],
                    **({"at_once": at_once} if at_once is not None else {})})
        return 0 if ready == len(checks) else 1
    console.print(checks_table(f"On-device check: {profile.name}",
                               f"measured now on {where}; UNKNOWN counts as not ready", checks))
    if at_once is not None:
        console.print(at_once_table(at_once))
    console.print(f"{ready}/{len(checks)} models ready for {profile.name}; records: {', '.join(map(str, runs))}")
    return 0 if ready == len(checks) else 1
