"""The collator's pre-resize is an optimisation only: pixel_values are bit-identical to the image processor's."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DeiTImageProcessor

from trocr_lail.data.collator import LineCollator, presize_target
from trocr_lail.data.images import load_rgb


def images():
    rng = np.random.default_rng(0)
    rgb = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(50, 700), (8, 30)]]
    grey = [Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)) for h, w in [(70, 1200), (16, 64)]]
    palette = [rgb[0].convert("P"), Image.fromarray(rng.integers(0, 255, (40, 500, 4), dtype=np.uint8))]  # P, RGBA
    return rgb + grey + palette


def test_presized_batch_equals_the_processors(tiny_processor):
    examples = [{"image": image, "text": "ab"} for image in images()]
    # load_rgb: the collator's own mode handling (transparency onto white paper), here without the pre-resize.
    reference = tiny_processor.image_processor([load_rgb(e["image"]) for e in examples],
                                               return_tensors="pt")["pixel_values"]
    assert presize_target(tiny_processor.image_processor) == (64, 16)
    assert torch.equal(LineCollator(tiny_processor)(examples)["pixel_values"], reference)


@pytest.mark.parametrize("processor", [DeiTImageProcessor(do_center_crop=True), DeiTImageProcessor(do_resize=False)])
def test_no_presize_when_the_processor_does_more_than_resize(processor):
    assert presize_target(processor) is None
