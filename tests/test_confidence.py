"""Line confidence against correctness: expected calibration error and the CER of the most / least confident
tenths, on hand-made lines whose answers are worked out here."""

import pytest

from trocr_lail.evaluation.confidence import calibration, expected_calibration_error


def test_expected_calibration_error_by_hand():
    # bin 0.9: two lines, one right (share 0.5, mean conf 0.9); bin 0.2: one wrong line (share 0, conf 0.2)
    assert expected_calibration_error([0.9, 0.9, 0.2], [True, False, False]) == pytest.approx(
        2 / 3 * 0.4 + 1 / 3 * 0.2)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0  # confidence 1.0 falls in the top bin


def test_confident_tenths_find_the_right_and_the_wrong_lines():
    references = [f"line {i}" for i in range(20)]
    predictions = list(references)
    predictions[0] = predictions[1] = "xxxx xx"  # the two least confident lines are the wrong ones
    confidences = [0.1, 0.2] + [0.9] * 18
    metrics = calibration(confidences, references, predictions)
    assert metrics["least_confident_tenth_cer"] > 0.5 and metrics["most_confident_tenth_cer"] == 0
    assert metrics["mean_confidence"] == pytest.approx(sum(confidences) / 20)


def test_report_lists_the_least_confident_lines(tmp_path):
    from PIL import Image

    from trocr_lail.evaluation.report import write_report

    images = [Image.new("L", (40, 10), 255 - i * 50) for i in range(3)]
    md, page = write_report(tmp_path, "Eval", {"cer": 0.25}, images, ["a", "b", "c"], ["a", "x", "c"], num_worst=2,
                            confidences=[0.9, 0.5, 0.1])
    text = md.read_text()
    least = text.split("## The 2 least confident lines")[1].split("##")[0]
    assert least.index("images/least_confident_001.png") < least.index("images/least_confident_002.png")
    assert "| 0.100 |" in least.splitlines()[4] and "| 0.500 |" in least.splitlines()[5]  # row 3, then row 2
    assert (tmp_path / "images" / "least_confident_002.png").is_file() and "least_confident_001" in page.read_text()
    plain = write_report(tmp_path / "plain", "Eval", {"cer": 0.25}, images, ["a", "b", "c"], ["a", "x", "c"])[0]
    assert "least confident" not in plain.read_text()  # no confidences, no section
