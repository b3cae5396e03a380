"""The search for a small set of nodes to keep in fp32: bisection over the graph's quantizable nodes, most
suspect first (harness.diagnose.sensitivity) or in graph order, then culprit by culprit, then a greedy pass; a cap
on evaluations.

A set *passes* when the file with those nodes kept in fp32 (everything else lowered) loses no more than the
allowed drop. Every node kept must pass (otherwise the loss is not in these nodes). First, bisection finds the
shortest passing prefix of the candidates (with a good order, the few most suspect nodes: about log2(nodes)
trials); the rest are dropped. Then, with the nodes found needed so far (none at first) always kept: bisection
finds the shortest prefix of the remaining candidates that passes beside them; its last node is needed, the
candidates after it are not (the prefix passed without them); repeat on the candidates before it until the needed
nodes pass alone. That costs about log2(nodes) trials per
needed node (k needed nodes of n: about k * log2(n), where trying nodes one by one costs n). Last, a greedy pass
drops any node whose removal still passes, since answers on a few hundred images need not be monotone in the set:
the result is 1-minimal (no single node can go). Every evaluation is a trial; `max_trials` caps them, and a
search cut short returns the smallest passing set seen, said to be not minimal. Pure: the caller's `passes`
quantizes and evaluates; this module only decides what to try next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

Passes = Callable[[tuple[str, ...]], bool]


@dataclass(frozen=True)
class SearchResult:
    """What the search found: the set to keep in fp32 (None when even every node kept does not pass)."""

    kept: tuple[str, ...] | None
    trials: int  # evaluations made (a set tried twice counts once)
    complete: bool  # False: stopped at max_trials, `kept` passes but may not be minimal


class _OutOfTrials(Exception):
    pass


class _Trials:
    """`passes` with a memory (each set is evaluated once) and a cap on evaluations."""

    def __init__(self, passes: Passes, max_trials: int) -> None:
        self._passes, self._max_trials = passes, max_trials
        self._seen: dict[frozenset[str], bool] = {}

    @property
    def count(self) -> int:
        return len(self._seen)

    def __call__(self, kept: tuple[str, ...]) -> bool:
        key = frozenset(kept)
        if key not in self._seen:
            if len(self._seen) >= self._max_trials:
                raise _OutOfTrials()
            self._seen[key] = self._passes(kept)
        return self._seen[key]

    def smallest_passing(self, order: dict[str, int]) -> tuple[str, ...]:
        """The smallest set that passed so far (every node kept, at worst), in the nodes' order."""
        best = min((kept for kept, passed in self._seen.items() if passed), key=len)
        return tuple(sorted(best, key=order.__getitem__))


def blocks(items: tuple[str, ...], n: int) -> list[tuple[str, ...]]:
    """`items` cut into n contiguous blocks whose sizes differ by at most one (the first ones larger)."""
    size, extra = divmod(len(items), n)
    cuts, start = [], 0
    for index in range(n):
        end = start + size + (1 if index < extra else 0)
        cuts.append(items[start:end])
        start = end
    return [cut for cut in cuts if cut]


def _shortest_prefix(required: tuple[str, ...], candidates: tuple[str, ...], trial: _Trials) -> int:
    """The fewest leading `candidates` that pass beside `required`, by bisection (all of them are known to pass;
    none is never tried while `required` is empty: that is the all-quantized file)."""
    low, high = (0 if required else 1), len(candidates)
    while low < high:
        middle = (low + high) // 2
        if trial(required + candidates[:middle]):
            high = middle
        else:
            low = middle + 1
    return high


def _necessary(everything: tuple[str, ...], trial: _Trials) -> tuple[str, ...]:
    """Culprit by culprit: the shortest passing prefix's last node is needed; the nodes after it are not."""
    required: tuple[str, ...] = ()
    candidates = everything
    while candidates:
        length = _shortest_prefix(required, candidates, trial)
        if length == 0:
            break
        required += (candidates[length - 1],)
        candidates = candidates[:length - 1]
    return required


def _one_minimal(kept: tuple[str, ...], trial: _Trials) -> tuple[str, ...]:
    """Greedy: drop each node whose removal still passes (answers on a few images need not be monotone)."""
    for node in list(kept):
        if len(kept) > 1:
            without = tuple(n for n in kept if n != node)
            if trial(without):
                kept = without
    return kept


def smallest_fp32_set(nodes: Sequence[str], passes: Passes, max_trials: int) -> SearchResult:
    """A 1-minimal subset of `nodes` that passes, in their order, or the smallest passing set found within
    `max_trials` evaluations. `nodes` come most suspect first (or in graph order): bisection finds the shortest
    passing prefix, the culprit-by-culprit search narrows it, a greedy pass makes it 1-minimal. `passes(kept)`
    evaluates the file with `kept` in fp32; the empty set (all lowered) is never asked: the caller knows it fails."""
    if max_trials < 1:
        raise ValueError(f"max_trials must be positive, got {max_trials}")
    everything = tuple(dict.fromkeys(nodes))
    order = {node: index for index, node in enumerate(everything)}
    if not everything:
        return SearchResult(None, 0, True)
    trial = _Trials(passes, max_trials)
    if not trial(everything):
        return SearchResult(None, trial.count, True)
    try:
        prefix = everything[:_shortest_prefix((), everything, trial)]
        kept = _one_minimal(tuple(sorted(_necessary(prefix, trial), key=order.__getitem__)), trial)
    except _OutOfTrials:
        return SearchResult(trial.smallest_passing(order), trial.count, False)
    return SearchResult(kept, trial.count, True)
