"""The published TrOCR architectures, built from config with random weights: ``model_name_or_path: config:trocr-small``
(or ``-base``, ``-large``). They let every real-size code path (recipes, LAIL taps, memory, speed) run offline.

The shapes are the ``config.json`` values of the checkpoints the IAM recipes start from, ``microsoft/trocr-*-stage1``
(transformers' ``convert_trocr_unilm_to_pytorch.py`` wrote them from the fairseq checkpoints):

- small: DeiT-small encoder (384 wide, 12 layers, 6 heads, qkv bias; its distillation token makes 578 states), a
  6-layer 256-wide decoder over the 64,044-token unilm sentencepiece vocabulary, learned positions, scaled
  embeddings, ``layernorm_embedding``, ReLU.
- base / large: ViT (BEiT-initialised) encoder without qkv bias, 768 x 12 layers / 1024 x 24 layers (577 states: 576
  patches + [CLS]); a 12-layer 1024-wide decoder over RoBERTa's 50,265-token byte-level BPE vocabulary. The stage-1
  decoders use fairseq's sinusoidal positions (1,024), scaled embeddings, no ``layernorm_embedding``, ReLU.

All take 384x384 RGB in 16x16 patches and share fairseq's special tokens: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
``<unk>`` 3, and start decoding from ``</s>`` (decoder_start_token_id 2).

The real vocabularies cannot be downloaded here, so the processor's tokenizer is trained locally on the bundled corpus
with the same algorithm and special-token layout (unigram/sentencepiece-style for small, byte-level BPE for
base/large); its vocabulary is smaller than the decoder's, as with any tokenizer that leaves embedding rows unused.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    DeiTConfig,
    PreTrainedTokenizerFast,
    TrOCRConfig,
    TrOCRProcessor,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
)

from .compat import vit_image_processor_class
from .ctc_families import CTC_SHAPES
from .tiny import SPECIAL_TOKENS  # fairseq's dictionary order: ids 0..3, as the real checkpoints

PREFIX = "config:"
IMAGE_SIZE, PATCH_SIZE = 384, 16

_ENCODER = dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, num_channels=3, hidden_act="gelu",
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12, initializer_range=0.02)
_DECODER = dict(decoder_layers=12, d_model=1024, decoder_attention_heads=16, decoder_ffn_dim=4096,
                activation_function="relu", dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, init_std=0.02,
                decoder_layerdrop=0.0, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                tie_word_embeddings=False)
# The stage-1 base/large decoders: RoBERTa's vocabulary, fairseq's sinusoidal positions, no layernorm_embedding.
_STAGE1_DECODER = dict(vocab_size=50265, max_position_embeddings=1024, use_learned_position_embeddings=False,
                       scale_embedding=True, layernorm_embedding=False)
SHAPES = {
    "trocr-small": {
        "encoder": (DeiTConfig, dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                     intermediate_size=1536, qkv_bias=True)),
        "decoder": dict(vocab_size=64044, d_model=256, decoder_layers=6, decoder_attention_heads=8,
                        decoder_ffn_dim=1024, cross_attention_hidden_size=384, max_position_embeddings=512,
                        use_learned_position_embeddings=True, scale_embedding=True, layernorm_embedding=True),
        "tokenizer": "unigram",
    },
    "trocr-base": {
        "encoder": (ViTConfig, dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    intermediate_size=3072, qkv_bias=False)),
        "decoder": dict(_STAGE1_DECODER, cross_attention_hidden_size=768),
        "tokenizer": "bpe",
    },
    "trocr-large": {
        "encoder": (ViTConfig, dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                    intermediate_size=4096, qkv_bias=False)),
        "decoder": dict(_STAGE1_DECODER, cross_attention_hidden_size=1024),
        "tokenizer": "bpe",
    },
}


def is_config_name(name: str | None) -> bool:
    return bool(name) and name.startswith(PREFIX)


def shape_of(name: str) -> dict:
    shape = name[len(PREFIX):] if is_config_name(name) else name
    if shape not in SHAPES and shape in CTC_SHAPES:
        raise ValueError(f"model_name_or_path: {name!r} is a CTC recognizer, not a TrOCR (VisionEncoderDecoder) "
                         "shape; build it with trocr_lail.models.ctc_families.build_ctc_model")
    if shape not in SHAPES:
        raise ValueError(f"model_name_or_path: unknown shape '{name}'; choose one of "
                         f"{', '.join(PREFIX + s for s in SHAPES)}")
    return SHAPES[shape]


def build_config(name: str) -> VisionEncoderDecoderConfig:
    shape = shape_of(name)
    encoder_class, encoder_values = shape["encoder"]
    encoder = encoder_class(**_ENCODER, **encoder_values)
    decoder = TrOCRConfig(**{**_DECODER, **shape["decoder"]})
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 2, 1, 2
    return config


def build_model(name: str) -> VisionEncoderDecoderModel:
    """Random weights, initialised by transformers' own ``_init_weights`` (std 0.02, as the configs say)."""
    return VisionEncoderDecoderModel(config=build_config(name))


def build_processor(name: str) -> TrOCRProcessor:
    """384x384 input normalised to [-1, 1] (the published ``preprocessor_config.json``: mean/std 0.5, bilinear)."""
    image_processor = vit_image_processor_class()(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        do_resize=True, do_rescale=True, do_normalize=True, resample=2,
    )
    return TrOCRProcessor(image_processor=image_processor, tokenizer=build_tokenizer(shape_of(name)["tokenizer"]))


def build_tokenizer(kind: str, vocab_size: int = 4000) -> PreTrainedTokenizerFast:
    """A fresh tokenizer object (callers may modify it) around a cached trained backend."""
    backend = Tokenizer.from_str(_trained_backend(kind, vocab_size))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")


@lru_cache(maxsize=4)
def _trained_backend(kind: str, vocab_size: int) -> str:
    from ..data.corpus import corpus_path

    special = list(SPECIAL_TOKENS)
    if kind == "bpe":  # RoBERTa / GPT-2: byte-level BPE, no prefix space
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "unigram":  # unilm / XLM-R: sentencepiece unigram with the "▁" word-boundary marker
        backend = Tokenizer(models.Unigram())
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special, unk_token="<unk>",
                                          show_progress=False)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    backend.train([str(corpus_path())], trainer)
    backend.add_special_tokens(["<mask>"])  # last id, as in RoBERTa and unilm
    # Both TrOCR tokenizers wrap text as <s> ... </s> (the model itself never sees <s>: labels are text + </s>).
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                           special_tokens=[("<s>", 0), ("</s>", 2)])
    return backend.to_str()
