"""The synthetic renderer for any script: CJK text is cut into sentences and lines without spaces, gzipped text files
read, and per-split font lists refuse a held-out copy of a training font."""

import gzip
import shutil

import pytest

from trocr_lail.data.corpus import layout, read_source, sentences
from trocr_lail.data.fonts import font_files, split_font_files
from trocr_lail.data.synthetic import LineFactory, LineSpec

JAPANESE = "吾輩は猫である。名前は\nまだ無い。「どこで生れたか。」とんと見当が Debian つかぬ！ It is a cat. Yes."


def test_cjk_sentences_and_lines_break_without_spaces():
    assert sentences(JAPANESE) == ["吾輩は猫である。", "名前はまだ無い。", "「どこで生れたか。」",
                                   "とんと見当が Debian つかぬ！", "It is a cat.", "Yes."]
    lines = layout(sentences(JAPANESE)[:4], width=8, max_chars=8)
    # Greedy, between any two CJK characters, spaces kept only where the text has them (no kinsoku rules yet).
    assert lines == ["吾輩は猫である。", "名前はまだ無い。", "「どこで生れたか", "。」とんと見当が", "Debian つ",
                     "かぬ！"]
    assert layout(["It is a cat.", "Yes."], width=9, max_chars=9) == ["It is a", "cat. Yes."]


def test_gzipped_text_files_read(tmp_path):
    path = tmp_path / "ja.txt.gz"
    path.write_bytes(gzip.compress(JAPANESE.encode("utf-8")))
    assert read_source(str(path)) == JAPANESE


def test_split_font_files_and_a_held_out_copy_of_a_training_font(tmp_path):
    caveat, kalam = font_files("caveat")[0], font_files("kalam")[0]
    (tmp_path / "train").mkdir()
    shutil.copy(caveat, tmp_path / "train" / "a.ttf")
    shutil.copy(kalam, tmp_path / "held.ttf")
    lists = {"train": [str(tmp_path / "train")], "test": [str(tmp_path / "held*.ttf")]}
    assert split_font_files(lists, "train") == (str(tmp_path / "train" / "a.ttf"),)
    assert split_font_files(lists, "test") == (str(tmp_path / "held.ttf"),)
    assert split_font_files(lists, "validation") is None  # the toolkit's fonts
    spec = LineSpec(split="test", font_files=split_font_files(lists, "test"), text_sources=(None,))
    assert LineFactory(spec)(0)["font"] == "held"
    shutil.copy(caveat, tmp_path / "renamed.ttf")
    with pytest.raises(ValueError, match="synthetic_test_fonts holds training fonts: .*renamed.ttf"):
        split_font_files({**lists, "test": [str(tmp_path / "renamed.ttf")]}, "test")
    with pytest.raises(FileNotFoundError, match="no font file, folder or pattern"):
        split_font_files({"train": [str(tmp_path / "none*.otf")]}, "train")
