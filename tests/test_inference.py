"""LineReader (batched reading behind predict/evaluate), image loading and input collection."""

import pytest
import torch
from PIL import Image

from trocr_lail.data.images import BadImage
from trocr_lail.data.synthetic import generate
from trocr_lail.inference.reader import LineReader, collect_image_paths, load_image

from conftest import export_tiny


@pytest.fixture(scope="module")
def images():
    return [row["image"] for row in generate("test", 5, seed=4, min_aspect=4.0)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from trocr_lail.models.tiny import build_tiny_processor

    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"), max_length=10)


def test_batched_reading_equals_one_by_one_generate(exported, images):
    reader = LineReader.from_pretrained(exported, device="cpu")
    one_by_one = []
    with torch.no_grad():
        for image in images:
            pixels = reader.processor(images=image.convert("RGB"), return_tensors="pt").pixel_values
            one_by_one += reader.processor.batch_decode(reader.model.generate(pixels), skip_special_tokens=True)
    assert reader.read(images, batch_size=2) == one_by_one
    assert all(0 < len(text) for text in one_by_one)  # a random model still emits up to max_length tokens


def test_pipeline_output_format(exported, images, tmp_path):
    reader = LineReader.from_pretrained(exported, device="cpu")
    images[0].save(tmp_path / "a.png")
    single = reader(tmp_path / "a.png")
    assert single == [{"generated_text": reader.read([images[0]])[0]}]
    many = reader(images[:3], batch_size=2)
    assert [item[0]["generated_text"] for item in many] == reader.read(images[:3])
    assert all(isinstance(item, list) and len(item) == 1 for item in many)


def test_generation_overrides(exported, images):
    reader = LineReader.from_pretrained(exported, device="cpu")
    short = reader.read(images[:2], max_length=3)
    assert all(len(text) <= 2 for text in short)  # decoder start + at most 2 characters


def test_load_image_modes(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # transparent black background ...
    rgba.putpixel((5, 5), (0, 0, 0, 255))  # ... with one opaque black ink pixel
    out = load_image(rgba)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((5, 5)) == (0, 0, 0)
    deep = Image.new("I;16", (8, 4))
    deep.putpixel((0, 0), 1000)
    deep.putpixel((1, 0), 65535)
    out = load_image(deep)  # scaled by 255/65535 as in training, never contrast-stretched
    assert out.getpixel((0, 0)) == (4, 4, 4) and out.getpixel((1, 0)) == (255, 255, 255)
    assert load_image(Image.new("CMYK", (8, 8))).mode == "RGB"
    assert load_image(Image.new("1", (8, 8))).mode == "RGB"
    with pytest.raises(BadImage, match="below 4 on a side"):  # the training validator's minimum size
        load_image(Image.new("L", (3, 3)))
    rotated = Image.new("L", (30, 10), 255)
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees on display
    rotated.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (10, 30)


def test_collect_image_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt", "sub/c.png"):
        (tmp_path / name).write_bytes(b"x")
    assert collect_image_paths([tmp_path]) == [tmp_path / "a.jpg", tmp_path / "b.png"]
    found = collect_image_paths([str(tmp_path / "**" / "*.png"), tmp_path / "b.png"])
    assert found == [tmp_path / "b.png", tmp_path / "sub" / "c.png"]  # each file once, in argument order
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        collect_image_paths([tmp_path / "nothing-here"])
