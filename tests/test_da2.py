"""DA2, the TrOCR paper's training augmentation (microsoft/unilm trocr/data_aug.py), pinned transform by transform."""

import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from trocr_lail.configs import DataArguments
from trocr_lail.data import augment as aug
from trocr_lail.data.augment import DA2, Augment, augment_mode

SIZE = (384, 384)


def line_image() -> Image.Image:
    image = Image.new("RGB", (200, 40), (250, 250, 250))
    ImageDraw.Draw(image).text((10, 10), "Handwritten line 123", fill=(20, 20, 20))
    return image


class FixedRandom(random.Random):
    """A generator whose uniform() returns a chosen value, to pin a transform's drawn parameter."""

    def __init__(self, value):
        super().__init__(0)
        self.value, self.bounds = value, []

    def uniform(self, a, b):
        self.bounds.append((a, b))
        return self.value


def test_augment_modes_and_legacy_booleans():
    assert [augment_mode(v) for v in ("da2", "light", "none", True, False, "true", "false")] == \
        ["da2", "light", "none", "light", "none", "light", "none"]
    assert DataArguments(synthetic=True, augment=True).augment == "light"
    with pytest.raises(ValueError, match="augment: 'heavy' is not one of da2, light, none"):
        DataArguments(synthetic=True, augment="heavy")


def test_seven_transforms_chosen_uniformly():
    assert len(DA2) == 7
    rng = random.Random(0)
    counts = Counter(rng.choices(DA2, k=1)[0].__name__ for _ in range(70_000))
    assert len(counts) == 7 and all(abs(n - 10_000) < 400 for n in counts.values())  # ~4 sigma


def test_rotation_is_plus_minus_10_degrees_nearest_expand_white():
    image, rng = line_image(), FixedRandom(7.5)
    out = aug.da2_rotate(image, rng)
    assert rng.bounds == [(-10.0, 10.0)]
    expected = image.rotate(7.5, resample=Image.NEAREST, expand=True, fillcolor=(255, 255, 255))
    assert out.size == expected.size and out.size[1] > image.size[1]  # expanded, not cropped
    assert np.array_equal(np.asarray(out), np.asarray(expected)) and out.getpixel((0, 0)) == (255, 255, 255)


def test_blur_is_torchvision_gaussian_3x3_with_sigma_in_0_1_to_2():
    image, rng = line_image(), FixedRandom(1.3)
    out = np.asarray(aug.da2_blur(image, rng)).astype(float)
    assert rng.bounds == [(0.1, 2.0)]
    x = np.array([-1.0, 0.0, 1.0])
    k = np.exp(-0.5 * (x / 1.3) ** 2)
    k /= k.sum()
    src = np.pad(np.asarray(image).astype(float), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    kernel2d = np.outer(k, k)
    ref = sum(kernel2d[i, j] * src[i:i + 40, j:j + 200] for i in range(3) for j in range(3))
    assert np.abs(out - np.round(ref)).max() <= 1  # rounding of the separable sum vs the 2-D sum


def test_dilation_and_erosion_are_pil_max_and_min_filters():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 50, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(aug.da2_dilation(image, None)), np.asarray(image.filter(ImageFilter.MaxFilter(3))))
    assert np.array_equal(np.asarray(aug.da2_erosion(image, None)), np.asarray(image.filter(ImageFilter.MinFilter(3))))


def test_downscale_is_nearest_to_a_third_of_the_input():
    image = line_image()
    out = aug.da2_downscale(image, None, SIZE)
    assert out.size == (128, 128)
    assert np.array_equal(np.asarray(out), np.asarray(image.resize((128, 128), Image.NEAREST)))


def test_underline_three_rows_under_the_lowest_dark_pixel():
    image = Image.new("RGB", (60, 30), (255, 255, 255))
    image.putpixel((10, 12), (0, 0, 0))
    image.putpixel((40, 20), (49, 49, 49))  # darker than 50: the lowest dark row is 20, rightmost column 40
    image.putpixel((50, 25), (60, 60, 60))  # not dark enough to count
    out = np.asarray(aug.da2_underline(image, None))
    black = np.all(out == 0, axis=2)
    assert black[18:21, 10:40].all() and not black[18:21, 40].any() and not black[17, 10:40].any()
    assert np.asarray(image)[20, 20].tolist() == [255, 255, 255]  # the input is left alone
    blank = Image.new("RGB", (20, 10), (255, 255, 255))
    assert aug.da2_underline(blank, None) is blank


def test_da2_outputs_rgb_at_the_input_size_bicubic_and_keeps_the_original_on_error(monkeypatch):
    import torch

    torch.manual_seed(0)
    augment = Augment("da2", size=SIZE)
    out = augment({"image": [line_image().convert("L")] * 20})["image"]
    assert all(o.mode == "RGB" and o.size == SIZE for o in out)
    identity = augment.da2(line_image(), FixedChoice(aug._identity))
    assert np.array_equal(np.asarray(identity), np.asarray(line_image().resize(SIZE, Image.BICUBIC)))

    def broken(image, rng):
        raise RuntimeError("boom")

    assert np.array_equal(np.asarray(augment.da2(line_image(), FixedChoice(broken))), np.asarray(identity))


class FixedChoice(random.Random):
    def __init__(self, transform):
        super().__init__(0)
        self.transform = transform

    def choices(self, population, k=1):
        return [self.transform]
