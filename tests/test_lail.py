"""LAIL math and invariants on tiny models: a tiny ViT/TrOCR and a tiny random Llama built from config."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from trocr_lail.configs import TrainingArguments
from trocr_lail.data.collator import LailCollator, LineCollator
from trocr_lail.lail.config import LailArguments, alpha_at
from trocr_lail.lail.connectors import build_connector
from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel
from trocr_lail.lail.trainer import LailTrainer
from trocr_lail.models.tiny import build_char_tokenizer
from trocr_lail.training.trainer import LineRecognitionTrainer, token_cross_entropy

from conftest import make_tiny_model

TEXTS = ["the cat", "a dog ran", "hello there", "on the mat", "we go", "it is so", "big red", "up hill"]


@pytest.fixture(scope="module")
def llm_tokenizer():
    return build_char_tokenizer()


def make_llm(tokenizer, seed=1):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


def make_lail(processor, tokenizer, layers=(1, 2), connector="linear", seed=0, **kwargs):
    args = LailArguments(lail=True, lail_layers=list(layers), lail_connector=connector, **kwargs)
    llm = make_llm(tokenizer)
    model = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(processor, seed=seed, dropout=0.0),
                                                     args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm)
    return model, llm, args


def dataset():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 64, 3), dtype=np.uint8)) for _ in TEXTS]
    return datasets.Dataset.from_dict({"image": images, "text": TEXTS}).cast_column("image", datasets.Image())


def training_args(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-2,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0, data_seed=0,
                  lr_scheduler_type="constant")
    values.update(overrides)
    return TrainingArguments(**values)


def lail_trainer(tmp_path, processor, tokenizer, lail_overrides=None, args_overrides=None, **model_kwargs):
    model, llm, args = make_lail(processor, tokenizer, **{**model_kwargs, **(lail_overrides or {})})
    trainer = LailTrainer(model=model, args=training_args(tmp_path, **(args_overrides or {})),
                          train_dataset=dataset(), lail_args=args,
                          data_collator=LailCollator(processor, 32, llm_tokenizer=tokenizer))
    return trainer, model, llm


def layer_prefix(model, index: int) -> str:
    """State-dict prefix of encoder layer ``index`` (ViT's module names differ between transformers 4.x and 5.x)."""
    for name, module in model.encoder.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == model.config.encoder.num_hidden_layers:
            return f"encoder.{name}.{index}."
    raise AssertionError("no encoder layer list found")


def batch(processor, tokenizer):
    rows = [dataset()[i] for i in range(4)]
    return LailCollator(processor, 32, llm_tokenizer=tokenizer)(rows)


@pytest.mark.parametrize("kind,expected_len", [("linear", 9), ("downsample", 3), ("qformer", 5)])
def test_connector_shapes(kind, expected_len):
    connector = build_connector(kind, 32, 48, num_blocks=2, num_queries=5, num_heads=2)
    assert connector(torch.randn(2, 9, 32)).shape == (2, expected_len, 48)


@pytest.mark.parametrize("kind", ["downsample", "qformer"])
def test_connector_activation_none_is_linear(kind):
    torch.manual_seed(0)
    x = torch.randn(2, 9, 32)

    def offset(connector, scale):  # f(s x) - f(0): linear in s exactly when the connector is affine
        return connector(scale * x) - connector(0 * x)

    plain = build_connector(kind, 32, 48, activation="none", num_blocks=2, num_queries=5, num_heads=2)
    gelu = build_connector(kind, 32, 48, activation="gelu", num_blocks=2, num_queries=5, num_heads=2)
    if kind == "downsample":
        torch.testing.assert_close(offset(plain, 3.0), 3 * offset(plain, 1.0), rtol=1e-4, atol=1e-5)
    else:  # attention keeps the qformer non-linear; only its MLP loses the activation
        assert not any(isinstance(m, torch.nn.GELU) or "GELU" in type(m).__name__ for m in plain.modules())
    assert not torch.allclose(offset(gelu, 3.0), 3 * offset(gelu, 1.0), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="connector activation 'swishy'"):
        LailArguments(lail_connector_activation="swishy")


def test_alpha_schedules():
    def alpha(step, **kw):
        return alpha_at(LailArguments(lail_alpha=0.5, **kw), step, max_steps=100)

    assert [alpha(s) for s in (0, 50, 99)] == [0.5, 0.5, 0.5]
    assert [alpha(s, lail_alpha_schedule="linear_warmup", lail_alpha_warmup_steps=10) for s in (0, 5, 10, 60)] == \
        [0.0, 0.25, 0.5, 0.5]
    assert [alpha(s, lail_alpha_schedule="ramp", lail_alpha_ramp_step=40, lail_alpha_start=0.1)
            for s in (0, 39, 40, 99)] == [0.1, 0.1, 0.5, 0.5]
    decay = [alpha(s, lail_alpha_schedule="decay", lail_alpha_decay_step=60, lail_alpha_end=0.1)
             for s in (0, 60, 80, 100)]
    assert decay == pytest.approx([0.5, 0.5, 0.3, 0.1])
    with pytest.raises(ValueError, match="lail_alpha_schedule"):
        LailArguments(lail_alpha_schedule="cosine")


def test_total_loss_is_s2s_plus_alpha_weighted_lail(tmp_path, tiny_processor, llm_tokenizer):
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                     lail_overrides={"lail_alpha": 0.7, "lail_layer_weights": [0.25, 2.0]})
    inputs = batch(tiny_processor, llm_tokenizer)
    model.train()
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    s2s = token_cross_entropy(outputs.logits, inputs["labels"])
    l1, l2 = outputs.lail_losses
    assert torch.isfinite(l1) and l1 > 0 and l2 > 0
    assert loss.item() == pytest.approx((s2s + 0.7 * (0.25 * l1 + 2.0 * l2)).item(), rel=1e-6)
    logged = trainer._metrics["train"]
    assert logged["lail_loss_layer_1"] == [pytest.approx(l1.item())]
    assert logged["lail_alpha"] == [0.7]


