"""The statistics of the judge-quality report, against hand-worked examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.reports.metrics import (
    Bootstrap,
    agreement,
    calibration,
    confusion,
    kappa,
    kappa_of,
    proportion,
)

BOOT = Bootstrap(resamples=2000, confidence=0.95, seed=7)


class TestKappa:
    def test_textbook_two_by_two(self) -> None:
        """Yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, so kappa = 0.4."""
        counts = np.array([[20, 5, 0], [10, 15, 0], [0, 0, 0]])
        assert float(kappa_of(counts)) == pytest.approx(0.4)

    def test_three_classes_by_hand(self) -> None:
        """A 3x3 table worked out on paper: p_o = 0.6, p_e = 0.34, kappa = 0.26 / 0.66."""
        counts = np.array([[20, 5, 5], [5, 25, 10], [5, 10, 15]])
        # rows 30/40/30, columns 30/40/30 of 100: p_e = .09 + .16 + .09 = .34
        assert float(kappa_of(counts)) == pytest.approx((0.6 - 0.34) / (1 - 0.34))

    def test_perfect_agreement_and_undefined_case(self) -> None:
        """Identical raters give 1; raters who both only ever say one label give no kappa."""
        rows = ["a", "b", "tie", "a", "b"]
        assert kappa(confusion(rows, rows), BOOT).value == pytest.approx(1.0)
        constant = kappa(confusion(["a"] * 5, ["a"] * 5), BOOT)
        assert constant.value is None
        assert constant.n == 5

    def test_chance_level_raters_are_near_zero(self) -> None:
        """Two independent random raters: kappa near 0, and its interval covers 0."""
        rng = np.random.default_rng(1)
        first = list(rng.choice(["a", "b", "tie"], size=3000))
        second = list(rng.choice(["a", "b", "tie"], size=3000))
        result = kappa(confusion(first, second), BOOT)
        assert result.value is not None
        assert abs(result.value) < 0.05
        assert result.ci is not None
        assert result.ci[0] < 0 < result.ci[1]


class TestAgreement:
    def test_both_mt_bench_conventions(self) -> None:
        """Ties counted: matches over all pairs; ties excluded: only where neither side tied."""
        judge = ["a", "a", "b", "tie", "b", "a"]
        gold = ["a", "b", "b", "tie", "tie", "a"]
        result = agreement(confusion(judge, gold), BOOT)
        assert result["with_ties"].value == pytest.approx(4 / 6)
        assert result["with_ties"].n == 6
        # Pairs 1, 2, 3, 6 have no tie on either side; 1, 3, 6 agree.
        assert result["without_ties"].value == pytest.approx(3 / 4)
        assert result["without_ties"].n == 4


class TestProportion:
    def test_interval_is_seeded_and_brackets_the_value(self) -> None:
        """The same seed gives the same interval; the interval contains the share."""
        first = proportion(70, 100, BOOT)
        assert first == proportion(70, 100, BOOT)
        assert first.value == pytest.approx(0.7)
        assert first.ci is not None
        assert first.ci[0] < 0.7 < first.ci[1]
        assert proportion(70, 100, Bootstrap(seed=8)).ci != first.ci

    def test_binomial_shortcut_matches_resampling_the_items(self) -> None:
        """Drawing Binomial(n, k/n) gives the interval that resampling n items gives."""
        items = np.array([1] * 140 + [0] * 60)
        rng = np.random.default_rng(3)
        naive = np.array(
            [items[rng.integers(0, len(items), len(items))].mean() for _ in range(4000)]
        )
        low, high = np.percentile(naive, [2.5, 97.5])
        shortcut = proportion(140, 200, Bootstrap(resamples=4000, seed=3))
        assert shortcut.ci is not None
        assert shortcut.ci[0] == pytest.approx(low, abs=0.015)
        assert shortcut.ci[1] == pytest.approx(high, abs=0.015)

    def test_nothing_to_measure(self) -> None:
        """n = 0 has no value and no interval; a count outside 0..n is an error."""
        empty = proportion(0, 0, BOOT)
        assert (empty.value, empty.ci, empty.n) == (None, None, 0)
        with pytest.raises(ValueError, match="within"):
            proportion(3, 2, BOOT)

    def test_bootstrap_settings_are_checked(self) -> None:
        """Zero resamples or a confidence outside (0, 1) is refused."""
        with pytest.raises(ValueError, match="resamples"):
            Bootstrap(resamples=0)
        with pytest.raises(ValueError, match="confidence"):
            Bootstrap(confidence=1.0)


class TestCalibration:
    def test_reliability_table_and_ece_by_hand(self) -> None:
        """Two bins with a known gap each: ECE is their count-weighted mean gap."""
        confidence = [0.95, 0.95, 0.95, 0.95, 0.55, 0.55]
        correct = [True, True, True, False, True, False]
        ece, bins = calibration(confidence, correct, bins=10)
        assert len(bins) == 10
        high, middle = bins[9], bins[5]
        assert (high.count, high.accuracy) == (4, 0.75)
        assert high.mean_confidence == pytest.approx(0.95)
        assert (middle.count, middle.accuracy) == (2, 0.5)
        assert ece == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)
        assert bins[0].count == 0
        assert bins[0].accuracy is None

    def test_confidence_one_lands_in_the_last_bin(self) -> None:
        """1.0 is not a bin of its own."""
        ece, bins = calibration([1.0, 0.0], [True, True], bins=4)
        assert [b.count for b in bins] == [1, 0, 0, 1]
        assert ece == pytest.approx(0.5)
        assert calibration([], [], bins=4)[0] is None

    def test_values_on_an_edge_land_in_the_bin_that_starts_there(self) -> None:
        """0.29 with 100 bins is in [0.29, 0.30), although 0.29 * 100 is 28.999…."""
        values = [0.29, 0.57, 0.58, 0.3, 0.7]
        _, bins = calibration(values, [True] * len(values), bins=100)
        for value in values:
            (found,) = [b for b in bins if b.count and b.mean_confidence == value]
            assert found.lower <= value < found.upper


SHARED_PANDALM = Path(__file__).resolve().parents[2] / "shared/data/pandalm"


@pytest.mark.skipif(
    not (SHARED_PANDALM / "gpt-3.5-turbo-testset-v1.json").exists(),
    reason="needs ../shared/data/pandalm (the full PandaLM test set and gpt-3.5's verdicts)",
)
def test_reproduces_the_published_gpt35_agreement_on_pandalm() -> None:
    """gpt-3.5-turbo agrees with PandaLM's annotator majority 69.8% of 999 times, as published.

    Its 25 unparseable answers ("garbage") are failures: the report leaves
    them out of agreement (71.6% of 974) and counts them in the failure
    rate; as misses over all 999 they give the published figure.
    """
    humans = json.loads((SHARED_PANDALM / "testset-v1.json").read_text(encoding="utf-8"))
    machine = json.loads(
        (SHARED_PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text(encoding="utf-8")
    )
    answers = {int(item["idx"]): item["gpt_result"] for item in machine}
    codes = {"1": "a", "2": "b", "Tie": "tie", "0": "tie"}
    judge, gold = [], []
    for item in humans:
        answer = answers[item["idx"]]
        if answer in codes:
            votes = [item[f"annotator{i}"] for i in (1, 2, 3)]
            majority = [
                label for code, label in ((0, "tie"), (1, "a"), (2, "b")) if votes.count(code) >= 2
            ]
            judge.append(codes[answer])
            gold.append(majority[0] if majority else "tie")
    result = agreement(confusion(judge, gold), BOOT)["with_ties"]
    assert result.n == 974
    assert result.value is not None
    assert result.value == pytest.approx(0.7156, abs=5e-4)
    assert result.value * result.n / len(humans) == pytest.approx(0.698, abs=5e-4)
