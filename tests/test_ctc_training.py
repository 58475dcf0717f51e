"""The CTC recognizers train and ship through the TrOCR entry points: ``recipes/finetune.py`` with
``model_name_or_path: config:crnn`` (or ``config:mobilevit-ctc``) builds the model with the training texts'
characters, evaluates greedily with the same metric names, exports, and ``trocr-lail predict`` reads the export
exactly as the training evaluation decoded; resume is exact; preflight refuses what does not apply.

The runs use each family's architecture cut to slim widths and a 32x512 input (``SLIM``), in-process."""

import json

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoModelForCTC, MobileViTConfig, TrOCRProcessor

import trocr_lail.cli
import trocr_lail.run
from trocr_lail.configs import DataArguments, ModelArguments, TrainingArguments
from trocr_lail.data.collator import CtcCollator, texts_from_codes
from trocr_lail.data.pixels import normalize_pixels
from trocr_lail.data.sources import load_splits
from trocr_lail.inference.reader import LineReader, load_image
from trocr_lail.lail.config import LailArguments
from trocr_lail.models import ctc_families
from trocr_lail.models.crnn.configuration_crnn import CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_processor import CtcLineImageProcessor, build_ctc_processor
from trocr_lail.models.ctc_recognizer import line_ids
from trocr_lail.models.mobilevit_ctc.configuration_mobilevit_ctc import MobileVitCtcConfig, backbone_values
from trocr_lail.preflight import SettingsError, check_settings
from trocr_lail.training.ctc_trainer import CtcLineTrainer

from recipe_smoke import LINES, write_line_folder
from test_mobilevit_ctc import TINY_BACKBONE

SIZE = dict(image_height=32, image_width=512)  # 64 frames: more than the longest test line's 31 characters + 2
SLIM = {
    # The paper era's layout (stem, two pooled ResNet stages and a last one, 3 BiLSTM layers, shortcut) at slim widths.
    "crnn": (CrnnConfig, dict(SIZE, stem_channels=4, cnn_blocks=[[1, 8], "M", [1, 8], "M", [1, 16]],
                              lstm_hidden_size=8)),
    "mobilevit-ctc": (MobileVitCtcConfig, dict(SIZE, mobilevit=backbone_values(MobileViTConfig(**TINY_BACKBONE)))),
}
RUN_ARGS = ["--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--max_steps", "2",
            "--learning_rate", "1e-3", "--report_to", "none", "--use_cpu", "true", "--augment", "none",
            "--logging_steps", "1", "--num_preview_predictions", "0", "--seed", "0"]


@pytest.fixture
def slim(monkeypatch):
    for name, shape in SLIM.items():
        monkeypatch.setitem(ctc_families.CTC_SHAPES, name, shape)


@pytest.fixture(scope="module")
def line_folder(tmp_path_factory):
    return write_line_folder(tmp_path_factory.mktemp("lines"), {"train": 4, "validation": 2, "test": 3})


