"""The interval math of the ablation report, against cases computed by hand."""

import numpy as np
import pytest

from trocr_lail.evaluation.metrics import cer, line_edits
from trocr_lail.experiments.uncertainty import NO_EFFECT, mean_std, paired_bootstrap


def test_line_edits_sum_to_the_corpus_cer():
    references, predictions = ["abc", "abc", "hello world", ""], ["abd", "", "helo wrld", "xy"]
    edits, lengths = line_edits(references, predictions)
    assert edits.tolist() == [1, 3, 2, 2] and lengths.tolist() == [3, 3, 11, 0]
    assert edits.sum() / lengths.sum() == pytest.approx(cer(references, predictions))


def test_two_lines_by_hand():
    """Line 1: the cell makes 1 edit more than the baseline on 2 characters; line 2: the same on 8. Point
    estimate 1/10 (a ratio of sums; the mean of line rates would be 0.25). Resampling 2 lines: {1,1} gives
    2/4 = 0.5 (probability 1/4), {1,2} 1/10 (1/2), {2,2} 0/16 (1/4), so the 2.5% and 97.5% percentiles are 0
    and 0.5: the interval touches 0, no measurable effect."""
    result = paired_bootstrap([3, 5], [2, 5], [2, 8])
    assert result.delta == pytest.approx(0.1)
    assert (result.low, result.high) == (0.0, 0.5)
    assert result.verdict == NO_EFFECT and (result.lines, result.seeds) == (2, 1)


def test_seeds_pool_per_line():
    """Two seeds of the two-line case: per line, edits add over seeds and so do reference lengths, which gives
    the same ratios as above whatever the split between seeds."""
    result = paired_bootstrap([[3, 5], [7, 1]], [[3, 5], [5, 1]], [2, 8])  # line 1: +0 and +2 edits
    assert result.delta == pytest.approx(2 / 20)
    assert (result.low, result.high) == (0.0, 0.5) and result.seeds == 2


def test_three_lines_interval_spans_the_extreme_lines():
    """Exact enumeration: each of the 27 equally likely resamples of 3 lines has probability 1/27 > 2.5%, so the
    95% interval runs from the resample of the best line alone (3 times) to that of the worst: here per-line
    differences -1/4, -2/4, -1/5, all below 0: a measurable gain."""
    result = paired_bootstrap([1, 0, 4], [2, 2, 5], [4, 4, 5])
    assert result.delta == pytest.approx(-4 / 13)
    assert (result.low, result.high) == pytest.approx((-0.5, -0.2))
    assert result.verdict == "lower CER (better)"


def test_identical_differences_give_a_point_interval_and_bad_shapes_fail():
    result = paired_bootstrap([[2, 2, 2]], [[1, 1, 1]], [10, 10, 10])
    assert (result.delta, result.low, result.high) == pytest.approx((0.1, 0.1, 0.1))
    assert result.verdict == "higher CER (worse)"
    with pytest.raises(ValueError, match="same seeds and lines"):
        paired_bootstrap([[1, 2]], [[1, 2], [3, 4]], [5, 5])


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, None)
    assert np.isclose(mean_std([0.2, 0.4])[1], np.std([0.2, 0.4], ddof=1))