def test_alpha_zero_trains_exactly_like_the_baseline(tmp_path, tiny_processor, llm_tokenizer):
    # SGD: Adam would amplify float noise in gradients that are zero in exact arithmetic (attention key biases).
    sgd = {"optim": "sgd", "learning_rate": 0.5}
    lail, lail_model, _ = lail_trainer(tmp_path / "lail", tiny_processor, llm_tokenizer,
                                       lail_overrides={"lail_alpha": 0.0}, args_overrides=sgd)
    lail.train()
    base_model = make_tiny_model(tiny_processor, seed=0, dropout=0.0)
    base = LineRecognitionTrainer(model=base_model, args=training_args(tmp_path / "base", **sgd),
                                  train_dataset=dataset(), data_collator=LineCollator(tiny_processor, 32))
    base.train()
    lail_losses = [e["loss"] for e in lail.state.log_history if "loss" in e]
    base_losses = [e["loss"] for e in base.state.log_history if "loss" in e]
    assert lail_losses == pytest.approx(base_losses, rel=1e-6)
    lail_state = lail_model.state_dict()
    for name, value in base_model.state_dict().items():
        torch.testing.assert_close(lail_state[name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_training_freezes_llm_and_moves_connectors_and_tapped_encoder(tmp_path, tiny_processor, llm_tokenizer):
    trainer, model, llm = lail_trainer(tmp_path, tiny_processor, llm_tokenizer, layers=(1,))
    llm_before = {k: v.clone() for k, v in llm.state_dict().items()}
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    optimized = {id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in llm.parameters()}
    assert {id(p) for p in model.lail_connectors.parameters()} <= optimized
    trainer.train()
    for name, value in llm.state_dict().items():
        assert torch.equal(value, llm_before[name]), name
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], model_before[k])}
    assert any(k.startswith("lail_connectors.") for k in changed)
    assert any(k.startswith(layer_prefix(model, 0)) for k in changed)
    assert not any(k.startswith("lail_connectors.") and "llm" in k for k in after)
    assert trainer.state.log_history[0]["lail_loss_layer_1"] > 0


def test_decoder_gets_no_lail_gradient_and_layers_above_tap_none(tiny_processor, llm_tokenizer):
    model, llm, _ = make_lail(tiny_processor, llm_tokenizer, layers=(1,))
    inputs = batch(tiny_processor, llm_tokenizer)
    outputs = model(**inputs)
    outputs.lail_losses.sum().backward()  # the s2s term switched off
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None or not g.any() for n, g in grads.items() if n.startswith("decoder."))
    above, tapped = layer_prefix(model, 1), layer_prefix(model, 0)
    assert all(g is None or not g.any() for n, g in grads.items() if n.startswith(above))
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(tapped) and "weight" in n)
    assert grads["encoder.embeddings.patch_embeddings.projection.weight"].abs().sum() > 0
    assert all(p.grad is None for p in llm.parameters())


