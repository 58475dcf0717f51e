"""Shared pieces of the benchmarks: the quickstart model read from its recipe, real rendered lines, and timing
that interleaves configurations (these machines are shared and noisy, so only ratios within one run count)."""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/x.py` from a checkout

from trocr_lail.data.synthetic import generate  # noqa: E402
from trocr_lail.models.loading import load_processor_and_model  # noqa: E402
from trocr_lail.parser import parse_recipe  # noqa: E402
from trocr_lail.run import _lail_setup  # noqa: E402
from measure import print_table  # noqa: E402,F401 - re-exported for the benchmark scripts

LAIL_RECIPE = ROOT / "recipes" / "quickstart" / "lail.yaml"
BASELINE_RECIPE = ROOT / "recipes" / "quickstart" / "baseline.yaml"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_recipe(path: Path, *overrides: str):
    """``(model_args, data_args, training_args, lail_args)`` of a recipe, so model shapes follow the recipe file."""
    return parse_recipe(["--config", str(path), *overrides])


@functools.cache
def tiny_llm_dir() -> str:
    """A random 2-layer Llama with the toolkit's char tokenizer, saved like any local model (quick runs, no assets)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from trocr_lail.models.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    path = tempfile.mkdtemp(prefix="tiny-llama-")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_lail(recipe: Path, llm: str, *overrides: str):
    """``(model, collator, lail_args)`` exactly as ``recipes/finetune.py`` builds them; ``llm`` is 'smollm2',
    'tiny' or a local model directory."""
    llm = tiny_llm_dir() if llm == "tiny" else llm
    model_args, _, _, lail_args, *_ = read_recipe(recipe, "--lail", "true", "--lail_llm", llm, *overrides)
    processor, model = load_processor_and_model(model_args)
    model, collator, _ = _lail_setup(model, processor, model_args, lail_args)
    return model.to(device()), collator, lail_args


def rows(count: int, seed: int = 0) -> list[dict]:
    """Rendered synthetic training lines (real prose, real fonts): realistic image and text lengths."""
    return [{"image": row["image"], "text": row["text"]} for row in generate("train", count, seed=seed)]


def to_device(batch: dict) -> dict:
    return {key: value.to(device()) for key, value in batch.items()}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_medians(fns: dict, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calling them round-robin so drift in machine load hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
