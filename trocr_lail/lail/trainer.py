"""LAIL trainers: total loss = L_rec + alpha(t) * sum_l lambda_l * L_CLM,l, where L_rec is the recognizer's own
training loss: TrOCR's seq2seq loss (+ ctc_weight * L_CTC with a CTC head), ``LailTrainer``; a pure CTC
recognizer's CTC loss (+ the CRNN's shortcut), ``CtcLailTrainer``. Both are :class:`LailTraining` mixed into the
recognizer's trainer, which keeps its own loss normalisation, evaluation and decoding.

Component losses are buffered per step and merged into the logs, averaged over the logging interval and across
processes (the trl pattern). Evaluation records the LAIL loss too: with ``predict_with_generate``,
``Seq2SeqTrainer.prediction_step`` never calls ``compute_loss``, so ``prediction_step`` computes it itself.

Diagnostics (is the prefix informative, and how hard does LAIL pull on the encoder?), train and eval:

- ``lail_uncond_loss``: the frozen LLM's loss on the same transcription tokens with no prefix (a forward pass
  without gradient on every LAIL step, cheaper than one tap's prefixed forward and backward).
- ``lail_prefix_info_layer_<l>`` = ``lail_uncond_loss - lail_loss_layer_<l>``, in nats per token: what the tap's
  prefix tells the LLM about the line. About zero for an uninformative prefix, negative when it only disturbs.
- ``lail_prefix_info_mismatched_layer_<l>``: the same with each line after another line's prefix (every LAIL
  step, connector-only ones included, or every ``lail_control_every_k_steps``-th; and eval: one more forward
  without gradient, on the same batch and hidden states as the line's own prefix). Line-specific information is
  ``prefix_info - prefix_info_mismatched``; a prefix that helps as much for the wrong line tells the LLM only
  "English prose", not what this line says.
- ``lail_grad_ratio_layer_<l>`` (training, the first LAIL step of each logging interval): the norm of the gradient
  the LAIL term (``alpha`` times the weighted sum over all taps, as it enters the loss) sends into the tapped
  ``hidden_states[l]``, over the norm of the recognition loss's gradient (L_rec) there; not logged for a tap off
  the recognition path (MobileViT-CTC's pooled stage maps, which the head does not read).
"""

from __future__ import annotations

import logging

import torch

from ..training.ctc_trainer import CtcLineTrainer
from ..training.trainer import LineRecognitionTrainer
from .config import LailArguments, alpha_at
from .llm import prepare_llm_for_deepspeed

logger = logging.getLogger("trocr_lail")

LLM_KEYS = ("llm_input_ids", "llm_attention_mask", "llm_labels")


