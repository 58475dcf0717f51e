"""LAIL diagnostics: unconditional loss, prefix information (and its mismatched-prefix control), gradient ratio.

Fast tests use the tiny random Llama of test_lail; the two that need a real language model (an oracle prefix can
only help an LLM that reads, and a random init can only perturb one that does) use SmolLM2 and are marked slow.
"""

import pytest
import torch

from trocr_lail.lail.diagnostic_plots import plot_lail_diagnostics

from test_lail import batch, lail_trainer, llm_tokenizer, make_lail  # noqa: F401 (a fixture)

LLM_KEYS = ("llm_input_ids", "llm_attention_mask", "llm_labels")


def llm_part(inputs):
    return {key: inputs[key] for key in LLM_KEYS}


def test_unconditional_loss_is_the_llms_own_loss_after_bos(tiny_processor, llm_tokenizer):
    model, llm, _ = make_lail(tiny_processor, llm_tokenizer)
    inputs = llm_part(batch(tiny_processor, llm_tokenizer))
    rows = inputs["llm_input_ids"].shape[0]
    bos = torch.full((rows, 1), llm.config.bos_token_id)
    reference = llm(input_ids=torch.cat([bos, inputs["llm_input_ids"]], 1),
                    attention_mask=torch.cat([torch.ones_like(bos), inputs["llm_attention_mask"]], 1),
                    labels=torch.cat([torch.full_like(bos, -100), inputs["llm_labels"]], 1)).loss
    torch.testing.assert_close(model.unconditional_loss(**inputs), reference)


def test_prefix_information_is_logged_as_uncond_minus_prefixed(tmp_path, tiny_processor, llm_tokenizer):
    trainer, _, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer, args_overrides={"max_steps": 2})
    trainer.train()
    for entry in [e for e in trainer.state.log_history if "loss" in e]:
        for layer in (1, 2):
            assert entry[f"lail_prefix_info_layer_{layer}"] == pytest.approx(
                entry["lail_uncond_loss"] - entry[f"lail_loss_layer_{layer}"], abs=1e-5)
            assert f"lail_grad_ratio_layer_{layer}" in entry  # logging_steps=1: every step starts an interval
            assert f"lail_prefix_info_mismatched_layer_{layer}" in entry


def test_evaluation_logs_prefix_information(tmp_path, tiny_processor, llm_tokenizer):
    from test_lail import dataset
    from trocr_lail.evaluation.metrics import build_compute_metrics

    trainer, _, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                 args_overrides={"generation_max_length": 8, "per_device_eval_batch_size": 4})
    trainer.compute_metrics = build_compute_metrics(tiny_processor.tokenizer)
    metrics = trainer.evaluate(eval_dataset=dataset())
    assert metrics["eval_lail_prefix_info_layer_2"] == pytest.approx(
        metrics["eval_lail_uncond_loss"] - metrics["eval_lail_loss_layer_2"], abs=1e-5)
    assert "eval_lail_prefix_info_mismatched_layer_1" in metrics
    assert not any("grad_ratio" in key for key in metrics)  # no gradients in evaluation


def gradient_ratios(tmp_path, processor, tokenizer, alpha):
    trainer, model, _ = lail_trainer(tmp_path, processor, tokenizer, lail_overrides={"lail_alpha": alpha})
    model.train()
    trainer.compute_loss(model, batch(processor, tokenizer))
    return {layer: trainer._metrics["train"][f"lail_grad_ratio_layer_{layer}"] for layer in (1, 2)}


def test_gradient_ratio_is_zero_with_alpha_zero_and_linear_in_alpha(tmp_path, tiny_processor, llm_tokenizer):
    assert gradient_ratios(tmp_path, tiny_processor, llm_tokenizer, 0.0) == {1: [0.0], 2: [0.0]}
    half = gradient_ratios(tmp_path, tiny_processor, llm_tokenizer, 0.5)
    one = gradient_ratios(tmp_path, tiny_processor, llm_tokenizer, 1.0)
    for layer in (1, 2):
        assert 0 < half[layer][0] < float("inf")
        assert one[layer][0] == pytest.approx(2 * half[layer][0], rel=1e-4)


def test_gradient_ratio_is_recorded_once_per_logging_interval(tmp_path, tiny_processor, llm_tokenizer):
    trainer, _, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                 args_overrides={"max_steps": 4, "logging_steps": 2})
    calls = []
    original = trainer._record_gradient_ratios
    trainer._record_gradient_ratios = lambda *a: (calls.append(trainer.state.global_step), original(*a))
    trainer.train()
    assert calls == [0, 2]


def test_diagnostics_plot(tmp_path):
    history = [{"step": s, "lail_prefix_info_layer_1": 0.1 * s, "lail_grad_ratio_layer_1": 0.5,
                "eval_lail_prefix_info_layer_1": 0.2, "eval_lail_prefix_info_mismatched_layer_1": 0.0}
               for s in (1, 2, 3)]
    [path] = plot_lail_diagnostics(history, tmp_path)
    assert path.name == "lail_diagnostics.png" and path.stat().st_size > 5000
    assert plot_lail_diagnostics([{"step": 1, "loss": 1.0}], tmp_path / "none") == []


