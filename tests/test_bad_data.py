"""Issue 13, data rows: reads stay inside the split folder, every bad metadata line is reported at once (file and
1-based line), skip_bad_samples skips and counts them, BOMs are accepted, odd images are refused or stated."""

import json
import logging

import pytest
from PIL import Image

from trocr_lail.configs import DataArguments
from trocr_lail.data.prepare import prepare_splits, skip_report
from trocr_lail.data.sources import load_splits, metadata_scans
from trocr_lail.data.validate import validate_splits


def png(path, size=(40, 12)):
    Image.new("L", size, 255).save(path)


def args_for(root, **overrides):
    return DataArguments(data_dir=str(root), validation_split=None, test_split=None, **overrides)


def check(root, tokenizer, **overrides):
    args = args_for(root, **overrides)
    splits = load_splits(args)
    return splits, validate_splits(splits, tokenizer, 32, scans=metadata_scans(args, splits))


def jsonl(folder, lines, bom=False):
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / "metadata.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


@pytest.fixture
def escaping(tmp_path):
    root, train = tmp_path / "data", tmp_path / "data" / "train"
    train.mkdir(parents=True)
    png(tmp_path / "outside.png")
    png(train / "ok.png")
    (train / "link.png").symlink_to(tmp_path / "outside.png")
    (train / "inner.png").symlink_to(train / "ok.png")  # a link that stays inside is fine
    jsonl(train, [{"file_name": "ok.png", "text": "fine"}, {"file_name": "../../outside.png", "text": "up"},
                  {"file_name": str(tmp_path / "outside.png"), "text": "absolute"},
                  {"file_name": "link.png", "text": "symlink"}, {"file_name": "inner.png", "text": "fine"}])
    return root


def test_file_names_outside_the_split_folder_are_bad_rows(escaping, tiny_processor):
    splits, summary = check(escaping, tiny_processor.tokenizer)
    assert list(splits["train"]["text"]) == ["fine", "fine"]  # nothing outside was loaded
    problems = summary.problems
    assert [p.line for p in problems] == [2, 3, 4]
    assert all("outside the split folder" in p.message for p in problems)
    assert str(problems[0]).startswith(f"{escaping / 'train' / 'metadata.jsonl'} line 2 (")
    assert summary.splits["train"].rows == 5 and summary.num_bad_rows() == 3
    args = args_for(escaping)
    with pytest.raises(ValueError, match=r"(?s)3 problem\(s\) in 3 row\(s\).*line 2.*\.\./\.\./outside\.png"):
        prepare_splits(load_splits(args), tiny_processor.tokenizer, 32, args)


def test_hub_style_datasets_are_not_confined(tiny_processor, tmp_path):
    import datasets

    png(tmp_path / "anywhere.png")
    split = datasets.Dataset.from_dict({"image": [str(tmp_path / "anywhere.png")], "text": ["ab"]})
    summary = validate_splits(datasets.DatasetDict(train=split.cast_column("image", datasets.Image())),
                              tiny_processor.tokenizer, 32)
    assert not summary.problems


