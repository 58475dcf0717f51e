"""Batching for line recognition: images -> ``pixel_values``, text -> ``labels`` (EOS-terminated, padded with
-100). The model shifts labels right and inserts ``decoder_start_token_id`` itself. :class:`CtcCollator` makes
the CTC recognizers' targets (no EOS) and carries the raw reference texts for scoring."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from .images import BadImage, load_rgb
from .pixels import PIXELS, normalize_pixels, stack_pixels

logger = logging.getLogger(__name__)


def encode_targets(tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of each text plus EOS (when the tokenizer has one: a CTC vocabulary has none), truncated to
    ``max_length``; also returns how many were truncated."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    ids, truncated = [], 0
    for tokens in encoded:
        tokens = tokens + eos
        if len(tokens) > max_length:
            truncated += 1
            tokens = tokens[: max_length - len(eos)] + eos
        ids.append(tokens)
    return ids, truncated


def padded(rows: list[list[int]]) -> torch.Tensor:
    """``(len(rows), longest)`` long tensor, right-padded with -100 (what Trainer also pads predictions with)."""
    out = torch.full((len(rows), max(map(len, rows), default=0)), -100, dtype=torch.long)
    for row, values in enumerate(rows):
        out[row, : len(values)] = torch.tensor(values, dtype=torch.long)
    return out


def texts_from_codes(codes) -> list[str]:
    """The texts :class:`CtcCollator` packed as code points (rows padded with negative values)."""
    return ["".join(chr(code) for code in row if code >= 0) for row in codes.tolist()]


def presize_target(image_processor) -> tuple[int, int] | None:
    """``(width, height)`` when the processor's only geometric step is resizing every image to that size."""
    size = getattr(image_processor, "size", None)
    if not getattr(image_processor, "do_resize", False) or getattr(image_processor, "do_center_crop", False):
        return None
    height, width = (getattr(size, "height", None), getattr(size, "width", None)) if size is not None else (None, None)
    return (width, height) if height and width else None


def presize(image, size: tuple[int, int] | None, image_processor):
    """The image in RGB, already resized the way the processor would resize it (same PIL call and filter).

    Pixel-identical output, several times cheaper: the processor converts a full-resolution page-width line to numpy
    and back before shrinking it, and RGB triples the work; shrinking the single-band original first avoids both
    (bilinear resizing acts on each band alike, so resize-then-convert equals convert-then-resize)."""
    if size is None or image.mode not in ("L", "RGB"):  # palette / 16-bit images: leave them to the processor
        return image.convert("RGB")
    return image.resize(size, resample=image_processor.resample).convert("RGB")


@dataclass
class LineCollator:
    processor: object
    max_target_length: int = 128
    num_truncated: int = field(default=0, init=False)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        # None: skipped by DecodeImages. Rows resized at load time carry pixels and no image.
        usable = [example for example in examples if example.get("image", PIXELS) is not None]
        if not usable:
            raise BadImage(f"All {len(examples)} images of a batch failed to decode (see the warnings above); "
                           "check the dataset with `trocr-lail validate`.")
        return self.collate(usable)

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if PIXELS in examples[0]:  # resized once at load time (data/pixels.py)
            pixel_values = normalize_pixels(stack_pixels(examples), self.processor.image_processor)
        else:
            size = presize_target(self.processor.image_processor)
            images = [presize(load_rgb(example["image"]), size, self.processor.image_processor)
                      for example in examples]
            pixel_values = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        ids, truncated = encode_targets(self.processor.tokenizer, self.target_texts(examples),
                                        self.max_target_length)
        if truncated:
            if self.num_truncated == 0:
                logger.warning("Truncating transcriptions longer than max_target_length=%d tokens.",
                               self.max_target_length)
            self.num_truncated += truncated
        return {"pixel_values": pixel_values, "labels": padded(ids)}

    def target_texts(self, examples: list[dict]) -> list[str]:
        return [example["text"] for example in examples]


@dataclass
class CtcCollator(LineCollator):
    """Targets as HTR best practices trains its CTC recognizer: every transcript wrapped in spaces, no EOS; the
    characters the vocabulary lacks are dropped by its tokenizer (``models/ctc_vocab.py``). ``references`` holds
    each line's raw text as code points, so evaluation scores against the text itself, unseen characters
    included (``texts_from_codes`` reads them back)."""

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().collate(examples)
        batch["references"] = padded([[ord(ch) for ch in example["text"]] for example in examples])
        return batch

    def target_texts(self, examples: list[dict]) -> list[str]:
        return [f" {example['text']} " for example in examples]


@dataclass
class LailCollator(LineCollator):
    """Adds the LLM's view of the transcription: ``llm_input_ids`` (optional prompt + text + EOS, right-padded),
    ``llm_attention_mask`` and ``llm_labels`` (-100 on prompt and padding). Tokenized here, not in forward, so
    workers do it in parallel with training."""

    llm_tokenizer: object = None
    prompt: str | None = None

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().collate(examples)
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


@dataclass
class CtcLailCollator(LailCollator, CtcCollator):
    """A CTC recognizer's batch (targets wrapped in spaces, raw references) plus the LLM's view of the raw text."""
