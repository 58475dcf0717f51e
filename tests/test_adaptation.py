"""Adaptation from a saved run: the trained CTC head comes with the model (not a fresh one), and an export/
(plain, headless) says so in the log."""

import json
import logging

import pytest
import torch
from safetensors import safe_open

import trocr_lail.run
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
