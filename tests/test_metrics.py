import numpy as np
import pytest
from transformers import EvalPrediction

from trocr_lail.evaluation.metrics import build_compute_metrics, cer, line_cer, wer


def test_cer_is_corpus_level_total_edits_over_total_reference_chars():
    # "abc"->"abd": 1 substitution; "de"->"d": 1 deletion; 5 reference characters.
    assert cer(["abc", "de"], ["abd", "d"]) == pytest.approx(2 / 5)
    # A mean of per-line rates would give 0.5 here; the corpus rate weights lines by their length.
    assert cer(["a", "abcdefghij"], ["b", "abcdefghij"]) == pytest.approx(1 / 11)


def test_cer_keeps_case_and_punctuation():
    assert cer(["Hello, world."], ["hello world"]) == pytest.approx(3 / 13)


def test_insertions_count_and_can_exceed_one():
    assert cer(["ab"], ["abxyz"]) == pytest.approx(3 / 2)


def test_wer_counts_words_with_punctuation_attached():
    assert wer(["the cat sat.", "on the mat"], ["the cat sat", "on a mat"]) == pytest.approx(2 / 6)


def test_line_cer():
    assert line_cer("kitten", "sitting") == pytest.approx(3 / 6)


def test_compute_metrics_decodes_ids_and_ignores_label_padding(tiny_processor):
    tok = tiny_processor.tokenizer

    def ids(text, width):
        row = tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]
        return row + [-100] * (width - len(row))

    labels = np.array([ids("Abc", 6), ids("de", 6)])
    predictions = np.array([ids("Abd", 6), ids("d", 6)])
    metrics = build_compute_metrics(tok)(EvalPrediction(predictions=predictions, label_ids=labels))
    assert metrics["cer"] == pytest.approx(2 / 5)
    assert metrics["wer"] == pytest.approx(2 / 2)
