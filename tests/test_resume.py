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


def test_load_best_model_at_end_restores_every_weight_of_the_best_checkpoint(tmp_path, tiny_processor):
    """Trainer's own best-model load is non-strict and misses the ViT layers transformers 5.x saves under legacy
    names: the encoder would stay at the last step's weights next to the best step's decoder."""
    trainer, model = run(tmp_path, tiny_processor, seed=0)
    best = {name: value.clone() for name, value in model.state_dict().items()}
    trainer.save_model(str(tmp_path / "best"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)  # what later steps would have done
    trainer.state.best_model_checkpoint = str(tmp_path / "best")
    trainer._load_best_model()
    for name, value in best.items():
        torch.testing.assert_close(model.state_dict()[name], value, msg=name)
