"""Opening line images safely: any PIL mode to RGB without losing the ink, and one error type that names the file.

:func:`load_rgb` is the one image loader: training, validation, evaluation and ``trocr-lail predict`` all decode
through it, so an image reads the same everywhere. Its rules: EXIF orientation applied; the first frame of an
animated/multi-page file (counted by the validator, named by ``predict``); sides of at least ``MIN_IMAGE_SIDE``,
at most ``MAX_IMAGE_PIXELS`` pixels and an aspect ratio of at most ``MAX_ASPECT``:1 either way; 16-bit grey
scaled by 255/65535 (as image viewers show it, never contrast-stretched); transparency on white paper.

Image columns are kept undecoded (``datasets.Image(decode=False)``) and decoded here, so a file that fails to
decode raises :class:`BadImage` naming it, and :class:`DecodeImages` can turn that into a counted skip instead of a
crash in the middle of an epoch.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 4  # narrower or shorter than this cannot hold a line of text
MAX_IMAGE_PIXELS = 40_000_000  # a text line this large is a mistake (a full page, a raw scan) and costs GBs per batch
PAGE_MAX_PIXELS = 400_000_000  # a page scan that lines are cut from (PAGE/ALTO); the line limits apply to cuts
MAX_ASPECT = 100  # width:height (or height:width); real lines are ~5-40:1, and 500:1 squashed to 384 px is noise
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")


class BadImage(ValueError):
    """An image that cannot be used; the message names where it came from and what to do."""


def describe(value) -> str:
    """Where an image comes from, for messages: its path, or 'embedded image bytes'."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return "embedded image bytes"


def open_image(value, max_pixels: int | None = None, min_side: int | None = None) -> Image.Image:
    """Decode ``value`` (a PIL image, a path, or datasets' ``{"bytes", "path"}``) fully, checking its size from the
    header first so that an oversized image is refused before its pixels are allocated."""
    if isinstance(value, Image.Image):
        image = value
    else:
        where = describe(value)
        data = value.get("bytes") if isinstance(value, dict) else None
        path = value if isinstance(value, str) else (value or {}).get("path")
        if data is None:
            if not path:
                raise BadImage("row has no image (neither bytes nor a path)")
            if not os.path.isfile(path):
                raise BadImage(f"{path}: file does not exist; fix the file name in the metadata or restore the file")
            if os.path.getsize(path) == 0:
                raise BadImage(f"{path}: zero-byte file; re-export or remove the image")
        elif len(data) == 0:
            raise BadImage(f"{where}: zero-byte image; re-export or remove it")
        try:
            image = Image.open(io.BytesIO(data) if data is not None else path)
        except Image.DecompressionBombError as err:
            raise BadImage(f"{where}: image too large ({err}); crop or downscale it to a text line") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise BadImage(f"{where}: not a readable image ({err}); re-export or remove it") from None
    width, height = image.size
    max_pixels, min_side = max_pixels or MAX_IMAGE_PIXELS, min_side or MIN_IMAGE_SIDE
    if min(width, height) < min_side:
        raise BadImage(f"{describe(value)}: image is {width}x{height} pixels, below {min_side} on a side; "
                       "remove it or fix the crop")
    if width * height > max_pixels:
        raise BadImage(f"{describe(value)}: image is {width}x{height} pixels (> {max_pixels:,}); crop or downscale "
                       "it to a text line")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise BadImage(f"{describe(value)}: image is {width}x{height} pixels, an aspect ratio over {MAX_ASPECT}:1; "
                       "that is not one text line: crop or split it")
    try:
        image.load()  # the first frame of an animated or multi-page file: see frame_count
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImage(f"{describe(value)}: corrupt image data ({err}); re-export or remove it") from None
    image.info["n_frames"] = frame_count(image)  # kept through convert/transpose, for whoever reports it
    if image.getexif().get(ORIENTATION, 1) != 1:  # a camera photo: read it the way it is displayed
        image = ImageOps.exif_transpose(image)
    return image


ORIENTATION = 0x0112  # EXIF tag


def frame_count(image: Image.Image) -> int:
    """Frames (animation) or pages (TIFF) in ``image``; only the first is read."""
    return int(getattr(image, "n_frames", image.info.get("n_frames", 1)) or 1)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL mode. 16/32-bit grey is rescaled (``convert("L")`` would clip everything above 255 to
    white), transparent pixels become white paper (a plain ``convert`` would turn them black)."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_BIT_MODES or image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F":  # no fixed range: stretch what is there
            low, high = pixels.min(), pixels.max()
            pixels = (pixels - low) / max(high - low, 1e-12) * 255.0
        else:
            pixels = pixels * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise BadImage(f"cannot convert image mode {image.mode} to RGB ({err})") from None


def load_rgb(value, **limits) -> Image.Image:
    image = open_image(value, **limits)
    try:
        return to_rgb(image)
    except BadImage as err:
        raise BadImage(f"{describe(value)}: {err}") from None


class DecodeImages:
    """``datasets`` transform: undecoded ``image`` values -> RGB PIL images, then an optional augmentation.

    With ``skip_bad``, an image that fails becomes ``None`` (the collator drops the row) and is counted in
    ``skipped``, a shared-memory counter that dataloader worker processes update too; otherwise the error names
    the file."""

    def __init__(self, augment=None, skip_bad: bool = False):
        self.augment, self.skip_bad = augment, skip_bad
        self.skipped = multiprocessing.Value("i", 0)

    def __call__(self, batch: dict) -> dict:
        if "image" not in batch:  # e.g. dataset["text"]
            return batch
        images = []
        for value in batch["image"]:
            try:
                images.append(load_rgb(value))
            except BadImage as err:
                if not self.skip_bad:
                    raise BadImage(f"{err}. Run `trocr-lail validate` on the dataset, or set "
                                   "skip_bad_samples: true to skip such rows.") from None
                with self.skipped.get_lock():
                    self.skipped.value += 1
                logger.warning("Skipping unreadable image: %s", err)
                images.append(None)
        if self.augment is not None:
            kept = iter(self.augment({"image": [image for image in images if image is not None]})["image"])
            images = [next(kept) if image is not None else None for image in images]
        batch["image"] = images
        return batch
