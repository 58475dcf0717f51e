"""Benchmark 2: the memory LAIL adds, against its floor (the LLM's weights plus its activations).

Each configuration runs in a fresh subprocess (peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA), on
the quickstart model read from ``recipes/quickstart/lail.yaml``. The training-phase peak is taken after the model
(and LLM) are loaded, so file-loading transients are reported separately from what training needs. The LLM's
activations are the bytes autograd saves for backward in the LLM-alone step (weights excluded). Each LAIL worker also
checks that the LLM got no weight gradients and no optimizer state.

Target: peak(LAIL) - peak(baseline) <= 1.1 x (LLM weights + LLM activations).

    python benchmarks/memory.py                 # real SmolLM2-135M, batch 8
    python benchmarks/memory.py --llm tiny      # smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from common import LAIL_RECIPE, build_lail, device, print_table, read_recipe, rows, to_device
from measure import saved_activation_bytes
from lail_cost import llm_alone, prefix_length, train_step

TARGET = 1.1
MIB = 2**20
CONFIGS = {"baseline": [], "lail": [], "lail + LLM checkpointing": [], "lail, linear connector": [
    "--lail_connector", "linear"]}


def peak_bytes() -> int:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:  # "5" resets the process's peak RSS (VmHWM, which ru_maxrss reads) to its current RSS
        Path("/proc/self/clear_refs").write_text("5")


def worker(config: str, llm_name: str, batch_size: int, steps: int) -> dict:
    torch.manual_seed(0)
    examples = rows(batch_size)
    if config == "baseline":
        from trocr_lail.data.collator import LineCollator
        from trocr_lail.models.loading import load_processor_and_model

        model_args = read_recipe(LAIL_RECIPE)[0]
        processor, model = load_processor_and_model(model_args)
        model.to(device())
        batch, llm, lail = to_device(LineCollator(processor, model_args.max_target_length)(examples)), None, False
        weights = alpha = None
    else:
        model, collator, lail_args = build_lail(LAIL_RECIPE, llm_name, *CONFIGS[config])
        batch, llm, lail = to_device(collator(examples)), model.llm, True
        weights, alpha = torch.tensor(lail_args.layer_weights(), device=device()), lail_args.lail_alpha
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    result = {"config": config, "load_peak": peak_bytes()}
    reset_peak()
    for _ in range(steps):
        train_step(model, optimizer, batch, weights, alpha, lail=lail, checkpointing="checkpointing" in config)
    result["train_peak"] = peak_bytes()
    if llm is not None:
        llm_params = {id(p) for p in llm.parameters()}
        result["llm_params_with_grad"] = sum(p.grad is not None for p in llm.parameters())
        result["llm_params_in_optimizer_state"] = sum(id(p) in llm_params for p in optimizer.state)
        result["llm_weights"] = sum(t.numel() * t.element_size() for t in [*llm.parameters(), *llm.buffers()])
        weights_ptrs = {p.untyped_storage().data_ptr() for p in llm.parameters()}
        step = llm_alone(llm, batch, len(model.lail_layers), prefix_length(model, batch))
        result["llm_activations"] = saved_activation_bytes(step, weights_ptrs)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="smollm2", help="smollm2 (default), tiny, or a local model directory")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--worker", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.llm, args.batch, args.steps)))
        return None

    results = {}
    for config in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--worker", config, "--llm", args.llm, "--batch",
                              str(args.batch), "--steps", str(args.steps)], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"worker {config} failed:\n{out.stderr[-3000:]}")
        results[config] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["baseline"]
    kind = "CUDA max_memory_allocated" if torch.cuda.is_available() else "peak RSS"
    print(f"\nMemory, {args.llm} LLM, batch {args.batch}, {args.steps} steps, {kind}, fresh process per row. "
          f"Baseline: {base['train_peak'] / MIB:.0f} MiB training peak, {base['load_peak'] / MIB:.0f} MiB at load.\n")
    table = []
    for config, r in results.items():
        if config == "baseline":
            continue
        extra = r["train_peak"] - base["train_peak"]
        floor = r["llm_weights"] + r["llm_activations"]
        table.append([config, r["train_peak"] / MIB, extra / MIB, r["llm_weights"] / MIB,
                      r["llm_activations"] / MIB, extra / floor, "yes" if extra / floor <= TARGET else "NO",
                      (r["load_peak"] - base["load_peak"]) / MIB, r["llm_params_with_grad"],
                      r["llm_params_in_optimizer_state"]])
    print_table(["config", "peak MiB", "extra MiB", "LLM weights MiB", "LLM activations MiB", "extra / floor",
                 f"<= {TARGET}", "extra at load MiB", "LLM grads", "LLM optimizer states"], table)
    return results


if __name__ == "__main__":
    main()
