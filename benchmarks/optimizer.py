"""Benchmark 7: what Muon (``optim_muon``) costs per step against AdamW.

On the quickstart model (shapes from ``recipes/quickstart/baseline.yaml``, with its CTC head) and a batch of
rendered lines, this times ``optimizer.step()`` alone and a whole training step (forward and backward of the s2s
loss, optimizer step) for torch's AdamW (foreach and fused) and for ``MuonAdamW`` (``trocr_lail/training/optim.py``),
interleaved, medians. The Trainer's step also computes the CTC and guide losses, so the optimizer's share of a real
step is a little smaller than here.

    python benchmarks/optimizer.py                  # the recipe's batch (32)
    python benchmarks/optimizer.py --batch 4 --repeats 2   # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import copy

import torch

from common import BASELINE_RECIPE, device, interleaved_medians, print_table, read_recipe, rows, to_device
# after common, which puts this checkout first on sys.path
from trocr_lail.data.collator import LineCollator
from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel
from trocr_lail.models.loading import load_processor_and_model
from trocr_lail.training.trainer import LineRecognitionTrainer


def optimizers(training_args) -> dict:
    """name -> function building that optimizer over a model, with the recipe's rate and weight decay."""
    def adamw(**kwargs):
        return lambda model: torch.optim.AdamW(model.parameters(), lr=training_args.learning_rate,
                                               weight_decay=training_args.weight_decay, **kwargs)

    def muon(model):  # exactly the optimizer training builds (parameter groups, weight decay)
        return LineRecognitionTrainer(model=model, args=training_args).create_optimizer()

    return {"AdamW (torch, foreach)": adamw(foreach=True), "AdamW (torch, fused)": adamw(fused=True),
            "Muon + AdamW (optim_muon)": muon}


def main(argv=None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    model_args, _, training_args, *_ = read_recipe(BASELINE_RECIPE)
    processor, model = load_processor_and_model(model_args)
    model = CtcVisionEncoderDecoderModel.from_plain(model, upsample=model_args.ctc_upsample).to(device()).train()
    batch_size = args.batch or training_args.per_device_train_batch_size
    batch = to_device(LineCollator(processor, model_args.max_target_length)(rows(batch_size)))

    copies, steps, updates = {}, {}, {}
    for name, build in optimizers(training_args).items():
        copies[name] = copy.deepcopy(model)
        optimizer = build(copies[name])

        def train_step(m=copies[name], opt=optimizer):
            m(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps[name], updates[name] = train_step, optimizer.step
    step_times = interleaved_medians(steps, args.repeats)
    for name, m in copies.items():  # gradients for the step-only timing
        m(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss.backward()
    update_times = interleaved_medians(updates, args.repeats)

    reference = step_times["AdamW (torch, foreach)"]
    print(f"\nOptimizer cost, quickstart model, batch {batch_size}, {device()}, {torch.get_num_threads()} torch "
          f"threads, median of {args.repeats} interleaved rounds.\n")
    print_table(["optimizer", "optimizer.step ms", "training step ms", "training step vs AdamW (foreach)"],
                [[name, update_times[name] * 1e3, step_times[name] * 1e3, step_times[name] / reference]
                 for name in steps])
    return {name: (update_times[name], step_times[name]) for name in steps}


if __name__ == "__main__":
    main()
