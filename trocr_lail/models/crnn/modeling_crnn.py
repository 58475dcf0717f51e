"""The CNN-BiLSTM-CTC line recognizer of HTR best practices (``configuration_crnn.py`` has the source and the two
recipes), as a transformers ``PreTrainedModel``.

pixel_values ``(batch, 1, height, width)``, grey with ink high (``1 - image / 255``, as the reference) ->
stem conv + ReLU -> ResNet BasicBlocks with 2x2 max-pools -> column max-pool over the whole height ->
``(batch, T, 256)`` with T = width / 8 -> 3 BiLSTM layers -> dropout -> Linear -> logits ``(batch, T, vocab)``.
In training mode the CTC shortcut (a (1, 3) convolution on the pooled CNN output) adds its own CTC loss with
weight ``config.shortcut_weight``; eval mode never runs it, so it changes neither predictions nor eval loss.

Taps (``output_hidden_states=True``), each ``(batch, T, dim)``: ``hidden_states[0]`` is the column max-pool's
output (dim 256), ``hidden_states[k]`` the output of BiLSTM layer k (dim 512, before the dropout that feeds the
next layer). The research notes' LAIL taps are ``hidden_states[0]`` and ``hidden_states[1]``.

Where this differs from the reference code (same arithmetic, different layout):

- The BiLSTM is one single-layer ``nn.LSTM`` per layer with ``nn.Dropout`` between them, which is what a 3-layer
  ``nn.LSTM(dropout=0.2)`` computes, so that every layer's output is a tap. Weight names differ accordingly
  (``lstm.1.weight_ih_l0`` for the reference's ``top.rec.weight_ih_l1``), the parameter count does not.
- Batch-first tensors throughout (the reference's LSTM is sequence-first): same values, transposed.
- The paper-era ``CTCtopB`` also builds ``att`` (Dropout, Linear(512 -> classes), Sigmoid), which its forward never
  calls (the lines that use it are commented out); it is left out here, so the reference's model has 512 *
  classes + classes more (never trained) parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from ..ctc_recognizer import CtcLineReading, column_max_pool, recognizer_output
from .configuration_crnn import POOL, CrnnConfig


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convolutions without bias, batch norm), a 1x1 projection on the residual
    when the width changes; the reference's stride is always 1."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, kernel_size=1, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def build_cnn(config: CrnnConfig) -> nn.Sequential:
    layers = [nn.Conv2d(1, config.stem_channels, config.stem_kernel, stride=tuple(config.stem_stride),
                        padding=config.stem_kernel // 2), nn.ReLU()]
    channels = config.stem_channels
    for block in config.cnn_blocks:
        if block == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        count, width = block
        for _ in range(count):
            layers.append(BasicBlock(channels, width))
            channels = width
    return nn.Sequential(*layers)


class CrnnPreTrainedModel(PreTrainedModel):
    config_class = CrnnConfig
    base_model_prefix = "crnn"
    main_input_name = "pixel_values"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation, which the reference keeps (its ``weight_init`` is never applied).
        Every call goes through ``torch.nn.init``, which transformers 5 guards while loading, so loaded weights
        are never re-initialised."""
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.LSTM)):
            module.reset_parameters()
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            nn.init.zeros_(module.running_mean)
            nn.init.ones_(module.running_var)
            nn.init.zeros_(module.num_batches_tracked)


class CrnnForCTC(CtcLineReading, CrnnPreTrainedModel):
    def __init__(self, config: CrnnConfig):
        super().__init__(config)
        if config.vocab_size < 2:
            raise ValueError("CrnnConfig.charset is empty: build it from the training texts "
                             "(models.ctc_vocab.charset_from_texts)")
        self.cnn = build_cnn(config)
        hidden, width = config.lstm_hidden_size, config.cnn_channels
        self.lstm = nn.ModuleList(
            nn.LSTM(width if layer == 0 else 2 * hidden, hidden, batch_first=True, bidirectional=True)
            for layer in range(config.lstm_layers))
        self.lstm_dropout = nn.Dropout(config.lstm_dropout)
        self.head = nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(2 * hidden, config.vocab_size))
        self.shortcut = None
        if config.shortcut_weight > 0:
            kernel = config.shortcut_kernel
            self.shortcut = nn.Sequential(nn.Dropout(config.shortcut_dropout),
                                          nn.Conv2d(width, config.vocab_size, (1, kernel), padding=(0, kernel // 2)))
        self.post_init()

    def drop_shortcut(self) -> None:
        """Remove the training-only shortcut (its weights and ``config.shortcut_weight``), as an export does:
        the remaining weights are exactly the inference model's."""
        self.shortcut = None
        self.config.shortcut_weight = 0.0

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        output_hidden_states = output_hidden_states if output_hidden_states is not None \
            else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        features = self.cnn(pixel_values)
        sequence = column_max_pool(features)
        taps = [sequence]
        for layer, lstm in enumerate(self.lstm):
            sequence = lstm(self.lstm_dropout(sequence) if layer else sequence)[0]
            taps.append(sequence)
        logits = self.head(sequence)
        aux_logits = None
        if self.shortcut is not None and self.training:
            # The reference convolves the (batch, channels, 1, T) pooled map; taps[0] is that map, transposed.
            aux_logits = self.shortcut(taps[0].transpose(1, 2).unsqueeze(2)).squeeze(2).transpose(1, 2)
        return recognizer_output(logits, labels, tuple(taps) if output_hidden_states else None, aux_logits,
                                 self.config.shortcut_weight, return_dict)
