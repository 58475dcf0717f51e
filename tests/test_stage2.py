"""The stage-2 recipes run as shipped on the synthetic stream for a few CPU steps, with the real TrOCR-small shape
built from config (the brief's stand-in for every size): the 17.9M-line epoch, rendering in a worker, DA2."""

import json
from pathlib import Path

import pytest
import torch

import trocr_lail.models.loading
from recipe_smoke import slim_model
from trocr_lail.run import main

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_stage2_recipe_trains_on_the_stream(size, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(trocr_lail.models.loading, "build_model", slim_model)
    out = tmp_path / "out"
    metrics = main(["--config", str(ROOT / f"recipes/trocr-{size}/stage2-synthetic.yaml"),
                    "--model_name_or_path", "config:trocr-small", "--fp16", "false", "--use_cpu", "true",
                    "--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
                    "--per_device_eval_batch_size", "2", "--synthetic_eval_samples", "2",
                    "--dataloader_num_workers", "1", "--report_to", "none", "--output_dir", str(out)])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert json.loads((out / "training_args.json").read_text())["learning_rate"] == 5e-5
    config = json.loads((out / "export" / "config.json").read_text())
    assert config["trocr_lail_training_ranges"]["text_length"][1] <= 90  # measured on the stream's lines
    assert "test_cer" in json.loads((out / "test_results.json").read_text())