class LailTraining:
    """The LAIL term and its diagnostics, on top of a ``LineRecognitionTrainer`` (mixed in before it)."""

    def __init__(self, *args, lail_args: LailArguments, **kwargs):
        super().__init__(*args, **kwargs)
        self.lail_args = lail_args
        self.layer_weights = torch.tensor(lail_args.layer_weights())
        # The indices actually tapped (normalised by the model), so `lail_loss_layer_2` names hidden_states[2].
        self.tapped_layers = list(getattr(self.accelerator.unwrap_model(self.model), "lail_layers",
                                          lail_args.lail_layers))
        self._gradient_interval = -1  # the logging interval whose gradient ratios were recorded last
        llm = getattr(self.model, "llm", None)
        if llm is not None:  # after super().__init__: the accelerator (and its DeepSpeed config) exists only now
            self.model.attach_llm(prepare_llm_for_deepspeed(llm, self.accelerator), self.model.llm_checkpointing)

    def _lail_model(self):
        return self.accelerator.unwrap_model(self.model)

    def alpha(self) -> float:
        return alpha_at(self.lail_args, self.state.global_step, self.state.max_steps)

    def connector_only(self) -> bool:
        return self.state.global_step < self.lail_args.lail_connector_only_steps

    def llm_inputs(self, inputs: dict) -> dict:
        # The first lail_max_lines rows only: the model scores hidden states of as many rows as it gets LLM inputs.
        return {key: inputs[key][: self.lail_args.lail_max_lines] for key in LLM_KEYS if key in inputs}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        llm_inputs = self.llm_inputs(inputs)
        if model.training and self.connector_only():
            outputs = model(pixel_values=inputs["pixel_values"], lail_only=True, **llm_inputs)
            recognition = None
        else:
            use_lail = not model.training or self.state.global_step % self.lail_args.lail_every_k_steps == 0
            recognition, outputs = self.recognition_step(model, inputs, num_items_in_batch,
                                                         **(llm_inputs if use_lail else {}))
        lail_losses = getattr(outputs, "lail_losses", None)
        taps = {} if lail_losses is None else {f"lail_layer_{layer}": value
                                                for layer, value in zip(self.tapped_layers, lail_losses)}
        self.check_finite(model, **{self.recognition_term: recognition}, **taps)
        alpha = self.alpha()
        loss = recognition if recognition is not None else 0.0
        uncond = None
        if lail_losses is not None:
            weighted = (self.layer_weights.to(lail_losses.device) * lail_losses).sum()
            lail_term = alpha * self.token_normalised(weighted, llm_inputs["llm_labels"], model.training)
            loss = loss + lail_term
            uncond = self._lail_model().unconditional_loss(**llm_inputs)
            if model.training and self.state.global_step % self.lail_args.lail_control_every_k_steps == 0:
                # a paired control: the same batch as the prefixed loss, in both training modes
                self._record_mismatched("train", self._lail_model().lail_hidden_states(outputs), llm_inputs, uncond)
            if model.training and recognition is not None:
                if self._first_lail_step_of_interval():
                    self._record_gradient_ratios(outputs, recognition, lail_term)
        self._record("train" if model.training else "eval", lail_losses, alpha, uncond)
        return (loss, outputs) if return_outputs else loss

    def _first_lail_step_of_interval(self) -> bool:
        interval = self.state.global_step // max(1, int(self.args.logging_steps or 1))
        if interval == self._gradient_interval:
            return False
        self._gradient_interval = interval
        return True

    def _record_gradient_ratios(self, outputs, recognition_loss, lail_term) -> None:
        """Norms of the LAIL and recognition gradients reaching each tapped hidden-state tensor (two extra backward
        passes to those tensors only, so no parameter gradient is touched)."""
        model = self._lail_model()
        states = model.lail_hidden_states(outputs)
        hidden = [states[index] for index in model.lail_layers]
        try:
            lail_grads = torch.autograd.grad(lail_term, hidden, retain_graph=True, allow_unused=True)
            recognition_grads = torch.autograd.grad(recognition_loss, hidden, retain_graph=True, allow_unused=True)
        except RuntimeError as error:  # e.g. reentrant gradient checkpointing, which refuses autograd.grad
            self.record("lail_grad_ratio_unavailable", 1.0)
            if self._gradient_interval == 0:
                logger.warning("lail_grad_ratio_layer_* not computed: %s", error)
            return
        for layer, lail_grad, recognition_grad in zip(self.tapped_layers, lail_grads, recognition_grads):
            if recognition_grad is None:
                # A tap off the recognition path (MobileViT's pooled stage maps: the head reads the last map only)
                # has no recognition gradient to compare with.
                continue
            lail_norm = 0.0 if lail_grad is None else lail_grad.float().norm().item()
            recognition_norm = recognition_grad.float().norm().item()
            self.record(f"lail_grad_ratio_layer_{layer}",
                        lail_norm / recognition_norm if recognition_norm > 0 else float("inf"), "train")

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Also count the LLM's target tokens in the whole optimizer step (micro-batches and processes), so the LAIL
        term is normalised like the s2s loss: DDP and gradient accumulation give the full-batch gradient even when
        line lengths differ between micro-batches or processes."""
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._llm_items = None
        if num_items is not None and batch_samples and "llm_labels" in batch_samples[0]:
            count = sum(self.llm_inputs(batch)["llm_labels"].ne(-100).sum() for batch in batch_samples).to(device)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                count = self.accelerator.gather(count).sum()
            self._llm_items = count
        return batch_samples, num_items

    def token_normalised(self, mean_loss: torch.Tensor, llm_labels: torch.Tensor, training: bool) -> torch.Tensor:
        """``mean_loss`` is a token mean over this micro-batch; turn it into this micro-batch's share of the token
        mean over the optimizer step (Trainer neither divides by accumulation steps nor undoes DDP's average)."""
        total = getattr(self, "_llm_items", None)
        if not training or total is None:
            return mean_loss
        share = mean_loss * llm_labels.ne(-100).sum() / total.clamp(min=1)
        if self.args.average_tokens_across_devices:
            share = share * self.accelerator.num_processes
        return share

    def _record_mismatched(self, mode, hidden_states, llm_inputs, uncond) -> None:
        mismatched = self._lail_model().mismatched_lail_losses(hidden_states, **llm_inputs)
        if mismatched is not None:
            for layer, value in zip(self.tapped_layers, (uncond - mismatched).float().cpu()):
                self.record(f"lail_prefix_info_mismatched_layer_{layer}", value.item(), mode)

    def _record(self, mode, lail_losses, alpha, uncond=None) -> None:
        # The recognition loss's components (s2s_loss, ctc_loss, ...) are recorded by the recognizer's trainer.
        if lail_losses is not None:
            values = lail_losses.detach().float().cpu()
            uncond = None if uncond is None else uncond.float().item()
            for layer, value in zip(self.tapped_layers, values):
                self.record(f"lail_loss_layer_{layer}", value.item(), mode)
                if uncond is not None:
                    self.record(f"lail_prefix_info_layer_{layer}", uncond - value.item(), mode)
            self.record("lail_loss", (self.layer_weights * values).sum().item(), mode)
            if uncond is not None:
                self.record("lail_uncond_loss", uncond, mode)
        self.record("lail_alpha", alpha, mode)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        llm_inputs = self.llm_inputs(inputs)
        inputs = {key: value for key, value in inputs.items() if key not in LLM_KEYS}
        if llm_inputs:
            unwrapped = self.accelerator.unwrap_model(model)
            with torch.no_grad():
                hidden = unwrapped.encode_for_lail(inputs["pixel_values"])
                uncond = unwrapped.unconditional_loss(**llm_inputs)
                self._record("eval", unwrapped.lail_losses(hidden, **llm_inputs), self.alpha(), uncond)
                self._record_mismatched("eval", hidden, llm_inputs, uncond)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)


class LailTrainer(LailTraining, LineRecognitionTrainer):
    """LAIL on a TrOCR (``LailVisionEncoderDecoderModel``)."""


class CtcLailTrainer(LailTraining, CtcLineTrainer):
    """LAIL on a pure CTC recognizer (``ctc_modeling.LailCtcRecognizer``)."""
