"""Resuming restores the model exactly, including ViT encoders whose checkpoint keys transformers 5.x renames."""

import pytest
import torch

from trocr_lail.data.collator import LineCollator
from trocr_lail.training.trainer import LineRecognitionTrainer

from conftest import make_tiny_model
from test_lail import dataset, training_args


def run(tmp_path, processor, seed, resume=None, **overrides):
    model = make_tiny_model(processor, seed=seed, dropout=0.0)
    trainer = LineRecognitionTrainer(
        model=model, train_dataset=dataset(), data_collator=LineCollator(processor, 32),
        args=training_args(tmp_path, save_strategy="steps", save_steps=2, max_steps=4, **overrides))
    trainer.train(resume_from_checkpoint=resume)
    return trainer, model


@pytest.mark.parametrize("optim_muon", [False, True])  # Muon's momentum buffers travel in optimizer.pt too
def test_resumed_run_matches_uninterrupted_run(tmp_path, tiny_processor, optim_muon):
    full, full_model = run(tmp_path / "full", tiny_processor, seed=0, optim_muon=optim_muon)
    resumed, resumed_model = run(tmp_path / "resumed", tiny_processor, seed=7,
                                 resume=str(tmp_path / "full" / "checkpoint-2"), optim_muon=optim_muon)
    losses = {e["step"]: e["loss"] for e in full.state.log_history if "loss" in e}
    resumed_losses = {e["step"]: e["loss"] for e in resumed.state.log_history if "loss" in e}
    assert resumed_losses[3] == pytest.approx(losses[3], rel=1e-6)
    assert resumed_losses[4] == pytest.approx(losses[4], rel=1e-6)
    for name, value in full_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], value, msg=name)
