"""Benchmark 8: an affordable LAIL step on CPU (issue 22 item 4), LAIL step / baseline step in one run.

The adaptation recipes' model (the quickstart shapes: a 2-layer ViT over 96 column patches, a 1-layer decoder,
the CTC head) and a real training step on rendered lines, batch 32 as in ``recipes/adaptation/``: forward,
backward and the optimizer step, plus what ``LailTrainer`` adds on a LAIL step (the LLM's prefixed forward and
backward, its unconditional forward and the another-line control, both without gradient). Variants:

- the LLM in float32 or bfloat16, eager or under ``torch.compile``; bfloat16 pays only where the CPU computes it in
  hardware (AVX-512 BF16 or AMX: 1.9x faster than float32; emulated on AVX2: 25x slower), and the header says which;
- the prefix: ``linear`` (one vector per encoder position: 96 patch columns and CLS), ``downsample`` with 2 or 3
  blocks (25 or 13);
- fewer but fuller: 32 lines scored on every 4th step instead of 8 on every step (the same lines per step on
  average; the derived row is the mean step);
- the another-line control on every 4th step only (``lail_control_every_k_steps: 4``; derived from a step
  without it).

Every ratio is against the baseline step measured in the same interleaved run, and "ms / scored line" is the extra
time per transcription the LLM scored.

    python benchmarks/lail_cpu_step.py                 # real SmolLM2-135M
    python benchmarks/lail_cpu_step.py --llm tiny      # random 2-layer Llama: a smoke run
"""

from __future__ import annotations

import argparse
import time

import torch

from common import LAIL_RECIPE, build_lail, device, interleaved_medians, print_table, rows, to_device
from trocr_lail.lail.llm import native_bfloat16

LLM_KEYS = ("llm_input_ids", "llm_attention_mask", "llm_labels")
ADAPTATION = ["--lail_layers", "2", "--lail_alpha", "0.5"]  # recipes/adaptation/lail.yaml's tap
# name -> (overrides, lines scored per LAIL step, LLM dtype, compiled); every step scores the control but the last
DS25 = ["--lail_connector", "downsample", "--lail_downsample_blocks", "2"]
VARIANTS = {
    "linear 97, fp32": (["--lail_connector", "linear"], 8, "float32", False),
    "linear 97, bf16 (before: lail.yaml)": (["--lail_connector", "linear"], 8, "bfloat16", False),
    "linear 97, bf16, compiled": (["--lail_connector", "linear"], 8, "bfloat16", True),
    "downsample 25, bf16": (DS25, 8, "bfloat16", False),
    "downsample 13, bf16": (["--lail_connector", "downsample", "--lail_downsample_blocks", "3"], 8, "bfloat16",
                            False),
    "downsample 25, bf16, 32 lines": (DS25, 32, "bfloat16", False),
}
NO_CONTROL = "downsample 25, bf16, no control"


def train_step(model, optimizer, batch, lines: int | None, control: bool = True):
    """One optimizer step; with ``lines``, a LAIL step as ``LailTrainer.compute_loss`` takes it."""
    llm_inputs = {} if lines is None else {key: batch[key][:lines] for key in LLM_KEYS}
    outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"], **llm_inputs)
    loss = outputs.loss
    if lines is not None:
        loss = loss + 0.5 * outputs.lail_losses.sum()
        model.unconditional_loss(**llm_inputs)
        if control:
            model.mismatched_lail_losses(outputs.encoder_hidden_states, **llm_inputs)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="smollm2", help="smollm2 (default), tiny, or a local model directory")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no_compile", action="store_true", help="Leave out the torch.compile variant.")
    args = parser.parse_args(argv)

    variants = {k: v for k, v in VARIANTS.items() if not (args.no_compile and v[3])}
    torch.manual_seed(0)
    batch = None
    fns, compile_s, prefixes, llms, built = {}, {}, {}, {}, {}
    for name, (overrides, lines, dtype, compiled) in variants.items():
        model, collator, _ = build_lail(LAIL_RECIPE, args.llm, *ADAPTATION, "--lail_llm_dtype", dtype, *overrides)
        if dtype in llms:
            model.attach_llm(llms[dtype])  # one frozen LLM per dtype, shared by the variants
        llms.setdefault(dtype, model.llm)
        if compiled:
            model.attach_llm(torch.compile(llms[dtype], dynamic=True))
        model.train()
        if batch is None:
            batch = to_device(collator(rows(args.batch)))
            baseline_model = model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        if compiled:  # the first calls compile: timed apart, as a run pays them once (plus a few recompiles)
            start = time.perf_counter()
            train_step(model, optimizer, batch, lines)
            compile_s[name] = time.perf_counter() - start
        with torch.no_grad():
            prefixes[name] = model.lail_connectors[0](model.encode_for_lail(batch["pixel_values"])[2]).shape[1]
        built[name] = (model, optimizer)
        fns[name] = lambda m=model, o=optimizer, n=lines: train_step(m, o, batch, n)
    base_optimizer = torch.optim.AdamW(baseline_model.parameters(), lr=1e-5)
    fns = {"baseline": lambda: train_step(baseline_model, base_optimizer, batch, None), **fns}
    model, optimizer = built["downsample 25, bf16"]
    fns[NO_CONTROL] = lambda: train_step(model, optimizer, batch, 8, control=False)
    times = interleaved_medians(fns, args.repeats)

    base = times["baseline"]
    print(f"\nLAIL step on {device()} ({torch.get_num_threads()} threads), {args.llm} LLM, batch {args.batch}, tap 2, "
          f"text {batch['llm_input_ids'].shape[1]} tokens, median of {args.repeats} interleaved steps. Baseline step "
          f"{base * 1000:.0f} ms. bfloat16 {'native' if native_bfloat16(device().type) else 'emulated'} here.\n")
    table = []
    for name, (_, lines, dtype, compiled) in variants.items():
        extra = times[name] - base
        note = f"compile {compile_s[name]:.0f} s once" if compiled else ""
        table.append([name, prefixes[name], lines, round(times[name] * 1000), times[name] / base,
                      round(extra / lines * 1000), note])
        if lines > 8:
            k = lines // 8
            table.append([f"{name}, every {k}th step (mean step)", prefixes[name], f"{lines}/{k}",
                          round((base + extra / k) * 1000), (base + extra / k) / base, round(extra / lines * 1000),
                          ""])
    with_control, without = times["downsample 25, bf16"], times[NO_CONTROL]
    table.append([NO_CONTROL, prefixes["downsample 25, bf16"], 8, round(without * 1000), without / base,
                  round((without - base) / 8 * 1000), ""])
    step = without + (with_control - without) / 4
    table.append(["downsample 25, bf16, control every 4th step (mean step)", prefixes["downsample 25, bf16"], 8,
                  round(step * 1000), step / base, round((step - base) / 8 * 1000), ""])
    print_table(["config", "prefix", "lines scored", "step ms", "/ baseline step", "ms / scored line", "note"], table)
    return times


if __name__ == "__main__":
    main()
