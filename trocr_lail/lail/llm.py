"""Load the frozen causal LM that LAIL scores transcriptions with."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..availability import hub_resource
from .config import LailArguments
from .smollm2 import smollm2_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_frozen_llm(args: LailArguments, trust_remote_code: bool = False, allow_pickle_weights: bool = False):
    """Return ``(llm, tokenizer)``: weights frozen, eval mode, safetensors unless ``allow_pickle_weights``."""
    if args.lail_llm_dtype not in DTYPES:
        raise ValueError(f"lail_llm_dtype must be one of {sorted(DTYPES)}")
    path = str(smollm2_dir()) if args.lail_llm == "smollm2" else args.lail_llm
    kwargs = {"dtype": DTYPES[args.lail_llm_dtype], "trust_remote_code": trust_remote_code,
              "use_safetensors": None if allow_pickle_weights else True}
    if args.lail_llm_4bit:
        if not torch.cuda.is_available():
            raise ValueError("lail_llm_4bit needs a CUDA GPU and bitsandbytes")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True,
                                                           bnb_4bit_compute_dtype=DTYPES[args.lail_llm_dtype])
    with hub_resource("LAIL language model", path, "lail_llm"):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        llm = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    llm.requires_grad_(False)
    llm.eval()
    return llm, tokenizer
