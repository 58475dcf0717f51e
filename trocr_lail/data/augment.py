"""Training-time image augmentation (training split only). Each image gets exactly one randomly chosen transform.

- ``da2``: the TrOCR paper's DA2, as ``build_data_aug(size, mode='train')`` in microsoft/unilm ``trocr/data_aug.py``
  builds it: a uniform choice among seven transforms (rotation +-10 degrees with expand and white fill, Gaussian blur
  with a 3x3 kernel and sigma ~ U(0.1, 2.0), PIL ``MaxFilter(3)`` ("Dilation", which *thins* dark ink),
  ``MinFilter(3)`` ("Erosion", which thickens it), a nearest-neighbour resize to a third of the input size, an
  underline, or the original), in RGB; a transform that raises keeps the original; then a bicubic resize to the model
  input. torchvision is not a dependency, so each transform is written with PIL/numpy to the same definition.
- ``light``: the toolkit's earlier, milder set (rotation +-3 degrees, blur, min/max filters, a lossy rescale) in
  greyscale, the model-input resize left to the processor.
- ``none``: off.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
from PIL import Image, ImageFilter

logger = logging.getLogger(__name__)

AUGMENT_MODES = ("da2", "light", "none")


def augment_mode(value) -> str:
    """The recipe's ``augment`` value as a mode name; ``true`` / ``false`` keep their earlier meaning."""
    text = str(value).strip().lower()
    text = {"true": "light", "false": "none", "yes": "light", "no": "none"}.get(text, text)
    if text not in AUGMENT_MODES:
        raise ValueError(f"augment: {value!r} is not one of {', '.join(AUGMENT_MODES)} (or true / false)")
    return text


def _morph(image: Image.Image, op) -> Image.Image:
    """3x3 min/max per band as separable numpy passes, equal to PIL's rank filters (edge pixels replicated, as PIL's
    ``expand`` does) and ~20x faster."""
    array = np.asarray(image)
    pad = ((1, 1), (1, 1)) + ((0, 0),) * (array.ndim - 2)
    pixels = np.pad(array, pad, mode="edge")
    rows = op(op(pixels[:-2], pixels[1:-1]), pixels[2:])
    return Image.fromarray(op(op(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:]), mode=image.mode)


# --- light ---------------------------------------------------------------------------------------------------------
def _light_rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    background = max(image.getextrema()[1] - 10, 0)  # roughly the paper tone
    return image.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR, expand=True, fillcolor=background)


def _light_blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))


def _dilate(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.minimum)  # dark ink on light paper: the minimum thickens the strokes


def _erode(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.maximum)


def _light_rescale(image: Image.Image, rng: random.Random) -> Image.Image:
    factor = rng.uniform(0.4, 0.8)  # lose resolution, then come back: like a low-dpi scan
    small = image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))), Image.BILINEAR)
    return small.resize(image.size, Image.BILINEAR)


def _identity(image: Image.Image, rng: random.Random) -> Image.Image:
    return image


LIGHT = (_identity, _light_rotate, _light_blur, _dilate, _erode, _light_rescale)


# --- DA2 -----------------------------------------------------------------------------------------------------------
DA2_ROTATION_DEGREES = 10.0
DA2_BLUR_KERNEL, DA2_BLUR_SIGMA = 3, (0.1, 2.0)  # torchvision GaussianBlur(3): sigma default (0.1, 2.0)
DA2_DOWNSCALE = 3  # Resize((size // 3, size // 3), NEAREST)
DA2_UNDERLINE_DARK, DA2_UNDERLINE_THICKNESS = 50, 3


def da2_rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    # torchvision RandomRotation(degrees=(-10, 10), expand=True, fill=255): nearest-neighbour, white corners.
    angle = rng.uniform(-DA2_ROTATION_DEGREES, DA2_ROTATION_DEGREES)
    return image.rotate(angle, resample=Image.NEAREST, expand=True, fillcolor=(255,) * len(image.getbands()))


def gaussian_kernel1d(kernel_size: int, sigma: float) -> np.ndarray:
    """torchvision's ``_get_gaussian_kernel1d``."""
    half = (kernel_size - 1) * 0.5
    x = np.linspace(-half, half, kernel_size)
    pdf = np.exp(-0.5 * (x / sigma) ** 2)
    return pdf / pdf.sum()


