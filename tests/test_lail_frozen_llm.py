"""After real LAIL training steps, the frozen LLM has no weight gradients and no optimizer state: the memory LAIL
adds is the LLM's weights and activations only (benchmarks/memory.py measures the rest)."""

import torch

from test_lail import lail_trainer, llm_tokenizer  # noqa: F401  (fixture)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def test_llm_has_no_gradients_and_no_optimizer_state_after_training(tmp_path, tiny_processor, llm_tokenizer):
    trainer, model, llm = lail_trainer(tmp_path, tiny_processor, llm_tokenizer, args_overrides={"max_steps": 2})
    trainer.train()
    assert trainer.state.global_step == 2 and trainer.state.log_history[0]["lail_loss"] > 0
    assert all(p.grad is None and not p.requires_grad for p in llm.parameters())
    state = trainer.optimizer.state
    llm_ids = {id(p) for p in llm.parameters()}
    model_ids = {id(p) for p in model.parameters()}
    assert state and {id(p) for p in state} <= model_ids and not {id(p) for p in state} & llm_ids
    # AdamW keeps exactly two moments per optimised model parameter, and nothing else of any size.
    moments = [v for s in state.values() for k, v in s.items() if k in ("exp_avg", "exp_avg_sq")]
    assert tensor_bytes(moments) == 2 * tensor_bytes(state)
    assert tensor_bytes(v for s in state.values() for k, v in s.items() if k not in ("exp_avg", "exp_avg_sq")) \
        <= 8 * len(state)  # the scalar step counters


def test_lail_losses_match_a_full_logits_reference(tiny_processor, llm_tokenizer):
    """The scored-positions-only LLM call gives the loss of the plain full-sequence computation."""
    from test_lail import batch, make_lail

    model, llm, _ = make_lail(tiny_processor, llm_tokenizer, layers=(1, 2))
    inputs = batch(tiny_processor, llm_tokenizer)
    hidden = model.encode_for_lail(inputs["pixel_values"])
    losses = model.lail_losses(hidden, inputs["llm_input_ids"], inputs["llm_attention_mask"], inputs["llm_labels"])
    text = llm.get_input_embeddings()(inputs["llm_input_ids"])
    for tap, (connector, layer) in enumerate(zip(model.lail_connectors, model.lail_layers)):
        prefix = connector(hidden[layer])
        mask = torch.cat([torch.ones(prefix.shape[:2], dtype=torch.long), inputs["llm_attention_mask"]], dim=1)
        logits = llm(inputs_embeds=torch.cat([prefix, text], dim=1), attention_mask=mask).logits
        labels = torch.cat([torch.full(prefix.shape[:2], -100), inputs["llm_labels"]], dim=1)
        reference = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                                                      ignore_index=-100)
        torch.testing.assert_close(losses[tap], reference, rtol=1e-5, atol=1e-6)
