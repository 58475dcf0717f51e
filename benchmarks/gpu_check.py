"""GPU runbook (``make gpu-check``): training speed and memory of the real TrOCR shapes, baseline and LAIL, against
the way the Transformers-Tutorials TrOCR notebook trains (``Seq2SeqTrainer``, fp16, batch 8, defaults) as 1.0x.

Everything is built from config with random weights (speed does not depend on the values), on pre-collated random
batches (so the data pipeline is not measured: benchmarks/data.py does that), so it needs no network and no cache.
Each row is ``max_steps`` real Trainer optimizer steps; the median step after the first is reported.

Rows, per TrOCR shape and precision: the notebook-style reference; the toolkit's baseline (``LineRecognitionTrainer``
as the IAM recipes configure it: no clipping, fused AdamW, TF32 matmuls); LAIL with each connector kind and each LLM
(a SmolLM2-135M-shaped and a Llama-3.2-1B-shaped Llama). Columns: samples/s, peak ``torch.cuda.max_memory_allocated``,
step / baseline step, and LAIL's extra memory over its floor (the LLM's weights plus the activations its forward
saves for backward).

    python benchmarks/gpu_check.py                  # CUDA: trocr-base + trocr-large, bf16 + fp16 (sized for < 10 min)
    python benchmarks/gpu_check.py                  # no CUDA: trocr-small, batch 2, fp32, SmolLM2 shape, and says so

Targets (GPU): baseline >= 1.5x the reference's samples/s; LAIL (downsample, 1B LLM, bf16) step <= 1.5x the baseline
step at trocr-large; LAIL extra memory <= 1.1x (LLM weights + activations).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout first
from measure import print_table, saved_activation_bytes  # noqa: E402
from flops import LLM_SHAPES  # noqa: E402

from trocr_lail.lail.config import LailArguments  # noqa: E402
from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel  # noqa: E402
from trocr_lail.models.shapes import build_model  # noqa: E402

GIB = 2**30
TEXT_TOKENS, LLM_TOKENS = 20, 16
CONNECTORS = {"linear": {}, "downsample": {"lail_downsample_blocks": 4}, "qformer": {"lail_qformer_queries": 32}}


class Batches(torch.utils.data.Dataset):
    """Random pre-collated examples of the real shapes: 384x384 pixels, 20 target tokens, 16 LLM tokens."""

    def __init__(self, count: int, vocab: int, llm_vocab: int | None):
        generator = torch.Generator().manual_seed(0)
        self.rows = []
        for _ in range(count):
            row = {"pixel_values": torch.randn(3, 384, 384, generator=generator),
                   "labels": torch.randint(4, vocab, (TEXT_TOKENS,), generator=generator)}
            if llm_vocab:
                ids = torch.randint(4, llm_vocab, (LLM_TOKENS,), generator=generator)
                row.update(llm_input_ids=ids, llm_attention_mask=torch.ones_like(ids), llm_labels=ids.clone())
            self.rows.append(row)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


class StepTimer:
    """Trainer callback: wall time of each optimizer step (CUDA-synchronised)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, *args, **kwargs):
                _sync()
                timer.start = time.perf_counter()

            def on_step_end(self, *args, **kwargs):
                _sync()
                timer.times.append(time.perf_counter() - timer.start)

        self.times, self.start, self.callback = [], 0.0, Callback()

    def median(self) -> float:
        return statistics.median(self.times[1:] or self.times)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak() -> float | None:
    return torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None


