"""LAIL model: a VisionEncoderDecoderModel whose tapped encoder layers also feed a frozen causal LM.

For each tapped layer l, a connector maps its hidden states to a soft prefix in the LLM's embedding space; the
LLM then scores the transcription (its own tokenization, EOS-terminated) after that prefix. Prefix (and prompt)
positions are labelled -100. Gradients flow through the frozen LLM into the connectors and the encoder.
Connectors, LLM and scoring are shared with the CTC recognizers' LAIL models (``taps.py``); the LLM is never a
submodule, and inference (``generate``) never touches it.

The class derives from ``CtcVisionEncoderDecoderModel``: with ``config.ctc`` set it also carries the training-only
CTC head of hybrid CTC/attention (``trocr_lail/models/ctc.py``), so the two auxiliary losses combine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

from ..models.ctc import CtcSeq2SeqLMOutput, CtcVisionEncoderDecoderModel
from .taps import LailTaps


@dataclass
class LailSeq2SeqLMOutput(CtcSeq2SeqLMOutput):
    lail_losses: torch.FloatTensor | None = None  # (num_taps,): token-mean LLM loss per tapped layer


class LailVisionEncoderDecoderModel(LailTaps, CtcVisionEncoderDecoderModel):
    def __init__(self, config: VisionEncoderDecoderConfig, encoder=None, decoder=None):
        super().__init__(config=config, encoder=encoder, decoder=decoder)
        self.init_lail(config)

    @classmethod
    def from_plain(cls, model: VisionEncoderDecoderModel, lail_config: dict, llm_hidden_size: int):
        """Wrap a loaded plain model's encoder and decoder (no copy) and add fresh connectors. A CTC head the
        model already has (``CtcVisionEncoderDecoderModel.from_plain``) is kept, not re-initialised."""
        config = model.config
        config.lail = {**lail_config, "llm_hidden_size": llm_hidden_size}
        lail_model = cls(config=config, encoder=model.encoder, decoder=model.decoder)
        if getattr(model, "enc_to_dec_proj", None) is not None:  # exists only when widths differ
            lail_model.enc_to_dec_proj = model.enc_to_dec_proj
        if getattr(model, "ctc_head", None) is not None:
            lail_model.ctc_head = model.ctc_head
        lail_model.generation_config = model.generation_config
        return lail_model

    def forward(self, pixel_values=None, labels=None, llm_input_ids=None, llm_attention_mask=None, llm_labels=None,
                encoder_outputs=None, lail_only: bool = False, **kwargs):
        """Plain VisionEncoderDecoder forward, plus ``lail_losses`` when ``llm_*`` inputs are given.

        ``lail_only=True`` (the connector-only stage) runs the encoder frozen (:meth:`frozen_taps`) and skips the
        decoder, so only the connectors learn. It goes through forward, not a side method, so DDP still syncs
        connector grads.
        """
        if lail_only:
            hidden = self.frozen_taps(pixel_values)
            # The hidden states go out too, so the trainer scores the another-line control on this very batch.
            return LailSeq2SeqLMOutput(lail_losses=self.lail_losses(hidden, llm_input_ids, llm_attention_mask,
                                                                    llm_labels), encoder_hidden_states=hidden)
        if llm_input_ids is None or self.llm is None:
            return super().forward(pixel_values=pixel_values, labels=labels, encoder_outputs=encoder_outputs,
                                   **kwargs)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
        outputs = super().forward(encoder_outputs=encoder_outputs, labels=labels, **kwargs)
        lail_losses = self.lail_losses(encoder_outputs.hidden_states, llm_input_ids, llm_attention_mask, llm_labels)
        return LailSeq2SeqLMOutput(**outputs, lail_losses=lail_losses)

    def encode_for_lail(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.encoder(pixel_values=pixel_values, output_hidden_states=True, return_dict=True).hidden_states

    def lail_hidden_states(self, outputs) -> tuple[torch.Tensor, ...]:
        return outputs.encoder_hidden_states
