"""A TrOCR-shaped model small enough to train on a laptop CPU, built from configs with no download.

Same architecture family as ``microsoft/trocr-*``: a ViT encoder and a TrOCR decoder inside a
``VisionEncoderDecoderModel``. The differences are scale and input: a character-level tokenizer (a few
thousand synthetic lines cannot train a 50k-token BPE vocabulary) and a wide line-shaped input instead of a
384x384 square, which keeps the patch count small.
"""

from __future__ import annotations

import math
import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PreTrainedTokenizerFast,
    TrOCRConfig,
    TrOCRProcessor,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
)

from .compat import vit_image_processor_class

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")  # RoBERTa's order, so ids match TrOCR's conventions
CHARSET = string.printable[:95]  # digits, letters, punctuation, space


def build_char_tokenizer(charset: str = CHARSET) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in charset:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    backend.decoder = decoders.Fuse()  # join characters back without inserting spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")


def build_tiny_processor(image_height: int = 32, image_width: int = 384) -> TrOCRProcessor:
    image_processor = vit_image_processor_class()(
        size={"height": image_height, "width": image_width}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        do_resize=True, do_rescale=True, do_normalize=True, resample=2,  # bilinear
    )
    return TrOCRProcessor(image_processor=image_processor, tokenizer=build_char_tokenizer())


def build_tiny_model(processor: TrOCRProcessor, encoder_layers: int = 4, encoder_dim: int = 128,
                     decoder_layers: int = 2, decoder_dim: int = 128, patch_size: tuple[int, int] = (8, 8),
                     max_length: int = 64, dropout: float = 0.1) -> VisionEncoderDecoderModel:
    size = processor.image_processor.size
    tokenizer = processor.tokenizer
    encoder = ViTConfig(
        image_size=[size["height"], size["width"]], patch_size=list(patch_size), hidden_size=encoder_dim,
        num_hidden_layers=encoder_layers, num_attention_heads=max(1, encoder_dim // 32),
        intermediate_size=4 * encoder_dim, qkv_bias=True, hidden_dropout_prob=dropout,
    )
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer), d_model=decoder_dim, decoder_layers=decoder_layers,
        decoder_attention_heads=max(1, decoder_dim // 32), decoder_ffn_dim=4 * decoder_dim,
        max_position_embeddings=max(max_length + 2, 66), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id, use_learned_position_embeddings=True,
        layernorm_embedding=True, scale_embedding=False, tie_word_embeddings=False, dropout=dropout,
        init_std=decoder_dim**-0.5,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    model = VisionEncoderDecoderModel(config=config)
    _sinusoidal_init(model.encoder.embeddings.position_embeddings, encoder)
    return model


@torch.no_grad()
def _sinusoidal_init(position_embeddings: torch.nn.Parameter, config: ViTConfig) -> None:
    """Start ViT's learned position embeddings at 2-D sine/cosine values (as MAE does) instead of noise.

    From random positions a from-scratch decoder first learns a language model and only thousands of steps later
    where to look; with a positional prior it reads after a few hundred steps. The embeddings stay trainable.
    """
    rows = config.image_size[0] // config.patch_size[0]
    cols = config.image_size[1] // config.patch_size[1]
    dim = config.hidden_size
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(0, half, 2).float() / half)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None].float() * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    grid_r, grid_c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    table = torch.cat([encode(grid_r.flatten()), encode(grid_c.flatten())], dim=1)  # (rows*cols, dim)
    position_embeddings[0, 1:, : table.shape[1]] = table
    position_embeddings[0, 0] = 0  # the [CLS] slot has no position
