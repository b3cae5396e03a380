"""What a cell's process agrees on with whoever started it: its memory cap and its exit code for a result it could
not write. The executors (harness.execution) read these; the worker sets them."""

from __future__ import annotations

import resource

EXIT_RESULT_UNWRITABLE = 75  # EX_TEMPFAIL: the worker could not write its result (a full disk)


def limit_memory(max_memory_bytes: int | None) -> None:
    """Cap private memory with RLIMIT_DATA's soft limit: the data segment and private anonymous mappings
    (malloc, tensors), not shared libraries' code, so importing torch stays possible under a limit of a
    few hundred MB. The hard limit stays, so the worker can lift the cap to tell an import that failed
    for want of memory from one that fails anyway."""
    if max_memory_bytes is not None:
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        soft = max_memory_bytes if hard == resource.RLIM_INFINITY else min(max_memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def lift_memory_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
