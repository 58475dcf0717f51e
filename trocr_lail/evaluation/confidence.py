"""Does a line's confidence mean something? How it tracks line correctness on an evaluated split.

The confidence is ``LineReader.read_scored``'s: the geometric mean of the probabilities of the line's generated
tokens. A line counts as correct when its prediction equals the truth exactly. Expected calibration error (ECE):
lines in ``bins`` equal-width confidence bins, the mean of ``|share correct - mean confidence|`` weighted by each
bin's share of the lines. The CER of the most and of the least confident tenth of the lines (at least one line
each) shows whether sorting by confidence finds the bad lines.
"""

from __future__ import annotations

from .metrics import cer


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
