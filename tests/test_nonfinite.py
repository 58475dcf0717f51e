"""A NaN/inf loss is caught at the step it happens, names its term, and never reaches the weights."""

import logging

import pytest
import torch
from transformers import TrainerCallback

from trocr_lail.data.collator import LailCollator, LineCollator
from trocr_lail.lail.trainer import LailTrainer
from trocr_lail.training.nonfinite import NonFiniteLossError
from trocr_lail.training.trainer import LineRecognitionTrainer

from conftest import make_tiny_model
from test_lail import dataset, make_lail, training_args

BAD_STEP = 2


class NanAt:
    """Collator wrapper feeding NaN pixels on the ``at``-th batch (1-based)."""

    def __init__(self, collator, at):
        self.collator, self.at, self.calls = collator, at, 0

    def __call__(self, examples):
        batch = self.collator(examples)
        self.calls += 1
        if self.calls == self.at:
            batch["pixel_values"][0, 0, 0, 0] = float("nan")
        return batch


class Snapshots(TrainerCallback):
    def __init__(self):
        self.params = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.params[state.global_step] = [p.detach().clone() for p in model.parameters()]


def train(tmp_path, processor, policy, at=BAD_STEP, steps=4):
    model = make_tiny_model(processor, dropout=0.0)
    snapshots = Snapshots()
    trainer = LineRecognitionTrainer(
        model=model, train_dataset=dataset(), data_collator=NanAt(LineCollator(processor, 32), at),
        args=training_args(tmp_path, max_steps=steps, nonfinite_loss_policy=policy, optim="adamw_torch"),
        callbacks=[snapshots])
    trainer.train()
    return trainer, snapshots.params


def test_skip_drops_exactly_the_bad_update(tmp_path, tiny_processor, caplog):
    with caplog.at_level(logging.ERROR, logger="trocr_lail"):
        trainer, params = train(tmp_path, tiny_processor, "skip")
    assert "Non-finite loss at optimizer step 2 (process 0): s2s=nan" in caplog.text
    assert trainer.nonfinite.skipped_steps == [BAD_STEP] and trainer.state.global_step == 4
    for before, after in zip(params[BAD_STEP - 1], params[BAD_STEP]):
        torch.testing.assert_close(after, before, rtol=0, atol=0)  # no update, no weight decay, no momentum
    assert all(torch.isfinite(p).all() for p in params[4])
    assert any(not torch.equal(a, b) for a, b in zip(params[BAD_STEP], params[4]))  # training went on
    # Adam's step count did not advance on the skipped step either.
    state = next(iter(trainer.optimizer.state.values()))
    assert int(state["step"]) == 3


def test_stop_saves_the_last_finite_weights_and_says_why(tmp_path, tiny_processor):
    trainer, params = train(tmp_path, tiny_processor, "stop")
    assert trainer.state.global_step == BAD_STEP
    checkpoint = tmp_path / f"checkpoint-{BAD_STEP}"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "trainer_state.json").is_file()
    for before, after in zip(params[BAD_STEP - 1], trainer.model.parameters()):
        torch.testing.assert_close(after.detach(), before, rtol=0, atol=0)
    with pytest.raises(NonFiniteLossError, match=r"step 2: s2s=nan.*checkpoint of the last finite weights"):
        trainer.nonfinite.raise_if_stopped(str(tmp_path))


def test_lail_report_names_the_tap(tmp_path, tiny_processor, caplog, monkeypatch):
    tokenizer = tiny_processor.tokenizer
    model, _, args = make_lail(tiny_processor, tokenizer, layers=(1, 2))
    original = model.lail_losses

    def poisoned(*inputs):
        losses = original(*inputs)
        return losses * torch.tensor([1.0, float("inf")]) if trainer.state.global_step == 0 else losses

    monkeypatch.setattr(model, "lail_losses", poisoned)
    trainer = LailTrainer(model=model, args=training_args(tmp_path, max_steps=2, nonfinite_loss_policy="skip"),
                          train_dataset=dataset(), lail_args=args,
                          data_collator=LailCollator(tiny_processor, 32, llm_tokenizer=tokenizer))
    with caplog.at_level(logging.ERROR, logger="trocr_lail"):
        trainer.train()
    assert "Non-finite loss at optimizer step 1 (process 0): lail_layer_2=inf" in caplog.text
    assert "s2s=" not in caplog.text and "lail_layer_1=" not in caplog.text
    assert trainer.nonfinite.skipped_steps == [1]
