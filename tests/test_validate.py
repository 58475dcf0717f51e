"""Bad inputs are caught before training (an error naming the row and file) or skipped and counted on request."""

import json

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image

from trocr_lail.cli import main as cli_main
from trocr_lail.configs import DataArguments
from trocr_lail.data import images as images_module
from trocr_lail.data.collator import LineCollator
from trocr_lail.data.images import BadImage, DecodeImages, load_rgb, open_image, to_rgb
from trocr_lail.data.prepare import prepare_splits, skip_report
from trocr_lail.data.sources import _standard_columns, load_splits
from trocr_lail.data.validate import validate_split

from conftest import TINY_ARGS


def line(mode="RGB", size=(40, 12)):
    return Image.new(mode, size, {"RGB": "white", "L": 255}.get(mode, 0))


def write_split(folder, rows):
    """rows: (file_name, text, writer) where writer(path) creates the file, or None for a missing file."""
    folder.mkdir(parents=True)
    for file_name, _, writer in rows:
        if writer is not None:
            writer(folder / file_name)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f, "text": t}) + "\n"
                                                   for f, t, _ in rows))


def good(path):
    line().save(path)


def corrupt(path):
    buffer = path.with_suffix(".tmp")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 40), dtype=np.uint8)).save(buffer, "PNG")
    path.write_bytes(buffer.read_bytes()[:60])  # valid header, truncated pixel data
    buffer.unlink()


BAD_ROWS = [
    ("ok.png", "fine line", good),
    ("corrupt.png", "corrupt file", corrupt),
    ("empty.png", "zero bytes", lambda p: p.write_bytes(b"")),
    ("text.png", "not an image", lambda p: p.write_text("hello")),
    ("small.png", "tiny image", lambda p: line(size=(2, 2)).save(p)),
    ("blank.png", "   ", good),
    ("nothing.png", "", good),
    ("accent.png", "café €5", good),
    ("ok2.png", "another fine line", good),
]


@pytest.fixture
def bad_folder(tmp_path):
    write_split(tmp_path / "train", BAD_ROWS)
    return tmp_path


def test_every_bad_row_is_named_with_its_file_and_problem(bad_folder, tiny_processor):
    split = load_splits(DataArguments(data_dir=str(bad_folder), validation_split=None, test_split=None))["train"]
    summary = validate_split(split, tiny_processor.tokenizer, max_target_length=16)
    found = {problem.row: (problem.source, problem.message) for problem in summary.problems}
    assert sorted(found) == [1, 2, 3, 4, 5, 6, 7]
    assert found[1][0].endswith("corrupt.png") and "corrupt image data" in found[1][1]
    assert "zero-byte" in found[2][1] and "not a readable image" in found[3][1]
    assert "2x2 pixels" in found[4][1]
    assert "whitespace-only" in found[5][1] and "whitespace-only" in found[6][1]
    assert "cannot encode: 'é€'" in found[7][1]
    assert summary.truncated == 1 and summary.longest == len("another fine line") + 1  # counted, not dropped
    assert summary.modes == {"RGB": 5}  # rows with bad text still had their image checked


def test_too_large_image_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 1000)
    line(size=(200, 10)).save(tmp_path / "big.png")
    with pytest.raises(BadImage, match=r"big\.png: image is 200x10 pixels \(> 1,000\)"):
        open_image(str(tmp_path / "big.png"))


def test_missing_file_and_no_image():
    with pytest.raises(BadImage, match="gone.png: file does not exist"):
        load_rgb({"bytes": None, "path": "/nowhere/gone.png"})
    with pytest.raises(BadImage, match="no image"):
        load_rgb({"bytes": None, "path": None})


