"""Test-time degradations: deterministic per line, size and mode kept, each doing what its name says."""

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw

from trocr_lail.evaluation.degradations import DEGRADATIONS, add_degraded_splits, degrade, degraded_split


def line_image(mode="L", size=(192, 32)):
    image = Image.new(mode, size, 255 if mode == "L" else (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for x in range(8, size[0] - 16, 14):  # dark strokes on white paper, like handwriting
        draw.rectangle([x, 6, x + 4, size[1] - 6], fill=0 if mode == "L" else (0, 0, 0))
    return image


def ink(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) < 128


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
@pytest.mark.parametrize("mode,size", [("L", (192, 32)), ("RGB", (300, 48))])
def test_every_degradation_is_deterministic_and_keeps_size_and_mode(name, mode, size):
    image = line_image(mode, size)
    once, again = degrade(image, name, seed=3), degrade(image, name, seed=3)
    assert once.size == image.size and once.mode == image.mode
    assert np.array_equal(np.asarray(once), np.asarray(again))
    assert not np.array_equal(np.asarray(once), np.asarray(image))


def test_each_degradation_does_what_it_says():
    image = line_image()
    pixels = np.asarray(image, dtype=np.float32)
    blurred = np.asarray(degrade(image, "blur", 0), dtype=np.float32)
    # Total variation survives a blur; gradient energy (sharp edges) does not.
    assert np.square(np.diff(blurred, axis=1)).mean() < 0.3 * np.square(np.diff(pixels, axis=1)).mean()
    faded = np.asarray(degrade(image, "low_contrast", 0), dtype=np.float32)
    assert (faded.min(), faded.max()) == (96.0, 160.0)  # 255 levels squeezed into 64
    kept = ink(degrade(image, "ink_gaps", 0)).sum() / ink(image).sum()
    assert 0.5 < kept < 0.9  # about 30% of the ink erased, in cells
    noisy = np.asarray(degrade(image, "noise", 0), dtype=np.float32)
    assert 30 < np.std(noisy - pixels) < 80
    assert degrade(image, "noise", 0) != degrade(image, "noise", 1)
    with pytest.raises(ValueError, match="Unknown test degradation 'fog'"):
        degrade(image, "fog", 0)


def test_degraded_split_seeds_line_i_with_i_and_is_added_next_to_the_test_split():
    images = [line_image(size=(100 + 20 * i, 32)) for i in range(3)]
    test = datasets.Dataset.from_dict({"image": images, "text": ["a", "b", "c"]}).cast_column("image",
                                                                                             datasets.Image())
    splits = datasets.DatasetDict({"test": test})

    class Args:
        test_split, test_degradations = "test", ["noise", "ink_gaps"]

    splits = add_degraded_splits(splits, Args)
    assert sorted(splits) == ["test", "test_ink_gaps", "test_noise"]
    assert splits["test_noise"]["text"] == ["a", "b", "c"]
    for i, row in enumerate(splits["test_noise"]):
        assert np.array_equal(np.asarray(row["image"]), np.asarray(degrade(images[i], "noise", i)))
    with pytest.raises(ValueError, match="fog"):
        degraded_split(test, "fog")