def da2_blur(image: Image.Image, rng: random.Random, sigma: float | None = None) -> Image.Image:
    # torchvision GaussianBlur on a PIL image: separable kernel, reflect padding, float maths, rounded back to uint8.
    sigma = rng.uniform(*DA2_BLUR_SIGMA) if sigma is None else sigma
    kernel = gaussian_kernel1d(DA2_BLUR_KERNEL, sigma)
    r = DA2_BLUR_KERNEL // 2
    array = np.asarray(image, dtype=np.float32)
    pad = ((r, r), (r, r)) + ((0, 0),) * (array.ndim - 2)
    padded = np.pad(array, pad, mode="reflect")
    rows = sum(k * padded[i : i + array.shape[0]] for i, k in enumerate(kernel))
    out = sum(k * rows[:, i : i + array.shape[1]] for i, k in enumerate(kernel))
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), mode=image.mode)


def da2_dilation(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.maximum)  # the paper's "Dilation(3)" is PIL MaxFilter(3)


def da2_erosion(image: Image.Image, rng: random.Random) -> Image.Image:
    return _morph(image, np.minimum)  # the paper's "Erosion(3)" is PIL MinFilter(3)


def da2_downscale(image: Image.Image, rng: random.Random, size: tuple[int, int] = (384, 384)) -> Image.Image:
    width, height = size
    return image.resize((width // DA2_DOWNSCALE, height // DA2_DOWNSCALE), Image.NEAREST)


def da2_underline(image: Image.Image, rng: random.Random) -> Image.Image:
    """A black line, 3 pixels thick, ending on the lowest row that holds a pixel darker than 50 (greyscale), from the
    leftmost dark pixel up to (not including) the rightmost, as the paper's ``Underline``. Unlike the original it
    draws on a copy and clips at the top edge instead of wrapping around."""
    rows, cols = np.nonzero(np.asarray(image.convert("L")) < DA2_UNDERLINE_DARK)
    if rows.size == 0:
        return image
    bottom, left, right = rows.max(), cols.min(), cols.max()
    array = np.array(image)
    array[max(0, bottom - DA2_UNDERLINE_THICKNESS + 1) : bottom + 1, left:right] = 0
    return Image.fromarray(array, mode=image.mode)


DA2 = (da2_rotate, da2_blur, da2_dilation, da2_erosion, da2_downscale, da2_underline, _identity)


class Augment:
    """``datasets`` transform that augments the ``image`` column; use on the training split only.

    ``size`` is the model input ``(width, height)``: DA2 ends with the paper's bicubic resize to it (the processor's
    own resize is then a no-op)."""

    def __init__(self, mode: str = "light", size: tuple[int, int] | None = None):
        self.mode = augment_mode(mode)
        if self.mode == "none":
            raise ValueError("Augment(mode='none'): leave augmentation out instead")
        if self.mode == "da2" and size is None:
            raise ValueError("augment: da2 needs the model input size (the processor has no fixed height x width)")
        self.size = size
        self._rng, self._worker = None, None

    def _generator(self) -> random.Random:
        # Seeded from torch's per-process/per-worker seed (itself derived from the run's seed), so dataloader
        # workers draw different augmentations and a rerun draws the same ones.
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker else None
        if self._rng is None or worker_id != self._worker:
            self._rng, self._worker = random.Random(torch.initial_seed()), worker_id
        return self._rng

    def da2(self, image: Image.Image, rng: random.Random) -> Image.Image:
        image = image.convert("RGB")
        transform = rng.choices(DA2, k=1)[0]  # random.choices with equal weights, as WeightedRandomChoice
        try:
            out = da2_downscale(image, rng, self.size) if transform is da2_downscale else transform(image, rng)
        except Exception as err:  # noqa: BLE001 - the paper keeps the original when a transform fails
            logger.warning("DA2 %s failed (%s); keeping the original image", transform.__name__, err)
            out = image
        return out.resize(self.size, Image.BICUBIC)

    def __call__(self, batch: dict) -> dict:
        rng = self._generator()
        if self.mode == "da2":
            batch["image"] = [self.da2(image, rng) for image in batch["image"]]
        else:
            # Greyscale: handwriting lines carry no colour information, and every filter runs 3x faster on one band.
            batch["image"] = [rng.choice(LIGHT)(image.convert("L"), rng) for image in batch["image"]]
        return batch


def build_augment(mode: str, image_processor) -> Augment | None:
    """The training split's augmentation for ``mode``, or None for ``none``."""
    mode = augment_mode(mode)
    if mode == "none":
        return None
    from .collator import presize_target

    return Augment(mode, size=presize_target(image_processor) if mode == "da2" else None)
