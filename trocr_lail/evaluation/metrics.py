"""Corpus-level character and word error rates, as the TrOCR paper reports them: total edit operations over
total reference characters (words), case and punctuation kept. Computed with jiwer, offline."""

from __future__ import annotations

import jiwer
import numpy as np


def _rate(output) -> float:
    edits = output.substitutions + output.deletions + output.insertions
    reference_length = output.substitutions + output.deletions + output.hits
    if reference_length == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / reference_length


def cer(references: list[str], predictions: list[str]) -> float:
    return _rate(jiwer.process_characters(list(references), list(predictions)))


def wer(references: list[str], predictions: list[str]) -> float:
    return _rate(jiwer.process_words(list(references), list(predictions)))


def line_cer(reference: str, prediction: str) -> float:
    return cer([reference], [prediction])


def line_edits(references: list[str], predictions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per line: character edit operations and reference length. Their sums' ratio is the corpus ``cer``, which
    is what a paired bootstrap over lines resamples."""
    edits, lengths = [], []
    for reference, prediction in zip(references, predictions, strict=True):
        if not reference:  # jiwer refuses empty references: every predicted character is an insertion
            edits.append(len(prediction))
            lengths.append(0)
            continue
        output = jiwer.process_characters(reference, prediction)
        edits.append(output.substitutions + output.deletions + output.insertions)
        lengths.append(output.substitutions + output.deletions + output.hits)
    return np.asarray(edits, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def decode(tokenizer, ids) -> list[str]:
    ids = np.where(np.asarray(ids) < 0, tokenizer.pad_token_id, ids)  # -100 padding is not a token
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def build_compute_metrics(tokenizer, reference_texts=None):
    """``compute_metrics`` for Seq2SeqTrainer with ``predict_with_generate``. ``reference_texts`` reads the texts
    from the label ids (default: decoding them as tokens; the CTC trainer passes the raw texts as code points,
    ``data.collator.texts_from_codes``)."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions = decode(tokenizer, eval_prediction.predictions)
        labels = eval_prediction.label_ids
        references = reference_texts(labels) if reference_texts else decode(tokenizer, labels)
        return {"cer": cer(references, predictions), "wer": wer(references, predictions)}

    return compute_metrics
