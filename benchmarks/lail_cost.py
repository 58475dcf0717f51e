"""Benchmark 1: the cost of LAIL against its floor.

The irreducible extra work of LAIL is one frozen-LLM forward plus the backward to its inputs (no weight gradients).
This measures, on the quickstart model (shapes read from ``recipes/quickstart/lail.yaml``) and the same
prefix + text shapes:

- a training step without LAIL (forward, backward, AdamW step),
- the same step with LAIL,
- the LLM alone: forward over (taps x batch, prefix + text) embeddings and backward to those embeddings.

Target: (LAIL step - baseline step) <= 1.15 x LLM alone. Rows cover connectors of different prefix lengths and
LLM gradient checkpointing; ``lail_every_k_steps`` amortises the extra over k steps (derived row).

    python benchmarks/lail_cost.py                  # real SmolLM2-135M, batch 8
    python benchmarks/lail_cost.py --llm tiny       # random 2-layer Llama: seconds, for a smoke run
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import LAIL_RECIPE, build_lail, device, interleaved_medians, print_table, rows, to_device
from trocr_lail.lail.taps import text_positions  # after common, which puts this checkout first on sys.path

TARGET = 1.15
LLM_KEYS = ("llm_input_ids", "llm_attention_mask", "llm_labels")
# name -> recipe overrides; the recipe's own connector first
VARIANTS = {
    "linear": ["--lail_connector", "linear"],
    "downsample (recipe)": [],
    "qformer, 8 queries": ["--lail_connector", "qformer", "--lail_qformer_queries", "8"],
}


def train_step(model, optimizer, batch, weights, alpha, lail: bool, checkpointing: bool = False):
    model.llm_checkpointing = checkpointing
    inputs = {k: v for k, v in batch.items() if lail or k not in LLM_KEYS}
    outputs = model(**inputs)
    loss = outputs.loss
    if lail:
        loss = loss + alpha * (weights * outputs.lail_losses).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def prefix_length(model, batch) -> int:
    with torch.no_grad():
        hidden = model.encode_for_lail(batch["pixel_values"])
        return model.lail_connectors[0](hidden[model.lail_layers[0]]).shape[1]


def llm_alone(llm, batch, taps: int, prefix_len: int):
    """The floor: the LLM's forward on the LAIL call's shapes and the backward to its input embeddings only."""
    text_len = batch["llm_input_ids"].shape[1]
    rows_ = taps * batch["llm_input_ids"].shape[0]
    dtype = llm.get_input_embeddings().weight.dtype
    embeds = torch.randn(rows_, prefix_len + text_len, llm.config.hidden_size, device=device(), dtype=dtype,
                         requires_grad=True)
    mask = torch.cat([batch["llm_attention_mask"].new_ones(rows_, prefix_len),
                      batch["llm_attention_mask"].repeat(taps, 1)], dim=1)
    targets = batch["llm_labels"].repeat(taps, 1).flatten()
    keep = text_positions(prefix_len, text_len, device())

    def step():
        logits = llm(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=keep).logits
        F.cross_entropy(logits.flatten(0, 1).float(), targets, ignore_index=-100).backward()
        embeds.grad = None

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="smollm2", help="smollm2 (default), tiny, or a local model directory")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every_k", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    models, llm = {}, None
    for name, overrides in VARIANTS.items():
        model, collator, lail_args = build_lail(LAIL_RECIPE, args.llm, *overrides)
        if llm is None:
            llm = model.llm
        model.attach_llm(llm)  # one shared frozen LLM for every variant
        model.train()
        models[name] = model
    batch = to_device(collator(rows(args.batch)))
    taps, alpha = len(lail_args.lail_layers), lail_args.lail_alpha
    weights = torch.tensor(lail_args.layer_weights(), device=device())
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}
    prefixes = {name: prefix_length(m, batch) for name, m in models.items()}

    recipe = next(iter(name for name in VARIANTS if "recipe" in name))
    fns = {"baseline": lambda: train_step(models[recipe], optimizers[recipe], batch, weights, alpha, lail=False)}
    for name, model in models.items():
        fns[name] = lambda m=model, o=optimizers[name]: train_step(m, o, batch, weights, alpha, lail=True)
        fns[f"llm:{prefixes[name]}"] = llm_alone(llm, batch, taps, prefixes[name])
    fns["checkpointing"] = lambda: train_step(models[recipe], optimizers[recipe], batch, weights, alpha, lail=True,
                                              checkpointing=True)
    times = interleaved_medians(fns, args.repeats)

    base = times["baseline"]
    print(f"\nLAIL cost, {args.llm} LLM, batch {args.batch}, {taps} taps, text {batch['llm_input_ids'].shape[1]} "
          f"tokens, {device()} ({torch.get_num_threads()} threads), median of {args.repeats} interleaved steps. "
          f"Baseline step {base * 1000:.0f} ms.\n")
    table = []
    for name in [*VARIANTS, "checkpointing"]:
        prefix = prefixes[recipe if name == "checkpointing" else name]
        floor = times[f"llm:{prefix}"]
        extra = times[name] - base
        label = "downsample + LLM checkpointing" if name == "checkpointing" else name
        table.append([label, prefix, times[name] * 1000, extra * 1000, floor * 1000, extra / floor,
                      "yes" if extra / floor <= TARGET else "NO"])
    extra = times[recipe] - base
    for k in args.every_k:
        step = base + extra / k
        table.append([f"downsample, lail_every_k_steps={k} (mean step)", prefixes[recipe], step * 1000,
                      extra / k * 1000, times[f"llm:{prefixes[recipe]}"] * 1000, "", ""])
    print_table(["config", "prefix", "LAIL step ms", "extra ms", "LLM alone ms", "extra / LLM alone",
                 f"<= {TARGET}"], table)
    return times


if __name__ == "__main__":
    main()