# Prose lines of the quickstart's kind (Botchan-like English), long enough for per-token means to settle.
LINES = ["The headmaster said that the students must not make any more noise.",
         "I went to the school in the morning and found nobody there.",
         "He was a good man, but rather too fond of his own voice.",
         "There was nothing for it but to go home and wait for the letter.",
         "said the Red Shirt, with a thin smile on his pale face.",
         "The room was small and the window looked out over the river.",
         "I could not help laughing at the old woman and her cat.",
         "and so I made up my mind to leave the town the next day."]


@pytest.fixture(scope="module")
def smollm2_batch():
    import numpy as np
    from PIL import Image

    from trocr_lail.data.collator import LailCollator
    from trocr_lail.lail.config import LailArguments
    from trocr_lail.lail.llm import load_frozen_llm
    from trocr_lail.models.tiny import build_tiny_processor

    llm, tokenizer = load_frozen_llm(LailArguments(lail=True, lail_llm="smollm2"))
    processor = build_tiny_processor(image_height=16, image_width=64)
    rng = np.random.default_rng(0)
    rows = [{"image": Image.fromarray(rng.integers(0, 255, (16, 64, 3), dtype=np.uint8)), "text": text}
            for text in LINES]
    return llm, processor, LailCollator(processor, 128, llm_tokenizer=tokenizer)(rows)


def smollm2_lail(llm, processor, connector, seed):
    from conftest import make_tiny_model
    from trocr_lail.lail.config import LailArguments
    from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel

    args = LailArguments(lail=True, lail_layers=[1, 2], lail_connector=connector)
    model = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(processor, seed=seed, dropout=0.0),
                                                     args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("connector", ["linear", "downsample"])
def test_smollm2_fresh_connectors_inform_about_nothing_an_oracle_prefix_a_lot(smollm2_batch, connector):
    """The images are noise, independent of the text, so no connector can carry information about the line:
    the line-specific part (prefix vs another line's prefix) must be ~0. Bound: 0.3 nats/token, 7% of the
    unconditional loss (4.41) and an eighth of the oracle's gain; measured at most 0.21 over these 6 inits
    (8 lines). The raw information of a fresh prefix is not positive beyond that (a random prefix can only
    disturb: measured -0.89 to +0.11) and stays above -1 nat/token. An oracle prefix, the LLM's own embeddings
    of the text, lets it copy: measured 2.32 nats/token; bound 1.5."""
    llm, processor, inputs = smollm2_batch
    text = llm_part(inputs)
    with torch.no_grad():
        for seed in range(3):
            model = smollm2_lail(llm, processor, connector, seed)
            hidden = model.encode_for_lail(inputs["pixel_values"])
            uncond = model.unconditional_loss(**text)
            info = uncond - model.lail_losses(hidden, **text)
            mismatched = uncond - model.mismatched_lail_losses(hidden, **text)
            assert (info - mismatched).abs().max() < 0.3, (seed, info, mismatched)
            assert -1.0 < info.min() and info.max() < 0.3, (seed, info)
        oracle = uncond - model.score_prefixes(llm.get_input_embeddings()(text["llm_input_ids"]), **text)
    assert oracle > 1.5, oracle


def test_another_line_control_is_logged_on_the_same_batch_in_both_modes(tmp_path, tiny_processor, llm_tokenizer):
    """Step 0 is connector-only, step 1 trains everything: both log own and another line's prefix information,
    and the another-line score is the own score's batch with the prefixes rolled by one line."""
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                     lail_overrides={"lail_connector_only_steps": 1, "lail_every_k_steps": 1},
                                     args_overrides={"max_steps": 2})
    calls = []
    original = model.lail_losses

    def spy(hidden_states, llm_input_ids, *rest):
        calls.append(([h.detach().clone() for h in hidden_states], llm_input_ids.clone()))
        return original(hidden_states, llm_input_ids, *rest)

    model.lail_losses = spy
    trainer.train()
    assert len(calls) == 4  # per step: the own prefixes, then the another-line control
    for (own, own_ids), (other, other_ids) in (calls[0:2], calls[2:4]):
        assert torch.equal(own_ids, other_ids)
        rows = own_ids.shape[0]
        for layer in model.lail_layers:
            assert torch.equal(other[layer], own[layer][:rows].roll(1, dims=0))
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 2
    for entry in logged:
        for layer in (1, 2):
            assert f"lail_prefix_info_layer_{layer}" in entry
            assert f"lail_prefix_info_mismatched_layer_{layer}" in entry


def test_the_control_can_be_sampled_every_k_steps(tmp_path, tiny_processor, llm_tokenizer):
    """lail_control_every_k_steps=2 over 3 steps: the another-line control runs on steps 0 and 2 only, and only
    their logged entries carry it; the own-prefix information is logged on every step."""
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, llm_tokenizer,
                                     lail_overrides={"lail_control_every_k_steps": 2},
                                     args_overrides={"max_steps": 3, "logging_steps": 1})
    calls = []
    original = model.mismatched_lail_losses

    def spy(*args, **kwargs):
        calls.append(trainer.state.global_step)
        return original(*args, **kwargs)

    model.mismatched_lail_losses = spy
    trainer.train()
    assert calls == [0, 2]
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert [("lail_prefix_info_mismatched_layer_1" in e) for e in logged] == [True, False, True]
    assert all("lail_prefix_info_layer_1" in e for e in logged)