@pytest.fixture(scope="module")
def crnn_run(tmp_path_factory, line_folder):
    """Two steps of config:crnn with evaluation, best-model tracking on cer, early stopping, a degraded test set and
    the export: one run shared by the tests that read it."""
    out = tmp_path_factory.mktemp("crnn-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ctc_families.CTC_SHAPES, "crnn", SLIM["crnn"])
        metrics = trocr_lail.run.main([
            "--model_name_or_path", "config:crnn", "--data_dir", str(line_folder), "--output_dir", str(out),
            "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
            "--load_best_model_at_end", "true", "--metric_for_best_model", "cer", "--greater_is_better", "false",
            "--early_stopping_patience", "3", "--test_degradations", "blur", *RUN_ARGS])
    return out, metrics


def test_finetune_trains_a_crnn_built_from_the_training_texts(crnn_run):
    out, metrics = crnn_run
    for key in ("test_cer", "test_wer", "test_blur_cer", "train_loss"):
        assert key in metrics, key
    config = json.loads((out / "config.json").read_text())
    # The 4 training lines' characters: the test split's "w" (in LINES[4]) is not among them.
    assert config["model_type"] == "crnn" and config["charset"] == "".join(sorted(set("".join(LINES[:4])) | {" "}))
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [entry for entry in state["log_history"] if "eval_cer" in entry]
    assert [entry["step"] for entry in evals] == [1, 2] and all("eval_wer" in entry for entry in evals)
    assert state["best_model_checkpoint"] and state["best_metric"] == min(entry["eval_cer"] for entry in evals)
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert all("ctc_loss" in entry and "aux_ctc_loss" in entry for entry in logged)  # the shortcut trains
    assert (out / "test_predictions.jsonl").is_file() and (out / "test_blur_predictions.jsonl").is_file()


def test_export_loads_with_from_pretrained_and_predict_reads_what_training_decoded(crnn_run, line_folder, tmp_path):
    out, _ = crnn_run
    export = out / "export"
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        assert not any(key.startswith("shortcut.") for key in weights.keys())  # training only
    ctc_families.register_auto_classes()
    model = AutoModelForCTC.from_pretrained(export, use_safetensors=True, trust_remote_code=False)
    processor = TrOCRProcessor.from_pretrained(export, trust_remote_code=False)
    assert type(model) is CrnnForCTC and model.config.shortcut_weight == 0
    assert type(processor.image_processor) is CtcLineImageProcessor

    # What the training evaluation fed the model and what predict feeds the export: the same pixels and logits
    # (the run's final model still has its shortcut, which eval mode never runs).
    test_images = [line_folder / "test" / f"{i}.png" for i in range(3)]
    reader = LineReader.from_pretrained(export, device="cpu")
    pixels = reader.processor(images=[load_image(path) for path in test_images], return_tensors="pt").pixel_values
    collated = CtcCollator(processor, 128)([{"image": str(path), "text": "x"} for path in test_images])
    torch.testing.assert_close(collated["pixel_values"], pixels, rtol=0, atol=0)
    final = ctc_families.load_ctc_model(str(out)).eval()
    assert final.shortcut is not None
    with torch.no_grad():
        torch.testing.assert_close(reader.model(pixels).logits, final(pixels).logits, rtol=0, atol=0)

    trained = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert any(row["prediction"] for row in trained)  # a comparison of empty lines would prove nothing
    result = tmp_path / "predict.jsonl"
    assert trocr_lail.cli.main(["predict", str(export), str(line_folder / "test"), "--output", str(result),
                                "--device", "cpu", "--no_progress"]) == 0
    read = {row["file"]: row["text"] for row in map(json.loads, result.read_text().splitlines())}
    assert [read[str(path)] for path in test_images] == [row["prediction"] for row in trained]


def test_export_command_writes_a_checkpoint_as_its_inference_model(crnn_run, tmp_path):
    out, _ = crnn_run
    assert trocr_lail.cli.main(["export", str(out / "checkpoint-2"), str(tmp_path / "export")]) == 0
    model = ctc_families.load_ctc_model(str(tmp_path / "export"))
    assert model.shortcut is None and model.config.charset == json.loads((out / "config.json").read_text())["charset"]


def test_mobilevit_ctc_trains_and_exports(slim, line_folder, tmp_path):
    out = tmp_path / "run"
    metrics = trocr_lail.run.main(["--model_name_or_path", "config:mobilevit-ctc", "--data_dir", str(line_folder),
                                   "--output_dir", str(out), "--eval_strategy", "no", "--save_strategy", "no",
                                   "--test_split", "test", *RUN_ARGS])
    assert "test_cer" in metrics
    assert json.loads((out / "export" / "config.json").read_text())["model_type"] == "mobilevit_ctc"


def slim_trainer(tmp_path, line_folder, seed, **overrides):
    config_class, values = SLIM["crnn"]
    torch.manual_seed(seed)
    model = CrnnForCTC(config_class(charset="".join(sorted(set("".join(LINES)) | {" "})), **values))
    processor = build_ctc_processor(model.config)
    splits = load_splits(DataArguments(data_dir=str(line_folder), validation_split=None, test_split=None))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=4,
                             learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, seed=0,
                             save_strategy="steps", save_steps=2, **overrides)
    return CtcLineTrainer(model=model, args=args, train_dataset=splits["train"],
                          data_collator=CtcCollator(processor, 128)), model


def test_resumed_run_matches_the_uninterrupted_run(tmp_path, line_folder):
    full, full_model = slim_trainer(tmp_path / "full", line_folder, seed=0)
    full.train()
    resumed, resumed_model = slim_trainer(tmp_path / "resumed", line_folder, seed=7)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    losses = {e["step"]: e["loss"] for e in full.state.log_history if "loss" in e}
    again = {e["step"]: e["loss"] for e in resumed.state.log_history if "loss" in e}
    assert again[3] == pytest.approx(losses[3], rel=1e-6) and again[4] == pytest.approx(losses[4], rel=1e-6)
    for name, value in full_model.state_dict().items():  # batch-norm statistics included
        torch.testing.assert_close(resumed_model.state_dict()[name], value, msg=name)


