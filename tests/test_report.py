"""Evaluation report: confusion counting, worst lines, the written Markdown/HTML."""

from PIL import Image

from trocr_lail.evaluation.report import char_confusions, worst_lines, write_report


def test_char_confusions_follow_the_cer_alignment():
    counts = char_confusions(["hello world", "abc", "ab"], ["helo wrld!", "xbc", "ab"])
    assert counts[("l", "")] == 1 and counts[("o", "")] == 1  # two deletions
    assert counts[("", "!")] == 1  # one insertion
    assert counts[("a", "x")] == 1  # one substitution
    assert sum(counts.values()) == 4  # = total character edits, the CER numerator
    assert char_confusions(["", ""], ["", ""]) == {}


def test_worst_lines_order_and_empty_reference():
    refs, preds = ["abcd", "abcd", "", "ab"], ["abcd", "abxx", "zz", "b"]
    assert worst_lines(refs, preds, 3) == [(2, 1.0), (1, 0.5), (3, 0.5)]


def test_write_report(tmp_path):
    images = [Image.new("L", (40, 10), 255 - i * 50) for i in range(3)]
    md, page = write_report(tmp_path, "Eval", {"cer": 0.25, "lines": 3}, images, ["a b", "c|d", "ef"],
                            ["a b", "c|x", "e"], num_worst=2)
    text = md.read_text()
    assert "| cer | 25.00% |" in text and "| lines | 3 |" in text
    assert "c\\|d" in text  # table cells are escaped
    assert "images/worst_001.png" in text and (tmp_path / "images" / "worst_002.png").is_file()
    assert not (tmp_path / "images" / "worst_003.png").exists()
    assert "| `d` | `x` | 1 |" in text and "| `f` | `∅` | 1 |" in text
    html = page.read_text()
    assert "<del>d</del><ins>x</ins>" in html and "<img src='images/worst_001.png'" in html
