"""How sure is a CER difference? Mean and spread over seeds, and a paired bootstrap over test lines.

Two cells of an ablation read the *same* test lines, so their difference is measured line by line: the paired
bootstrap resamples test lines (with replacement), and each resampled line carries both cells' errors on it
under every seed (pooled over seeds: a line's edits are summed over the seeds, its reference length counted once
per seed). The statistic is the corpus CER difference, ``sum(edits_a - edits_b) / sum(lengths)``, the same
ratio of sums as ``metrics.cer`` (not a mean of per-line rates). The interval is the percentile interval of the
resampled differences; one that contains 0 is "no measurable effect".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_EFFECT = "no measurable effect"


@dataclass
class Difference:
    delta: float  # corpus CER of a minus corpus CER of b, pooled over seeds
    low: float
    high: float
    lines: int
    seeds: int

    @property
    def verdict(self) -> str:
        if self.low <= 0.0 <= self.high:
            return NO_EFFECT
        return "lower CER (better)" if self.high < 0 else "higher CER (worse)"


def bootstrap_ratio(numerators, denominators, num_samples: int = 10000, level: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``sum(numerators) / sum(denominators)`` over lines resampled with replacement (one
    value of each per line): a corpus CER (edits / characters) or a pooled CER difference."""
    numerators, denominators = np.asarray(numerators, float), np.asarray(denominators, float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(numerators), size=(num_samples, len(numerators)))
    totals = denominators[draws].sum(axis=1)
    resampled = numerators[draws].sum(axis=1) / np.where(totals > 0, totals, 1)
    tail = (1 - level) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return float(low), float(high)


def paired_bootstrap(edits_a, edits_b, lengths, num_samples: int = 10000, level: float = 0.95,
                     seed: int = 0) -> Difference:
    """``edits_a``, ``edits_b``: ``(seeds, lines)`` (or ``(lines,)``) character edits of two cells on the same
    lines, seed ``s`` of one paired with seed ``s`` of the other; ``lengths``: reference characters per line."""
    edits_a, edits_b = np.atleast_2d(np.asarray(edits_a, float)), np.atleast_2d(np.asarray(edits_b, float))
    lengths = np.asarray(lengths, float)
    if edits_a.shape != edits_b.shape or edits_a.shape[1] != lengths.shape[0]:
        raise ValueError(f"paired bootstrap needs the same seeds and lines: {edits_a.shape}, {edits_b.shape}, "
                         f"{lengths.shape[0]} lines")
    seeds, lines = edits_a.shape
    diff = (edits_a - edits_b).sum(axis=0)  # per line, summed over seeds
    weight = seeds * lengths
    if weight.sum() == 0:
        raise ValueError("paired bootstrap: the test lines have no reference characters")
    low, high = bootstrap_ratio(diff, weight, num_samples, level, seed)
    return Difference(float(diff.sum() / weight.sum()), float(low), float(high), lines, seeds)


def mean_std(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``ddof=1``; None for a single value)."""
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None