def random_llm(name: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        llm = LlamaForCausalLM(LlamaConfig(**LLM_SHAPES[name], pad_token_id=0, eos_token_id=1)).to(dtype)
    return llm.eval().requires_grad_(False)


def run_row(shape: str, precision: str, batch: int, steps: int, style: str, llm_name: str | None = None,
            connector: str | None = None) -> dict:
    """One configuration: ``style`` is 'notebook' (plain Seq2SeqTrainer as the tutorial) or 'toolkit'."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, default_data_collator

    from trocr_lail.lail.trainer import LailTrainer
    from trocr_lail.training.trainer import LineRecognitionTrainer

    _reset()
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    model = build_model(f"config:{shape}")  # its config already carries start 2 / pad 1
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    llm, lail_args, extra = None, None, {}
    if llm_name:
        llm = random_llm(llm_name, dtype)
        lail_args = LailArguments(lail=True, lail_layers=[-1], lail_connector=connector, **CONNECTORS[connector])
        model = LailVisionEncoderDecoderModel.from_plain(model, lail_args.model_config(), llm.config.hidden_size)
        model.attach_llm(llm)
        extra = {"trainer_class": LailTrainer, "lail_args": lail_args}
    data = Batches(batch * (steps + 1), model.config.decoder.vocab_size,
                   llm.config.vocab_size if llm is not None else None)
    common = dict(output_dir=tempfile.mkdtemp(prefix="gpu-check-"), per_device_train_batch_size=batch,
                  max_steps=steps, report_to="none", save_strategy="no", logging_strategy="no",
                  use_cpu=not cuda, fp16=precision == "fp16", bf16=precision == "bf16", dataloader_num_workers=0,
                  remove_unused_columns=False, disable_tqdm=True)
    timer = StepTimer()
    if style == "notebook":  # Transformers-Tutorials: Seq2SeqTrainer, fp16, defaults (AdamW, clip 1.0, no TF32)
        args = Seq2SeqTrainingArguments(**common)
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator,
                                 callbacks=[timer.callback])
    else:  # the IAM recipes' optimisation: no clipping; plus fused AdamW and TF32 where CUDA has them
        from trocr_lail.configs import TrainingArguments

        args = TrainingArguments(**common, max_grad_norm=0.0, optim="adamw_torch_fused" if cuda else "adamw_torch",
                                 tf32=True if cuda else None)
        trainer_class = extra.pop("trainer_class", LineRecognitionTrainer)
        trainer = trainer_class(model=model, args=args, train_dataset=data, data_collator=default_data_collator,
                                callbacks=[timer.callback], **extra)
    trainer.train()
    step = timer.median()
    result = {"step_s": step, "samples_s": batch / step, "peak_gib": _peak()}
    if llm is not None and cuda:
        result["llm_floor_gib"] = llm_floor_bytes(llm, model, data, batch) / GIB
    del trainer, model, llm
    return result


def llm_floor_bytes(llm, model, data, batch: int) -> int:
    """LLM weights + the bytes its forward saves for backward on this row's shapes (prefix from the connector)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        pixels = torch.stack([data[i]["pixel_values"] for i in range(batch)]).to(device)
        hidden = model.encode_for_lail(pixels.to(next(model.encoder.parameters()).dtype))
        prefix = model.lail_connectors[0](hidden[model.lail_layers[0]]).shape[1]
    embeds = torch.randn(batch, prefix + LLM_TOKENS, llm.config.hidden_size, device=device,
                         dtype=llm.get_input_embeddings().weight.dtype, requires_grad=True)
    weights = {p.untyped_storage().data_ptr() for p in llm.parameters()}
    activations = saved_activation_bytes(lambda: llm(inputs_embeds=embeds).logits[:, -LLM_TOKENS:].float().sum()
                                         .backward(), weights)
    return activations + sum(p.numel() * p.element_size() for p in llm.parameters())


def main(argv: list[str] | None = None) -> list[list]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=None, help="default: trocr-base trocr-large on CUDA, "
                                                                  "trocr-small on CPU")
    parser.add_argument("--precisions", nargs="+", default=None, help="default: bf16 fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--llms", nargs="+", default=None, help=f"of {sorted(LLM_SHAPES)}; default: both on CUDA, "
                                                                "smollm2-135m on CPU")
    parser.add_argument("--batch", type=int, default=None, help="default: 8 (the notebook's) on CUDA, 2 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per row (default 6 CUDA, 4 CPU)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    shapes = args.shapes or (["trocr-base", "trocr-large"] if cuda else ["trocr-small"])
    precisions = args.precisions or (["bf16", "fp16"] if cuda else ["fp32"])
    llms = args.llms or (sorted(LLM_SHAPES) if cuda else ["smollm2-135m"])
    batch = args.batch or (8 if cuda else 2)
    steps = args.steps or (6 if cuda else 4)
    where = torch.cuda.get_device_name() if cuda else "CPU (no CUDA: smallest shape and batch, fp32; ratios only)"
    print(f"\ngpu-check on {where}: batch {batch}, {steps} optimizer steps per row, random weights from config\n")
    table = []
    for shape in shapes:
        for precision in precisions:
            ref_precision = "fp16" if cuda else precision  # the notebook trains with fp16 on a GPU
            ref = run_row(shape, ref_precision, batch, steps, "notebook")
            base = run_row(shape, precision, batch, steps, "toolkit")
            table.append([shape, precision, f"notebook reference ({ref_precision})", ref["samples_s"], _gib(ref),
                          ref["step_s"] / base["step_s"], "1.0x ref", "-"])
            table.append([shape, precision, "baseline", base["samples_s"], _gib(base), 1.0,
                          f"{base['samples_s'] / ref['samples_s']:.2f}x ref", "-"])
            for llm in llms:
                for connector in CONNECTORS:
                    row = run_row(shape, precision, batch, steps, "toolkit", llm, connector)
                    extra = (f"{(row['peak_gib'] - base['peak_gib']) / row['llm_floor_gib']:.2f}"
                             if "llm_floor_gib" in row else "-")
                    table.append([shape, precision, f"LAIL {connector}, {llm}", row["samples_s"], _gib(row),
                                  row["step_s"] / base["step_s"], "-", extra])
    print_table(["shape", "precision", "row", "samples/s", "peak GiB", "step / baseline step", "vs notebook",
                 "LAIL extra mem / (LLM weights + activations)"], table)
    return table


def _gib(result: dict) -> str:
    return "-" if result["peak_gib"] is None else f"{result['peak_gib']:.2f}"


if __name__ == "__main__":
    main()