@pytest.fixture
def broken_metadata(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png"):
        png(train / name)
    jsonl(train, [{"file_name": "a.png", "text": "good one"},  # line 1
                  {"file_name": "b.png", "text": 123},  # line 2: a number
                  '{"file_name": "c.png", "text": "unclosed',  # line 3: invalid JSON
                  {"file_name": "c.png"},  # line 4: no text
                  "",  # line 5: blank, ignored
                  {"file_name": "gone.png", "text": "missing file"},  # line 6
                  {"file_name": "d.png", "text": "good two"},  # line 7
                  "[1, 2]",  # line 8: not an object
                  {"file_name": "e.png", "text": None},  # line 9: null text
                  {"file_name": "nul\u0000.png", "text": "odd"}])  # line 10: not a path
    return tmp_path


def test_every_bad_metadata_line_is_reported_at_once(broken_metadata, tiny_processor):
    splits, summary = check(broken_metadata, tiny_processor.tokenizer)
    assert list(splits["train"]["text"]) == ["good one", "good two"]
    found = {p.line: p.message for p in summary.problems}
    assert sorted(found) == [2, 3, 4, 6, 8, 9, 10]
    assert "text is 123 (int), not a string" in found[2]
    assert "not valid JSON" in found[3] and "missing ['text']" in found[4]
    assert "gone.png': no such file" in found[6] and "not an object" in found[8] and "text is null" in found[9]
    assert "is not a usable path (embedded null byte)" in found[10]
    assert summary.splits["train"].rows == 9 and summary.num_bad_rows() == 7
    args = args_for(broken_metadata)
    with pytest.raises(ValueError, match=r"(?s)7 problem\(s\) in 7 row\(s\).*metadata\.jsonl line 2.*line 10"):
        prepare_splits(load_splits(args), tiny_processor.tokenizer, 32, args)


def test_skip_bad_samples_skips_and_counts_bad_metadata_lines(broken_metadata, tiny_processor):
    args = args_for(broken_metadata, skip_bad_samples=True, augment=False)
    splits, summary, decoders = prepare_splits(load_splits(args), tiny_processor.tokenizer, 32, args)
    assert list(splits["train"]["text"]) == ["good one", "good two"]
    assert skip_report(summary, decoders).startswith("Skipped bad samples: 7 row(s) before training {'train': 7}")


def test_all_lines_bad_lists_them_instead_of_empty(tmp_path):
    jsonl(tmp_path / "train", [{"file_name": "x.png", "text": 5}])
    with pytest.raises(ValueError, match=r"(?s)no usable rows: all 1 line\(s\).*line 1.*text is 5"):
        load_splits(args_for(tmp_path))


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_byte_order_mark_is_accepted(tmp_path, tiny_processor, kind):
    train = tmp_path / "train"
    train.mkdir()
    png(train / "a.png")
    if kind == "csv":
        (train / "metadata.csv").write_bytes("\ufefffile_name,text\na.png,hello\n".encode())
    else:
        jsonl(train, [{"file_name": "a.png", "text": "hello"}], bom=True)
    splits, summary = check(tmp_path, tiny_processor.tokenizer)
    assert list(splits["train"]["text"]) == ["hello"] and not summary.problems


def test_csv_lines_are_file_lines(tmp_path, tiny_processor):
    train = tmp_path / "train"
    train.mkdir()
    png(train / "a.png")
    (train / "metadata.csv").write_text('file_name,text\na.png,"two\nlines"\nmissing.png,x\n')
    _, summary = check(tmp_path, tiny_processor.tokenizer)
    assert [p.line for p in summary.problems] == [4]  # header 1, the quoted row spans 2-3


def test_csv_without_the_columns_names_the_header(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metadata.csv").write_text("image,label\na.png,x\n")
    with pytest.raises(ValueError, match=r"metadata\.csv, line 1: header \['image', 'label'\] lacks \['file_name', "
                                         r"'text'\]"):
        load_splits(args_for(tmp_path))


def test_conflicting_duplicates_wide_images_and_gifs(tmp_path, tiny_processor, caplog):
    train = tmp_path / "train"
    train.mkdir()
    png(train / "a.png")
    png(train / "same.png")
    png(train / "wide.png", size=(20000, 40))
    frames = [Image.new("L", (40, 12), shade) for shade in (0, 255, 128)]
    frames[0].save(train / "anim.gif", save_all=True, append_images=frames[1:])
    jsonl(train, [{"file_name": "a.png", "text": "one text"}, {"file_name": "./a.png", "text": "another text"},
                  {"file_name": "same.png", "text": "twice"}, {"file_name": "same.png", "text": "twice"},
                  {"file_name": "wide.png", "text": "wide"}, {"file_name": "anim.gif", "text": "moving"}])
    splits, summary = check(tmp_path, tiny_processor.tokenizer)
    found = {p.line: p.message for p in summary.problems}
    assert sorted(found) == [1, 2, 5]
    assert "listed 2 times (lines 1, 2) with different texts" in found[1] == found[2]
    assert "20000x40 pixels, an aspect ratio over 100:1" in found[5]
    assert list(splits["train"]["text"]) == ["twice", "twice", "wide", "moving"]  # identical duplicates are kept
    assert summary.splits["train"].multi_frame == 1
    assert "1 animated/multi-page (first frame used)" in summary.format()
    args = args_for(tmp_path, skip_bad_samples=True, augment=False)
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        kept, _, _ = prepare_splits(load_splits(args), tiny_processor.tokenizer, 32, args)
    assert "1 'train' image(s) are animated or multi-page: only their first frame is read" in caplog.text
    gif = kept["train"][2]["image"]
    assert gif.getpixel((0, 0)) == (0, 0, 0)  # the first frame, black


def test_row_numbers_are_one_based_everywhere(tmp_path, tiny_processor):
    import datasets

    train = tmp_path / "train"
    train.mkdir()
    png(train / "a.png")
    png(train / "b.png")
    jsonl(train, [{"file_name": "a.png", "text": "fine"}, {"file_name": "b.png", "text": "  "}])
    _, summary = check(tmp_path, tiny_processor.tokenizer)
    assert str(summary.problems[0]).startswith(f"{train / 'metadata.jsonl'} line 2 ({train / 'b.png'}): empty")
    hub = datasets.Dataset.from_dict({"image": [str(train / "a.png")] * 2, "text": ["ok", ""]})
    hub_summary = validate_splits(datasets.DatasetDict(train=hub.cast_column("image", datasets.Image())),
                                  tiny_processor.tokenizer, 32)
    assert str(hub_summary.problems[0]).startswith("train row 2 (")  # the second row, counted from 1


def test_validate_command_lists_bad_metadata_lines(broken_metadata, tmp_path, capsys):
    import yaml

    from trocr_lail.cli import main as cli_main

    from conftest import TINY_ARGS

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data_dir": str(broken_metadata), "validation_split": None,
                                      "test_split": None}))
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS]) == 1
    out = capsys.readouterr().out
    assert "train: 9 rows, 7 bad" in out and "metadata.jsonl line 3: not valid JSON" in out
