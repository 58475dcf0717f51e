"""The trainer of the pure CTC recognizers (``models/crnn/``, ``models/mobilevit_ctc/``): LineRecognitionTrainer
(its optimizer and schedule options, NaN policy, component-loss logging, strict resume and best-model reload,
disk-full guard, JSON training arguments) with a CTC loss and generate-free evaluation.

Loss: HTR best practices divides the batch's summed CTC loss by its number of lines. Here the divisor is the
number of lines in the whole optimizer step (all gradient-accumulation micro-batches, all processes), Trainer's
``num_items_in_batch`` counted in lines instead of tokens, so ``gradient_accumulation_steps=2, batch=b`` trains
exactly as ``batch=2b``, also when the last micro-batch is short. The training-only auxiliary head (the CRNN's
CTC shortcut) is inside the model's loss; ``ctc_loss`` and ``aux_ctc_loss`` (each per line, unweighted) are
logged next to ``loss``.

Evaluation decodes greedily (``models.ctc_recognizer.line_ids``) and returns the raw reference texts as the
"labels" (code points, from ``data.collator.CtcCollator``), so ``compute_metrics`` reports ``cer``/``wer`` under the
same names as for TrOCR (early stopping, ``metric_for_best_model: cer``, test sets and degradations read them)
against the texts themselves.
"""

from __future__ import annotations

import torch

from ..data.collator import padded
from ..models.ctc_recognizer import line_ids
from .trainer import LineRecognitionTrainer


class CtcLineTrainer(LineRecognitionTrainer):
    recognition_term = "ctc"

    def count_items(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.tensor(labels.shape[0], device=labels.device)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """Lines in the optimizer step (Trainer counts label tokens), summed over processes as Trainer sums its
        tokens; ``_per_item`` undoes DDP's gradient average in the same case."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = torch.tensor(sum(len(batch["labels"]) for batch in batch_samples), device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def recognition_step(self, model, inputs, num_items_in_batch=None, **model_inputs):
        labels = inputs["labels"]
        outputs = model(pixel_values=inputs["pixel_values"], labels=labels, **model_inputs)
        self.record("ctc_loss", outputs.ctc_loss.detach())
        if outputs.aux_loss is not None:
            self.record("aux_ctc_loss", outputs.aux_loss.detach())
        # The model's loss is per line of this micro-batch; back to a sum, then per line of the whole step.
        return self._per_item(outputs.loss * labels.shape[0], labels, num_items_in_batch), outputs

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """``(loss, greedy line ids, reference code points)``; the eval loss is the main head's alone (eval mode
        runs no auxiliary head). Generation settings do not apply: there is nothing to generate."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            outputs = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
        loss = outputs.loss.detach()
        if prediction_loss_only:
            return loss, None, None
        charset = self.accelerator.unwrap_model(model).config.charset
        return loss, padded(line_ids(outputs.logits, charset)).to(loss.device), inputs["references"]
