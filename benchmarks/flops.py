"""What a LAIL setting costs in training FLOPs, relative to its TrOCR baseline step, per sample (no GPU needed).

    python benchmarks/flops.py                       # the table for every shipped IAM LAIL setting and alternatives

The CTC recognizers (CRNN, MobileViT-CTC: ``ctc_*`` below) are counted by ``torch.utils.flop_counter`` on one
forward of the real configuration (convolutions, LSTM and linear matmuls, the training-only CRNN shortcut included),
their connectors by the same formulas on each tap's real width and frame count.

Counted as 2 FLOPs per multiply-accumulate of every matmul (projections, MLPs, attention scores and values, the
LLM's vocab projection at the positions that score text); norms, softmax and element-wise ops are left out. A
trainable module costs 3x its forward (forward, grads of inputs, grads of weights). The frozen LLM costs 2x its
forward: autograd computes gradients with respect to its inputs (to reach the connectors and encoder) but none for
its weights, which have ``requires_grad=False``. Text: 20 decoder / LLM tokens (a mean IAM line is ~43 characters,
~10 BPE tokens; 20 leaves room for longer lines and prompts).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trocr_lail.models.shapes import SHAPES, build_config  # noqa: E402

# Llama-family LLMs by their published config.json values (random weights are built from these for speed runs).
LLM_SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, head_dim=64),
}
TEXT_TOKENS = 20


def encoder_macs(config, tokens: int) -> float:
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    patch = 3 * config.patch_size**2 * d * (tokens - 1)  # the patch embedding, a linear map of each 16x16x3 patch
    return patch + layers * tokens * (4 * d * d + 2 * d * f + 2 * tokens * d)


def decoder_macs(config, text: int, memory: int) -> float:
    d, f, layers, enc = config.d_model, config.decoder_ffn_dim, config.decoder_layers, config.cross_attention_hidden_size
    self_attn = text * (4 * d * d + 2 * text * d)
    cross = 2 * text * d * d + 2 * memory * enc * d + 2 * text * memory * d
    return layers * (self_attn + cross + text * 2 * d * f) + text * d * config.vocab_size


def llm_macs(llm: dict, tokens: int, scored: int) -> float:
    d, f = llm["hidden_size"], llm["intermediate_size"]
    kv = llm["num_key_value_heads"] * llm.get("head_dim", d // llm["num_attention_heads"])
    per_token = 2 * d * d + 2 * d * kv + 3 * d * f
    return llm["num_hidden_layers"] * tokens * (per_token + 2 * tokens * d) + scored * d * llm["vocab_size"]


def encoder_tokens(config) -> int:
    patches = (config.image_size // config.patch_size) ** 2
    return patches + (2 if config.model_type == "deit" else 1)  # [CLS] (+ DeiT's distillation token)


def prefix_length(connector: str, states: int, blocks: int = 2, queries: int = 32) -> int:
    """Soft-prefix length of each connector kind on ``states`` encoder states (trocr_lail/lail/connectors.py)."""
    return {"linear": states, "downsample": math.ceil(states / 2**blocks), "qformer": queries}[connector]


def baseline_flops(shape: str, text: int = TEXT_TOKENS) -> float:
    config = build_config(f"config:{shape}")
    tokens = encoder_tokens(config.encoder)
    return 3 * 2 * (encoder_macs(config.encoder, tokens) + decoder_macs(config.decoder, text, tokens))


def lail_extra_flops(shape: str, llm: str, connector: str, taps: int, blocks: int = 2, queries: int = 32,
                     text: int = TEXT_TOKENS) -> float:
    """Training FLOPs LAIL adds per sample: connectors (trainable, 3x) and the frozen LLM (2x) for each tap."""
    config = build_config(f"config:{shape}")
    tap = (encoder_tokens(config.encoder), config.encoder.hidden_size)
    return tap_flops([tap] * taps, llm, connector, blocks, queries, text)


def tap_flops(taps: list[tuple[int, int]], llm: str, connector: str, blocks: int = 2, queries: int = 32,
              text: int = TEXT_TOKENS) -> float:
    """Training FLOPs of the connectors (trainable, 3x) and the frozen LLM (2x) for taps of ``(states, width)``."""
    llm_shape, total = LLM_SHAPES[llm], 0.0
    d = llm_shape["hidden_size"]
    for states, enc in taps:
        prefix = prefix_length(connector, states, blocks, queries)
        connector_macs = {"linear": states * enc * d,
                          "downsample": sum(math.ceil(states / 2**b) * 2 * enc * enc for b in range(1, blocks + 1))
                          + prefix * enc * d,
                          "qformer": queries * (2 * enc * enc + states * 2 * enc * enc // queries + 8 * enc * enc)
                          + prefix * enc * d}[connector]
        total += 3 * 2 * connector_macs + 2 * 2 * llm_macs(llm_shape, prefix + text, text)
    return total


IAM_CHARACTERS = 79  # the output layer's size follows the training texts' characters: IAM lines have ~79 + blank


def ctc_forward(shape: str):
    """``(forward FLOPs, hidden_states shapes)`` of one line through the CTC family ``shape`` in training mode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from trocr_lail.models.ctc_families import build_ctc_model

    model = build_ctc_model(f"config:{shape}", "".join(chr(33 + i) for i in range(IAM_CHARACTERS - 1)) + " ")
    pixels = torch.zeros(1, 1, model.config.image_height, model.config.image_width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        outputs = model.train()(pixels, output_hidden_states=True)
    return counter.get_total_flops(), [tuple(state.shape[1:]) for state in outputs.hidden_states]


def ctc_lail_ratio(shape: str, llm: str, connector: str, layers: list[int], blocks: int = 2) -> tuple[float, float]:
    """``(baseline training TFLOPs per line, LAIL step / baseline step)`` for a CTC family at ``layers``."""
    forward, states = ctc_forward(shape)
    base = 3 * forward
    return base / 1e12, (base + tap_flops([states[layer] for layer in layers], llm, connector, blocks)) / base


CTC_SETTINGS = [  # (shape, llm, connector, layers, downsample blocks, label)
    ("crnn", "smollm2-135m", "downsample", [0, 1], 2, "crnn/lail.yaml: downsample x4, taps [0, 1]"),
    ("crnn", "smollm2-135m", "linear", [0, 1], 2, "linear, taps [0, 1]"),
    ("crnn", "llama-3.2-1b", "downsample", [0, 1], 2, "downsample x4, taps [0, 1], Llama-3.2-1B"),
    ("mobilevit-ctc", "smollm2-135m", "downsample", [2, 3], 2, "mobilevit/lail.yaml: downsample x4, taps [2, 3]"),
    ("mobilevit-ctc", "smollm2-135m", "linear", [2, 3], 2, "linear, taps [2, 3]"),
]


SETTINGS = [  # (shape, llm, connector, taps, downsample blocks, label)
    ("trocr-large", "llama-3.2-1b", "linear", 4, 2, "earlier trocr-large/lail.yaml: linear, taps [6,12,18,24]"),
    ("trocr-large", "llama-3.2-1b", "downsample", 4, 4, "downsample x16, 4 taps"),
    ("trocr-large", "llama-3.2-1b", "downsample", 2, 4, "trocr-large/lail.yaml: downsample x16, taps [12, 24]"),
    ("trocr-large", "llama-3.2-1b", "qformer", 2, 2, "qformer 32 queries, 2 taps"),
    ("trocr-base", "llama-3.2-1b", "linear", 4, 2, "earlier trocr-base/lail.yaml: linear, taps [3,6,9,12]"),
    ("trocr-base", "llama-3.2-1b", "downsample", 2, 4, "trocr-base/lail.yaml: downsample x16, taps [6, 12]"),
    ("trocr-small", "smollm2-135m", "linear", 2, 2, "earlier trocr-small/lail.yaml: linear, taps [6, 12]"),
    ("trocr-small", "smollm2-135m", "downsample", 2, 4, "trocr-small/lail.yaml: downsample x16, taps [6, 12]"),
]


def main(argv: list[str] | None = None) -> list[tuple]:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    rows = []
    for shape, llm, connector, taps, blocks, label in SETTINGS:
        base = baseline_flops(shape)
        extra = lail_extra_flops(shape, llm, connector, taps, blocks)
        rows.append((label, shape, llm, base / 1e12, (base + extra) / base))
    print("| setting | model | LLM | baseline TFLOPs/sample | LAIL step / baseline step |")
    print("| --- | --- | --- | --- | --- |")
    for label, shape, llm, base, ratio in rows:
        print(f"| {label} | {shape} | {llm} | {base:.2f} | {ratio:.2f}x |")
    print("\n| CTC setting | model | LLM | baseline TFLOPs/line | LAIL step / baseline step |")
    print("| --- | --- | --- | --- | --- |")
    for shape, llm, connector, layers, blocks, label in CTC_SETTINGS:
        base, ratio = ctc_lail_ratio(shape, llm, connector, layers, blocks)
        rows.append((label, shape, llm, base, ratio))
        print(f"| {label} | {shape} | {llm} | {base:.3f} | {ratio:.2f}x |")
    return rows


if __name__ == "__main__":
    main()
