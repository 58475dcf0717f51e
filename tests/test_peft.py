"""LoRA / DoRA with LAIL: what trains, what is saved, and that the merged export reads like the adapted model."""

import pytest
import torch
from safetensors import safe_open
from transformers import VisionEncoderDecoderModel

from trocr_lail.data.collator import LailCollator
from trocr_lail.hub.export import export_model
from trocr_lail.lail.trainer import LailTrainer
from trocr_lail.models.adapters import PeftArguments, apply_peft, target_modules

from test_lail import batch, dataset, llm_tokenizer, make_lail, training_args  # noqa: F401 (fixture)


def peft_lail_trainer(tmp_path, processor, tokenizer, adapter_seed=None, args_overrides=None, **peft_kwargs):
    model, llm, lail_args = make_lail(processor, tokenizer)
    if adapter_seed is not None:
        torch.manual_seed(adapter_seed)  # other adapter and connector-copy init: only the checkpoint can agree
    model = apply_peft(model, PeftArguments(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, **peft_kwargs))
    trainer = LailTrainer(model=model, args=training_args(tmp_path, **(args_overrides or {})),
                          train_dataset=dataset(), lail_args=lail_args,
                          data_collator=LailCollator(processor, 32, llm_tokenizer=tokenizer))
    return trainer, model, llm


def is_adapter_or_connector(name: str) -> bool:
    return any(part in name for part in ("lora_", "modules_to_save."))


@pytest.mark.parametrize("parts", [["encoder"], ["decoder"], ["encoder", "decoder"]])
def test_targets_stay_inside_the_chosen_parts(tiny_processor, llm_tokenizer, parts):
    model, _, _ = make_lail(tiny_processor, llm_tokenizer)
    names = target_modules(model, PeftArguments(lora_parts=parts))
    assert {name.split(".")[0] for name in names} == set(parts)
    assert not any(name.endswith(("pooler.dense", "output_projection")) for name in names)
    only_q = target_modules(model, PeftArguments(lora_parts=parts, lora_target_modules=["q_proj"]))
    assert only_q and all(name.endswith(".q_proj") for name in only_q)
    with pytest.raises(ValueError, match="lora_parts"):
        PeftArguments(lora_parts=["encoder", "lm_head"])


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_only_adapters_and_connectors_train(tmp_path, tiny_processor, llm_tokenizer, use_dora):
    trainer, model, llm = peft_lail_trainer(tmp_path, tiny_processor, llm_tokenizer, use_dora=use_dora)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter_or_connector(n) for n in trainable)
    assert any("lail_connectors.0.modules_to_save" in n for n in trainable)
    assert any("lora_magnitude_vector" in n for n in trainable) == use_dora
    optimized = {id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in llm.parameters()}

    before = {k: v.clone() for k, v in model.state_dict().items()}
    llm_before = {k: v.clone() for k, v in llm.state_dict().items()}
    trainer.train()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(is_adapter_or_connector(k) for k in changed)
    assert any("lora_B" in k for k in changed) and any("modules_to_save" in k for k in changed)
    assert all(torch.equal(v, llm_before[k]) for k, v in llm.state_dict().items())


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_merged_export_reads_like_the_adapted_model(tmp_path, tiny_processor, llm_tokenizer, use_dora):
    trainer, model, _ = peft_lail_trainer(tmp_path, tiny_processor, llm_tokenizer, use_dora=use_dora,
                                          args_overrides={"max_steps": 4})
    trainer.train()
    model.eval()
    inputs = batch(tiny_processor, llm_tokenizer)
    with torch.no_grad():
        adapted = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"]).logits
        adapted_ids = model.generate(pixel_values=inputs["pixel_values"], max_length=12)
        base = model.get_base_model()
        with model.disable_adapter():
            unadapted = base(pixel_values=inputs["pixel_values"], labels=inputs["labels"]).logits
    assert not torch.allclose(adapted, unadapted, atol=1e-4)  # the adapters matter, so the comparison bites

    export = export_model(model, tiny_processor, tmp_path / "export")
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) and "lora" not in k and "base_layer" not in k
                   for k in weights.keys())
    plain = VisionEncoderDecoderModel.from_pretrained(export).eval()
    with torch.no_grad():
        exported = plain(pixel_values=inputs["pixel_values"], labels=inputs["labels"]).logits
        exported_ids = plain.generate(pixel_values=inputs["pixel_values"], max_length=12)
    torch.testing.assert_close(exported, adapted, rtol=1e-4, atol=1e-5)
    assert torch.equal(exported_ids, adapted_ids)


def test_checkpoints_hold_adapters_and_connectors_and_resume_exactly(tmp_path, tiny_processor, llm_tokenizer):
    overrides = {"save_strategy": "steps", "save_steps": 2, "max_steps": 4}
    full, _, _ = peft_lail_trainer(tmp_path / "full", tiny_processor, llm_tokenizer, args_overrides=overrides)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-2"
    with safe_open(str(checkpoint / "adapter_model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(is_adapter_or_connector(k) or "lail_connectors" in k for k in keys)
    assert any("lail_connectors" in k for k in keys)
    assert not (checkpoint / "model.safetensors").exists()

    resumed, _, _ = peft_lail_trainer(tmp_path / "resumed", tiny_processor, llm_tokenizer, adapter_seed=5,
                                      args_overrides={**overrides, "output_dir": str(tmp_path / "resumed")})
    resumed.train(resume_from_checkpoint=str(checkpoint))

    def losses(trainer):
        return {e["step"]: (e["loss"], e["lail_loss"]) for e in trainer.state.log_history if "loss" in e}

    assert losses(resumed)[3] == pytest.approx(losses(full)[3], rel=1e-5)
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], rel=1e-5)
