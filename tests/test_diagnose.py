"""`diagnose`: McNemar's exact test, the ddmin search over nodes with a fake evaluator (fast), the command's
one-line refusals, and (slow) a real EfficientNet-Lite0 whose per-tensor int8 loses top-1 on real photographs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.diagnose.search import blocks, smallest_fp32_set
from harness.diagnose.stats import mcnemar_exact_p, paired

NODES = tuple(f"conv{i}" for i in range(40))


@pytest.mark.parametrize("worse, better", [(0, 0), (1, 0), (6, 0), (7, 0), (5, 2), (10, 3), (3, 10), (30, 12),
                                           (400, 350), (5, 5), (2500, 2400)])
def test_mcnemar_exact_p_equals_scipys_binomial_test(worse, better):
    binomtest = pytest.importorskip("scipy.stats").binomtest
    expected = 1.0 if worse + better == 0 else binomtest(worse, worse + better, 0.5).pvalue
    assert mcnemar_exact_p(worse, better) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_paired_counts_discordant_images_and_the_drop():
    reference = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    other = np.array([1, 0, 0, 1, 1, 0, 0, 1], bool)
    result = paired(reference, other)
    assert (result.worse, result.better, result.images) == (3, 1, 8)
    assert result.drop_points == pytest.approx(100 * 2 / 8)
    assert result.p_value == pytest.approx(mcnemar_exact_p(3, 1))
    with pytest.raises(ValueError):
        paired(reference, other[:4])


def test_blocks_are_contiguous_and_cover_every_node():
    for n in range(1, 9):
        parts = blocks(NODES[:7], n)
        assert tuple(itertools.chain(*parts)) == NODES[:7]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def culprits_evaluator(culprits: set[str], log: list[tuple[str, ...]]):
    """A fake evaluation: the file recovers when every culprit is kept in fp32."""
    def passes(kept: tuple[str, ...]) -> bool:
        log.append(kept)
        return culprits <= set(kept)
    return passes


@pytest.mark.parametrize("culprits", [{"conv0"}, {"conv0", "conv39"}, {"conv3", "conv17", "conv18", "conv30"}])
def test_the_search_finds_exactly_the_nodes_that_recover(culprits):
    log: list[tuple[str, ...]] = []
    result = smallest_fp32_set(NODES, culprits_evaluator(culprits, log), max_trials=200)
    assert result.complete and set(result.kept) == culprits
    assert list(result.kept) == [n for n in NODES if n in culprits]  # topological order kept
    assert result.trials == len(log) == len(set(map(frozenset, log)))  # each set evaluated once
    assert result.trials < len(NODES)  # bisection, not one trial per node


def test_a_set_that_needs_any_two_of_three_nodes_is_one_minimal():
    """Non-monotone, redundant causes: any two of three nodes recover; the answer cannot lose a node."""
    trio = {"conv5", "conv20", "conv33"}

    def passes(kept: tuple[str, ...]) -> bool:
        return len(trio & set(kept)) >= 2
    result = smallest_fp32_set(NODES, passes, max_trials=200)
    assert result.complete and len(result.kept) == 2 and set(result.kept) <= trio


def test_the_cap_returns_the_smallest_passing_set_so_far():
    log: list[tuple[str, ...]] = []
    result = smallest_fp32_set(NODES, culprits_evaluator({"conv3", "conv30"}, log), max_trials=3)
    assert not result.complete and result.trials == 3 == len(log)
    assert {"conv3", "conv30"} <= set(result.kept) and len(result.kept) <= len(NODES)


def test_nothing_recovers_when_every_node_kept_still_fails():
    result = smallest_fp32_set(NODES, lambda kept: False, max_trials=50)
    assert result.kept is None and result.trials == 1 and result.complete
