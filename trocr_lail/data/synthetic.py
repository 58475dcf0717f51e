"""Synthetic handwriting lines: corpus text rendered in handwriting fonts with mild ink and paper noise.

Everything is a pure function of (seed, split, index), so a dataset regenerates bit-identically anywhere.
Splits draw from disjoint fonts *and* disjoint corpus lines.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .corpus import load_lines
from .fonts import font_files, split_fonts

_SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def render_line(text: str, font_path: str, rng: random.Random, font_size: int = 48,
                min_aspect: float | None = 12.0) -> Image.Image:
    """Render ``text`` as a line image: random stroke weight, slant, ink and paper tone, blur.

    Short lines are padded on the right with paper up to ``min_aspect`` (width / height), like a line that ends
    early on a page, so resizing to a fixed input keeps characters at a similar scale.
    """
    font = _font(font_path, font_size)
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = rng.randint(4, 24), rng.randint(4, 16)
    width, height = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    paper, ink = rng.randint(205, 255), rng.randint(0, 70)
    image = Image.new("L", (width, height), paper)
    stroke = rng.choice((0, 0, 0, 1))  # occasionally a heavier pen
    ImageDraw.Draw(image).text((pad_x - left, pad_y - top), text, font=font, fill=ink,
                               stroke_width=stroke, stroke_fill=ink)
    shear = rng.uniform(-0.25, 0.25)
    if abs(shear) > 0.02:  # slant, as writers lean differently
        extra = int(abs(shear) * height)
        image = image.transform((width + extra, height), Image.AFFINE,
                                (1, shear, -extra if shear > 0 else 0, 0, 1, 0),
                                resample=Image.BILINEAR, fillcolor=paper)
    if min_aspect and image.width < min_aspect * image.height:
        canvas = Image.new("L", (int(min_aspect * image.height), image.height), paper)
        canvas.paste(image, (0, 0))
        image = canvas
    pixels = np.asarray(image, dtype=np.float32)
    pixels += np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(0, 8), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return image.convert("RGB")


def _split_lines(lines: list[str], split: str) -> list[str]:
    # Every 10th line goes to validation, the next to test: disjoint text, same style of prose.
    keep = {"train": lambda i: i % 10 not in (3, 7), "validation": lambda i: i % 10 == 3,
            "test": lambda i: i % 10 == 7}[split]
    return [line for i, line in enumerate(lines) if keep(i)]


def generate(split: str, num_samples: int, seed: int = 0, corpus_file: str | None = None,
             fonts: tuple[str, ...] | None = None, font_size: int = 48, min_aspect: float | None = 12.0):
    """Yield ``{"image": PIL.Image, "text": str, "font": str}`` for ``num_samples`` synthetic lines."""
    lines = _split_lines(load_lines(corpus_file), split)
    paths = [(name, str(path)) for name in (fonts or split_fonts(split)) for path in font_files(name)]
    rng = random.Random(seed * 1000 + _SPLIT_OFFSET[split])
    order = rng.sample(range(len(lines)), len(lines))
    for i in range(num_samples):
        text = lines[order[i % len(order)]]
        name, path = paths[rng.randrange(len(paths))]
        yield {"image": render_line(text, path, rng, font_size, min_aspect), "text": text, "font": name}
