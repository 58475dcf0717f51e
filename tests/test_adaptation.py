"""Adaptation to a new hand: a run from a saved stage 1 continues its trained CTC head (an export/, plain and
headless, says so in the log), a target writer's font renders every split from disjoint lines, and a font stage 1
was given is refused as a target."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import trocr_lail.run
from trocr_lail.configs import DataArguments
from trocr_lail.data.fonts import font_files
from trocr_lail.data.sources import load_splits
from trocr_lail.data.synthetic import generate
from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel

from conftest import TINY_ARGS, make_tiny_model
from recipe_smoke import write_line_folder

RUN_ARGS = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none", "--use_cpu", "true",
            "--save_strategy", "no", "--eval_strategy", "no", "--generation_max_length", "4", "--test_split", "null",
            "--augment", "none", "--ctc_weight", "0.5", "--ctc_upsample", "2", "--num_preview_predictions", "0"]


def run_and_capture_head(argv, monkeypatch):
    """Run ``argv`` through run.main and return the CTC head's weights as training starts (step 0)."""
    seen = {}
    build = trocr_lail.run.build_trainer

    def capture(model, *args, **kwargs):
        seen["head"] = {k: v.detach().clone() for k, v in model.ctc_head.state_dict().items()}
        return build(model, *args, **kwargs)

    monkeypatch.setattr(trocr_lail.run, "build_trainer", capture)
    trocr_lail.run.main(argv)
    return seen["head"]


def test_adaptation_from_a_saved_run_continues_its_trained_ctc_head(tmp_path, monkeypatch, caplog):
    data = write_line_folder(tmp_path / "lines", {"train": 4, "validation": 1})
    stage1 = tmp_path / "stage1"
    run_and_capture_head(TINY_ARGS + RUN_ARGS + ["--data_dir", str(data), "--output_dir", str(stage1)], monkeypatch)
    with safe_open(str(stage1 / "model.safetensors"), "pt") as weights:
        saved = {"weight": weights.get_tensor("ctc_head.weight"), "bias": weights.get_tensor("ctc_head.bias")}
    adapt = ["--model_name_or_path", str(stage1), "--data_dir", str(data), "--output_dir", str(tmp_path / "adapt")]
    with caplog.at_level(logging.INFO, logger="trocr_lail"):
        head = run_and_capture_head(adapt + RUN_ARGS, monkeypatch)
    for name in ("weight", "bias"):
        torch.testing.assert_close(head[name], saved[name], rtol=0, atol=0)
    assert "Continuing the trained CTC head" in caplog.text
    assert json.loads((tmp_path / "adapt" / "config.json").read_text())["ctc"] == {"upsample": 2}


def test_a_saved_head_with_another_upsample_is_refused_naming_both(tiny_processor):
    model = CtcVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), upsample=2)
    with pytest.raises(ValueError, match=r"runs/stage1 has a trained CTC head with ctc_upsample 2.*ctc_upsample 3"):
        CtcVisionEncoderDecoderModel.with_head(model, 3, "runs/stage1")


def test_starting_from_an_export_trains_a_fresh_head_and_says_where_the_trained_one_is(tmp_path, tiny_processor,
                                                                                          caplog):
    (tmp_path / "export").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"ctc": {"upsample": 1}}))
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        model = CtcVisionEncoderDecoderModel.with_head(make_tiny_model(tiny_processor), 1, str(tmp_path / "export"))
    assert model.ctc_head is not None
    assert "has no CTC head: training a fresh one" in caplog.text
    assert f"{tmp_path}, the run's output_dir, holds the trained head" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):  # built from config: fresh is expected, no warning
        CtcVisionEncoderDecoderModel.with_head(make_tiny_model(tiny_processor), 1, "tiny")
    assert not caplog.text


def dejavu(folder):
    """A hand stage 1 never saw: DejaVu Sans from matplotlib's own data (installed with the toolkit), renamed."""
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    return shutil.copy(Path(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), folder / "MyHand.ttf")


def target_args(target, **overrides):
    values = dict(synthetic=True, synthetic_target_fonts=str(target), synthetic_train_samples=24,
                  synthetic_eval_samples=8, synthetic_printed_share=0.0, augment="none")
    return DataArguments(**{**values, **overrides})


def test_a_target_hand_renders_every_split_in_it_from_disjoint_lines(tmp_path):
    target = dejavu(tmp_path / "hand")
    splits = load_splits(target_args(target))
    texts = {name: list(split["text"]) for name, split in splits.items()}
    assert {name: len(lines) for name, lines in texts.items()} == {"train": 24, "validation": 8, "test": 8}
    train, validation, test = (set(texts[name]) for name in ("train", "validation", "test"))
    assert not (train & validation or train & test or validation & test)
    for split in ("train", "validation", "test"):  # the target hand only, in every split
        assert {row["font"] for row in generate(split, 8, target_fonts=str(target), printed_share=0.0)} == {"MyHand"}


def test_a_font_stage1_was_given_is_refused_as_target_naming_it(tmp_path):
    copy = shutil.copy(font_files("caveat")[0], tmp_path / "MyCaveat.ttf")  # renamed: still stage 1's hand
    with pytest.raises(ValueError, match=r"MyCaveat.ttf is stage 1's font 'caveat'"):
        load_splits(target_args(copy))
    stage1_dir = tmp_path / "stage1-fonts"
    target = dejavu(stage1_dir)  # a user's own stage-1 font folder
    with pytest.raises(ValueError, match=r"MyHand.ttf is stage 1's font 'MyHand'"):
        load_splits(target_args(target, synthetic_stage1_font_dir=str(stage1_dir)))
    with pytest.raises(FileNotFoundError, match="synthetic_target_fonts .*nothing.ttf: no such font file"):
        load_splits(target_args(tmp_path / "nothing.ttf"))