def test_the_step_loss_is_summed_over_lines_and_divided_by_the_lines_of_the_step(tmp_path, line_folder):
    trainer, model = slim_trainer(tmp_path, line_folder, seed=0)
    batch = next(iter(trainer.get_train_dataloader()))
    assert trainer._get_num_items_in_batch([batch, batch], torch.device("cpu")) == 4
    model.train()
    torch.manual_seed(0)
    per_line = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss  # of its 2 lines
    torch.manual_seed(0)
    assert trainer.compute_loss(model, batch, num_items_in_batch=torch.tensor(4)).item() == pytest.approx(
        per_line.item() * 2 / 4, rel=1e-6)


def test_targets_are_wrapped_in_spaces_without_eos_and_scoring_reads_the_raw_texts():
    processor = build_ctc_processor(CrnnConfig(charset="ab ", **SLIM["crnn"][1]))
    image = Image.new("RGB", (40, 10), "white")
    batch = CtcCollator(processor, 32)([{"image": image, "text": "ab"}, {"image": image, "text": "bäa"}])
    tokenizer = processor.tokenizer
    assert tokenizer.batch_decode(batch["labels"].clamp(min=0), skip_special_tokens=True) == [" ab ", " ba "]
    assert batch["labels"].tolist() == [[3, 1, 2, 3], [3, 2, 1, 3]]  # no EOS; the unseen ä is not a target
    assert texts_from_codes(batch["references"]) == ["ab", "bäa"]  # ... but is scored as an error


def test_line_ids_drop_the_outer_spaces_the_targets_were_wrapped_in():
    charset = "ab "  # ids: blank 0, a 1, b 2, space 3
    path = [3, 3, 0, 1, 3, 0, 3, 2, 2, 0, 3]
    logits = torch.nn.functional.one_hot(torch.tensor([path]), 4).float()
    assert line_ids(logits, charset) == [[1, 3, 3, 2]]  # inner spaces kept, as the best path gives them


def test_image_processor_scales_to_the_text_height_centres_on_paper_and_puts_ink_high():
    processor = CtcLineImageProcessor(image_height=32, image_width=128)
    assert processor.text_height == 16
    line = Image.new("L", (40, 8), 0)  # all ink: 40x8 -> 80x16, centred
    pixels = processor(line, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 1, 32, 128)
    ink = pixels[0, 0].nonzero()
    assert (ink[:, 0].min(), ink[:, 0].max(), ink[:, 1].min(), ink[:, 1].max()) == (8, 23, 24, 103)
    assert pixels.max() == 1.0 and pixels.min() == 0.0
    wide = processor(Image.new("L", (400, 8), 0), return_tensors="pt")["pixel_values"][0, 0]
    assert wide[16].nonzero().flatten().tolist() == list(range(2, 126))  # clamped to 124 = 128 - 128/32, squashed
    # The resize-once path (uint8 stored, normalised in the collator) gives the same pixel_values.
    stored = processor(line, do_rescale=False, do_normalize=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(normalize_pixels(stored.round().to(torch.uint8), processor), pixels)


def settings(output_dir, augment="da2", **training):
    model = ModelArguments(model_name_or_path="config:crnn")
    data = DataArguments(synthetic=True, augment=augment)
    args = TrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to=[], save_strategy="no",
                             **{"ctc_weight": 0.5, "generation_num_beams": 4, **training})
    return model, data, args, LailArguments(lail=True)


def test_preflight_refuses_what_a_ctc_recognizer_does_not_take(tmp_path):
    model, data, args, lail = settings(tmp_path)
    model.extend_vocabulary = True  # a TrOCR option: the run would ignore it, and the data check then point to it
    with pytest.raises(SettingsError) as error:
        check_settings(model, data, args, lail)
    message = str(error.value)
    for setting in ("ctc_weight = 0.5", "generation_num_beams = 4", "augment = 'da2'", "extend_vocabulary: true"):
        assert setting in message, setting
    model, data, args, lail = settings(tmp_path, augment="light", ctc_weight=0.0, generation_num_beams=None)
    check_settings(model, data, args, LailArguments())  # the same run without them passes
    model.model_name_or_path = "config:crnn-2023"
    with pytest.raises(SettingsError,
                       match="config:crnn, config:crnn-2024, config:crnn-quickstart, config:mobilevit-ctc"):
        check_settings(model, data, args, LailArguments())
