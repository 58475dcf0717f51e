"""Benchmark 4: is data ever the bottleneck? Samples/s of loading + augmentation + collation against the training
samples/s of the quickstart model (``recipes/quickstart/baseline.yaml``: the fastest model, so the hardest case).

Data throughput is measured in isolation (the DataLoader alone, after its first batch so worker start-up is
excluded), training throughput on a fixed batch (forward, backward, AdamW step). Target: ratio >= 5.

    python benchmarks/data.py
    python benchmarks/data.py --workers 0 1 2 --batches 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader

from common import BASELINE_RECIPE, device, print_table, read_recipe, to_device
from lail_cost import train_step

TARGET = 5.0


def training_rate(model_args, batch: dict):
    """A function measuring the training samples/s of one chunk of steps on a fixed batch."""
    from trocr_lail.models.loading import load_processor_and_model

    _, model = load_processor_and_model(model_args)
    model.to(device()).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = to_device(batch)
    train_step(model, optimizer, batch, None, None, lail=False)  # warm-up

    def measure(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, batch, None, None, lail=False)
        return steps * len(batch["labels"]) / (time.perf_counter() - start)

    return measure


def data_samples_per_second(dataset, collator, batch_size: int, workers: int, batches: int) -> tuple[float, float]:
    """(samples/s after the first batch, seconds to the first batch)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collator,
                        drop_last=True)
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start), first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--train_steps", type=int, default=5, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lail_llm", default="smollm2", help="LLM whose tokenizer the LailCollator rows use")
    args = parser.parse_args(argv)

    from trocr_lail.data.augment import Augment
    from trocr_lail.data.collator import LailCollator, LineCollator
    from trocr_lail.data.sources import load_splits
    from trocr_lail.models.loading import load_processor_and_model
    from transformers import AutoTokenizer

    from trocr_lail.lail.smollm2 import smollm2_dir

    model_args, data_args, training_args, *_ = read_recipe(BASELINE_RECIPE)
    batch_size = training_args.per_device_train_batch_size
    processor, _ = load_processor_and_model(model_args)
    train = load_splits(data_args)[data_args.train_split]
    collator = LineCollator(processor, model_args.max_target_length)
    llm_tokenizer = AutoTokenizer.from_pretrained(smollm2_dir() if args.lail_llm == "smollm2" else args.lail_llm)
    lail_collator = LailCollator(processor, model_args.max_target_length, llm_tokenizer=llm_tokenizer)

    torch.manual_seed(0)
    measure_training = training_rate(model_args, collator([train[i] for i in range(batch_size)]))
    configs = [(augment, name, coll, workers) for augment in (True, False)
               for name, coll in (("LineCollator", collator), ("LailCollator", lail_collator))
               for workers in args.workers]
    datasets_ = {True: train.with_transform(Augment()), False: train}
    # Rounds of (training chunk, every data configuration): drift in machine load hits all alike; medians.
    train_rates = []
    rates, firsts = ({(augment, name, workers): [] for augment, name, _, workers in configs} for _ in range(2))
    for _ in range(args.rounds):
        train_rates.append(measure_training(args.train_steps))
        for augment, name, coll, workers in configs:
            rate, first = data_samples_per_second(datasets_[augment], coll, batch_size, workers, args.batches)
            rates[(augment, name, workers)].append(rate)
            firsts[(augment, name, workers)].append(first)
    train_rate = statistics.median(train_rates)
    print(f"\nData vs training, quickstart baseline model, batch {batch_size}, {device()}, "
          f"{torch.get_num_threads()} torch threads, median of {args.rounds} interleaved rounds. "
          f"Training: {train_rate:.0f} samples/s.\n")
    table = []
    for (augment, name, workers), values in rates.items():
        ratio = statistics.median(values) / train_rate
        table.append([workers, "yes" if augment else "no", name, statistics.median(values),
                      statistics.median(firsts[augment, name, workers]), ratio, "yes" if ratio >= TARGET else "NO"])
    print_table(["workers", "augment", "collator", "data samples/s", "first batch s", "data / training",
                 f">= {TARGET:g}"], table)
    return train_rate, rates


if __name__ == "__main__":
    main()
