"""LAIL model: a VisionEncoderDecoderModel whose tapped encoder layers also feed a frozen causal LM.

For each tapped layer l, a connector maps its hidden states to a soft prefix in the LLM's embedding space; the
LLM then scores the transcription (its own tokenization, EOS-terminated) after that prefix. Prefix (and prompt)
positions are labelled -100. Gradients flow through the frozen LLM into the connectors and the encoder.

The LLM is deliberately *not* a submodule: it never appears in ``state_dict()``, ``parameters()``, optimizer
groups, checkpoints, DDP buckets or the export. Inference (``generate``) never touches it.

The class derives from ``CtcVisionEncoderDecoderModel``: with ``config.ctc`` set it also carries the training-only
CTC head of hybrid CTC/attention (``trocr_lail/models/ctc.py``), so the two auxiliary losses combine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

from ..models.ctc import CtcSeq2SeqLMOutput, CtcVisionEncoderDecoderModel
from .config import normalise_layers
from .connectors import build_connector


def text_positions(prefix_len: int, text_len: int, device) -> torch.Tensor:
    """Positions whose next-token logits score the text: the last prefix position up to the second-to-last token."""
    return torch.arange(prefix_len - 1, prefix_len + text_len - 1, device=device)


@dataclass
class LailSeq2SeqLMOutput(CtcSeq2SeqLMOutput):
    lail_losses: torch.FloatTensor | None = None  # (num_taps,): token-mean LLM loss per tapped layer


class LailVisionEncoderDecoderModel(CtcVisionEncoderDecoderModel):
    def __init__(self, config: VisionEncoderDecoderConfig, encoder=None, decoder=None):
        super().__init__(config=config, encoder=encoder, decoder=decoder)
        lail = getattr(config, "lail", None)
        if not lail:
            raise ValueError("config.lail is missing: build with LailVisionEncoderDecoderModel.from_plain")
        self.lail_layers = normalise_layers(lail["lail_layers"], config.encoder.num_hidden_layers)
        options = {"activation": lail["lail_connector_activation"], "hidden_dim": lail["lail_connector_hidden_dim"],
                   "num_blocks": lail["lail_downsample_blocks"], "num_queries": lail["lail_qformer_queries"],
                   "num_heads": lail["lail_qformer_heads"]}
        self.lail_connectors = nn.ModuleList(
            build_connector(lail["lail_connector"], config.encoder.hidden_size, lail["llm_hidden_size"], **options)
            for _ in self.lail_layers)
        self.llm_checkpointing = False

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

    @property
    def llm(self):
        return self.__dict__.get("_llm")

    def attach_llm(self, llm, checkpointing: bool = False) -> None:
        """Attach the frozen LLM. ``checkpointing`` recomputes its forward during backward instead of keeping its
        activations (the LLM stays in eval mode, so HF's own gradient checkpointing would not engage)."""
        llm.requires_grad_(False)
        llm.eval()
        object.__setattr__(self, "_llm", llm)  # bypass nn.Module registration on purpose (see module docstring)
        self.llm_checkpointing = checkpointing

    def forward(self, pixel_values=None, labels=None, llm_input_ids=None, llm_attention_mask=None, llm_labels=None,
                encoder_outputs=None, lail_only: bool = False, **kwargs):
        """Plain VisionEncoderDecoder forward, plus ``lail_losses`` when ``llm_*`` inputs are given.

        ``lail_only=True`` (the connector-only stage) runs the encoder without gradients and skips the decoder, so
        only the connectors learn. It goes through forward, not a side method, so DDP still syncs connector grads.
        """
        if lail_only:
            with torch.no_grad():
                hidden = self.encode_for_lail(pixel_values)
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

    def lail_losses(self, hidden_states, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the transcription after each tap's soft prefix, shape ``(num_taps,)``.

        All taps go through the LLM in one batched call (prefixes of equal length are stacked on the batch axis).
        LLM inputs may cover only the first rows of the batch (``lail_max_lines``); only those rows are scored.
        """
        rows = llm_input_ids.shape[0]
        prefixes = torch.cat([connector(hidden_states[layer][:rows])
                              for connector, layer in zip(self.lail_connectors, self.lail_layers)])
        return self.score_prefixes(prefixes, llm_input_ids, llm_attention_mask, llm_labels)

    def score_prefixes(self, prefixes, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the transcription after soft prefixes ``(groups * rows, prefix_len, llm_dim)``,
        one value per group of ``rows`` (the taps, in ``lail_losses``)."""
        llm = self._llm_on(prefixes.device)
        text = llm.get_input_embeddings()(llm_input_ids)
        (batch, text_len), prefix_len = llm_input_ids.shape, prefixes.shape[1]
        taps = prefixes.shape[0] // batch
        inputs = torch.cat([prefixes.to(text.dtype), text.repeat(taps, 1, 1)], dim=1)
        mask = torch.cat([llm_attention_mask.new_ones(taps * batch, prefix_len), llm_attention_mask.repeat(taps, 1)],
                         dim=1)
        # Only the positions that predict text tokens get logits: no vocab projection over the prefix, and no
        # slice of a larger (rows, positions, vocab) tensor, whose flatten would copy it.
        keep = text_positions(prefix_len, text_len, inputs.device)

        def score(embeds, attention):
            return llm(inputs_embeds=embeds, attention_mask=attention, logits_to_keep=keep).logits

        if self.llm_checkpointing and torch.is_grad_enabled():
            logits = torch.utils.checkpoint.checkpoint(score, inputs, mask, use_reentrant=False)
        else:
            logits = score(inputs, mask)
        return token_means(logits, llm_labels.repeat(taps, 1), taps)

    @torch.no_grad()
    def unconditional_loss(self, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the same transcription tokens with no soft prefix (scalar, no gradient).

        The text follows the LLM's BOS token (EOS where it has none), the way a document starts, so the first text
        token is predicted from one start position here and from the last prefix position in ``lail_losses``:
        the same tokens are scored, and ``unconditional - prefixed`` is what the prefix tells the LLM.
        """
        llm = self._llm_on(llm_input_ids.device)
        config = llm.config
        start = config.bos_token_id if config.bos_token_id is not None else config.eos_token_id
        rows = llm_input_ids.shape[0]
        start_embeds = llm.get_input_embeddings()(llm_input_ids.new_full((rows, 1), start))
        return self.score_prefixes(start_embeds, llm_input_ids, llm_attention_mask, llm_labels)[0]

    @torch.no_grad()
    def mismatched_lail_losses(self, hidden_states, llm_input_ids, llm_attention_mask, llm_labels):
        """``lail_losses`` with each line scored after the prefix of another line's image (rows rolled by one), or
        None for a single row: a prefix that helps as much here carries style, not this line's content."""
        rows = llm_input_ids.shape[0]
        if rows < 2:
            return None
        rolled = [states[:rows].roll(1, dims=0) for states in hidden_states]
        return self.lail_losses(rolled, llm_input_ids, llm_attention_mask, llm_labels)

    def _llm_on(self, device: torch.device):
        llm = self.llm
        if llm.get_input_embeddings().weight.device != device:
            llm.to(device)  # follow the model wherever Trainer / accelerate moved it
        return llm


def token_means(logits: torch.Tensor, targets: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored targets of each of ``groups`` equal blocks of rows."""
    per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                reduction="none").view(groups, -1)
    counts = targets.ne(-100).view(groups, -1).sum(dim=1).clamp(min=1)
    return per_token.sum(dim=1) / counts
