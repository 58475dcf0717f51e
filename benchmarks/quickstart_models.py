"""Benchmark 9: the three quickstart recognizers side by side (issue 23 item 4): parameters and s/step.

For each quickstart recipe (``recipes/quickstart/baseline.yaml``: the tiny TrOCR with its training CTC head and
attention guide; ``recipes/crnn/quickstart.yaml``: ``config:crnn-quickstart``; ``recipes/mobilevit/quickstart.yaml``:
``config:mobilevit-ctc-quickstart``) the model, its collator, trainer and optimizer are built by the package's own
code exactly as ``recipes/finetune.py`` builds them for that recipe (``trocr_lail/run.py``: same preset, input size,
CTC vocabulary from the training split's text, loss, and optimizer: Muon + AdamW for ``optim_muon: true``, the
recipe's ``optim`` otherwise, with its rate and weight decay). A training step is what Trainer does per batch:
forward and loss (``trainer.compute_loss``, every auxiliary term included), backward, gradient clipping at the
recipe's ``max_grad_norm``, optimizer step. It runs on a fixed batch of the recipe's ``per_device_train_batch_size``:
random pixels at the recipe's input size and real training-split transcriptions (IAM-like: 43.5 characters on
average), through the recipe's own collator. Steps are interleaved round-robin, medians taken, on one torch thread
by default (the quickstarts' CPU setting). Parameters: those the run trains (training-only heads included).

    python benchmarks/quickstart_models.py --repeats 10
    python benchmarks/quickstart_models.py --batch 2 --repeats 1 --warmup 0   # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import random
import tempfile

import numpy as np
import torch
from PIL import Image
from transformers import set_seed

from common import ROOT, interleaved_medians, print_table, read_recipe
# after common, which puts this checkout first on sys.path
from trocr_lail.data.collator import CtcCollator, LineCollator, presize_target
from trocr_lail.data.stream import SyntheticLineStream, line_spec
from trocr_lail.models.ctc_families import is_ctc_source
from trocr_lail.models.loading import load_ctc_processor_and_model
from trocr_lail.run import _load_trocr, build_trainer

RECIPES = {  # model -> recipe, TrOCR first: the ratios are to its step
    "TrOCR (tiny)": "recipes/quickstart/baseline.yaml",
    "CRNN": "recipes/crnn/quickstart.yaml",
    "MobileViT-CTC": "recipes/mobilevit/quickstart.yaml",
}
REFERENCE = "TrOCR (tiny)"


def build(recipe: str, output_dir: str):
    """``(model, trainer, collator, training_args, data_args)`` as ``trocr_lail/run.py`` builds them for the recipe
    (no data is rendered: a CTC vocabulary comes from the text the training split can draw)."""
    model_args, data_args, training_args, *_ = read_recipe(ROOT / recipe, "--output_dir", output_dir)
    set_seed(training_args.seed)
    if is_ctc_source(model_args.model_name_or_path):
        texts = SyntheticLineStream(line_spec(data_args, "train"), 1).texts()
        processor, model = load_ctc_processor_and_model(model_args, texts)
        collator = CtcCollator(processor, model_args.max_target_length)
    else:
        processor, model = _load_trocr(model_args, training_args)
        collator = LineCollator(processor, model_args.max_target_length)
    trainer = build_trainer(model, processor, training_args, None, None, collator)
    trainer.create_optimizer()
    return trainer.model.train(), trainer, collator, training_args, data_args


def fixed_batch(collator, data_args, batch_size: int, seed: int = 0) -> tuple[dict, list[str]]:
    """``(batch, texts)``: random pixels at the processor's input size and ``batch_size`` lines the training split
    draws from, collated as in training."""
    lines = SyntheticLineStream(line_spec(data_args, "train"), 1).texts()
    texts = random.Random(seed).sample(lines, batch_size)
    image_processor = collator.processor.image_processor  # TrOCR's resizes; the CTC one places lines on a canvas
    width, height = presize_target(image_processor) or (image_processor.image_width, image_processor.image_height)
    pixels = np.random.default_rng(seed).integers(0, 256, (batch_size, height, width), dtype=np.uint8)
    return collator([{"image": Image.fromarray(grey).convert("RGB"), "text": text}
                     for grey, text in zip(pixels, texts)]), texts


def main(argv=None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="default: each recipe's per_device_train_batch_size")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="untimed interleaved rounds first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the quickstarts run)")
    args = parser.parse_args(argv)

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="quickstart-models-") as output_dir:
            return _measure(args, output_dir)
    finally:
        torch.set_num_threads(threads)


def _measure(args, output_dir: str) -> dict[str, dict]:
    steps, facts = {}, {}
    for name, recipe in RECIPES.items():
        model, trainer, collator, training_args, data_args = build(recipe, output_dir)
        batch_size = args.batch or training_args.per_device_train_batch_size
        batch, texts = fixed_batch(collator, data_args, batch_size)
        batch = {key: value.to(training_args.device) for key, value in batch.items()}

        def step(model=model, trainer=trainer, batch=batch, clip=training_args.max_grad_norm):
            trainer.compute_loss(model, batch).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)

        steps[name] = step
        facts[name] = {"recipe": recipe, "batch": batch_size, "device": str(training_args.device),
                       "input": tuple(batch["pixel_values"].shape[1:]),
                       "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "optimizer": type(trainer.optimizer).__name__,
                       "text chars": sum(map(len, texts)) / batch_size}
    times = interleaved_medians(steps, args.repeats, warmup=args.warmup)
    for name in RECIPES:
        facts[name]["s/step"] = times[name]

    reference = times[REFERENCE]
    print(f"\nQuickstart recognizers, one training step each, {torch.get_num_threads()} torch thread(s), median of "
          f"{args.repeats} interleaved rounds after {args.warmup} warm-up round(s).\n")
    for name, fact in facts.items():
        print(f"- {name}: {fact['device']}, {fact['optimizer']}, input {'x'.join(map(str, fact['input']))}, "
              f"{fact['text chars']:.1f} characters per line")
    print()
    print_table(["model", "recipe", "parameters", "batch", "s/step", "x TrOCR step"],
                [[name, f"`{fact['recipe']}`", f"{fact['parameters']:,}", fact["batch"], fact["s/step"],
                  fact["s/step"] / reference] for name, fact in facts.items()])
    return facts


if __name__ == "__main__":
    main()
