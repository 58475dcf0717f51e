import os

# Tests never touch a hub: everything they load is built here or shipped in installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

from trocr_lail.models.loading import set_special_tokens  # noqa: E402
from trocr_lail.models.tiny import build_tiny_model, build_tiny_processor  # noqa: E402

TINY_ARGS = ["--model_name_or_path", "tiny", "--tiny_encoder_layers", "2", "--tiny_encoder_dim", "32",
             "--tiny_decoder_layers", "1", "--tiny_decoder_dim", "32", "--tiny_image_height", "16",
             "--tiny_image_width", "64", "--tiny_patch_size", "16", "8"]


@pytest.fixture
def tiny_processor():
    return build_tiny_processor(image_height=16, image_width=64)


def make_tiny_model(processor, seed: int = 0, dropout: float = 0.1):
    torch.manual_seed(seed)
    model = build_tiny_model(processor, encoder_layers=2, encoder_dim=32, decoder_layers=1, decoder_dim=32,
                             patch_size=(16, 8), dropout=dropout)
    set_special_tokens(model, processor.tokenizer)
    return model


@pytest.fixture
def tiny_model(tiny_processor):
    return make_tiny_model(tiny_processor)


def export_tiny(processor, out_dir, seed: int = 0, max_length: int = 10, num_beams: int = 1):
    """A tiny random model exported like a run's export/ (seconds, offline)."""
    from trocr_lail.hub.export import export_model

    model = make_tiny_model(processor, seed=seed, dropout=0.0)
    return export_model(model, processor, out_dir, num_beams=num_beams, max_length=max_length)


def save_tiny_llm(llm_dir):
    """A 1-layer Llama with the tiny char tokenizer, standing in for the frozen LAIL LLM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from trocr_lail.models.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                     ).save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)
    return llm_dir


def tf4_python() -> str:
    """The transformers 4.57.x venv's python; skip without it, except under CI (make test builds it)."""
    python = os.environ.get("TROCR_LAIL_TF4_PYTHON")
    if not python:
        if os.environ.get("CI"):
            pytest.fail("CI must set TROCR_LAIL_TF4_PYTHON (make test does)")
        pytest.skip("TROCR_LAIL_TF4_PYTHON not set: run `make test` to build the 4.57.x venv")
    return python


def run_tf4_pipeline(model_dir, image_paths, batch_size: int = 1, options: tuple[str, ...] = ()):
    """Texts that transformers 4.57.x's pipeline("image-to-text") reads (with ``options`` ``--confidence``,
    ``--num_beams N``, ``--confidence_temperature T``: the custom pipeline's records with confidences); skips
    without that venv."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([tf4_python(), str(Path(__file__).with_name("tf4_pipeline.py")), "--batch_size",
                             str(batch_size), *options, str(model_dir), *map(str, image_paths)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
