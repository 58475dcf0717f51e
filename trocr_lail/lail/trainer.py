"""LAIL trainer: total loss = L_s2s + alpha(t) * sum_l lambda_l * L_CLM,l (+ ctc_weight * L_CTC with a CTC head).

Component losses are buffered per step and merged into the logs, averaged over the logging interval and across
processes (the trl pattern). Evaluation records the LAIL loss too: with ``predict_with_generate``,
``Seq2SeqTrainer.prediction_step`` never calls ``compute_loss``, so ``prediction_step`` computes it itself.
"""

from __future__ import annotations

import torch

from ..trainer import LineRecognitionTrainer
from .config import LailArguments, alpha_at

LLM_KEYS = ("llm_input_ids", "llm_attention_mask", "llm_labels")


class LailTrainer(LineRecognitionTrainer):
    def __init__(self, *args, lail_args: LailArguments, **kwargs):
        super().__init__(*args, **kwargs)
        self.lail_args = lail_args
        self.layer_weights = torch.tensor(lail_args.layer_weights())

    def alpha(self) -> float:
        return alpha_at(self.lail_args, self.state.global_step, self.state.max_steps)

    def connector_only(self) -> bool:
        return self.state.global_step < self.lail_args.lail_connector_only_steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        llm_inputs = {key: inputs[key] for key in LLM_KEYS}
        scale = 1.0 / self.accumulation_steps() if num_items_in_batch is not None else 1.0
        if model.training and self.connector_only():
            outputs = model(pixel_values=inputs["pixel_values"], lail_only=True, **llm_inputs)
            s2s = None
        else:
            use_lail = not model.training or self.state.global_step % self.lail_args.lail_every_k_steps == 0
            outputs = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"],
                            **(llm_inputs if use_lail else {}))
            s2s = self.recognition_loss(outputs, inputs["labels"], num_items_in_batch)  # + CTC if enabled
        lail_losses = getattr(outputs, "lail_losses", None)
        alpha = self.alpha()
        loss = s2s if s2s is not None else 0.0
        if lail_losses is not None:
            weighted = (self.layer_weights.to(lail_losses.device) * lail_losses).sum()
            # Per-micro-batch means: Trainer does not divide this loss by the accumulation steps, so we do.
            loss = loss + alpha * weighted * scale
        self._record("train" if model.training else "eval", lail_losses, alpha)
        return (loss, outputs) if return_outputs else loss

    def _record(self, mode, lail_losses, alpha) -> None:
        # s2s_loss (and ctc_loss) are recorded by LineRecognitionTrainer.recognition_loss.
        metrics = self._metrics[mode]
        if lail_losses is not None:
            values = lail_losses.detach().float().cpu()
            for layer, value in zip(self.lail_args.lail_layers, values):
                metrics[f"lail_loss_layer_{layer}"].append(value.item())
            metrics["lail_loss"].append((self.layer_weights * values).sum().item())
        metrics["lail_alpha"].append(alpha)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        inputs = dict(inputs)
        llm_inputs = {key: inputs.pop(key) for key in LLM_KEYS if key in inputs}
        if llm_inputs:
            unwrapped = self.accelerator.unwrap_model(model)
            with torch.no_grad():
                hidden = unwrapped.encode_for_lail(inputs["pixel_values"])
                self._record("eval", unwrapped.lail_losses(hidden, **llm_inputs), self.alpha())
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
