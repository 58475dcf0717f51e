"""``trocr-lail validate DIR``: a plain data folder (train/validation/test, or one split) checked with no recipe;
the tokenizer checks run only with ``--model``."""

import json

import pytest
from PIL import Image

from trocr_lail.cli import main
from trocr_lail.models.tiny import build_tiny_processor

from conftest import export_tiny


def write_split(folder, texts):
    folder.mkdir(parents=True)
    rows = []
    for i, text in enumerate(texts):
        Image.new("L", (64, 16), 255).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": text})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"))


def test_validate_folder_with_splits(tmp_path, capsys):
    write_split(tmp_path / "data" / "train", ["a line", "another line"])
    write_split(tmp_path / "data" / "test", ["fine", "  "])
    (tmp_path / "data" / "test" / "0.png").write_bytes(b"not a png")
    assert main(["validate", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "train: 2 rows, 0 bad" in out and "test: 2 rows, 2 bad" in out
    meta = tmp_path / "data" / "test" / "metadata.jsonl"
    assert f"{meta} line 1 ({tmp_path / 'data' / 'test' / '0.png'}): not a readable image" in out
    assert f"{meta} line 2" in out and "empty or whitespace-only transcription" in out
    assert "no --model: tokenizer coverage and target lengths not checked" in out


def test_validate_single_split_with_and_without_a_tokenizer(tmp_path, model, capsys):
    write_split(tmp_path / "lines", ["plain ascii", "caf\u00e9 \u2603"])
    assert main(["validate", str(tmp_path / "lines")]) == 0  # no tokenizer: nothing to object to
    assert "lines: 2 rows, 0 bad" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "lines"), "--model", str(model), "--max_target_length", "5"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'lines' / 'metadata.jsonl'} line 2" in out and "cannot encode" in out and "\u2603" in out
    assert "longest target 12 tokens, 2 over max_target_length=5" in out  # "plain ascii": 11 characters + EOS


def test_validate_refuses_a_folder_without_metadata(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="has no metadata.jsonl or metadata.csv"):
        main(["validate", str(tmp_path / "empty")])
    for argv in (["validate"], ["validate", "a", "b"], ["validate", "--data_dir", "a"]):
        with pytest.raises(SystemExit, match="give one data folder"):
            main(argv)


def test_validate_dir_reports_bad_metadata_lines_with_the_image_checks(tmp_path, capsys):
    """A plain folder gets the same all-at-once report as a recipe: bad metadata lines are named, not dropped."""
    import json

    from PIL import Image

    from trocr_lail.cli import main

    split = tmp_path / "train"
    split.mkdir()
    Image.new("RGB", (60, 20), "white").save(split / "a.png")
    (split / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "fine"}) + "\n"
                                          + json.dumps({"file_name": "../outside.png", "text": "x"}) + "\n")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "line 2" in out and "outside" in out
