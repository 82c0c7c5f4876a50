"""How the studies state a result: mean ± std cells and contrasts tested with Welch's t-test.

A contrast is written as a finding only when p < 0.05; otherwise the sentence says the
difference is within noise. Every sentence carries both means, the difference with its 95 %
interval and p, so a reader can check the claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fcnet_cli.analysis.stats import ALPHA, difference, summarize, welch_p

__all__ = ["cell", "contrast", "significant"]


def cell(values: Sequence[float], spec: str = ".3f") -> str:
    """'mean ± std' over seeds (the value alone for one seed, '-' for none)."""
    return summarize(values).text(spec)


def significant(a: Sequence[float], b: Sequence[float]) -> bool:
    p = welch_p(a, b)
    return not math.isnan(p) and p < ALPHA


def _p(p: float) -> str:
    """Two significant digits, three where two would round across 0.05."""
    if p < 1e-3:
        return "p < 0.001"
    short = f"{p:.2g}"
    return f"p = {p:.3g}" if float(short) == ALPHA and p != ALPHA else f"p = {short}"


def contrast(what: str, a_label: str, a: Sequence[float], b_label: str, b: Sequence[float],
             spec: str = ".3f") -> str:
    """'val acc: L2 λ=0.01 0.727 ± 0.031 vs none 0.682 ± 0.002, +0.045 [0.012, 0.078],
    p = 0.01' followed by '(significant)' or '— within noise, not a finding'."""
    d, lo, hi = difference(a, b)
    p = welch_p(a, b)
    head = (f"{what}: {a_label} {cell(a, spec)} vs {b_label} {cell(b, spec)}, "
            f"difference {format(d, '+' + spec)}")
    if math.isnan(p):
        return head + " (one seed: untested)"
    head += f" [{format(lo, spec)}, {format(hi, spec)}], {_p(p)}"
    return head + (" (significant)" if p < ALPHA else " — within noise, not a finding")
