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


def training_samples_per_second(model_args, batch: dict, steps: int) -> float:
    from trocr_lail.loading import load_processor_and_model

    _, model = load_processor_and_model(model_args)
    model.to(device()).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = to_device(batch)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        train_step(model, optimizer, batch, None, None, lail=False)
        times.append(time.perf_counter() - start)
    return len(batch["labels"]) / statistics.median(times[1:])


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
    parser.add_argument("--train_steps", type=int, default=10)
    parser.add_argument("--lail_llm", default="smollm2", help="LLM whose tokenizer the LailCollator rows use")
    args = parser.parse_args(argv)

    from trocr_lail.data.augment import Augment
    from trocr_lail.data.collator import LailCollator, LineCollator
    from trocr_lail.data.sources import load_splits
    from trocr_lail.loading import load_processor_and_model
    from transformers import AutoTokenizer

    from trocr_lail.lail.smollm2 import smollm2_dir

    model_args, data_args, training_args, _ = read_recipe(BASELINE_RECIPE)
    batch_size = training_args.per_device_train_batch_size
    processor, _ = load_processor_and_model(model_args)
    train = load_splits(data_args)[data_args.train_split]
    collator = LineCollator(processor, model_args.max_target_length)
    llm_tokenizer = AutoTokenizer.from_pretrained(smollm2_dir() if args.lail_llm == "smollm2" else args.lail_llm)
    lail_collator = LailCollator(processor, model_args.max_target_length, llm_tokenizer=llm_tokenizer)

    torch.manual_seed(0)
    sample = collator([train[i] for i in range(batch_size)])
    train_rate = training_samples_per_second(model_args, sample, args.train_steps)
    table = []
    for augment in (True, False):
        dataset = train.with_transform(Augment()) if augment else train
        for name, coll in (("LineCollator", collator), ("LailCollator", lail_collator)):
            for workers in args.workers:
                rate, first = data_samples_per_second(dataset, coll, batch_size, workers, args.batches)
                table.append([workers, "yes" if augment else "no", name, rate, first, rate / train_rate,
                              "yes" if rate / train_rate >= TARGET else "NO"])
    train_rate = (train_rate + training_samples_per_second(model_args, sample, args.train_steps)) / 2
    for row in table:  # the training rate is the mean of one measurement before and one after the data runs
        row[5] = row[3] / train_rate
        row[6] = "yes" if row[5] >= TARGET else "NO"
    print(f"\nData vs training, quickstart baseline model, batch {batch_size}, {device()}, "
          f"{torch.get_num_threads()} torch threads. Training: {train_rate:.0f} samples/s.\n")
    print_table(["workers", "augment", "collator", "data samples/s", "first batch s", "data / training",
                 f">= {TARGET:g}"], table)


if __name__ == "__main__":
    main()
