"""Everything a run measures on its test lines after the clean test split's ``trainer.predict``: per-line
predictions (``<set>_predictions.jsonl``, what the ablation's paired bootstrap resamples), the greedy CTC branch's
CER (``test_ctc_cer``) when the model has a CTC head, and the same for each degraded copy of the test split
(``test_<degradation>_cer``, ``test_<degradation>_ctc_cer``; see ``degradations.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..models.ctc import ctc_read
from .metrics import cer, decode, wer


def predictions_file(output_dir: str | Path, test_set: str) -> Path:
    return Path(output_dir) / f"{test_set}_predictions.jsonl"


def evaluate_test_sets(trainer, splits, data_args, tokenizer, clean_output) -> dict:
    """Metrics to add to the clean test split's (which ``clean_output`` holds): CTC CER/WER of every test set and
    the attention branch's metrics of every degraded set. Writes each set's per-line predictions."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    has_ctc = getattr(model, "ctc_head", None) is not None
    test = data_args.test_split
    sets = [(test, clean_output)]
    for name in getattr(data_args, "test_degradations", None) or []:
        split = f"{test}_{name}"
        sets.append((split, trainer.predict(splits[split], metric_key_prefix=split)))
    metrics = {}
    for split, output in sets:
        references = list(splits[split]["text"])
        predictions = decode(tokenizer, output.predictions)
        if split != test:
            metrics.update(output.metrics)
        rows = [{"text": text, "prediction": prediction} for text, prediction in zip(references, predictions)]
        if has_ctc:
            ctc = ctc_read(model, splits[split], trainer.data_collator, tokenizer,
                           trainer.args.per_device_eval_batch_size)
            metrics.update({f"{split}_ctc_cer": cer(references, ctc), f"{split}_ctc_wer": wer(references, ctc)})
            for row, text in zip(rows, ctc):
                row["ctc_prediction"] = text
        if trainer.is_world_process_zero():
            with predictions_file(trainer.args.output_dir, split).open("w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return metrics
