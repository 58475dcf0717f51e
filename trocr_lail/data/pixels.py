"""Images resized once, at load time: training steps then do no image decoding, resizing or PIL work.

``preprocess_images`` runs the image processor's resize (and RGB conversion) over each split with
``datasets.map`` and stores the result as raw uint8 bytes, ``pixels`` (channels x height x width, shape in
``pixels_shape``), which ``datasets`` caches on disk next to the source data, so a re-run reuses it. Raw bytes
read back ~10x faster than an ``Array3D`` column, which ``datasets`` widens to int64 on the way out. The collator only rescales and normalises (tensor ops,
``normalize_pixels``), which reproduces the processor's ``pixel_values`` to float rounding. Not for augmented
training data: augmentation needs the original image.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch

from .images import load_rgb

PIXELS, SHAPE = "pixels", "pixels_shape"


def _resized(image_processor, images) -> np.ndarray:
    pixels = image_processor([load_rgb(image) for image in images], do_rescale=False, do_normalize=False,
                             return_tensors="np")["pixel_values"]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _encode(batch: dict, image_processor) -> dict:
    pixels = _resized(image_processor, batch["image"])
    return {PIXELS: [row.tobytes() for row in pixels], SHAPE: [list(row.shape) for row in pixels]}


def preprocess_images(dataset: datasets.Dataset, image_processor, desc: str | None = None) -> datasets.Dataset:
    """``dataset`` with its ``image`` column replaced by uint8 ``pixels`` at the model's input size."""
    features = datasets.Features({**{k: v for k, v in dataset.features.items() if k != "image"},
                                  PIXELS: datasets.Value("binary"), SHAPE: datasets.Sequence(datasets.Value("int32"))})
    return dataset.map(_encode, fn_kwargs={"image_processor": image_processor}, batched=True, batch_size=256,
                       remove_columns=["image"], features=features, desc=desc or "Resizing images once")


def stack_pixels(examples: list[dict]) -> torch.Tensor:
    """(batch, channels, height, width) uint8 tensor from preprocessed examples."""
    return torch.stack([torch.frombuffer(bytearray(example[PIXELS]), dtype=torch.uint8).view(*example[SHAPE])
                        for example in examples])


def normalize_pixels(pixels: torch.Tensor, image_processor) -> torch.Tensor:
    """The processor's rescale + normalize on stored uint8 pixels: its ``pixel_values`` for the same images."""
    values = pixels.float()
    if image_processor.do_rescale:
        values = values * image_processor.rescale_factor
    if image_processor.do_normalize:
        mean = torch.as_tensor(image_processor.image_mean, dtype=values.dtype).view(-1, 1, 1)
        std = torch.as_tensor(image_processor.image_std, dtype=values.dtype).view(-1, 1, 1)
        values = (values - mean) / std
    return values
