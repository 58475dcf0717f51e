"""Does a line's confidence mean something? How it tracks line correctness on an evaluated split.

The confidence is ``LineReader.read_scored``'s: the geometric mean of the probabilities of the line's generated
tokens. A line counts as correct when its prediction equals the truth exactly. Expected calibration error (ECE):
lines in ``bins`` equal-width confidence bins, the mean of ``|share correct - mean confidence|`` weighted by each
bin's share of the lines. The CER of the most and of the least confident tenth of the lines (at least one line
each) shows whether sorting by confidence finds the bad lines.

Temperature: the token probabilities can be taken from the score rows divided by a temperature ``T`` (``T > 1``
flattens them, lowering over-confident lines). :func:`fit_temperature` picks ``T`` from :data:`TEMPERATURES` by the
negative log-likelihood of line correctness under the line confidence (each line a right/wrong event predicted
with probability ``conf``), on validation lines. Line correctness because that is what the ECE and the report
judge, and it needs no alignment of tokens to the truth; the likelihood rather than the ECE itself because it is
a proper score that varies smoothly with ``T``, where the binned ECE of a few hundred lines is a noisy step
function of it.
"""

from __future__ import annotations

import math

from .metrics import cer

TEMPERATURES = tuple(2 ** (k / 8) for k in range(-16, 25))  # 0.25 to 8 in steps of 9%: finer is below the noise


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    total, error = len(confidences), 0.0
    for b in range(bins):
        members = [i for i, c in enumerate(confidences) if min(int(c * bins), bins - 1) == b]
        if members:
            share = sum(correct[i] for i in members) / len(members)
            mean = sum(confidences[i] for i in members) / len(members)
            error += abs(share - mean) * len(members) / total
    return error


def calibration(confidences: list[float], references: list[str], predictions: list[str]) -> dict[str, float]:
    """Flat metrics for the report table (names ending in ``cer`` are shown as percentages)."""
    if not confidences:
        return {}
    order = sorted(range(len(confidences)), key=lambda i: confidences[i])
    tenth = max(1, len(order) // 10)

    def cer_of(rows):
        return cer([references[i] for i in rows], [predictions[i] for i in rows])

    correct = [r == p for r, p in zip(references, predictions)]
    return {"mean_confidence": sum(confidences) / len(confidences),
            "confidence_ece": expected_calibration_error(confidences, correct),
            "most_confident_tenth_cer": cer_of(order[-tenth:]), "least_confident_tenth_cer": cer_of(order[:tenth])}


def correctness_nll(confidences: list[float], correct: list[bool]) -> float:
    """Mean negative log-likelihood of which lines are right, each predicted right with its confidence."""
    def likelihood(conf, right):
        return min(max(conf if right else 1 - conf, 1e-12), 1.0)

    return -sum(math.log(likelihood(c, y)) for c, y in zip(confidences, correct)) / len(confidences)


def fit_temperature(confidences_at: list[list[float]], correct: list[bool],
                    temperatures: tuple[float, ...] = TEMPERATURES) -> float:
    """The temperature whose line confidences (``confidences_at[line][j]``: at ``temperatures[j]``) predict line
    correctness best; 1.0 when all lines are right or all wrong (the best fit would then be an extreme that says
    only that this sample had no errors, or no successes)."""
    if all(correct) or not any(correct):
        return 1.0
    losses = [correctness_nll([line[j] for line in confidences_at], correct) for j in range(len(temperatures))]
    return temperatures[min(range(len(losses)), key=losses.__getitem__)]
