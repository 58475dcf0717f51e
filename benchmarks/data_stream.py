"""Benchmark 5: lines/s of one DataLoader worker of the synthetic stream (``trocr_lail/data/stream.py``): render a
line (IAM-like text, random font and variation) and collate it (resize to the model input, normalise, tokenize),
at TrOCR's 384x384 input and at the quickstart's input, exactly as training does it (the stream resizes in the
worker, the collator normalises). One worker = one process on one core, so the numbers are
per core; the worker count a GPU needs is ``5 x GPU lines/s / lines/s per worker`` (benchmarks/README.md).

    python benchmarks/data_stream.py --lines 300
"""

from __future__ import annotations

import argparse
import time

import torch

from common import BASELINE_RECIPE, print_table, read_recipe

from trocr_lail.data.collator import LineCollator
from trocr_lail.data.stream import SyntheticLineStream
from trocr_lail.data.synthetic import LineSpec
from trocr_lail.models.tiny import build_tiny_processor

# A documented estimate, not a measurement (no GPU here): see benchmarks/README.md section 5 for the derivation.
TROCR_BASE_GPU_LINES_PER_S = 292.0
TARGET = 5.0


def lines_per_second(stream, collator, lines: int, batch: int) -> tuple[float, float]:
    """(lines per CPU second of rendering + collation, share of it spent rendering) in this process. CPU time, not
    wall time: a worker is one single-threaded process, so its CPU time is what it costs a dedicated core, also
    while other jobs share the machine."""
    render = collate = 0.0
    for start in range(0, lines, batch):
        t0 = time.process_time()
        rows = [stream[i] for i in range(start, min(start + batch, lines))]
        t1 = time.process_time()
        collator(rows)
        t2 = time.process_time()
        render, collate = render + t1 - t0, collate + t2 - t1
    return lines / (render + collate), render / (render + collate)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300, help="Lines per configuration (default 300).")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one worker = one core

    model_args, data_args, *_ = read_recipe(BASELINE_RECIPE)
    quick = (model_args.tiny_image_height, model_args.tiny_image_width)
    configs = [("384x384 (TrOCR)", (384, 384), 12.0, 90),
               (f"{quick[0]}x{quick[1]} (quickstart)", quick, data_args.synthetic_min_aspect,
                data_args.synthetic_max_chars)]
    table, rates = [], {}
    for name, (height, width), min_aspect, max_chars in configs:
        processor = build_tiny_processor(height, width)
        stream = SyntheticLineStream(LineSpec(seed=args.seed, min_aspect=min_aspect, max_chars=max_chars),
                                     args.lines)
        stream.resize_for(processor.image_processor)  # as in training (prepare_stream): resized in the worker
        collator = LineCollator(processor, max_target_length=128)
        lines_per_second(stream, collator, args.batch, args.batch)  # warm-up: font files, caches
        rate, render_share = lines_per_second(stream, collator, args.lines, args.batch)
        rates[name] = rate
        workers = TARGET * TROCR_BASE_GPU_LINES_PER_S / rate
        table.append([name, max_chars, rate, f"{render_share:.0%}", f"{workers:.0f}"])
    print_table(["input", "max chars", "lines/s per worker", "rendering share",
                 f"workers for {TARGET:g}x a trocr-base GPU step ({TROCR_BASE_GPU_LINES_PER_S:g} lines/s)"], table)
    return rates


if __name__ == "__main__":
    main()
