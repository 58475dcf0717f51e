"""Connectors: map one tapped encoder layer's hidden states into the frozen LLM's embedding space.

All take ``(batch, seq, encoder_dim)`` and return ``(batch, prefix_len, llm_dim)``:

- ``linear``     prefix_len = seq. One projection per tap, as in the LAIL authors' code.
- ``downsample`` prefix_len = ceil(seq / 2**num_blocks). Strided 1-D conv blocks shorten the patch sequence toward
                 language-token rate (the LAIL paper), then a projection to the LLM width.
- ``qformer``    prefix_len = num_queries. Learnable queries cross-attend to the tap's states (BLIP-2 style),
                 then a projection.

``activation`` is the non-linearity between the downsample blocks and inside the qformer's MLP; ``none`` makes
the downsample connector a purely linear map. The linear connector has no activation at all, whatever is set.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN


def activation_layer(name: str) -> nn.Module:
    if name == "none":
        return nn.Identity()
    if name not in ACT2FN:
        raise ValueError(f"Unknown connector activation '{name}'; choose 'none' or one of {sorted(ACT2FN)}")
    return ACT2FN[name]


class LinearConnector(nn.Module):
    def __init__(self, encoder_dim: int, llm_dim: int, activation: str = "gelu", **_):
        super().__init__()
        self.proj = nn.Linear(encoder_dim, llm_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)


class DownsampleConnector(nn.Module):
    def __init__(self, encoder_dim: int, llm_dim: int, activation: str = "gelu", num_blocks: int = 2,
                 hidden_dim: int | None = None, **_):
        super().__init__()
        hidden_dim = hidden_dim or encoder_dim
        layers, width = [], encoder_dim
        for _ in range(num_blocks):
            layers += [nn.Conv1d(width, hidden_dim, kernel_size=2, stride=2), activation_layer(activation)]
            width = hidden_dim
        self.blocks = nn.Sequential(*layers)
        self.proj = nn.Linear(width, llm_dim)
        self.stride = 2**num_blocks

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pad = (-hidden.shape[1]) % self.stride  # keep the tail of the line instead of dropping it
        x = nn.functional.pad(hidden.transpose(1, 2), (0, pad))
        return self.proj(self.blocks(x).transpose(1, 2))


class QFormerConnector(nn.Module):
    def __init__(self, encoder_dim: int, llm_dim: int, activation: str = "gelu", num_queries: int = 32,
                 num_heads: int = 4, hidden_dim: int | None = None, **_):
        super().__init__()
        hidden_dim = hidden_dim or encoder_dim
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_dim) * 0.02)
        self.attn = nn.MultiheadAttention(hidden_dim, num_heads, kdim=encoder_dim, vdim=encoder_dim,
                                          batch_first=True)
        self.norm = nn.LayerNorm(hidden_dim)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, 4 * hidden_dim), activation_layer(activation),
                                 nn.Linear(4 * hidden_dim, hidden_dim))
        self.proj = nn.Linear(hidden_dim, llm_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(hidden.shape[0], -1, -1)
        x = queries + self.attn(queries, hidden, hidden, need_weights=False)[0]
        x = x + self.mlp(self.norm(x))
        return self.proj(x)


CONNECTORS = {"linear": LinearConnector, "downsample": DownsampleConnector, "qformer": QFormerConnector}


def build_connector(kind: str, encoder_dim: int, llm_dim: int, **options) -> nn.Module:
    if kind not in CONNECTORS:
        raise ValueError(f"Unknown connector '{kind}'; choose one of {sorted(CONNECTORS)}")
    return CONNECTORS[kind](encoder_dim, llm_dim, **options)
