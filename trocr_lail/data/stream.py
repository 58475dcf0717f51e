"""Synthetic lines rendered on the fly, in DataLoader workers: the training set for stage 2 at any scale.

:class:`SyntheticLineStream` is a map-style dataset whose item ``i`` is rendered from (seed, split, i) when it
is asked for (``synthetic.LineFactory``); nothing is stored, so 17.9M lines cost no disk. Map-style rather than
an ``IterableDataset`` because Trainer and accelerate already do the rest exactly for map-style data:

- **Sharding without overlap**: accelerate's ``BatchSamplerShard`` gives process ``r`` of ``R`` every R-th batch,
  and the DataLoader hands each batch to exactly one worker. (An ``IterableDataset`` would be rendered in full by
  the main process and dispatched, or rendered by every process and mostly thrown away.)
- **Exact mid-epoch resume**: the position is the checkpoint's ``global_step`` (``trainer_state.json``); on resume
  Trainer skips that many batches in the *batch sampler* (``skip_first_batches``), so skipped lines are never
  rendered and training continues at the very next line.
- **In order**: item ``i`` is already a random draw, so the stream is read in index order
  (``LineRecognitionTrainer`` uses a ``SequentialSampler`` for datasets with ``in_order``): an epoch of 17.9M
  lines needs no 17.9M-index permutation in memory, and the lines seen after step ``k`` are ``k*B*R ...``.

The cached pre-rendered path (``sources.py``) stays for small fixed sets: validation and test.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from .augment import LIGHT, Augment, augment_mode
from .collator import presize_target
from .pixels import PIXELS, SHAPE
from .fonts import split_font_files
from .synthetic import LineFactory, LineSpec


class SyntheticLineStream(torch.utils.data.Dataset):
    """``num_samples`` synthetic lines (an epoch), rendered when indexed: ``{"image": PIL "L", "text", "index"}``.

    ``augment`` (a mode of ``data/augment.py``: none, light, da2) adds one distortion per line, drawn from the
    line's own seed, so resumed runs see exactly the lines (and distortions) the uninterrupted run would have. DA2
    needs the model input size: it applies once ``resize_for`` knows it.
    """

    in_order = True  # read by LineRecognitionTrainer._get_train_sampler

    def __init__(self, spec: LineSpec, num_samples: int, augment="none"):
        if num_samples < 1:
            raise ValueError(f"a synthetic stream needs num_samples >= 1, not {num_samples}")
        self.spec, self.num_samples, self.augment = spec, num_samples, augment_mode(augment)
        self._da2 = None
        self._factory = LineFactory(spec)  # resolves fonts and text now, so a bad font or file fails at load time
        self.pixel_size, self.resample = None, None

    def resize_for(self, image_processor) -> None:
        """Emit uint8 ``pixels`` already at the processor's input size (its own PIL resize, grey replicated to RGB)
        instead of images: the collator then only normalises, with the processor's ``pixel_values`` to float
        rounding, at about half the CPU per line at 384x384 (benchmarks/README.md section 5)."""
        size = presize_target(image_processor)
        if size is not None:
            self.pixel_size, self.resample = size, image_processor.resample
            if self.augment == "da2":
                self._da2 = Augment("da2", size=size)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"synthetic stream index {index} outside [0, {self.num_samples})")
        row = self._factory(index)
        image = row["image"]
        rng = random.Random(f"augment/{self.spec.seed}/{self.spec.split}/{index}")
        if self.augment == "light":
            image = rng.choice(LIGHT)(image, rng)
        elif self._da2 is not None:
            image = self._da2.da2(image, rng)
        if self.pixel_size is None:
            return {"image": image, "text": row["text"], "index": index}
        grey = np.asarray(image.convert("L").resize(self.pixel_size, resample=self.resample))
        return {PIXELS: np.broadcast_to(grey, (3, *grey.shape)).tobytes(), SHAPE: [3, *grey.shape],
                "text": row["text"], "index": index}

    def texts(self) -> list[str]:
        """Every line the stream can draw (all text sources), for the tokenizer checks before training."""
        return [line for source in self._factory.lines for line in source]


def split_texts(split) -> list[str]:
    """Every transcription a split can train on: a stream's every drawable line, else the text column's strings."""
    if isinstance(split, SyntheticLineStream):
        return split.texts()
    return [text for text in split["text"] if isinstance(text, str)]


def line_spec(args, role: str) -> LineSpec:
    """The :class:`LineSpec` of one split role (train / validation / test) from a recipe's DataArguments."""
    sources = (args.corpus_file,) + tuple(args.synthetic_text_files or ())
    lists = {"train": args.synthetic_train_fonts, "validation": args.synthetic_validation_fonts,
             "test": args.synthetic_test_fonts}
    return LineSpec(split=role, seed=args.synthetic_seed, text_sources=sources, font_dir=args.synthetic_font_dir,
                    font_files=split_font_files(lists, role),
                    target_fonts=args.synthetic_target_fonts,
                    printed_share=args.synthetic_printed_share, max_chars=args.synthetic_max_chars,
                    min_aspect=args.synthetic_min_aspect)


def prepare_stream(stream: SyntheticLineStream, tokenizer, max_target_length: int, name: str,
                   image_processor=None) -> None:
    """Before training: the checks ``validate.py`` makes on stored text, on every line the stream can draw (a
    character the tokenizer cannot encode is an error naming it; over-long lines are counted in a warning), and
    resizing in the workers to the processor's input size."""
    import logging

    import datasets

    from .validate import validate_split

    texts = stream.texts()
    summary = validate_split(datasets.Dataset.from_dict({"text": texts}), tokenizer, max_target_length, name,
                             check_images=False)
    if summary.problems:
        shown = "; ".join(f"{texts[p.row]!r}: {p.message}" for p in summary.problems[:5])
        raise ValueError(f"{len(summary.problems)} line(s) of the synthetic text sources {stream.spec.text_sources} "
                         f"cannot be trained on ({shown}). Edit the text file(s) or use a tokenizer covering them.")
    if summary.truncated:
        logging.getLogger("trocr_lail").warning(
            "%d of %d synthetic text lines exceed max_target_length=%d tokens (longest %d) and will be truncated.",
            summary.truncated, len(texts), max_target_length, summary.longest)
    if image_processor is not None:
        stream.resize_for(image_processor)
