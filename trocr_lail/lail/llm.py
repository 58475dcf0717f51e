"""Load the frozen causal LM that LAIL scores transcriptions with."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..availability import hub_resource
from ..models.loading import note_pickle_weights, weights_kwargs
from .config import LailArguments
from .smollm2 import smollm2_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_frozen_llm(args: LailArguments, trust_remote_code: bool = False, strict_safetensors: bool = False):
    """Return ``(llm, tokenizer)``: weights frozen, eval mode, loaded weights-only (safetensors only if strict)."""
    if args.lail_llm_dtype not in DTYPES:
        raise ValueError(f"lail_llm_dtype must be one of {sorted(DTYPES)}")
    path = str(smollm2_dir()) if args.lail_llm == "smollm2" else args.lail_llm
    kwargs = {"dtype": DTYPES[args.lail_llm_dtype], "trust_remote_code": trust_remote_code,
              **weights_kwargs(strict_safetensors)}
    if args.lail_llm_4bit:
        if not torch.cuda.is_available():
            raise ValueError("lail_llm_4bit needs a CUDA GPU and bitsandbytes")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True,
                                                           bnb_4bit_compute_dtype=DTYPES[args.lail_llm_dtype])
    with hub_resource("LAIL language model", path, "lail_llm"):
        note_pickle_weights(path, strict=strict_safetensors)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        llm = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    llm.requires_grad_(False)
    llm.eval()
    return llm, tokenizer


def prepare_llm_for_deepspeed(llm, accelerator):
    """Under DeepSpeed ZeRO-3, wrap the frozen LLM in an inference-only DeepSpeed engine; otherwise return it as is.

    With ZeRO-3's ``zero3_init_flag`` transformers loads *every* model partitioned, the LLM included. The LLM is not
    the Trainer's model, so nothing would gather its shards at forward time: like trl's ``prepare_deepspeed`` for
    reference/teacher models, give it its own stage-3 engine (no optimizer) and keep it in eval mode. Under ZeRO-1/2
    the LLM is loaded whole and has no optimizer state or gradients to shard, so it is left alone.
    """
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return llm
    import copy

    import deepspeed

    config = copy.deepcopy(plugin.deepspeed_config)
    for key in ("optimizer", "scheduler"):  # an inference engine has neither
        config.pop(key, None)
    hidden = llm.config.hidden_size
    # trl's bucket sizes for a model that only runs forward/backward-to-inputs: scale them with the LLM's width.
    config["zero_optimization"].update({"reduce_bucket_size": hidden * hidden,
                                        "stage3_param_persistence_threshold": 10 * hidden,
                                        "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden)})
    engine, *_ = deepspeed.initialize(model=llm, config=config)
    engine.requires_grad_(False)
    engine.eval()
    return engine
