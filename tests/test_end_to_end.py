"""recipes/finetune.py from YAML to export, on the tiny model and a few synthetic lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import TrOCRProcessor, VisionEncoderDecoderModel

from trocr_lail.data.synthetic import generate
from trocr_lail.run import main

from conftest import TINY_ARGS, save_tiny_llm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    metrics = main(TINY_ARGS + [
        "--synthetic", "true", "--synthetic_train_samples", "32", "--synthetic_eval_samples", "6",
        "--max_steps", "4", "--per_device_train_batch_size", "8", "--output_dir", str(out), "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--eval_strategy", "steps", "--eval_steps", "2",
        "--generation_max_length", "12", "--generation_num_beams", "2", "--logging_steps", "1",
    ])
    return out, metrics


def test_results_follow_trainer_conventions(trained):
    out, metrics = trained
    results = json.loads((out / "test_results.json").read_text())
    assert set(results) >= {"test_cer", "test_wer", "test_loss"}
    assert results["test_cer"] == pytest.approx(metrics["test_cer"])
    assert 0 <= results["test_cer"] < 10
    train = json.loads((out / "train_results.json").read_text())
    assert train["train_runtime"] > 0 and train["peak_memory_gib"] > 0.1  # for comparing runs (LAIL vs not)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("eval_cer" in entry for entry in history)  # eval generates text during training


def test_export_is_a_plain_vision_encoder_decoder(trained):
    export = trained[0] / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["architectures"] == ["VisionEncoderDecoderModel"]
    assert not list(export.glob("*.bin")) and not list(export.glob("*.pt"))
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert keys and all(k.startswith(("encoder.", "decoder.")) for k in keys)
    _, info = VisionEncoderDecoderModel.from_pretrained(export, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    generation = json.loads((export / "generation_config.json").read_text())
    assert generation["num_beams"] == 2 and generation["max_length"] == 12
    assert {"decoder_start_token_id", "eos_token_id", "pad_token_id"} <= set(generation)
    assert (export / "preprocessor_config.json").is_file() and (export / "tokenizer.json").is_file()


def _reference_texts(export: Path, images):
    model = VisionEncoderDecoderModel.from_pretrained(export).eval()
    processor = TrOCRProcessor.from_pretrained(export)
    with torch.no_grad():
        ids = model.generate(processor(images=images, return_tensors="pt").pixel_values)
    return processor.batch_decode(ids, skip_special_tokens=True)


def test_export_matches_trained_model(trained):
    out = trained[0]
    images = [row["image"] for row in generate("test", 3, seed=9)]
    processor = TrOCRProcessor.from_pretrained(out / "export")
    pixels = processor(images=images, return_tensors="pt").pixel_values
    trained_model = VisionEncoderDecoderModel.from_pretrained(out).eval()
    exported = VisionEncoderDecoderModel.from_pretrained(out / "export").eval()
    with torch.no_grad():
        assert torch.equal(trained_model.generate(pixels, num_beams=2, max_length=12),
                           exported.generate(pixels))  # beams and length come from the export's config


def test_export_loads_in_transformers_4_57_pipeline(trained, tmp_path):
    python = os.environ.get("TROCR_LAIL_TF4_PYTHON")
    if not python:
        if os.environ.get("CI"):
            pytest.fail("CI must set TROCR_LAIL_TF4_PYTHON (make test does)")
        pytest.skip("TROCR_LAIL_TF4_PYTHON not set: run `make test` to build the 4.57.x venv")
    export = trained[0] / "export"
    images = []
    for i, row in enumerate(generate("test", 3, seed=9)):
        images.append(row["image"])
        row["image"].save(tmp_path / f"{i}.png")
    result = subprocess.run([python, str(Path(__file__).with_name("tf4_pipeline.py")), str(export),
                             *[str(tmp_path / f"{i}.png") for i in range(3)]],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == _reference_texts(export, images)


@pytest.fixture
def tiny_llm_dir(tmp_path):
    return save_tiny_llm(tmp_path / "llm")


def run_lail_recipe(out, llm_dir, *extra):
    main(TINY_ARGS + [
        "--synthetic", "true", "--synthetic_train_samples", "16", "--synthetic_eval_samples", "4",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--output_dir", str(out), "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--generation_max_length", "8", "--logging_steps", "1",
        "--lail", "true", "--lail_llm", str(llm_dir), "--lail_layers", "1", "2", "--lail_connector", "qformer",
        "--lail_qformer_queries", "4", "--lail_qformer_heads", "2", *extra,
    ])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert history[0]["lail_loss_layer_1"] > 0 and history[0]["lail_alpha"] == 0.5
    with safe_open(str(out / "export" / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    assert "lail" not in json.loads((out / "export" / "config.json").read_text())


def test_lail_recipe_path_exports_a_plain_model(tmp_path, tiny_llm_dir):
    run_lail_recipe(tmp_path / "run", tiny_llm_dir)
    with safe_open(str(tmp_path / "run" / "model.safetensors"), "pt") as weights:  # the checkpoint keeps connectors
        assert any(k.startswith("lail_connectors.") for k in weights.keys())


def test_lail_with_dora_recipe_path_merges_adapters_into_the_export(tmp_path, tiny_llm_dir):
    out = tmp_path / "run"
    run_lail_recipe(out, tiny_llm_dir, "--use_peft", "true", "--use_dora", "true", "--lora_r", "4",
                    "--push_to_hub", "true", "--hub_model_id", "someone/tiny-dora", "--hub_dry_run", "true",
                    "--hub_license", "apache-2.0")
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as weights:  # adapters + connectors only
        assert any("lora_" in k for k in weights.keys())
        connectors = {k[k.index("lail_connectors."):]: weights.get_tensor(k) for k in weights.keys()
                      if "lail_connectors." in k}
    with safe_open(str(out / "export" / "model.safetensors"), "pt") as weights:
        assert not any("lora" in k or "base_layer" in k for k in weights.keys())
    with safe_open(str(out / "hub_upload" / "lail" / "connectors.safetensors"), "pt") as weights:
        assert connectors and set(weights.keys()) == set(connectors)  # the sidecar carries the trained connectors
        assert all(torch.equal(weights.get_tensor(k), v) for k, v in connectors.items())
    assert "DoRA r=4" in (out / "hub_upload" / "README.md").read_text()
