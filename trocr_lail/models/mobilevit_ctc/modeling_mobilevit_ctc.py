"""MobileViT-CTC line recognizer (``configuration_mobilevit_ctc.py`` says why each choice).

pixel_values ``(batch, 1 or 3, height, width)`` -> ``MobileViTModel`` (stem, 5 stages, 1x1 expansion to 640
channels) -> column max-pool over height -> ``(batch, T, 640)``, T = width / output_stride -> dropout -> Linear
-> logits ``(batch, T, vocab)``. No auxiliary head: ``loss`` is the CTC loss alone (``ctc_recognizer.py``).

Taps (``output_hidden_states=True``), each ``(batch, sequence, dim)``: ``hidden_states[i]`` for i = 0..4 is stage
i + 1's feature map, max-pooled over height the same way (at output stride 8 and 1024 columns: 512, 256, 128,
128, 128 frames of 32, 64, 96, 128, 160 channels for -small); ``hidden_states[5]`` is the sequence the head reads.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import MobileViTModel, PreTrainedModel

from ..ctc_recognizer import CtcLineReading, column_max_pool, recognizer_output
from .configuration_mobilevit_ctc import OUTPUT_STRIDE, MobileVitCtcConfig, backbone_values


class MobileVitCtcPreTrainedModel(PreTrainedModel):
    config_class = MobileVitCtcConfig
    base_model_prefix = "mobilevit_ctc"
    main_input_name = "pixel_values"


class MobileVitCtcForCTC(CtcLineReading, MobileVitCtcPreTrainedModel):
    def __init__(self, config: MobileVitCtcConfig):
        super().__init__(config)
        if config.vocab_size < 2:
            raise ValueError("MobileVitCtcConfig.charset is empty: build it from the training texts "
                             "(models.ctc_vocab.charset_from_texts)")
        backbone = config.backbone_config()
        self.mobilevit = MobileViTModel(backbone, expand_output=True)
        # MobileViT's own init draws batch-norm gains around 0 (published weights replace them); trained from
        # scratch the features would vanish on the way up (logits ~1e-35), so every norm starts as the identity.
        # Here, before any checkpoint loads: from_pretrained's weights replace these, and post_init below skips
        # the modules MobileViTModel already initialised.
        with torch.no_grad():
            for module in self.mobilevit.modules():
                if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
        self.head = nn.Sequential(nn.Dropout(config.head_dropout),
                                  nn.Linear(backbone.neck_hidden_sizes[-1], config.vocab_size))
        self.post_init()

    @classmethod
    def from_backbone(cls, name_or_path: str, charset: str, output_stride: int = OUTPUT_STRIDE, **load_kwargs):
        """A recognizer whose backbone is the published ``MobileViTModel`` weights of ``name_or_path`` (e.g.
        ``apple/mobilevit-small``, where the Hub is reachable; a classification checkpoint's backbone loads too)
        at ``output_stride``, with a fresh CTC head. ``load_kwargs`` go to ``from_pretrained`` (revision,
        safetensors and remote-code options)."""
        backbone = MobileViTModel.from_pretrained(name_or_path, output_stride=output_stride, **load_kwargs)
        config = MobileVitCtcConfig(charset=charset, mobilevit=backbone_values(backbone.config),
                                    pretrained_backbone=str(name_or_path))
        model = cls(config)
        model.mobilevit.load_state_dict(backbone.state_dict())
        return model

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        output_hidden_states = output_hidden_states if output_hidden_states is not None \
            else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        channels = self.mobilevit.config.num_channels
        if pixel_values.shape[1] == 1 and channels != 1:
            pixel_values = pixel_values.expand(-1, channels, -1, -1)  # grey lines: the same value in each channel
        encoded = self.mobilevit(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        sequence = column_max_pool(encoded.last_hidden_state)
        logits = self.head(sequence)
        taps = None
        if output_hidden_states:
            taps = tuple(column_max_pool(stage) for stage in encoded.hidden_states) + (sequence,)
        return recognizer_output(logits, labels, taps, return_dict=return_dict)
