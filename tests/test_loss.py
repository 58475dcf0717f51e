"""The training loss is exactly normalised: accumulation over micro-batches equals one big batch."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from trocr_lail.configs import TrainingArguments
from trocr_lail.data.collator import LineCollator
from trocr_lail.training.trainer import LineRecognitionTrainer, token_cross_entropy

from conftest import make_tiny_model

# Micro-batches of 2 get very different token counts, so a mean of per-micro-batch means would differ.
TEXTS = ["a", "ab", "abcdefghijklmnop", "abcdefghijklmnopqrstuvw"]


def line_dataset():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 64, 3), dtype=np.uint8)) for _ in TEXTS]
    return datasets.Dataset.from_dict({"image": images, "text": TEXTS}).cast_column("image", datasets.Image())


def one_step(tmp_path, processor, batch_size, accumulation):
    model = make_tiny_model(processor, dropout=0.0)
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch_size}"), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=1.0,
        lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, seed=0, data_seed=0,
    )
    trainer = LineRecognitionTrainer(model=model, args=args, train_dataset=line_dataset(),
                                     data_collator=LineCollator(processor, 32))
    trainer.train()
    return trainer.state.log_history[0]["loss"], {k: v.detach().clone() for k, v in model.named_parameters()}


def test_grad_accumulation_equals_big_batch(tmp_path, tiny_processor):
    initial = dict(make_tiny_model(tiny_processor, dropout=0.0).named_parameters())
    loss_big, params_big = one_step(tmp_path, tiny_processor, batch_size=4, accumulation=1)
    loss_acc, params_acc = one_step(tmp_path, tiny_processor, batch_size=2, accumulation=2)
    assert loss_acc == pytest.approx(loss_big, rel=1e-5)
    moved = 0
    for name, value in params_big.items():
        # With SGD at lr=1, parameter change == gradient: equal parameters <=> equal gradients.
        torch.testing.assert_close(params_acc[name], value, rtol=1e-4, atol=1e-6, msg=name)
        moved += not torch.equal(value, initial[name])
    assert moved > len(params_big) // 2  # the step really changed the model


def test_token_cross_entropy_normalises_by_given_count():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100]])
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    total = per_token[labels.flatten() != -100].sum()
    assert token_cross_entropy(logits, labels).item() == pytest.approx((total / 3).item(), rel=1e-6)
    assert token_cross_entropy(logits, labels, num_items_in_batch=10).item() == pytest.approx((total / 10).item(),
                                                                                               rel=1e-6)
