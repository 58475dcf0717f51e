"""Training-time image augmentation in the spirit of TrOCR's: each image gets one randomly chosen distortion
(or none), so the model sees handwriting that is rotated, blurred, heavier, thinner or re-scaled."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image, ImageFilter


def _rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    background = max(image.getextrema()[1] - 10, 0)  # roughly the paper tone
    return image.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR, expand=True, fillcolor=background)


def _blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))


def _morph(image: Image.Image, op) -> Image.Image:
    """3x3 grey-level min/max as two separable passes in numpy (PIL's rank filters are ~20x slower)."""
    pixels = np.pad(np.asarray(image), 1, mode="edge")
    rows = op(op(pixels[:-2], pixels[1:-1]), pixels[2:])
    return Image.fromarray(op(op(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:]))


def _dilate(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.minimum)  # dark ink on light paper: the minimum thickens the strokes


def _erode(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.maximum)


def _rescale(image: Image.Image, rng: random.Random) -> Image.Image:
    factor = rng.uniform(0.4, 0.8)  # lose resolution, then come back: like a low-dpi scan
    small = image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))), Image.BILINEAR)
    return small.resize(image.size, Image.BILINEAR)


def _identity(image: Image.Image, rng: random.Random) -> Image.Image:
    return image


AUGMENTATIONS = (_identity, _rotate, _blur, _dilate, _erode, _rescale)


class Augment:
    """``datasets`` transform that augments the ``image`` column; use on the training split only."""

    def __init__(self):
        self._rng, self._worker = None, None

    def _generator(self) -> random.Random:
        # Seeded from torch's per-process/per-worker seed (itself derived from the run's seed), so dataloader
        # workers draw different augmentations and a rerun draws the same ones.
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker else None
        if self._rng is None or worker_id != self._worker:
            self._rng, self._worker = random.Random(torch.initial_seed()), worker_id
        return self._rng

    def __call__(self, batch: dict) -> dict:
        rng = self._generator()
        # Grayscale: handwriting lines carry no colour information, and every filter runs 3x faster on one band.
        batch["image"] = [rng.choice(AUGMENTATIONS)(img.convert("L"), rng) for img in batch["image"]]
        return batch
