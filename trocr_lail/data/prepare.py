"""From loaded splits to what Trainer iterates: validated up front, bad rows refused or dropped (counted), images
decoded lazily by :class:`DecodeImages` (augmented on the training split)."""

from __future__ import annotations

import logging

import datasets
import torch.distributed as dist

from .augment import build_augment
from .images import DecodeImages
from .pixels import preprocess_images
from .sources import metadata_scans
from .stream import SyntheticLineStream, prepare_stream
from .validate import ValidationSummary, validate_splits

logger = logging.getLogger("trocr_lail")


def validate_once(splits: datasets.DatasetDict, tokenizer, max_target_length: int, check_images: bool,
                  is_main: bool, scans: dict | None = None) -> ValidationSummary:
    """Validate on the main process only; other DDP ranks receive its summary instead of decoding everything
    again (they must agree on which rows to drop)."""
    summary = validate_splits(splits, tokenizer, max_target_length, check_images, scans) if is_main else None
    if dist.is_available() and dist.is_initialized():
        box = [summary]
        dist.broadcast_object_list(box, src=0)
        summary = box[0]
    return summary


def prepare_splits(splits: datasets.DatasetDict, tokenizer, max_target_length: int, data_args, is_main: bool = True,
                   image_processor=None):
    """Return ``(splits, summary, decoders)``. Raises before training if a row is bad, unless
    ``skip_bad_samples``; ``decoders[split].skipped`` counts images that failed later, during training. With
    ``preprocess_images``, the checked rows are resized once with ``image_processor`` and need no decoder."""
    # Synthetic lines come from our own renderer, in process: decoding them all again would only cost time
    # (17 s for the quickstart's 8,600 lines, ~3% of its budget); their text is still checked.
    check_images = data_args.validate_images and not data_args.synthetic
    streams = {name: splits.pop(name) for name in list(splits) if isinstance(splits[name], SyntheticLineStream)}
    for name, stream in streams.items():  # rendered on the fly: check every line of text it can draw instead
        prepare_stream(stream, tokenizer, max_target_length, name, image_processor)
    summary = validate_once(splits, tokenizer, max_target_length, check_images, is_main,
                            metadata_scans(data_args, splits))
    if is_main:
        logger.info("Dataset check:\n%s", summary.format())
        for name, split in summary.splits.items():
            if split.multi_frame:
                logger.warning("%d '%s' image(s) are animated or multi-page: only their first frame is read.",
                               split.multi_frame, name)
    if summary.problems:
        if not data_args.skip_bad_samples:
            raise ValueError(summary.error_message())
        logger.warning("Dropping %d bad row(s) (skip_bad_samples):\n%s", summary.num_bad_rows(), summary.format())
        splits = summary.drop_bad_rows(splits)
    for name, split in summary.splits.items():
        if split.truncated:
            logger.warning("%d of %d '%s' transcriptions exceed max_target_length=%d tokens (longest %d) and will "
                           "be truncated.", split.truncated, split.rows, name, max_target_length, split.longest)
    decoders = {}
    for name in list(splits):
        if data_args.preprocess_images:
            splits[name] = preprocess_images(splits[name], image_processor, desc=f"Resizing {name} images once")
            continue
        augment = build_augment(data_args.augment, image_processor) if name == data_args.train_split else None
        decoders[name] = DecodeImages(augment=augment, skip_bad=data_args.skip_bad_samples)
        raw = splits[name].cast_column("image", datasets.Image(decode=False))
        splits[name] = raw.with_transform(decoders[name])
    splits.update(streams)
    return splits, summary, decoders


def skip_report(summary: ValidationSummary, decoders: dict) -> str | None:
    """One line for the end of the run: rows dropped up front plus images that failed during training."""
    upfront = {name: split.num_bad() for name, split in summary.splits.items() if split.num_bad()}
    later = {name: decoder.skipped.value for name, decoder in decoders.items() if decoder.skipped.value}
    if not upfront and not later:
        return None
    return (f"Skipped bad samples: {sum(upfront.values())} row(s) before training {upfront or ''}, "
            f"{sum(later.values())} image(s) that failed to decode during the run {later or ''}.")
