"""Worker for tests/test_ddp.py: a few SGD steps of the tiny model (baseline or LAIL) at a fixed global batch of 4,
under however many processes torchrun starts. Rank 0 writes the logged losses and final weights."""

import json
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from trocr_lail.data.collator import LailCollator, LineCollator  # noqa: E402
from trocr_lail.distributed import close_process_group  # noqa: E402
from trocr_lail.lail.trainer import LailTrainer  # noqa: E402
from trocr_lail.models.tiny import build_tiny_processor  # noqa: E402
from trocr_lail.training.trainer import LineRecognitionTrainer  # noqa: E402

from conftest import make_tiny_model  # noqa: E402
from test_lail import dataset, make_lail, training_args  # noqa: E402

GLOBAL_BATCH = 4


def main(out: str, mode: str) -> None:
    world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
    processor = build_tiny_processor(image_height=16, image_width=64)
    args = training_args(out, per_device_train_batch_size=GLOBAL_BATCH // world, max_steps=2, optim="sgd",
                         learning_rate=0.5, max_grad_norm=0.0)
    if mode == "lail":
        model, _, lail_args = make_lail(processor, processor.tokenizer, layers=(1, 2))
        trainer = LailTrainer(model=model, args=args, train_dataset=dataset(), lail_args=lail_args,
                              data_collator=LailCollator(processor, 32, llm_tokenizer=processor.tokenizer))
    else:
        model = make_tiny_model(processor, dropout=0.0)
        trainer = LineRecognitionTrainer(model=model, args=args, train_dataset=dataset(),
                                         data_collator=LineCollator(processor, 32))
    trainer.train()
    if trainer.is_world_process_zero():
        history = [{k: v for k, v in e.items() if "loss" in k} for e in trainer.state.log_history if "loss" in e]
        (__import__("pathlib").Path(out) / "losses.json").write_text(json.dumps(history))
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{out}/weights.safetensors")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2])
    close_process_group()  # after main, which released the trainer and its DDP model (they hold the group too)
