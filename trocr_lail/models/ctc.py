"""Hybrid CTC/attention training (Kim et al., 2017; Watanabe et al., 2017): an auxiliary CTC head on the last
encoder layer, trained with ``loss = L_s2s + ctc_weight * L_CTC``.

A from-scratch decoder first learns a language model of the transcriptions and only much later *where* in the
image to look (``docs/quickstart-learning.md``). CTC forces the encoder to emit the characters in reading order
at the image columns that show them, which makes the cross-attention alignment easy to find: on the quickstart
grounding starts after ~1000 steps instead of ~5000.

The head is training-only, like LAIL's connectors: it is a submodule (so it is optimised, checkpointed and
restored by a strict resume), its settings live in ``config.ctc``, and ``export.plain_model`` drops both, so the
export is a plain ``VisionEncoderDecoderModel`` and inference (``generate``) never uses it.

CTC frames: the encoder's patch tokens are arranged as the image's (rows x columns) patch grid and averaged over
rows, so there is one position per patch column, read left to right (a line-shaped input such as the quickstart's
32x4 patches on 32x256 pixels has one row: 64 positions). Each position emits ``upsample`` frames (the head
predicts ``upsample`` distributions per position), for encoders with fewer columns than characters per line. The
blank is the tokenizer's padding token, which never occurs in a target.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel
from transformers.modeling_outputs import Seq2SeqLMOutput

from .ctc_decoding import ctc_greedy_decode

logger = logging.getLogger("trocr_lail")


@dataclass
class CtcSeq2SeqLMOutput(Seq2SeqLMOutput):
    ctc_logits: torch.FloatTensor | None = None  # (batch, frames, vocab): the auxiliary head's, training only


def patch_grid(encoder_config) -> tuple[int, int]:
    """(rows, columns) of the encoder's patch grid, from a ViT-style config (``image_size``, ``patch_size``)."""
    def pair(value):
        return tuple(value) if isinstance(value, (list, tuple)) else (value, value)

    (height, width), (patch_h, patch_w) = pair(encoder_config.image_size), pair(encoder_config.patch_size)
    return height // patch_h, width // patch_w


