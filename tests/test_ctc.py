"""Hybrid CTC/attention: the loss math, the head's shapes, and that the head is training-only (checkpointed and
strictly resumed, never exported), alone and combined with LAIL."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import VisionEncoderDecoderModel, ViTConfig

from trocr_lail.configs import TrainingArguments
from trocr_lail.data.collator import LailCollator, LineCollator
from trocr_lail.hub.export import export_model
from trocr_lail.lail.config import LailArguments
from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel
from trocr_lail.lail.trainer import LailTrainer
from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel, patch_grid
from trocr_lail.models.ctc_decoding import ctc_greedy_decode, ctc_loss_sum, ctc_targets
from trocr_lail.training.trainer import LineRecognitionTrainer, token_cross_entropy

from conftest import make_tiny_model
from test_lail import dataset, make_llm, training_args
from test_loss import line_dataset


def make_ctc_model(processor, seed=0, upsample=1):
    model = CtcVisionEncoderDecoderModel.from_plain(make_tiny_model(processor, seed=seed, dropout=0.0), upsample)
    torch.manual_seed(seed + 100)
    model.ctc_head.reset_parameters()  # the head's init is seeded too, so two builds are identical
    return model


def ctc_trainer(tmp_path, processor, ctc_weight=0.5, seed=0, **overrides):
    model = make_ctc_model(processor, seed=seed)
    trainer = LineRecognitionTrainer(model=model, args=training_args(tmp_path, ctc_weight=ctc_weight, **overrides),
                                     train_dataset=dataset(), data_collator=LineCollator(processor, 32))
    return trainer, model


def collate(processor, rows=4):
    data = dataset()
    return LineCollator(processor, 32)([data[i] for i in range(rows)])


def test_patch_grid_and_ctc_logits_shapes(tiny_processor):
    assert patch_grid(ViTConfig(image_size=[32, 256], patch_size=[32, 4])) == (1, 64)
    assert patch_grid(ViTConfig(image_size=384, patch_size=16)) == (24, 24)
    model = make_ctc_model(tiny_processor, upsample=3)  # 16x64 input, 16x8 patches: one row of 8 columns
    inputs = collate(tiny_processor)
    outputs = model(**inputs)
    assert outputs.ctc_logits.shape == (4, 8 * 3, model.config.decoder.vocab_size)
    # Frame order: column by column, the upsampled frames of one column next to each other.
    hidden = outputs.encoder_last_hidden_state[:, 1:]
    head = model.ctc_head(hidden).view(4, 8, 3, -1)
    torch.testing.assert_close(outputs.ctc_logits.view(4, 8, 3, -1), head)
    assert model.generate(inputs["pixel_values"], max_length=5).shape[0] == 4  # inference ignores the head


def test_ctc_logits_average_the_rows_of_a_2d_patch_grid(tiny_processor):
    model = make_tiny_model(tiny_processor)
    model.config.encoder.patch_size = [8, 8]  # pretend 2 rows x 8 columns; only the head reads this
    ctc = CtcVisionEncoderDecoderModel.from_plain(model)
    hidden = torch.randn(2, 1 + 16, 32)
    expected = ctc.ctc_head(hidden[:, 1:].view(2, 2, 8, 32).mean(dim=1))
    torch.testing.assert_close(ctc.ctc_logits(hidden), expected)


def test_ctc_targets_drop_eos_and_padding():
    labels = torch.tensor([[5, 6, 7, 2], [8, 2, -100, -100]])
    targets, lengths = ctc_targets(labels, eos_token_id=2)
    assert targets.tolist() == [5, 6, 7, 8] and lengths.tolist() == [3, 1]


def test_ctc_loss_sum_is_the_sum_of_per_line_ctc():
    torch.manual_seed(0)
    logits = torch.randn(2, 10, 12)
    labels = torch.tensor([[5, 6, 6, 2], [8, 2, -100, -100]])
    per_line = [F.ctc_loss(logits[i].log_softmax(-1)[:, None], torch.tensor([t]), torch.tensor([10]),
                           torch.tensor([len(t)]), blank=1, reduction="sum")
                for i, t in enumerate([[5, 6, 6], [8]])]
    assert ctc_loss_sum(logits, labels, blank_id=1, eos_token_id=2).item() == pytest.approx(sum(per_line).item(),
                                                                                            rel=1e-6)


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    frames = [1, 5, 5, 1, 5, 6, 6, 1]
    logits = F.one_hot(torch.tensor([frames]), 8).float()
    assert ctc_greedy_decode(logits, blank_id=1) == [[5, 5, 6]]


def test_total_loss_is_s2s_plus_weighted_ctc(tmp_path, tiny_processor):
    trainer, model = ctc_trainer(tmp_path, tiny_processor, ctc_weight=0.3)
    inputs = collate(tiny_processor)
    model.train()
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    labels = inputs["labels"]
    tokens = labels.ne(-100).sum()
    s2s = token_cross_entropy(outputs.logits, labels)
    ctc = ctc_loss_sum(outputs.ctc_logits, labels, model.config.pad_token_id, model.config.eos_token_id) / tokens
    assert ctc > 0
    assert loss.item() == pytest.approx((s2s + 0.3 * ctc).item(), rel=1e-6)
    # With num_items_in_batch (the optimizer step's tokens), both terms share that denominator.
    loss_n = trainer.compute_loss(model, inputs, num_items_in_batch=tokens * 2)
    assert loss_n.item() == pytest.approx((s2s + 0.3 * ctc).item() / 2, rel=1e-6)
    assert trainer._metrics["train"]["ctc_loss"][0].item() == pytest.approx(ctc.item(), rel=1e-6)


def test_ctc_grad_accumulation_equals_big_batch(tmp_path, tiny_processor):
    def one_step(batch_size, accumulation):
        model = make_ctc_model(tiny_processor)
        args = TrainingArguments(
            output_dir=str(tmp_path / f"b{batch_size}"), per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=1.0,
            lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, logging_steps=1, save_strategy="no",
            report_to=[], use_cpu=True, seed=0, data_seed=0, ctc_weight=0.5)
        trainer = LineRecognitionTrainer(model=model, args=args, train_dataset=line_dataset(),
                                         data_collator=LineCollator(tiny_processor, 32))
        trainer.train()
        return trainer.state.log_history[0], dict(model.named_parameters())

    big, params_big = one_step(4, 1)
    acc, params_acc = one_step(2, 2)
    assert acc["loss"] == pytest.approx(big["loss"], rel=1e-5)
    assert big["ctc_loss"] > 0 and "s2s_loss" in big
    for name, value in params_big.items():
        torch.testing.assert_close(params_acc[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_ctc_weight_needs_a_head(tmp_path, tiny_processor):
    with pytest.raises(ValueError, match="CTC head"):
        LineRecognitionTrainer(model=make_tiny_model(tiny_processor), train_dataset=dataset(),
                               args=training_args(tmp_path, ctc_weight=0.5),
                               data_collator=LineCollator(tiny_processor, 32))
    with pytest.raises(ValueError, match="ctc_weight"):
        training_args(tmp_path, ctc_weight=-1.0)


def test_ctc_trains_the_head_and_it_is_checkpointed_but_not_exported(tmp_path, tiny_processor):
    trainer, model = ctc_trainer(tmp_path, tiny_processor, save_strategy="steps", save_steps=2, max_steps=2)
    head_before = model.ctc_head.weight.detach().clone()
    trainer.train()
    assert not torch.equal(model.ctc_head.weight, head_before)
    with safe_open(str(tmp_path / "checkpoint-2" / "model.safetensors"), "pt") as weights:
        assert any(k.startswith("ctc_head.") for k in weights.keys())
    assert json.loads((tmp_path / "checkpoint-2" / "config.json").read_text())["ctc"] == {"upsample": 1}
    export = export_model(model, tiny_processor, tmp_path / "export")
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert keys and all(k.startswith(("encoder.", "decoder.")) for k in keys)
    config = json.loads((export / "config.json").read_text())
    assert config["architectures"] == ["VisionEncoderDecoderModel"] and "ctc" not in config
    plain, info = VisionEncoderDecoderModel.from_pretrained(export, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    pixels = collate(tiny_processor)["pixel_values"]
    model.eval()
    with torch.no_grad():
        assert torch.equal(plain.eval().generate(pixels, max_length=6), model.generate(pixels, max_length=6))


def test_ctc_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_processor):
    overrides = {"save_strategy": "steps", "save_steps": 2, "max_steps": 4}
    full, full_model = ctc_trainer(tmp_path / "full", tiny_processor, **overrides)
    full.train()
    resumed, resumed_model = ctc_trainer(tmp_path / "resumed", tiny_processor, seed=7, **overrides)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))

    def losses(trainer):
        return {e["step"]: (e["loss"], e["ctc_loss"]) for e in trainer.state.log_history if "loss" in e}

    assert losses(resumed)[3] == pytest.approx(losses(full)[3], rel=1e-5)
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], rel=1e-5)
    torch.testing.assert_close(resumed_model.ctc_head.weight, full_model.ctc_head.weight)


def test_resume_without_a_ctc_head_is_an_error(tmp_path, tiny_processor):
    base = LineRecognitionTrainer(model=make_tiny_model(tiny_processor, dropout=0.0),
                                  args=training_args(tmp_path / "base", save_strategy="steps", save_steps=1,
                                                     max_steps=1),
                                  train_dataset=dataset(), data_collator=LineCollator(tiny_processor, 32))
    base.train()
    trainer, _ = ctc_trainer(tmp_path / "ctc", tiny_processor, max_steps=2)
    with pytest.raises(RuntimeError, match=r"lacks \d+ weights .*ctc_head"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "base" / "checkpoint-1"))


def test_lail_and_ctc_combine(tmp_path, tiny_processor):
    from trocr_lail.models.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    ctc_model = make_ctc_model(tiny_processor)
    head = ctc_model.ctc_head
    args = LailArguments(lail=True, lail_layers=[1], lail_alpha=0.7)
    llm = make_llm(tokenizer)
    model = LailVisionEncoderDecoderModel.from_plain(ctc_model, args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm)
    assert model.ctc_head is head  # kept, not re-initialised
    trainer = LailTrainer(model=model, args=training_args(tmp_path, ctc_weight=0.5, save_strategy="steps",
                                                          save_steps=2, max_steps=2),
                          train_dataset=dataset(), lail_args=args,
                          data_collator=LailCollator(tiny_processor, 32, llm_tokenizer=tokenizer))
    inputs = LailCollator(tiny_processor, 32, llm_tokenizer=tokenizer)([dataset()[i] for i in range(4)])
    model.train()
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    labels = inputs["labels"]
    s2s = token_cross_entropy(outputs.logits, labels)
    ctc = ctc_loss_sum(outputs.ctc_logits, labels, model.config.pad_token_id, model.config.eos_token_id)
    expected = s2s + 0.5 * ctc / labels.ne(-100).sum() + 0.7 * outputs.lail_losses.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    trainer._metrics["train"].clear()
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["ctc_loss"] > 0 and logged["lail_loss"] > 0 and logged["s2s_loss"] > 0
    with safe_open(str(tmp_path / "checkpoint-2" / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert any(k.startswith("ctc_head.") for k in keys) and any(k.startswith("lail_connectors.") for k in keys)
    export = export_model(model, tiny_processor, tmp_path / "export")
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    config = json.loads((export / "config.json").read_text())
    assert "ctc" not in config and "lail" not in config


@pytest.mark.slow
def test_recipe_path_with_ctc_and_preprocessed_images_exports_a_plain_model(tmp_path):
    from trocr_lail.run import main

    from conftest import TINY_ARGS

    out = tmp_path / "run"
    main(TINY_ARGS + [
        "--synthetic", "true", "--synthetic_train_samples", "16", "--synthetic_eval_samples", "4",
        "--augment", "false", "--preprocess_images", "true", "--ctc_weight", "0.5", "--ctc_upsample", "2",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--output_dir", str(out), "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--generation_max_length", "8", "--logging_steps", "1",
    ])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert history[0]["ctc_loss"] > 0 and history[0]["s2s_loss"] > 0
    assert json.loads((out / "test_results.json").read_text())["test_cer"] >= 0
    assert json.loads((out / "config.json").read_text())["ctc"] == {"upsample": 2}
    with safe_open(str(out / "model.safetensors"), "pt") as weights:  # the training checkpoint keeps the head
        assert {"ctc_head.weight", "ctc_head.bias"} <= set(weights.keys())
    with safe_open(str(out / "export" / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    assert "ctc" not in json.loads((out / "export" / "config.json").read_text())
