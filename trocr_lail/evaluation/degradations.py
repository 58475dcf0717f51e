"""Test-time degradations: copies of the test split that are harder to read, where a language prior should matter
most (heavy blur, low contrast, ink gaps that erase parts of letters, noise).

Each works on any PIL line image (any size, mode L or RGB), scales with the image height, and is a pure function
of ``(image, seed)``: line ``i`` of a degraded split is seeded with ``i``, so every run and every ablation cell
reads exactly the same degraded lines and their CERs can be compared line by line.
"""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image, ImageFilter


def _pixels(image: Image.Image) -> tuple[np.ndarray, str]:
    mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
    return np.asarray(image.convert(mode), dtype=np.float32), mode


def _image(pixels: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode=mode)


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur of radius 8% of the line height: strokes merge, letters stay guessable in context."""
    return image.filter(ImageFilter.GaussianBlur(radius=0.08 * image.height))


def low_contrast(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Contrast cut to 25% around a grey page: black ink becomes 96, white paper 160 (faded ink, poor scan)."""
    pixels, mode = _pixels(image)
    return _image(96 + 0.25 * pixels, mode)


def ink_gaps(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Square cells of 1/6 of the line height, 30% of them painted with the paper colour: parts of letters are
    erased (broken pen strokes, abraded ink)."""
    pixels, mode = _pixels(image)
    cell = max(2, image.height // 6)
    rows, columns = -(-image.height // cell), -(-image.width // cell)
    erase = rng.random((rows, columns)) < 0.3
    mask = np.kron(erase, np.ones((cell, cell), dtype=bool))[: image.height, : image.width]
    paper = np.percentile(pixels, 90, axis=(0, 1))  # most of a line image is paper
    pixels[mask] = paper
    return _image(pixels, mode)


def noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise of standard deviation 50 (of 255) plus 3% salt-and-pepper pixels."""
    pixels, mode = _pixels(image)
    pixels = pixels + rng.normal(0.0, 50.0, pixels.shape)
    speckle = rng.random(pixels.shape[:2])
    pixels[speckle < 0.015] = 0
    pixels[speckle > 0.985] = 255
    return _image(pixels, mode)


DEGRADATIONS = {"blur": blur, "low_contrast": low_contrast, "ink_gaps": ink_gaps, "noise": noise}


def degrade(image: Image.Image, name: str, seed: int) -> Image.Image:
    if name not in DEGRADATIONS:
        raise ValueError(f"Unknown test degradation '{name}'; choose from {sorted(DEGRADATIONS)}")
    return DEGRADATIONS[name](image, np.random.default_rng([seed, sorted(DEGRADATIONS).index(name)]))


def degraded_split(dataset: datasets.Dataset, name: str) -> datasets.Dataset:
    """A copy of ``dataset`` (columns ``image``, ``text``) with every image degraded; line ``i`` seeded by ``i``."""
    degrade(Image.new("L", (4, 4), 255), name, 0)  # an unknown name fails before any work

    def apply(row, index):
        return {"image": degrade(row["image"], name, index)}

    return dataset.map(apply, with_indices=True, desc=f"Degrading test lines: {name}",
                       features=dataset.features, load_from_cache_file=False)


def add_degraded_splits(splits: datasets.DatasetDict, data_args) -> datasets.DatasetDict:
    """Add ``<test_split>_<name>`` for each of ``data_args.test_degradations`` (a copy of the test split)."""
    names = getattr(data_args, "test_degradations", None) or []
    if names and not data_args.test_split:
        raise ValueError("test_degradations needs a test_split to degrade")
    for name in names:
        splits[f"{data_args.test_split}_{name}"] = degraded_split(splits[data_args.test_split], name)
    return splits
