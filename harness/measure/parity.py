"""Do two runtimes give the same answers? Pure functions of two logit arrays (reference, candidate), or of
two lists of a graph's outputs (`compare_outputs`, `output_violations`).

With random weights logits can be huge, so an absolute tolerance alone is meaningless: the verdict
uses error relative to the reference's magnitude and cosine similarity, and reports top-1 agreement
and top-5 overlap beside them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    max_rel_err: float | None  # max |candidate - reference| / max |reference|; None: not judged (int8)
    min_cosine: float  # worst row
    min_top1_agreement: float  # share of rows with the same arg-max


# fp32 graphs differ from eager only by kernel and fusion order; fp16 keeps ~3 significant digits.
TOLERANCES = {
    "fp32": Tolerance(max_rel_err=2e-3, min_cosine=0.99999, min_top1_agreement=1.0),
    "fp16": Tolerance(max_rel_err=5e-2, min_cosine=0.999, min_top1_agreement=0.75),
    # bf16 keeps 8 significant bits (fp16 keeps 11): about 8 times fp16's rounding error
    "bf16": Tolerance(max_rel_err=1e-1, min_cosine=0.995, min_top1_agreement=0.75),
    # int8: errors of a few quantization steps are expected anywhere in the logits, so the largest error says
    # little; the verdict is how the answers and their direction agree
    "int8": Tolerance(max_rel_err=None, min_cosine=0.98, min_top1_agreement=0.75),
}


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_err: float
    reference_max_abs: float
    max_rel_err: float
    rel_l2_err: float
    min_cosine: float
    top1_agreement: float
    top5_overlap: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    ref = reference.astype(np.float64).reshape(reference.shape[0], -1)
    cand = candidate.astype(np.float64).reshape(candidate.shape[0], -1)
    diff = np.abs(cand - ref)
    scale = float(np.abs(ref).max())
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, (ref * cand).sum(axis=1) / np.where(norms > 0, norms, 1.0), 1.0)
    k = min(5, ref.shape[1])
    top_ref = np.argsort(-ref, axis=1)[:, :k]
    top_cand = np.argsort(-cand, axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)]
    return Parity(
        rows=ref.shape[0],
        max_abs_err=float(diff.max()),
        reference_max_abs=scale,
        max_rel_err=float(diff.max() / scale) if scale > 0 else float(diff.max()),
        rel_l2_err=float(np.linalg.norm(cand - ref) / max(np.linalg.norm(ref), 1e-30)),
        min_cosine=float(cosine.min()),
        top1_agreement=float((top_ref[:, 0] == top_cand[:, 0]).mean()),
        top5_overlap=float(np.mean(overlap)),
    )


def violations(parity: Parity, tolerance: Tolerance) -> list[str]:
    """Empty when within tolerance; else one line per figure out of bounds."""
    problems = []
    if tolerance.max_rel_err is not None and not parity.max_rel_err <= tolerance.max_rel_err:
        problems.append(f"max relative error {parity.max_rel_err:.3g} > {tolerance.max_rel_err:g}")
    if not parity.min_cosine >= tolerance.min_cosine:
        problems.append(f"cosine {parity.min_cosine:.6f} < {tolerance.min_cosine}")
    if not parity.top1_agreement >= tolerance.min_top1_agreement:
        problems.append(f"top-1 agreement {parity.top1_agreement:.3f} < {tolerance.min_top1_agreement}")
    return problems


def compare_outputs(references: list[np.ndarray], candidates: list[np.ndarray]) -> list[Parity]:
    """Every output of a graph against the reference's, in order."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(candidates)} outputs, the reference has {len(references)}")
    return [compare(reference, candidate) for reference, candidate in zip(references, candidates)]


def output_violations(parities: list[Parity], tolerance: Tolerance, logits: bool) -> list[str]:
    """Empty when every output is within tolerance. A classifier's logits (`logits`: one output of shape
    (batch, classes)) are judged on all three figures; any other graph's outputs (a detector's boxes and scores,
    a segmenter's maps) each on its error and cosine, and top-1 agreement — an arg-max over a row of box offsets
    or of a flattened class map, decided by near-ties — is reported only."""
    if logits:
        return violations(parities[0], tolerance)
    judged = replace(tolerance, min_top1_agreement=0.0)
    prefix = len(parities) > 1
    return [f"output {n}: {problem}" if prefix else problem
            for n, parity in enumerate(parities) for problem in violations(parity, judged)]


def are_logits(outputs: list[np.ndarray]) -> bool:
    """One output of shape (batch, classes): a classifier's answer, whose arg-max is its top-1."""
    return len(outputs) == 1 and outputs[0].ndim == 2


def worst(parities: list[Parity]) -> dict[str, float]:
    """The worst of each figure over the outputs (the largest errors, the smallest agreements): one output's own."""
    if len(parities) == 1:
        return parities[0].as_dict()
    rows = [p.as_dict() for p in parities]
    lowest = ("min_cosine", "top1_agreement", "top5_overlap")
    return {name: (min if name in lowest else max)(row[name] for row in rows) for name in rows[0]}