def test_modes_convert_to_rgb_without_losing_ink():
    deep = Image.fromarray(np.array([[65535, 32896, 0, 1000]], dtype=np.uint16).repeat(4, 0)).convert("I;16")
    assert deep.mode == "I;16" and deep.convert("L").getpixel((1, 0)) == 255  # what naive conversion does: clip
    assert [to_rgb(deep).getpixel((x, 0)) for x in range(4)] == [(255,) * 3, (128,) * 3, (0,) * 3, (4,) * 3]
    clear_ink = Image.new("LA", (4, 4), (0, 0))  # fully transparent: background
    clear_ink.putpixel((0, 0), (0, 255))  # one opaque black ink pixel
    rgb = to_rgb(clear_ink)
    assert rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (0, 0, 0)
    assert to_rgb(Image.new("RGBA", (4, 4), (10, 20, 30, 0))).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("P", (4, 4), 1)).mode == "RGB"
    assert to_rgb(Image.new("CMYK", (4, 4), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("L", (4, 4), 77)).getpixel((0, 0)) == (77, 77, 77)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_every_mode_passes_validation_and_collates(tmp_path, tiny_processor, mode):
    rows = [(f"x.{'jpg' if mode == 'CMYK' else 'png'}", "ab", lambda p: line(mode).save(p))]
    write_split(tmp_path / "train", rows)
    split = load_splits(DataArguments(data_dir=str(tmp_path), validation_split=None, test_split=None))["train"]
    summary = validate_split(split, tiny_processor.tokenizer, 10)
    assert not summary.problems and sum(summary.modes.values()) == 1
    batch = LineCollator(tiny_processor, 10)([split[0]])
    assert batch["pixel_values"].shape == (1, 3, 16, 64)


def test_missing_or_misnamed_columns_name_the_fix():
    dataset = datasets.Dataset.from_dict({"img": [line()], "transcription": ["x"]})
    with pytest.raises(ValueError, match=r"has no column\(s\) \['image', 'text'\]; its columns are \['img', "
                                         r"'transcription'\]. Set image_column / text_column"):
        _standard_columns(dataset, "image", "text", "some/dataset[train]")
    renamed = _standard_columns(dataset, "img", "transcription", "some/dataset[train]")
    assert renamed.column_names == ["image", "text"]


def test_empty_split_is_an_error(tmp_path):
    write_split(tmp_path / "train", [])
    with pytest.raises(ValueError, match="Split 'train' is empty"):
        load_splits(DataArguments(data_dir=str(tmp_path), validation_split=None, test_split=None))


def test_prepare_refuses_bad_rows_before_training(bad_folder, tiny_processor):
    args = DataArguments(data_dir=str(bad_folder), validation_split=None, test_split=None)
    with pytest.raises(ValueError, match=r"(?s)7 row\(s\).*corrupt\.png.*skip_bad_samples"):
        prepare_splits(load_splits(args), tiny_processor.tokenizer, 10, args)


def test_skip_drops_and_counts_up_front_and_mid_epoch(bad_folder, tiny_processor):
    args = DataArguments(data_dir=str(bad_folder), validation_split=None, test_split=None, skip_bad_samples=True,
                         augment=True)
    splits, summary, decoders = prepare_splits(load_splits(args), tiny_processor.tokenizer, 10, args)
    train = splits["train"]
    assert list(train["text"]) == ["fine line", "another fine line"]
    # A file that breaks after the check (disk, network share) is skipped mid-epoch, counted, never a crash.
    (bad_folder / "train" / "ok.png").write_bytes(b"")
    batch = LineCollator(tiny_processor, 10)([train[0], train[1]])
    assert batch["labels"].shape[0] == 1 and decoders["train"].skipped.value == 1
    assert skip_report(summary, decoders) == ("Skipped bad samples: 7 row(s) before training {'train': 7}, "
                                              "1 image(s) that failed to decode during the run {'train': 1}.")


def test_without_skip_a_file_broken_mid_run_names_itself(tmp_path):
    write_split(tmp_path / "train", [("a.png", "ab", good)])
    dataset = datasets.Dataset.from_dict({"image": [str(tmp_path / "train" / "a.png")], "text": ["ab"]})
    dataset = dataset.cast_column("image", datasets.Image(decode=False)).with_transform(DecodeImages())
    (tmp_path / "train" / "a.png").write_bytes(b"")
    with pytest.raises(BadImage, match=r"a\.png: zero-byte file.*skip_bad_samples"):
        dataset[0]


def test_validate_command(bad_folder, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data_dir": str(bad_folder), "validation_split": None, "test_split": None,
                                      "max_target_length": 10}))
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS]) == 1
    out = capsys.readouterr().out
    assert "train: 9 rows, 7 bad" in out and "corrupt.png" in out and "5 over max_target_length=10" in out
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS, "--skip_bad_samples", "true",
                     "--max_target_length", "64"]) == 1  # skipping is a training choice; the check still fails
    write_split(tmp_path / "clean" / "train", [("a.png", "ab", good)])
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS, "--data_dir", str(tmp_path / "clean")]) == 0
    assert "OK: every row is usable" in capsys.readouterr().out
