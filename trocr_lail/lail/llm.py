"""Load the frozen causal LM that LAIL scores transcriptions with."""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..availability import hub_resource
from ..models.loading import note_pickle_weights, weights_kwargs
from .config import LailArguments
from .smollm2 import smollm2_dir

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)


def native_bfloat16(device_type: str) -> bool:
    """Whether ``device_type`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with AVX-512
    BF16 or AMX. Elsewhere torch emulates it: a bf16 SmolLM2-135M forward and backward ran 25x slower than float32
    on an AVX2 CPU (2026-12-06), where a CPU with AVX-512 BF16 ran it 1.9x faster."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":  # torch's own probes (private, hence getattr): absent ones count as "no"
        probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(probe() for probe in probes if probe is not None)
    return False


def resolve_llm_dtype(name: str, device_type: str) -> torch.dtype:
    """``lail_llm_dtype`` as a torch dtype on ``device_type``: ``auto`` is bfloat16 where the device computes it
    natively and float32 elsewhere; an explicit bfloat16 where it is emulated is kept, with a warning."""
    if name not in DTYPE_CHOICES:
        raise ValueError(f"lail_llm_dtype must be one of {', '.join(DTYPE_CHOICES)}")
    native = native_bfloat16(device_type)
    if name == "auto":
        dtype = torch.bfloat16 if native else torch.float32
        logger.info("lail_llm_dtype auto: %s on this %s", str(dtype).removeprefix("torch."), device_type)
        return dtype
    if name == "bfloat16" and not native:
        logger.warning("lail_llm_dtype bfloat16: this %s does not compute bfloat16 in hardware, so every LLM step "
                       "is emulated (25x slower than float32 on an AVX2 CPU); lail_llm_dtype auto picks float32 "
                       "here", device_type)
    return DTYPES[name]


def load_frozen_llm(args: LailArguments, trust_remote_code: bool = False, strict_safetensors: bool = False,
                    device_type: str = "cpu"):
    """Return ``(llm, tokenizer)``: weights frozen, eval mode, loaded weights-only (safetensors only if strict),
    in ``args.lail_llm_dtype`` as it resolves on ``device_type`` (the device training runs on)."""
    dtype = resolve_llm_dtype(args.lail_llm_dtype, device_type)
    path = str(smollm2_dir()) if args.lail_llm == "smollm2" else args.lail_llm
    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code, **weights_kwargs(strict_safetensors)}
    if args.lail_llm_4bit:
        if not torch.cuda.is_available():
            raise ValueError("lail_llm_4bit needs a CUDA GPU and bitsandbytes")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True,
                                                           bnb_4bit_compute_dtype=dtype)
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
