"""config:trocr-small|base|large: the published TrOCR architectures built from config (random weights, local
tokenizers with the real special-token layout), and real-shape training with and without LAIL on CPU."""

import math

import pytest
import torch
from safetensors.torch import load_file

from recipe_smoke import write_line_folder
from trocr_lail.lail.connectors import build_connector
from trocr_lail.models.loading import set_special_tokens
from trocr_lail.models.shapes import build_config, build_model, build_processor

# The published config.json values of microsoft/trocr-*-stage1 (encoder, decoder).
PUBLISHED = {
    "small": ({"model_type": "deit", "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
               "intermediate_size": 1536, "qkv_bias": True},
              {"vocab_size": 64044, "d_model": 256, "decoder_layers": 6, "decoder_attention_heads": 8,
               "decoder_ffn_dim": 1024, "cross_attention_hidden_size": 384, "max_position_embeddings": 512,
               "use_learned_position_embeddings": True, "scale_embedding": True, "layernorm_embedding": True,
               "activation_function": "relu"}),
    "base": ({"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "qkv_bias": False},
             {"vocab_size": 50265, "d_model": 1024, "decoder_layers": 12, "decoder_attention_heads": 16,
              "decoder_ffn_dim": 4096, "cross_attention_hidden_size": 768, "max_position_embeddings": 1024,
              "use_learned_position_embeddings": False, "scale_embedding": True, "layernorm_embedding": False,
              "activation_function": "relu"}),
    "large": ({"model_type": "vit", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
               "intermediate_size": 4096, "qkv_bias": False},
              {"vocab_size": 50265, "d_model": 1024, "decoder_layers": 12, "decoder_attention_heads": 16,
               "decoder_ffn_dim": 4096, "cross_attention_hidden_size": 1024, "max_position_embeddings": 1024,
               "use_learned_position_embeddings": False, "scale_embedding": True, "layernorm_embedding": False,
               "activation_function": "relu"}),
}


@pytest.mark.parametrize("size", PUBLISHED)
def test_config_matches_the_published_architecture(size):
    config = build_config(f"config:trocr-{size}")
    encoder, decoder = PUBLISHED[size]
    assert {k: getattr(config.encoder, k) for k in encoder} == encoder
    assert {k: getattr(config.decoder, k) for k in decoder} == decoder
    assert (config.encoder.image_size, config.encoder.patch_size, config.encoder.num_channels) == (384, 16, 3)
    ids = (config.decoder.bos_token_id, config.decoder.pad_token_id, config.decoder.eos_token_id)
    assert ids == (0, 1, 2) and config.decoder_start_token_id == 2 and config.decoder.decoder_start_token_id == 2


@pytest.mark.parametrize("size,kind", [("small", "Metaspace"), ("base", "ByteLevel")])
def test_processor_has_the_real_special_token_layout(size, kind):
    processor = build_processor(f"config:trocr-{size}")
    tok = processor.tokenizer
    assert [tok.convert_ids_to_tokens(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1  # last, as in RoBERTa and unilm
    assert kind in tok.backend_tokenizer.to_str()[:20000]  # sentencepiece-style vs byte-level pre-tokenizer
    text = "A MOVE to stop Mr. Gaitskell from nominating"
    ids = tok(text).input_ids
    assert ids[0] == 0 and ids[-1] == 2 and tok.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text) / 2  # subwords, not characters
    size_ = processor.image_processor.size
    assert (size_["height"], size_["width"]) == (384, 384) and list(processor.image_processor.image_mean) == [0.5] * 3


@pytest.mark.parametrize("size,states,width", [("small", 578, 384), ("base", 577, 768)])
def test_encoder_gives_patch_states_of_the_published_length(size, states, width):
    torch.manual_seed(0)
    model = build_model(f"config:trocr-{size}").eval()
    with torch.no_grad():
        out = model.encoder(pixel_values=torch.randn(1, 3, 384, 384), output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, states, width)  # 24x24 patches + [CLS] (+ DeiT's distillation token)
    assert len(out.hidden_states) == model.config.encoder.num_hidden_layers + 1


def test_decoder_start_follows_fairseq_when_the_checkpoint_does_not_set_it():
    model = build_model("config:trocr-small")
    tokenizer = build_processor("config:trocr-small").tokenizer
    model.config.decoder_start_token_id = None
    model.generation_config.decoder_start_token_id = None
    set_special_tokens(model, tokenizer)
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id == 2  # not BOS (0)
    assert model.generation_config.decoder_start_token_id == 2
    model.config.decoder_start_token_id = 0  # a checkpoint's own choice wins
    set_special_tokens(model, tokenizer)
    assert model.config.decoder_start_token_id == 0


@pytest.mark.parametrize("kind,expected", [("linear", 577), ("downsample", math.ceil(577 / 16)), ("qformer", 32)])
def test_prefix_length_of_each_connector_on_577_patch_states(kind, expected):
    connector = build_connector(kind, 1024, 2048, num_blocks=4, num_queries=32, num_heads=4)
    assert connector(torch.randn(2, 577, 1024)).shape == (2, expected, 2048)


def _capture_trainer(monkeypatch):
    import trocr_lail.run as run

    captured = {}

    def build(model, *args, **kwargs):
        captured["initial"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        captured["trainer"] = run_build(model, *args, **kwargs)
        return captured["trainer"]

    run_build = run.build_trainer
    monkeypatch.setattr(run, "build_trainer", build)
    return captured


@pytest.mark.slow
@pytest.mark.parametrize("connector", [None, "linear", "downsample", "qformer"])
def test_trocr_small_trains_with_and_without_lail(connector, tmp_path, monkeypatch):
    from trocr_lail.lail.smollm2 import smollm2_dir
    from trocr_lail.run import main

    data = write_line_folder(tmp_path / "data", {"train": 4})
    args = ["--model_name_or_path", "config:trocr-small", "--data_dir", str(data), "--validation_split", "null",
            "--test_split", "null", "--max_steps", "2", "--per_device_train_batch_size", "2", "--use_cpu", "true",
            "--report_to", "none", "--logging_steps", "1", "--dataloader_num_workers", "0", "--augment", "da2",
            "--output_dir", str(tmp_path / "out"), "--export", "false"]
    if connector:
        args += ["--lail", "true", "--lail_llm", "smollm2", "--lail_layers", "6", "12", "--lail_connector",
                 connector, "--lail_downsample_blocks", "4"]
    captured = _capture_trainer(monkeypatch)
    main(args)
    trainer = captured["trainer"]
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert trainer.state.global_step == 2 and len(logs) == 2 and all(math.isfinite(e["loss"]) for e in logs)
    after = trainer.model.state_dict()
    assert not torch.equal(after["encoder.embeddings.patch_embeddings.projection.weight"],
                           captured["initial"]["encoder.embeddings.patch_embeddings.projection.weight"])
    if connector:
        assert all(math.isfinite(e["lail_loss_layer_6"]) and math.isfinite(e["lail_loss_layer_12"]) for e in logs)
        connectors = [k for k in after if k.startswith("lail_connectors.")]
        assert connectors and all(not torch.equal(after[k], captured["initial"][k]) for k in connectors
                                  if after[k].dtype.is_floating_point)
        saved = load_file(smollm2_dir() / "model.safetensors")
        llm = trainer.model.llm.state_dict()
        assert all(torch.equal(llm[k], v) for k, v in saved.items() if k in llm)  # the frozen LLM never moved


@pytest.mark.parametrize("size,last", [("small", 12), ("base", 12), ("large", 24)])
def test_tap_indices_of_12_and_24_layer_encoders(size, last):
    from trocr_lail.lail.config import normalise_layers

    layers = build_config(f"config:trocr-{size}").encoder.num_hidden_layers
    assert layers == last
    assert normalise_layers([0, last // 2, last, -1, -(last + 1)], layers) == [0, last // 2, last, last, 0]
    for bad in (last + 1, -(last + 2)):
        with pytest.raises(ValueError, match=rf"lail_layers: {bad} is out of range for a {last}-layer encoder"):
            normalise_layers([bad], layers)


def test_tap_24_of_trocr_large_is_its_last_layer_output():
    """hidden_states[L] is the last layer's output (before ViT's final layernorm), the tap LAIL reads."""
    from transformers import ViTModel

    config = build_config("config:trocr-large").encoder
    config.num_hidden_layers, config.image_size = 24, 32  # 24 layers at a small input: cheap, same indexing
    config.hidden_size, config.intermediate_size, config.num_attention_heads = 32, 64, 2
    encoder = ViTModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, 32, 32), output_hidden_states=True)
    assert len(out.hidden_states) == 25
    torch.testing.assert_close(encoder.layernorm(out.hidden_states[24]), out.last_hidden_state)
