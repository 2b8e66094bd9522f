"""Judge-quality statistics: agreement, Cohen's κ, shares with bootstrap intervals, calibration.

Pure functions over counts and arrays; nothing here knows the database.

Bootstrap intervals are percentile intervals over resamples of the items
with replacement, drawn from a generator seeded by ``Bootstrap.seed``, so
a report is reproducible. Two exact shortcuts keep them cheap at any size:
resampling n yes/no items with replacement gives a count of yeses that is
Binomial(n, k/n), and resampling n labelled pairs gives confusion-matrix
counts that are Multinomial(n, cell shares). So a resample costs a few
numbers, not n, and memory does not grow with the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

LABELS: tuple[str, str, str] = ("a", "b", "tie")
"""The classes of a verdict or a gold label, in confusion-matrix order."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """How intervals are drawn: number of resamples, confidence level, seed."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise ValueError("resamples must be at least 1")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence must be between 0 and 1")

    def rng(self) -> np.random.Generator:
        # A fresh generator per statistic: each interval is the same whatever
        # else the report computes, or in which order.
        return np.random.default_rng(self.seed)

    def interval(self, samples: FloatArray) -> tuple[float, float] | None:
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            return None
        tail = (1.0 - self.confidence) / 2.0 * 100.0
        low, high = np.percentile(finite, [tail, 100.0 - tail])
        return float(low), float(high)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A statistic, its bootstrap interval, and the number of items it is over."""

    value: float | None
    ci: tuple[float, float] | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "ci": list(self.ci) if self.ci is not None else None,
            "n": self.n,
        }


EMPTY = Estimate(None, None, 0)


def proportion(successes: int, n: int, boot: Bootstrap) -> Estimate:
    """The share successes/n with a bootstrap interval (binomial resampling, see above)."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n, got {successes} of {n}")
    if n == 0:
        return EMPTY
    share = successes / n
    draws = boot.rng().binomial(n, share, size=boot.resamples) / n
    return Estimate(share, boot.interval(draws.astype(np.float64)), n)


def confusion(rows: list[str], columns: list[str]) -> npt.NDArray[np.int64]:
    """3x3 counts: rows are the first rater's labels, columns the second's (a, b, tie)."""
    if len(rows) != len(columns):
        raise ValueError("both raters must label the same items")
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = np.zeros((3, 3), dtype=np.int64)
    for row, column in zip(rows, columns, strict=True):
        matrix[index[row], index[column]] += 1
    return matrix


def kappa_of(counts: npt.NDArray[Any]) -> FloatArray:
    """Cohen's κ of one confusion matrix (shape (k, k)) or many (shape (r, k, k)).

    κ = (p_o - p_e) / (1 - p_e): observed agreement p_o against the agreement
    p_e two raters with these label frequencies reach by chance (Cohen 1960;
    the same as sklearn's ``cohen_kappa_score`` without weights). Undefined
    (NaN) when p_e = 1, i.e. both raters always give one and the same label.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=(-2, -1))
    observed = np.trace(counts, axis1=-2, axis2=-1) / n
    expected = (counts.sum(axis=-1) * counts.sum(axis=-2)).sum(axis=-1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1.0 - expected)
    return np.where(np.isclose(expected, 1.0), np.nan, kappa)


def kappa(counts: npt.NDArray[np.int64], boot: Bootstrap) -> Estimate:
    """Cohen's κ with a bootstrap interval (multinomial resampling of the cells)."""
    n = int(counts.sum())
    if n == 0:
        return EMPTY
    value = float(kappa_of(counts))
    draws = boot.rng().multinomial(n, counts.ravel() / n, size=boot.resamples)
    samples = kappa_of(draws.reshape(boot.resamples, *counts.shape))
    return Estimate(None if np.isnan(value) else value, boot.interval(samples), n)


def agreement(counts: npt.NDArray[np.int64], boot: Bootstrap) -> dict[str, Estimate]:
    """Agreement of a judge (rows) with gold (columns), both MT-Bench conventions, and κ.

    ``with_ties``: a tie is a third class, every pair counts. ``without_ties``:
    only pairs where neither the judge nor gold said tie.
    """
    decisive = counts[:2, :2]
    return {
        "with_ties": proportion(int(np.trace(counts)), int(counts.sum()), boot),
        "without_ties": proportion(int(np.trace(decisive)), int(decisive.sum()), boot),
        "kappa": kappa(counts, boot),
    }


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(slots=True)
class BinTotals:
    """What one calibration bin holds: items, the sum of their confidences, how many were right."""

    count: int = 0
    confidence: float = 0.0
    correct: int = 0


def calibration_of_bins(totals: list[BinTotals]) -> tuple[float | None, list[CalibrationBin]]:
    """Reliability table and expected calibration error from each equal-width bin's totals.

    ECE = Σ_bins (count / n) · |accuracy - mean confidence|; None with no items.
    """
    bins, n = len(totals), sum(t.count for t in totals)
    table, ece = [], 0.0
    for index, total in enumerate(totals):
        mean_conf = total.confidence / total.count if total.count else None
        accuracy = total.correct / total.count if total.count else None
        if mean_conf is not None and accuracy is not None:
            ece += total.count / n * abs(accuracy - mean_conf)
        table.append(
            CalibrationBin(index / bins, (index + 1) / bins, total.count, mean_conf, accuracy)
        )
    return (ece if n else None), table


def calibration(
    confidence: list[float], correct: list[bool], bins: int = 10
) -> tuple[float | None, list[CalibrationBin]]:
    """Reliability table over equal-width confidence bins, and the expected calibration error.

    The same as :func:`calibration_of_bins` over the items' bins. A confidence
    is clipped to [0, 1]; exactly 1.0 falls in the last bin.
    """
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct must have the same length")
    values = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    hits = np.asarray(correct, dtype=bool)
    # Compare against the very edges the table reports (index / bins): flooring
    # values * bins puts 0.29 in [0.28, 0.29) at 100 bins (0.29 * 100 = 28.999…).
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    totals = [
        BinTotals(int(members.sum()), float(values[members].sum()), int(hits[members].sum()))
        for members in (which == index for index in range(bins))
    ]
    return calibration_of_bins(totals)
