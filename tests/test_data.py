import json
import shutil
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

from trocr_lail.configs import DataArguments
from trocr_lail.data.augment import Augment
from trocr_lail.data.collator import LineCollator
from trocr_lail.data.corpus import layout, load_lines, sentences, strip_gutenberg_boilerplate
from trocr_lail.data.fonts import PRINTED_FONTS, TEST_FONTS, TRAIN_FONTS, VALIDATION_FONTS, font_files
from trocr_lail.data.sources import load_splits, metadata_scans
from trocr_lail.data.synthetic import generate


def test_corpus_lines_have_iam_like_lengths_and_are_real_english():
    lines = load_lines()
    assert len(lines) > 10000
    lengths = [len(line) for line in lines]
    # IAM lines: 1 to ~90 characters, mean about 43 (issue 11).
    assert max(lengths) <= 90 and min(lengths) < 10
    assert 41 <= statistics.mean(lengths) <= 46
    assert sum(length >= 70 for length in lengths) > 200  # long lines exist, not just the 12-48 of before
    words = " ".join(lines).lower().split()
    for common in ("the", "and", "was", "that"):  # real prose, not lorem ipsum
        assert words.count(common) > 200
    assert not any("gutenberg" in line.lower() for line in lines[20:])  # licence boilerplate removed


def test_layout_breaks_only_at_spaces_and_keeps_whole_sentences():
    text = "One two three. Four five six seven eight! Nine ten eleven twelve? Thirteen."
    assert sentences(text) == ["One two three.", "Four five six seven eight!", "Nine ten eleven twelve?", "Thirteen."]
    lines = layout(sentences(text), width=12, max_chars=90)
    assert " ".join(lines) == text
    assert all(len(line) <= 12 or " " not in line for line in lines)


def test_strip_boilerplate():
    text = "header\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody\n*** END OF THIS PROJECT GUTENBERG EBOOK X"
    assert strip_gutenberg_boilerplate(text).strip() == "body"


def test_font_split_is_disjoint_and_installed():
    assert not set(TRAIN_FONTS + PRINTED_FONTS) & set(TEST_FONTS)
    assert not set(TRAIN_FONTS + PRINTED_FONTS) & set(VALIDATION_FONTS)
    assert not set(VALIDATION_FONTS) & set(TEST_FONTS)
    for name in TRAIN_FONTS + PRINTED_FONTS + VALIDATION_FONTS + TEST_FONTS:
        assert font_files(name)


def test_synthetic_text_splits_are_disjoint():
    texts = {split: set(load_lines(split=split)) for split in ("train", "validation", "test")}
    assert len(texts["validation"]) > 1000 and len(texts["test"]) > 1000
    # Split by paragraph: no test sentence-run is in training (short tails like "he said." may coincide).
    long = {split: {t for t in lines if len(t) > 30} for split, lines in texts.items()}
    assert not (long["train"] & long["test"] or long["train"] & long["validation"])


def test_user_text_files_and_font_folder(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text(" ".join(f"Zebra number {i} quietly jumps over the fence." for i in range(400)), encoding="utf-8")
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(font_files("caveat")[0], fonts / "MyHand.ttf")
    rows = list(generate("train", 40, seed=0, text_sources=(None, str(text)), font_dir=str(fonts),
                         printed_share=0.0))
    assert 5 < sum("Zebra" in row["text"] for row in rows) < 35  # both sources are drawn from
    assert "MyHand" in {row["font"] for row in rows}
    assert "MyHand" not in {row["font"] for row in generate("test", 20, seed=0, font_dir=str(fonts))}
    shutil.copy(font_files(TEST_FONTS[0])[0], fonts)
    with pytest.raises(ValueError, match="held-out"):
        next(generate("train", 1, font_dir=str(fonts)))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="latin1.txt: not UTF-8"):
        next(generate("train", 1, text_sources=(str(tmp_path / "latin1.txt"),)))


def test_synthetic_is_deterministic_by_seed_and_uses_only_split_fonts():
    first = list(generate("test", 6, seed=3))
    again = list(generate("test", 6, seed=3))
    other = list(generate("test", 6, seed=4))
    assert [r["text"] for r in first] == [r["text"] for r in again]
    assert all(np.array_equal(np.asarray(a["image"]), np.asarray(b["image"])) for a, b in zip(first, again))
    assert [r["text"] for r in first] != [r["text"] for r in other]
    assert {r["font"] for r in first} <= set(TEST_FONTS)
    assert all(r["image"].mode == "RGB" and r["image"].height > 20 for r in first)


def test_printed_share_is_honoured_on_training_lines_only():
    train = [r["font"] for r in generate("train", 300, seed=0, printed_share=0.2, font_size=36)]
    share = sum(font in PRINTED_FONTS for font in train) / len(train)
    assert 0.13 < share < 0.27
    assert not {r["font"] for r in generate("validation", 30, seed=0, printed_share=0.5)} & set(PRINTED_FONTS)


def test_synthetic_source_has_all_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    args = DataArguments(synthetic=True, synthetic_train_samples=8, synthetic_eval_samples=4)
    splits = load_splits(args)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "validation": 4, "test": 4}
    assert isinstance(splits["test"][0]["image"], Image.Image)


