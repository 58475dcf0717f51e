"""Configuration of the CNN-BiLSTM-CTC line recognizer of "Best practices for a handwritten text recognition
system" (Retsinas, Sfikas, Gatos, Nikou; DAS 2022; code ``georgeretsi/HTR-best-practices``).

Two recipes live in that code's history; the defaults are the paper era's (commit 256dd39, ``config.py`` and
``models.py``), ``PRESETS["crnn-2024"]`` the 2024 rework's (HEAD d776871, ``config.yaml``, README: 4.2% IAM CER):

==================  =====================================  ======================================
                    paper era (default)                    2024 rework
==================  =====================================  ======================================
stem                Conv2d(1, 32, 7, stride (2, 2), pad 3)  Conv2d(1, 32, 7, stride (4, 2), pad 3)
ResNet blocks       (2, 64), M, (4, 128), M, (4, 256)      (2, 64), M, (3, 128), M, (2, 256)
head dropout        0.2 before the Linear                  0.5 before the Linear
shortcut dropout    none                                   0.5 before the shortcut convolution
==================  =====================================  ======================================

Both: grey 128x1024 input, column max-pool over the whole height (T = width / 8 = 128 frames), a 3-layer BiLSTM
(hidden 256, dropout 0.2 between layers), Linear(512 -> classes), and a CTC shortcut, Conv2d(256 -> classes,
kernel (1, 3)) on the pooled CNN output, whose own CTC loss is added with weight 0.1 in training only.
"""

from __future__ import annotations

from transformers import PretrainedConfig

from ..ctc_vocab import BLANK_ID

POOL = "M"  # a 2x2 max-pool of stride 2 between ResNet stages, as the reference's cnn_cfg writes it

PRESETS = {
    "crnn": {},  # the defaults: the paper era
    "crnn-2024": {"stem_stride": [4, 2], "cnn_blocks": [[2, 64], POOL, [3, 128], POOL, [2, 256]],
                  "head_dropout": 0.5, "shortcut_dropout": 0.5},
    # recipes/crnn/quickstart.yaml: the paper era's layout (stem, ResNet stages, pools, column max-pool, 3-layer
    # BiLSTM, shortcut) at a CPU size: 32x512 input, stem stride (2, 1) so that 512 columns still give 128 frames.
    # The text fills the canvas height (text_height 32): at the reference's half height an aspect-16 synthetic line
    # became 16x256 pixels, 64 frames for up to 82 targets, and the model never left the CTC plateau (93.6% CER).
    "crnn-quickstart": {"image_height": 32, "image_width": 512, "text_height": 32, "stem_channels": 8,
                        "stem_stride": [2, 1],
                        "cnn_blocks": [[1, 16], POOL, [1, 32], POOL, [1, 64]], "lstm_hidden_size": 64},
}


class CrnnConfig(PretrainedConfig):
    """``charset``: the output characters, ids 1.. in this order (id 0 is the CTC blank); build it with
    ``models.ctc_vocab.charset_from_texts`` from the training texts. ``vocab_size`` follows from it.

    ``shortcut_weight`` 0 builds no shortcut at all (the export's configuration: inference never uses it).
    """

    model_type = "crnn"

    def __init__(self, charset: str = "", image_height: int = 128, image_width: int = 1024,
                 text_height: int | None = None,
                 stem_channels: int = 32, stem_kernel: int = 7, stem_stride=(2, 2),
                 cnn_blocks=((2, 64), POOL, (4, 128), POOL, (4, 256)), lstm_hidden_size: int = 256,
                 lstm_layers: int = 3, lstm_dropout: float = 0.2, head_dropout: float = 0.2,
                 shortcut_weight: float = 0.1, shortcut_kernel: int = 3, shortcut_dropout: float = 0.0, **kwargs):
        self.charset = charset
        self.image_height, self.image_width = image_height, image_width
        self.text_height = text_height  # the processor scales each line's text to it; None: half the canvas
        self.stem_channels, self.stem_kernel, self.stem_stride = stem_channels, stem_kernel, list(stem_stride)
        self.cnn_blocks = [block if block == POOL else [int(block[0]), int(block[1])] for block in cnn_blocks]
        self.lstm_hidden_size, self.lstm_layers, self.lstm_dropout = lstm_hidden_size, lstm_layers, lstm_dropout
        self.head_dropout = head_dropout
        self.shortcut_weight, self.shortcut_kernel = shortcut_weight, shortcut_kernel
        self.shortcut_dropout = shortcut_dropout
        self.vocab_size = len(charset) + 1  # derived: a saved value is recomputed, never trusted over the charset
        kwargs.pop("vocab_size", None)
        kwargs["pad_token_id"] = BLANK_ID  # the tokenizer's padding token is the blank
        super().__init__(**kwargs)
        if not any(block != POOL for block in self.cnn_blocks):
            raise ValueError("cnn_blocks needs at least one (count, channels) stage")

    @property
    def cnn_channels(self) -> int:
        """Channels of the pooled CNN output: the sequence the BiLSTM and the shortcut read."""
        return [block for block in self.cnn_blocks if block != POOL][-1][1]

    @property
    def hidden_state_sizes(self) -> list[int]:
        """Width of each ``hidden_states`` entry (the LAIL taps): the pooled CNN output, then each BiLSTM layer's."""
        return [self.cnn_channels] + [2 * self.lstm_hidden_size] * self.lstm_layers

    @property
    def width_stride(self) -> int:
        """Input columns per output frame (8 in both presets: 1024 columns give 128 frames)."""
        return self.stem_stride[1] * 2 ** self.cnn_blocks.count(POOL)