def test_connector_only_stage_changes_only_connectors(tmp_path, tiny_processor, llm_tokenizer):
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                     lail_overrides={"lail_connector_only_steps": 3}, args_overrides={"max_steps": 3})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("lail_connectors.") for k in changed)


def test_every_k_steps_skips_the_llm(tmp_path, tiny_processor, llm_tokenizer):
    trainer, _, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer, lail_overrides={"lail_every_k_steps": 2},
                                 args_overrides={"max_steps": 4})
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert ["lail_loss" in e for e in logs] == [True, False, True, False]


def test_llm_is_absent_from_checkpoints_and_export(tmp_path, tiny_processor, llm_tokenizer):
    from trocr_lail.hub.export import export_model

    trainer, model, llm = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                       args_overrides={"save_strategy": "steps", "save_steps": 2, "max_steps": 2})
    trainer.train()
    with safe_open(str(tmp_path / "checkpoint-2" / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert any(k.startswith("lail_connectors.") for k in keys)
    assert all(k.startswith(("encoder.", "decoder.", "lail_connectors.")) for k in keys)
    assert sum(v.numel() for v in model.state_dict().values()) < sum(p.numel() for p in llm.parameters()) * 10
    export = export_model(model, tiny_processor, tmp_path / "export")
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    config = json.loads((export / "config.json").read_text())
    assert config["architectures"] == ["VisionEncoderDecoderModel"] and "lail" not in config


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_processor, llm_tokenizer):
    overrides = {"save_strategy": "steps", "save_steps": 2, "max_steps": 4}
    full, _, _ = lail_trainer(tmp_path / "full", tiny_processor, llm_tokenizer, args_overrides=overrides)
    full.train()
    resumed, _, _ = lail_trainer(tmp_path / "resumed", tiny_processor, llm_tokenizer, seed=5,  # other init
                                 args_overrides={**overrides, "output_dir": str(tmp_path / "resumed")})
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))

    def losses(trainer):
        return {e["step"]: (e["loss"], e["lail_loss"]) for e in trainer.state.log_history if "loss" in e}

    assert losses(resumed)[3] == pytest.approx(losses(full)[3], rel=1e-5)
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], rel=1e-5)


def test_resume_without_connectors_is_an_error(tmp_path, tiny_processor, llm_tokenizer):
    base = LineRecognitionTrainer(model=make_tiny_model(tiny_processor, dropout=0.0),
                                  args=training_args(tmp_path / "base", save_strategy="steps", save_steps=1,
                                                     max_steps=1),
                                  train_dataset=dataset(), data_collator=LineCollator(tiny_processor, 32))
    base.train()
    trainer, _, _ = lail_trainer(tmp_path / "lail", tiny_processor, llm_tokenizer, args_overrides={"max_steps": 2})
    with pytest.raises(RuntimeError, match=r"lacks \d+ weights .*lail_connectors"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "base" / "checkpoint-1"))


def test_evaluation_logs_the_lail_loss(tmp_path, tiny_processor, llm_tokenizer):
    from trocr_lail.evaluation.metrics import build_compute_metrics

    trainer, _, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                 args_overrides={"generation_max_length": 8, "per_device_eval_batch_size": 4})
    trainer.compute_metrics = build_compute_metrics(tiny_processor.tokenizer)
    metrics = trainer.evaluate(eval_dataset=dataset())
    assert metrics["eval_lail_loss"] > 0 and "eval_lail_loss_layer_2" in metrics
    assert "eval_cer" in metrics  # generation still ran: the LLM inputs were kept away from generate()


def test_max_lines_scores_only_the_first_rows(tmp_path, tiny_processor, llm_tokenizer):
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer, lail_overrides={"lail_max_lines": 2})
    inputs = batch(tiny_processor, llm_tokenizer)
    model.train()
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    first_two = {key: value[:2] for key, value in inputs.items()}
    alone = model(**first_two).lail_losses
    everyone = model(**inputs).lail_losses
    torch.testing.assert_close(outputs.lail_losses, alone)
    assert not torch.allclose(outputs.lail_losses, everyone)
    assert outputs.logits.shape[0] == 4  # the s2s loss still sees the whole batch