def make_folder(root, rows, fmt="jsonl"):
    root.mkdir(parents=True)
    for row in rows:
        Image.new("RGB", (40, 12), "white").save(root / row["file_name"])
    if fmt == "jsonl":
        (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        (root / "metadata.csv").write_text("file_name,text\n" + "".join(f"{r['file_name']},{r['text']}\n"
                                                                          for r in rows))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_local_folder_source(tmp_path, fmt):
    for split in ("train", "test"):
        make_folder(tmp_path / split, [{"file_name": f"{split}{i}.png", "text": f"line {i}"} for i in range(3)], fmt)
    splits = load_splits(DataArguments(data_dir=str(tmp_path), validation_split=None))
    assert splits["train"]["text"] == ["line 0", "line 1", "line 2"]
    assert splits["test"][1]["image"].size == (40, 12)


def test_local_folder_missing_image_is_a_bad_line_not_a_crash(tmp_path):
    make_folder(tmp_path / "train", [{"file_name": "a.png", "text": "x"}])
    with (tmp_path / "train" / "metadata.jsonl").open("a") as handle:
        handle.write(json.dumps({"file_name": "gone.png", "text": "y"}) + "\n")
    args = DataArguments(data_dir=str(tmp_path), validation_split=None, test_split=None)
    splits = load_splits(args)
    assert list(splits["train"]["text"]) == ["x"]
    (problem,) = metadata_scans(args, splits)["train"].problems
    assert str(problem).startswith(f"{tmp_path / 'train' / 'metadata.jsonl'} line 2 (")
    assert "'gone.png': no such file" in problem.message


def test_local_folder_missing_column_names_file_and_line(tmp_path):
    make_folder(tmp_path / "train", [{"file_name": "a.png", "text": "x"}, {"file_name": "b.png", "text": "y"}])
    (tmp_path / "train" / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "txt": "x"}) + "\n"
                                                       + json.dumps({"file_name": "b.png", "text": "y"}) + "\n")
    args = DataArguments(data_dir=str(tmp_path), validation_split=None, test_split=None)
    splits = load_splits(args)
    (problem,) = metadata_scans(args, splits)["train"].problems
    assert problem.line == 1 and problem.message == "missing ['text']; each row needs file_name and text"


def test_exactly_one_source():
    with pytest.raises(ValueError, match="set exactly one of dataset_name, data_dir, synthetic"):
        load_splits(DataArguments(synthetic=True, data_dir="x"))


def test_collator_pads_labels_with_ignore_index_and_ends_with_eos(tiny_processor):
    tok = tiny_processor.tokenizer
    collate = LineCollator(tiny_processor, max_target_length=8)
    images = [Image.new("L", (50, 10), 255), Image.new("RGBA", (30, 20))]
    batch = collate([{"image": images[0], "text": "ab"}, {"image": images[1], "text": "abcd"}])
    assert batch["pixel_values"].shape == (2, 3, 16, 64)
    expected_first = tok("ab", add_special_tokens=False).input_ids + [tok.eos_token_id, -100, -100]
    assert batch["labels"][0].tolist() == expected_first
    assert batch["labels"][1, -1].item() == tok.eos_token_id
    assert tok.bos_token_id not in batch["labels"].tolist()[0]  # the model adds the start token itself
    assert collate.num_truncated == 0


def test_collator_truncates_and_counts(tiny_processor):
    collate = LineCollator(tiny_processor, max_target_length=4)
    batch = collate([{"image": Image.new("RGB", (10, 10)), "text": "abcdefgh"}] * 3)
    assert batch["labels"].shape == (3, 4)
    assert (batch["labels"][:, -1] == tiny_processor.tokenizer.eos_token_id).all()
    assert collate.num_truncated == 3


def test_augment_changes_pixels_but_not_text():
    torch.manual_seed(0)  # Augment seeds itself from torch, as dataloader workers do
    image = next(generate("train", 1, seed=0))["image"]
    batch = Augment()({"image": [image] * 12, "text": ["t"] * 12})
    gray = np.asarray(image.convert("L"))
    assert all(out.mode == "L" for out in batch["image"])
    changed = [np.asarray(out).shape != gray.shape or not np.array_equal(out, gray) for out in batch["image"]]
    assert 6 <= sum(changed) < 12  # one of six options is "leave it", the rest alter the image
    assert batch["text"] == ["t"] * 12


def test_fast_dilate_and_erode_match_pil_rank_filters():
    from PIL import ImageFilter

    from trocr_lail.data.augment import _dilate, _erode

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 50), dtype=np.uint8))
    assert np.array_equal(np.asarray(_dilate(image, None)), np.asarray(image.filter(ImageFilter.MinFilter(3))))
    assert np.array_equal(np.asarray(_erode(image, None)), np.asarray(image.filter(ImageFilter.MaxFilter(3))))


def test_preprocessed_pixels_give_the_processors_pixel_values(tiny_processor):
    import datasets

    from trocr_lail.data.pixels import preprocess_images

    rows = list(generate("test", 5, seed=1))
    rows.append({"image": Image.new("L", (30, 90), 200), "text": "grey, tall"})  # other mode and aspect
    dataset = datasets.Dataset.from_dict({"image": [r["image"] for r in rows], "text": [r["text"] for r in rows]})
    dataset = dataset.cast_column("image", datasets.Image())
    resized = preprocess_images(dataset, tiny_processor.image_processor)
    assert resized.column_names == ["text", "pixels", "pixels_shape"] and resized[0]["pixels_shape"] == [3, 16, 64]
    collate = LineCollator(tiny_processor, max_target_length=32)
    from_pixels = collate([resized[i] for i in range(len(rows))])
    from_images = collate([dataset[i] for i in range(len(rows))])
    torch.testing.assert_close(from_pixels["pixel_values"], from_images["pixel_values"], rtol=0, atol=1e-6)
    assert torch.equal(from_pixels["labels"], from_images["labels"])


def test_preprocess_images_refuses_augmentation():
    with pytest.raises(ValueError, match="preprocess_images needs augment: none"):
        DataArguments(synthetic=True, preprocess_images=True)
    DataArguments(synthetic=True, preprocess_images=True, augment=False)