class CtcVisionEncoderDecoderModel(VisionEncoderDecoderModel):
    """A ``VisionEncoderDecoderModel`` with an optional CTC head (built when ``config.ctc`` is set).

    ``forward`` with ``labels`` also returns ``ctc_logits``; without labels (``generate``) it is the plain model.
    ``LailVisionEncoderDecoderModel`` derives from this class, so LAIL and CTC combine.
    """

    def __init__(self, config: VisionEncoderDecoderConfig, encoder=None, decoder=None):
        super().__init__(config=config, encoder=encoder, decoder=decoder)
        ctc = getattr(config, "ctc", None)
        self.ctc_head = None
        if ctc:
            rows, columns = patch_grid(config.encoder)
            self.ctc_grid = (rows, columns)
            self.ctc_upsample = int(ctc["upsample"])
            self.ctc_head = nn.Linear(config.encoder.hidden_size, config.decoder.vocab_size * self.ctc_upsample)
        self.guide_attention = False  # training only (guided_attention.py); never saved in the config

    def enable_guided_attention(self) -> None:
        """Return the decoder's cross-attention weights from training forwards (eager attention: SDPA gives none)."""
        if self.ctc_head is None:
            raise ValueError("ctc_guided_attention needs the CTC head (ctc_weight > 0)")
        self.decoder.set_attn_implementation("eager")
        self.guide_attention = True

    @classmethod
    def from_plain(cls, model: VisionEncoderDecoderModel, upsample: int = 1):
        """Wrap a plain model's encoder and decoder (no copy) and add a fresh CTC head."""
        if upsample < 1:
            raise ValueError("ctc_upsample must be >= 1")
        config = model.config
        config.ctc = {"upsample": upsample}
        wrapped = cls(config=config, encoder=model.encoder, decoder=model.decoder)
        if getattr(model, "enc_to_dec_proj", None) is not None:  # exists only when widths differ
            wrapped.enc_to_dec_proj = model.enc_to_dec_proj
        wrapped.generation_config = model.generation_config
        return wrapped

    @classmethod
    def with_head(cls, model: VisionEncoderDecoderModel, upsample: int, source: str):
        """``model`` with a CTC head: its own trained one when it was loaded with one (``source``'s config has a
        ``ctc`` entry and its weights a ``ctc_head``), else a fresh one, said in the log. A run's ``output_dir``
        keeps the head; its ``export/`` (a plain model) never does."""
        if getattr(model, "ctc_head", None) is not None:
            saved = model.ctc_upsample
            if upsample != saved:
                raise ValueError(f"{source} has a trained CTC head with ctc_upsample {saved}, but the run asks for "
                                 f"ctc_upsample {upsample}: set ctc_upsample: {saved} to continue training that "
                                 "head (its shape depends on it)")
            logger.info("Continuing the trained CTC head of %s (ctc_upsample %d).", source, saved)
            return model
        parent = Path(source).parent
        if Path(source).name == "export" and (parent / "config.json").is_file() and \
                "ctc" in json.loads((parent / "config.json").read_text()):
            logger.warning("%s has no CTC head: training a fresh one (ctc_upsample %d). It is a run's export (a "
                           "plain model without the head); %s, the run's output_dir, holds the trained head: start "
                           "from it to keep it.", source, upsample, parent)
        else:  # a model built from config, or a checkpoint that never had a head: fresh is what it needs
            logger.info("%s has no CTC head: training a fresh one (ctc_upsample %d).", source, upsample)
        return cls.from_plain(model, upsample=upsample)

    @torch.no_grad()
    def grow_ctc_vocabulary(self, vocab_size: int) -> None:
        """Give the CTC head outputs for a grown decoder vocabulary (``extend_vocabulary``): each upsampled frame's
        old rows kept, its new rows (and biases) at the mean of its old ones."""
        old = self.ctc_head
        old_vocab = old.out_features // self.ctc_upsample
        if vocab_size <= old_vocab:
            return
        head = nn.Linear(old.in_features, vocab_size * self.ctc_upsample).to(old.weight.device, old.weight.dtype)
        weight = old.weight.unflatten(0, (self.ctc_upsample, old_vocab))
        bias = old.bias.unflatten(0, (self.ctc_upsample, old_vocab))
        new_weight = weight.mean(dim=1, keepdim=True).expand(-1, vocab_size - old_vocab, -1)
        new_bias = bias.mean(dim=1, keepdim=True).expand(-1, vocab_size - old_vocab)
        head.weight.copy_(torch.cat([weight, new_weight], dim=1).flatten(0, 1))
        head.bias.copy_(torch.cat([bias, new_bias], dim=1).flatten(0, 1))
        self.ctc_head = head

    def forward(self, pixel_values=None, labels=None, encoder_outputs=None, **kwargs):
        if self.guide_attention and labels is not None and self.training:
            if encoder_outputs is None:  # the encoder runs here so that only the decoder returns attentions
                encoder_outputs = self.encoder(pixel_values=pixel_values, return_dict=True)
            kwargs["output_attentions"] = True
        outputs = super().forward(pixel_values=pixel_values, labels=labels, encoder_outputs=encoder_outputs,
                                  **kwargs)
        if self.ctc_head is None or labels is None or not isinstance(outputs, Seq2SeqLMOutput):
            return outputs
        return CtcSeq2SeqLMOutput(**outputs, ctc_logits=self.ctc_logits(outputs.encoder_last_hidden_state))

    def ctc_logits(self, encoder_hidden: torch.Tensor) -> torch.Tensor:
        """(batch, columns * upsample, vocab) CTC logits from the encoder's last hidden states."""
        rows, columns = self.ctc_grid
        patches = encoder_hidden[:, -rows * columns:]  # drop [CLS] (and any other prefix token)
        per_column = patches.unflatten(1, (rows, columns)).mean(dim=1)
        logits = self.ctc_head(per_column)
        return logits.unflatten(-1, (self.ctc_upsample, -1)).flatten(1, 2)


@torch.no_grad()
def ctc_read(model: CtcVisionEncoderDecoderModel, dataset, collator, tokenizer, batch_size: int) -> list[str]:
    """Greedy CTC transcriptions of every line of ``dataset``: the training-only head read on its own, the
    branch without an internal language model (a CTC recognizer's reading, next to the decoder's)."""
    from torch.utils.data import DataLoader

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
        hidden = model.encoder(pixel_values=batch["pixel_values"].to(device)).last_hidden_state
        ids = ctc_greedy_decode(model.ctc_logits(hidden), blank_id=model.config.pad_token_id)
        texts += tokenizer.batch_decode(ids, skip_special_tokens=True)
    model.train(was_training)
    return texts
