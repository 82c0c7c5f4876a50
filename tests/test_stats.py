"""analysis/stats.py: summaries over seeds and the within-noise test, against hand computations."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sp

from fcnet_cli.analysis.stats import difference, summarize, verdict, welch_p

BASE = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sample variance 2.5: a shifted copy has se = 1.0


def shifted(d: float) -> list[float]:
    return [v + d for v in BASE]


def test_summary_of_five_values_by_hand() -> None:
    s = summarize(BASE)
    assert (s.n, s.mean, s.std) == (5, 3.0, pytest.approx(math.sqrt(2.5)))
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) from tables
    assert (s.ci_low, s.ci_high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    assert s.text(".2f") == "3.00 ± 1.58"
    assert s.interval(".2f") == f"[{3 - half:.2f}, {3 + half:.2f}]"


def test_one_seed_shows_no_plus_minus_and_nan_is_dropped() -> None:
    s = summarize([0.5, math.nan, None])
    assert s.n == 1 and s.text() == "0.5000" and s.interval() == ""
    assert summarize([]).text() == "-"


@pytest.mark.parametrize("shift, noise", [(2.0, True), (2.6, False)])
def test_within_noise_on_each_side_of_p_005(shift: float, noise: bool) -> None:
    # equal variances, n = 5 each: t = shift / 1.0 with 8 degrees of freedom; p = 0.05 at 2.306
    p_hand = 2 * sp.t.sf(shift, 8)
    assert bool(p_hand >= 0.05) is noise
    assert welch_p(BASE, shifted(shift)) == pytest.approx(p_hand, rel=1e-9)
    text = verdict(shifted(shift), BASE)
    assert text.startswith("within noise") is noise
    assert f"{p_hand:.2g}" in text


def test_constant_samples_and_single_seeds() -> None:
    assert welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert math.isnan(welch_p([1.0], [2.0, 3.0]))
    assert verdict([1.0], [2.0, 3.0]) == "untested (1 seed)"


def test_difference_interval_is_welchs() -> None:
    # equal variances and sizes: Welch's df = 8, se = 1.0 (see BASE)
    d, lo, hi = difference(shifted(2.6), BASE)
    half = sp.t.ppf(0.975, 8) * 1.0
    assert d == pytest.approx(2.6) and (lo, hi) == (pytest.approx(2.6 - half),
                                                    pytest.approx(2.6 + half))
    assert lo > 0  # p < 0.05 ⇔ the interval excludes 0
    assert difference(shifted(2.0), BASE)[1] < 0
