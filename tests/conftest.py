import os

# Tests never touch a hub: everything they load is built here or shipped in installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

from trocr_lail.loading import set_special_tokens  # noqa: E402
from trocr_lail.tiny import build_tiny_model, build_tiny_processor  # noqa: E402

TINY_ARGS = ["--model_name_or_path", "tiny", "--tiny_encoder_layers", "2", "--tiny_encoder_dim", "32",
             "--tiny_decoder_layers", "1", "--tiny_decoder_dim", "32", "--tiny_image_height", "16",
             "--tiny_image_width", "64", "--tiny_patch_size", "16", "8"]


@pytest.fixture
def tiny_processor():
    return build_tiny_processor(image_height=16, image_width=64)


def make_tiny_model(processor, seed: int = 0, dropout: float = 0.1):
    torch.manual_seed(seed)
    model = build_tiny_model(processor, encoder_layers=2, encoder_dim=32, decoder_layers=1, decoder_dim=32,
                             patch_size=(16, 8), dropout=dropout)
    set_special_tokens(model, processor.tokenizer)
    return model


@pytest.fixture
def tiny_model(tiny_processor):
    return make_tiny_model(tiny_processor)
