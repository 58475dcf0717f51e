"""Synthetic text lines: corpus text rendered in handwriting (and some printed) fonts with per-line variation.

Every line is a pure function of (seed, split, index) (:class:`LineFactory`), so the cached sets and the
streaming dataset (``stream.py``) regenerate bit-identically anywhere, in any process or worker. Splits draw from
disjoint fonts *and* disjoint corpus paragraphs.

Per-line variation, each drawn from the line's own RNG: font size, slant, stroke width (heavier pen, or a thinner
one), letter spacing, baseline drift and elastic distortion (a smooth random mesh warp), ink tone, paper tone and
texture, pixel noise, blur, an occasional underline or strike-through, and a share of printed fonts, which get the
ink and paper variation but no hand-like warping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .corpus import source_lines
from .fonts import PRINTED_FONTS, resolve_fonts, split_fonts, target_fonts

RENDER_VERSION = 2  # bump when rendering changes, so cached synthetic sets are rendered anew

@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@dataclass(frozen=True)
class LineSpec:
    """What to render; small and picklable, so DataLoader workers rebuild the same :class:`LineFactory`."""

    split: str = "train"
    seed: int = 0
    text_sources: tuple = (None,)  # None: the bundled prose; else text file paths
    fonts: tuple | None = None  # fontpkg handwriting families; None: the split's default (fonts.py)
    font_files: tuple | None = None  # this split's own TTF/OTF files instead of fontpkg families (any script)
    font_dir: str | None = None  # extra training fonts (TTF/OTF folder); training split only
    target_fonts: str | None = None  # a target writer's TTF/OTF file or folder: every split's hand (adaptation)
    printed_share: float = 0.1  # training split only: held-out CER is measured on handwriting
    max_chars: int = 90
    min_aspect: float | None = 12.0
    font_size: tuple = (36, 60)


@dataclass
class LineFactory:
    """``factory(index) -> {"image": PIL "L" image, "text": str, "font": str, "index": int}``."""

    spec: LineSpec
    lines: tuple = field(init=False, repr=False)
    fonts: list = field(init=False, repr=False)
    printed: list = field(init=False, repr=False)

    def __post_init__(self):
        spec = self.spec
        if not 0.0 <= spec.printed_share <= 1.0:
            raise ValueError(f"synthetic_printed_share must be in [0, 1], not {spec.printed_share}")
        self.lines = source_lines(tuple(spec.text_sources), spec.split, spec.max_chars)
        is_train = spec.split == "train"
        if spec.target_fonts:  # one hand in every split; the splits still differ in their text
            families = target_fonts(spec.target_fonts)
        elif spec.font_files:
            families = [(Path(file).stem, file) for file in spec.font_files]
            families += resolve_fonts((), spec.font_dir if is_train else None)
        else:
            names = tuple(spec.fonts or split_fonts(spec.split))
            families = resolve_fonts(names, spec.font_dir if is_train else None)
        self.fonts = _by_family(families)
        self.printed = _by_family(resolve_fonts(PRINTED_FONTS)) if is_train and spec.printed_share > 0 else []

    def __call__(self, index: int) -> dict:
        # A string seed hashes with SHA-512 in CPython: the same in every process, whatever PYTHONHASHSEED says.
        rng = random.Random(f"{self.spec.seed}/{self.spec.split}/{index}")
        source = self.lines[rng.randrange(len(self.lines))]
        text = source[rng.randrange(len(source))]
        printed = bool(self.printed) and rng.random() < self.spec.printed_share
        name, paths = (self.printed if printed else self.fonts)[rng.randrange(len(self.printed if printed
                                                                                 else self.fonts))]
        path = paths[rng.randrange(len(paths))]
        image = render_line(text, path, rng, font_size=rng.randint(*self.spec.font_size) // 4 * 4,
                            min_aspect=self.spec.min_aspect, printed=printed)
        return {"image": image, "text": text, "font": name, "index": index}


def _by_family(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    # Families are drawn uniformly, then one of their files: a family shipping 8 weights is not 8x as likely.
    families: dict[str, list[str]] = {}
    for name, path in pairs:
        families.setdefault(name, []).append(path)
    return sorted(families.items())


def render_line(text: str, font_path: str, rng: random.Random, font_size: int = 48,
                min_aspect: float | None = 12.0, printed: bool = False) -> Image.Image:
    """Render ``text`` as a grey line image (mode "L") with the variation described in the module docstring.

    Short lines are padded on the right with paper up to ``min_aspect`` (width / height), like a line that ends
    early on a page, so resizing to a fixed input keeps characters at a similar scale.
    """
    font = _font(font_path, font_size)
    mask = _ink_mask(text, font, rng, hand=not printed)  # 255 = paper, 0 = full ink
    if not printed:
        mask = _slant(mask, rng.uniform(-0.3, 0.3))
        mask = _mesh_warp(mask, rng)
    if min_aspect and mask.width < min_aspect * mask.height:
        canvas = Image.new("L", (int(min_aspect * mask.height), mask.height), 255)
        canvas.paste(mask, (0, 0))
        mask = canvas
    image = _compose(mask, rng)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1)))
    return image


def _ink_mask(text: str, font: ImageFont.FreeTypeFont, rng: random.Random, hand: bool) -> Image.Image:
    ascent, descent = font.getmetrics()
    size = font.size
    spacing = rng.uniform(-0.05, 0.15) * size if hand and rng.random() < 0.3 else 0.0
    stroke = rng.choice((0, 0, 0, 1, 1, 2)) if size >= 44 else rng.choice((0, 0, 0, 1))
    advances = [font.getlength(ch) + spacing for ch in text] if spacing else None
    text_width = sum(advances) if advances else font.getlength(text)
    pad_x, pad_y = rng.randint(4, 24), rng.randint(2, 12)
    width = int(math.ceil(text_width)) + 2 * pad_x + 2 * stroke + size // 2  # swashes overhang their advance
    height = ascent + descent + 2 * pad_y + 2 * stroke
    mask = Image.new("L", (max(width, 8), height), 255)
    draw = ImageDraw.Draw(mask)
    if advances:  # letter by letter: kerning is lost, which hands do not have anyway
        x = float(pad_x)
        for ch, advance in zip(text, advances):
            draw.text((x, pad_y), ch, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
            x += advance
    else:
        draw.text((pad_x, pad_y), text, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
    if stroke == 0 and size >= 48 and rng.random() < 0.15:  # a thinner pen
        mask = mask.filter(ImageFilter.MaxFilter(3))
    if rng.random() < 0.06:  # occasional underline or strike-through across part of the line
        baseline = pad_y + ascent
        y = baseline + max(2, descent // 3) if rng.random() < 0.5 else baseline - int(0.3 * size)
        x0 = rng.randint(pad_x, max(pad_x, pad_x + int(text_width * 0.5)))
        x1 = rng.randint(min(x0 + size, pad_x + int(text_width)), pad_x + int(text_width) + 1)
        draw.line([(x0, y + rng.randint(-2, 2)), (x1, y + rng.randint(-2, 2))], fill=0,
                  width=rng.randint(1, max(2, size // 20)))
    return mask


def _slant(mask: Image.Image, shear: float) -> Image.Image:
    if abs(shear) <= 0.02:
        return mask
    extra = int(abs(shear) * mask.height)
    return mask.transform((mask.width + extra, mask.height), Image.AFFINE,
                          (1, shear, -extra if shear > 0 else 0, 0, 1, 0), resample=Image.BILINEAR, fillcolor=255)


def _mesh_warp(mask: Image.Image, rng: random.Random) -> Image.Image:
    """Baseline drift (a slow wave plus a random walk of the line's height) and elastic distortion (jittered mesh
    nodes), as one PIL mesh transform (piecewise-bilinear)."""
    width, height = mask.size
    cell = max(16, height)  # PIL warps mesh cells one Python call each: coarse cells keep it ~1 ms
    columns = max(1, width // cell)
    xs = [round(k * width / columns) for k in range(columns + 1)]
    ys = (0, height // 2, height)
    amplitude, period, phase = rng.uniform(0, 0.08) * height, rng.uniform(2, 8) * height, rng.uniform(0, 6.283)
    walk, drift = 0.0, []
    for x in xs:
        walk += rng.gauss(0, 0.015 * height)
        drift.append(amplitude * math.sin(2 * math.pi * x / period + phase) + walk)
    jitter = rng.uniform(0, 0.06) * height
    nodes = [[(x + rng.gauss(0, jitter) * (0 < k < columns), y + drift[k] + rng.gauss(0, jitter) * (y == ys[1]))
              for y in ys] for k, x in enumerate(xs)]
    mesh = []
    for k in range(columns):
        for j in range(2):
            box = (xs[k], ys[j], xs[k + 1], ys[j + 1])
            (ulx, uly), (llx, lly) = nodes[k][j], nodes[k][j + 1]
            (lrx, lry), (urx, ury) = nodes[k + 1][j + 1], nodes[k + 1][j]
            mesh.append((box, (ulx, uly, llx, lly, lrx, lry, urx, ury)))
    return mask.transform(mask.size, Image.MESH, mesh, resample=Image.BILINEAR, fillcolor=255)


def _compose(mask: Image.Image, rng: random.Random) -> Image.Image:
    """Ink over paper: ``paper + (ink - paper) * coverage``, paper with a smooth texture and pixel noise."""
    width, height = mask.size
    noise = np.random.default_rng(rng.getrandbits(32))
    coverage = 1.0 - np.asarray(mask, dtype=np.float32) / 255.0
    paper = np.float32(rng.randint(185, 255))
    texture_sd = rng.uniform(0, 10)
    if texture_sd > 1:  # blotches a few characters wide: uneven paper, shadows of a scan
        coarse = noise.standard_normal((max(2, height // 12), max(2, width // 12)), dtype=np.float32) * texture_sd
        paper = paper + np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.BICUBIC))
    ink = np.float32(rng.randint(0, 100))
    pixels = paper + (ink - paper) * coverage
    pixels += noise.standard_normal(pixels.shape, dtype=np.float32) * np.float32(rng.uniform(0, 8))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def generate(split: str, num_samples: int, seed: int = 0, corpus_file: str | None = None,
             fonts: tuple[str, ...] | None = None, font_size: int | None = None, min_aspect: float | None = 12.0,
             **spec):
    """Yield ``{"image": PIL RGB image, "text", "font", "index"}`` for the first ``num_samples`` lines of a split:
    the same lines the streaming dataset makes at indices 0..num_samples-1 with the same spec."""
    if font_size is not None:
        spec["font_size"] = (font_size, font_size)
    factory = LineFactory(LineSpec(split=split, seed=seed, fonts=tuple(fonts) if fonts else None,
                                   min_aspect=min_aspect, text_sources=spec.pop("text_sources", (corpus_file,)),
                                   **spec))
    for index in range(num_samples):
        row = factory(index)
        row["image"] = row["image"].convert("RGB")
        yield row
