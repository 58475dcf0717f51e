"""Configuration of the MobileViT-CTC line recognizer: ``transformers.MobileViTModel`` as the encoder, its last
feature map max-pooled over height into one frame per column, and a Linear CTC head.

The research notes report a MobileViT recognizer on IAM (4.4% test CER) without its architecture, so the choices
here are this package's, each for a stated reason:

- ``mobilevit``: the backbone's ``MobileViTConfig`` values, by default ``apple/mobilevit-small``'s architecture
  (hidden sizes 144/192/240, neck 16/32/64/96/128/160/640; 5.6M parameters with its ImageNet classifier) with
  ``output_stride=8``: the last two stages dilate instead of striding, so a 1024-pixel-wide line keeps 128 frames
  (stride 32 would leave 32, fewer than the characters of a long IAM line).
- 64x1024 input (multiples of 32, as MobileViT's unfolding wants): the final map is 8x128.
- grey lines repeated to the backbone's 3 channels inside ``forward``.
- ``head_dropout`` 0.1: MobileViT's own ``classifier_dropout_prob`` before its classifier.

Only the architecture keys of ``MobileViTConfig`` are kept (``BACKBONE_KEYS``), so a config made from a Hub
checkpoint does not carry its 1,000 ImageNet labels; ``pretrained_backbone`` records where the backbone's weights
came from (None: random, built from config).
"""

from __future__ import annotations

from transformers import MobileViTConfig, PretrainedConfig

from ..ctc_vocab import BLANK_ID

BACKBONE_KEYS = ("num_channels", "image_size", "patch_size", "hidden_sizes", "neck_hidden_sizes",
                 "num_attention_heads", "mlp_ratio", "expand_ratio", "hidden_act", "conv_kernel_size",
                 "output_stride", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                 "layer_norm_eps", "qkv_bias")
OUTPUT_STRIDE = 8

PRESETS = {
    "mobilevit-ctc": {},  # the defaults: mobilevit-small's architecture at output stride 8
    # recipes/mobilevit/quickstart.yaml: mobilevit-xx-small's layout at half its widths, 32x768 input (96 frames).
    # The text fills the canvas height, as crnn-quickstart's does (its comment says why).
    "mobilevit-ctc-quickstart": {"image_height": 32, "image_width": 768, "text_height": 32,
                                 "mobilevit": MobileViTConfig(
        hidden_sizes=[32, 40, 48], neck_hidden_sizes=[8, 8, 16, 24, 32, 40, 160], expand_ratio=2.0,
        output_stride=OUTPUT_STRIDE).to_dict()},
}


def backbone_values(config: MobileViTConfig | dict, **overrides) -> dict:
    """The architecture values of a ``MobileViTConfig`` (or of its dict), with ``overrides`` applied."""
    values = config.to_dict() if isinstance(config, MobileViTConfig) else dict(config)
    values = {key: values[key] for key in BACKBONE_KEYS if key in values}
    values = {key: list(value) if isinstance(value, tuple) else value for key, value in {**values, **overrides}.items()}
    return values


class MobileVitCtcConfig(PretrainedConfig):
    """``charset``: the output characters, ids 1.. in this order (id 0 is the CTC blank); ``vocab_size`` follows."""

    model_type = "mobilevit_ctc"

    def __init__(self, charset: str = "", image_height: int = 64, image_width: int = 1024, mobilevit: dict | None = None,
                 head_dropout: float = 0.1, pretrained_backbone: str | None = None, text_height: int | None = None,
                 **kwargs):
        self.charset = charset
        self.image_height, self.image_width = image_height, image_width
        self.text_height = text_height  # the processor scales each line's text to it; None: half the canvas
        self.mobilevit = backbone_values(MobileViTConfig(output_stride=OUTPUT_STRIDE)) if mobilevit is None \
            else backbone_values(mobilevit)
        self.head_dropout = head_dropout
        self.pretrained_backbone = pretrained_backbone
        self.vocab_size = len(charset) + 1  # derived: a saved value is recomputed, never trusted over the charset
        kwargs.pop("vocab_size", None)
        kwargs["pad_token_id"] = BLANK_ID
        super().__init__(**kwargs)

    def backbone_config(self) -> MobileViTConfig:
        return MobileViTConfig(**self.mobilevit)

    @property
    def hidden_state_sizes(self) -> list[int]:
        """Width of each ``hidden_states`` entry (the LAIL taps): stages 1-5 (MobileViT's ``neck_hidden_sizes``
        after the stem's), then the expanded map the head reads."""
        necks = self.mobilevit["neck_hidden_sizes"]
        return list(necks[1:6]) + [necks[-1]]

    @property
    def width_stride(self) -> int:
        return self.mobilevit["output_stride"]
