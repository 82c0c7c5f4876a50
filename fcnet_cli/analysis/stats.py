"""Statistics over seeds: mean, standard deviation, t-intervals and Welch's t-test.

Every comparison fcnet prints goes through here, so that a difference is only called one when
the seeds support it:

    a = summarize([0.971, 0.975, 0.969, 0.978, 0.974])   # one configuration, five seeds
    a.text()                                             # '0.9734 ± 0.0035'
    welch_p(a.values, [0.962, 0.958, 0.966, 0.960, 0.963])  # p of "same mean"
    verdict(a.values, other)                             # 'p = 0.0004' or 'within noise (p = 0.31)'

No torch and no rich. One seed has no spread: its `text()` shows the value alone, no ±.

Intervals respect the metric's bounds: `summarize(values, "val_accuracy")` computes Student's
t-interval of the mean and cuts it to the metric's range from the registry (`fcnet_cli.metrics`:
[0, 1] for accuracies and F1, ≥ 0 for losses, RMSE and MAE, ≤ 1 for R²); a cut interval is
marked (`clipped`, shown as `[0.3783, 1.0000]*`), since its nominal 95 % is then only a bound.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fcnet_cli.metrics import clip_interval

__all__ = ["ALPHA", "CLIP_MARK", "CONFIDENCE", "Summary", "difference", "summarize", "verdict",
           "welch_p"]

ALPHA = 0.05  # a difference with Welch p ≥ ALPHA is "within noise"
CONFIDENCE = 0.95  # level of the t-interval of a mean
CLIP_MARK = "*"  # after an interval cut to its metric's bounds


@dataclass(frozen=True)
class Summary:
    """A metric over n seeds; std uses n − 1, the interval Student's t with n − 1 d.o.f."""

    n: int
    mean: float
    std: float  # NaN when n < 2
    ci_low: float  # 95 % t-interval of the mean; NaN when n < 2
    ci_high: float
    values: tuple[float, ...]
    clipped: bool = False  # the interval was cut to the metric's bounds

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def text(self, spec: str = ".4f") -> str:
        """'mean ± std' over seeds; the value alone for one seed; '-' for none."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return format(self.mean, spec)
        return f"{format(self.mean, spec)} ± {format(self.std, spec)}"

    def interval(self, spec: str = ".4f") -> str:
        """'[low, high]' (the 95 % interval of the mean), '[low, high]*' when it was cut to
        the metric's bounds; '' for fewer than two seeds."""
        if self.n < 2:
            return ""
        mark = CLIP_MARK if self.clipped else ""
        return f"[{format(self.ci_low, spec)}, {format(self.ci_high, spec)}]{mark}"

    def to_dict(self) -> dict[str, object]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"n": self.n, "mean": num(self.mean), "std": num(self.std),
                "ci95": None if self.n < 2 else [self.ci_low, self.ci_high],
                "ci95_clipped": self.clipped, "values": list(self.values)}


def _finite(values: Iterable[float | None]) -> tuple[float, ...]:
    return tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))


def summarize(values: Iterable[float | None], metric: str | None = None) -> Summary:
    """Mean, sample std and the 95 % t-interval of the finite values (None/NaN dropped);
    given the `metric`'s name, the interval is cut to its bounds and marked when it was."""
    from scipy import stats  # lazy: scipy costs ~0.3 s to import

    vals = _finite(values)
    n = len(vals)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, ())
    mean = statistics.fmean(vals)
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, vals)
    std = statistics.stdev(vals)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    low, high, clipped = mean - half, mean + half, False
    if metric is not None:
        low, high, clipped = clip_interval(metric, low, high)
    return Summary(n, mean, std, low, high, vals, clipped)


def welch_p(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) for equal means.

    NaN when either side has fewer than two finite values. Two constant samples give p = 1 when
    they are equal and p = 0 when they differ (the test's own answer is undefined there).
    """
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    if statistics.pvariance(x) == 0 and statistics.pvariance(y) == 0:
        return 1.0 if statistics.fmean(x) == statistics.fmean(y) else 0.0
    with warnings.catch_warnings():  # nearly equal samples: scipy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def verdict(a: Sequence[float | None], b: Sequence[float | None], alpha: float = ALPHA) -> str:
    """'p = 0.003' for a difference, 'within noise (p = 0.41)' for none, 'untested (1 seed)'."""
    p = welch_p(a, b)
    if math.isnan(p):
        return "untested (1 seed)"
    shown = f"{p:.2g}" if p >= 1e-3 else "< 0.001"
    if shown != "< 0.001" and float(shown) == alpha and p != alpha:
        shown = f"{p:.3g}"  # 0.0497 is not "0.05"
    shown = shown if shown.startswith("<") else f"= {shown}"
    return f"within noise (p {shown})" if p >= alpha else f"p {shown}"


def difference(a: Sequence[float | None], b: Sequence[float | None]
               ) -> tuple[float, float, float]:
    """mean(a) − mean(b) and its 95 % Welch interval (Welch–Satterthwaite degrees of freedom).

    The interval is (NaN, NaN) when either side has fewer than two values; when both are
    constant it is the difference itself.
    """
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if not x or not y:
        return math.nan, math.nan, math.nan
    d = statistics.fmean(x) - statistics.fmean(y)
    if len(x) < 2 or len(y) < 2:
        return d, math.nan, math.nan
    vx, vy = statistics.variance(x) / len(x), statistics.variance(y) / len(y)
    if vx + vy == 0:
        return d, d, d
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(vx + vy)
    return d, d - half, d + half
