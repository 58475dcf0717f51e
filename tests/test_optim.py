"""optim_muon: Muon on the transformer blocks' matrices, AdamW (exactly) on the rest, one optimizer for Trainer."""

import math

import pytest
import torch

from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel
from trocr_lail.training.optim import MuonAdamW, build_muon_adamw, muon_parameter_names, zeropower_via_newton_schulz

from conftest import make_tiny_model
from test_lail import lail_trainer, training_args


def test_muon_takes_block_matrices_only(tiny_processor):
    model = CtcVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor))
    names = muon_parameter_names(model)
    assert "encoder.layers.0.mlp.fc1.weight" in names
    assert "decoder.model.decoder.layers.0.encoder_attn.q_proj.weight" in names
    for other in ("decoder.output_projection.weight", "ctc_head.weight", "decoder.model.decoder.embed_tokens.weight",
                  "encoder.embeddings.patch_embeddings.projection.weight", "encoder.layers.0.mlp.fc1.bias"):
        assert other not in names
    blocks = [n for n, p in model.named_parameters() if p.ndim == 2 and ".layers." in n and "norm" not in n]
    assert names == set(blocks)


@pytest.mark.parametrize("shape", [(8, 24), (24, 8), (16, 16)])
def test_newton_schulz_flattens_the_spectrum(shape):
    generator = torch.Generator().manual_seed(0)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k, generator=generator))
    matrix = u @ torch.diag(torch.logspace(-1.5, 0, k)) @ v.T  # singular values spread over 30x
    result = zeropower_via_newton_schulz(matrix)
    assert result.shape == matrix.shape
    singular = torch.linalg.svdvals(result)
    # Jordan et al.'s coefficients trade exactness for speed: every singular value lands in about [0.7, 1.2].
    assert singular.min() > 0.6 and singular.max() < 1.25
    # ... with the singular vectors kept: close to the orthogonal factor u @ v.T.
    assert torch.nn.functional.cosine_similarity(result.flatten(), (u @ v.T).flatten(), dim=0) > 0.95


def test_adamw_groups_step_exactly_as_torch_adamw():
    torch.manual_seed(0)
    ours, reference = torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.zeros(5, 3))
    reference.data.copy_(ours.data)
    ours_opt = MuonAdamW([{"params": [ours], "muon": False}], lr=0.1, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-6)
    ref_opt = torch.optim.AdamW([reference], lr=0.1, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-6)
    for step in range(5):
        grad = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
        ours.grad, reference.grad = grad.clone(), grad.clone()
        ours_opt.step()
        ref_opt.step()
        torch.testing.assert_close(ours.data, reference.data, rtol=1e-6, atol=1e-7)


def test_muon_step_is_the_rms_matched_orthogonalised_nesterov_momentum():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(6, 12))
    start = weight.data.clone()
    opt = MuonAdamW([{"params": [weight], "muon": True}], lr=0.05, weight_decay=0.1, momentum=0.9)
    grads = [torch.randn(6, 12) for _ in range(2)]
    buf = torch.zeros(6, 12)
    expected = start.clone()
    for grad in grads:
        weight.grad = grad.clone()
        opt.step()
        buf = 0.9 * buf + 0.1 * grad
        update = zeropower_via_newton_schulz(0.1 * grad + 0.9 * buf)
        expected = expected * (1 - 0.05 * 0.1) - 0.05 * 0.2 * math.sqrt(12) * update
    torch.testing.assert_close(weight.data, expected, rtol=1e-5, atol=1e-6)


def test_trainer_builds_muon_over_trainable_parameters_only(tmp_path, tiny_processor):
    trainer, model, llm = lail_trainer(tmp_path, tiny_processor, tiny_processor.tokenizer,
                                       args_overrides={"optim_muon": True, "weight_decay": 0.1})
    llm_before = {k: v.clone() for k, v in llm.state_dict().items()}
    trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert isinstance(optimizer, MuonAdamW)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in in_optimizer for p in llm.parameters())  # the frozen LM never enters it
    muon_ids = {id(p) for group in optimizer.param_groups if group["muon"] for p in group["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in muon_ids}
    assert names == muon_parameter_names(model) and names
    no_decay = {name for group in optimizer.param_groups if group["weight_decay"] == 0
                for name, p in model.named_parameters() if any(p is q for q in group["params"])}
    assert no_decay and all(dict(model.named_parameters())[name].ndim < 2 for name in no_decay)
    for name, value in llm.state_dict().items():
        assert torch.equal(value, llm_before[name]), name


def test_optim_muon_is_off_by_default(tmp_path):
    assert training_args(tmp_path).optim_muon is False


def test_a_model_without_transformer_blocks_is_refused(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no trainable nn.Linear weights"):
        build_muon_adamw(model, training_args(tmp_path, optim_muon=True), decay_names=[])