def test_a_folder_dataset_with_degraded_test_copies_scans_only_its_own_folders(tmp_path):
    """A user's own lines as the target writer, tested degraded too: the degraded copies are made in memory and
    have no folder to scan (this failed with 'test_blur has no metadata.jsonl')."""
    from trocr_lail.data.sources import metadata_scans

    data = write_line_folder(tmp_path / "lines", {"train": 2, "test": 1})
    args = DataArguments(data_dir=str(data), validation_split=None, test_degradations=["blur", "noise"])
    assert set(metadata_scans(args, ["train", "test", "test_blur", "test_noise"])) == {"train", "test"}


# The CRNN through the same protocol (recipes/crnn-adaptation/): stage 1 is a CTC recognizer whose vocabulary is
# its training texts' characters, so adapting it must keep that vocabulary, not build one from the target's lines.
CTC_RUN_ARGS = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none", "--use_cpu", "true",
                "--save_strategy", "no", "--eval_strategy", "no", "--validation_split", "null", "--test_split", "null",
                "--augment", "none", "--num_preview_predictions", "0", "--export", "false"]


@pytest.fixture(scope="module")
def crnn_stage1(tmp_path_factory):
    """A slim config:crnn trained 2 steps on LINES[:4] (no "w" among their characters), saved as a run's output_dir."""
    from recipe_smoke import LINES
    from test_ctc_training import SLIM
    from trocr_lail.models import ctc_families

    root = tmp_path_factory.mktemp("crnn-stage1")
    data = write_line_folder(root / "lines", {"train": 4})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ctc_families.CTC_SHAPES, "crnn", SLIM["crnn"])
        trocr_lail.run.main(["--model_name_or_path", "config:crnn", "--data_dir", str(data), "--output_dir",
                             str(root / "run"), *CTC_RUN_ARGS])
    assert "w" not in "".join(LINES[:4])
    return root / "run"


def test_crnn_adaptation_starts_from_the_saved_weights_and_keeps_stage1s_vocabulary(crnn_stage1, tmp_path,
                                                                                   monkeypatch):
    """The target's one training line has fewer characters than stage 1's: a vocabulary built from it would be
    smaller. The run starts from every saved tensor (batch norm statistics and the CTC shortcut included)."""
    seen = {}
    build = trocr_lail.run.build_trainer

    def capture(model, processor, *args, **kwargs):
        seen.update(state={k: v.detach().clone() for k, v in model.state_dict().items()},
                    charset=model.config.charset, vocab=processor.tokenizer.get_vocab())
        return build(model, processor, *args, **kwargs)

    monkeypatch.setattr(trocr_lail.run, "build_trainer", capture)
    data = write_line_folder(tmp_path / "target", {"train": 1})
    trocr_lail.run.main(["--model_name_or_path", str(crnn_stage1), "--data_dir", str(data), "--output_dir",
                         str(tmp_path / "adapt"), *CTC_RUN_ARGS])
    with safe_open(str(crnn_stage1 / "model.safetensors"), "pt") as weights:
        saved = {key: weights.get_tensor(key) for key in weights.keys()}
    assert saved.keys() == seen["state"].keys() and any(key.startswith("shortcut.") for key in saved)
    for key, value in saved.items():
        torch.testing.assert_close(seen["state"][key], value, rtol=0, atol=0, msg=key)
    stage1_charset = json.loads((crnn_stage1 / "config.json").read_text())["charset"]
    assert seen["charset"] == stage1_charset and len(seen["vocab"]) == len(stage1_charset) + 1  # + the blank
    assert json.loads((tmp_path / "adapt" / "config.json").read_text())["charset"] == stage1_charset


def test_a_target_line_with_a_character_stage1_never_saw_is_refused_or_dropped_counted(crnn_stage1, tmp_path,
                                                                                         caplog):
    """A CTC recognizer cannot write a character outside its vocabulary, and a saved one's vocabulary is stage 1's:
    the line is refused before training, naming the character, or dropped and counted (never trained on with the
    character silently cut from its target)."""
    data = write_line_folder(tmp_path / "target", {"train": 5})  # LINES[4], "M Ps tomorrow.", has a "w"
    argv = ["--model_name_or_path", str(crnn_stage1), "--data_dir", str(data), *CTC_RUN_ARGS]
    with pytest.raises(ValueError, match=r"(?s)1 character\(s\) the tokenizer cannot encode \(a CTC recognizer "
                                         r"writes only its vocabulary's characters.*'w' U\+0077 LATIN SMALL "
                                         r"LETTER W: 1x, first at .*train/metadata.jsonl line 5"):
        trocr_lail.run.main(argv + ["--output_dir", str(tmp_path / "refused")])
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        trocr_lail.run.main(argv + ["--output_dir", str(tmp_path / "dropped"), "--skip_bad_samples", "true"])
    assert "Skipped bad samples: 1 row(s) before training {'train': 1}" in caplog.text


def test_a_font_stage1_was_given_is_refused_as_target_for_a_crnn_too(crnn_stage1, tmp_path):
    copy = shutil.copy(font_files("caveat")[0], tmp_path / "MyCaveat.ttf")
    with pytest.raises(ValueError, match=r"MyCaveat.ttf is stage 1's font 'caveat'"):
        trocr_lail.run.main(["--model_name_or_path", str(crnn_stage1), "--synthetic", "true",
                             "--synthetic_target_fonts", str(copy), "--output_dir", str(tmp_path / "out"),
                             *CTC_RUN_ARGS])
