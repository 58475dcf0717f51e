"""Batching for line recognition: images -> ``pixel_values``, text -> ``labels`` (EOS-terminated, padded with
-100). The model shifts labels right and inserts ``decoder_start_token_id`` itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from .pixels import PIXELS, normalize_pixels, stack_pixels

logger = logging.getLogger(__name__)


def encode_targets(tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of each text plus EOS, truncated to ``max_length``; also returns how many were truncated."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    ids, truncated = [], 0
    for tokens in encoded:
        tokens = tokens + [tokenizer.eos_token_id]
        if len(tokens) > max_length:
            truncated += 1
            tokens = tokens[: max_length - 1] + [tokenizer.eos_token_id]
        ids.append(tokens)
    return ids, truncated


@dataclass
class LineCollator:
    processor: object
    max_target_length: int = 128
    num_truncated: int = field(default=0, init=False)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if PIXELS in examples[0]:  # resized once at load time (data/pixels.py)
            pixel_values = normalize_pixels(stack_pixels(examples), self.processor.image_processor)
        else:
            images = [example["image"].convert("RGB") for example in examples]
            pixel_values = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        ids, truncated = encode_targets(self.processor.tokenizer, [e["text"] for e in examples],
                                        self.max_target_length)
        if truncated:
            if self.num_truncated == 0:
                logger.warning("Truncating transcriptions longer than max_target_length=%d tokens.",
                               self.max_target_length)
            self.num_truncated += truncated
        labels = torch.full((len(ids), max(map(len, ids))), -100, dtype=torch.long)
        for row, tokens in enumerate(ids):
            labels[row, : len(tokens)] = torch.tensor(tokens)
        return {"pixel_values": pixel_values, "labels": labels}


@dataclass
class LailCollator(LineCollator):
    """Adds the LLM's view of the transcription: ``llm_input_ids`` (optional prompt + text + EOS, right-padded),
    ``llm_attention_mask`` and ``llm_labels`` (-100 on prompt and padding). Tokenized here, not in forward, so
    workers do it in parallel with training."""

    llm_tokenizer: object = None
    prompt: str | None = None

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().__call__(examples)
        tok = self.llm_tokenizer
        prompt = tok(self.prompt, add_special_tokens=False)["input_ids"] if self.prompt else []
        texts, _ = encode_targets(tok, [e["text"] for e in examples], self.max_target_length)
        rows = [prompt + ids for ids in texts]
        width = max(map(len, rows))
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (ids, text_ids) in enumerate(zip(rows, texts)):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            labels[row, len(prompt) : len(ids)] = torch.tensor(text_ids)
        batch.update(llm_input_ids=input_ids, llm_attention_mask=mask, llm_labels=labels)
        return batch
