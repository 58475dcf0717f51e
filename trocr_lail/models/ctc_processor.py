"""The processor of the CTC recognizers (``crnn/``, ``mobilevit_ctc/``): HTR best practices' line preprocessing as
a transformers image processor, paired with the character tokenizer of ``ctc_vocab.py``.

The reference (``georgeretsi/HTR-best-practices``, ``utils/word_dataset.py`` and ``iam_dataset.py``) reads each
line grey with ink high (``1 - image / 255``), keeps its size within ``height - 16`` x ``width - 32`` (each side
clamped on its own, so an over-wide line is squashed), and centres it on a ``height`` x ``width`` canvas of 0
(paper). Here, where this differs:

- **Fixed text height.** The reference keeps each IAM line at half its scanned size (about 60 of 128 pixels) and
  never rescales it otherwise; this toolkit reads lines from any source at any resolution (synthetic renders, Hub
  datasets, page crops), so every line is scaled to ``text_height`` pixels (default half the canvas: the
  reference's IAM scale) with its aspect ratio kept, then the width is clamped as there: at least 8, at most
  ``width - width / 32`` pixels (992 of 1024, the reference's margin). Vertical margins follow from the height.
- **Grey from RGB.** Lines reach the processor as RGB (``data/images.load_rgb``, the one loader of training and
  ``predict``) and turn grey through PIL's ITU-R 601 luma; a grey PNG (IAM) reads back unchanged.
- **Resampling.** PIL's bilinear filter (``resample``, set by ``image_resample``) instead of scikit-image's
  anti-aliased linear ``resize``: close, not bit-identical.
- The reference's training-time width and aspect jitter is augmentation, not preprocessing: not here.

Ink high is written as a rescale (1/255) and a normalisation with mean 1 and std -1, i.e. ``(x / 255 - 1) / -1 =
1 - x / 255``, so that the resize-once path (``data/pixels.py``: uint8 pixels stored, rescaled and normalised in
the collator) gives the same ``pixel_values`` as this class without knowing about it. The padding is white paper
(255) before that, so 0 after it, as in the reference.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers import TrOCRProcessor
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .ctc_vocab import build_ctc_tokenizer

PAPER = 255
MIN_TEXT_WIDTH = 8  # the reference's lower clamp


class CtcLineImageProcessor(BaseImageProcessor):
    """Lines -> ``pixel_values`` ``(batch, 1, image_height, image_width)``: grey, ink high in [0, 1], the text scaled
    to ``text_height`` and centred on a paper canvas (module docstring)."""

    model_input_names = ["pixel_values"]

    def __init__(self, image_height: int = 128, image_width: int = 1024, text_height: int | None = None,
                 resample: int = 2, do_rescale: bool = True, rescale_factor: float = 1 / 255,
                 do_normalize: bool = True, image_mean=(1.0,), image_std=(-1.0,), **kwargs):
        super().__init__(**kwargs)
        self.image_height, self.image_width = image_height, image_width
        self.text_height = text_height or image_height // 2
        self.resample = resample
        self.do_rescale, self.rescale_factor = do_rescale, rescale_factor
        self.do_normalize, self.image_mean, self.image_std = do_normalize, list(image_mean), list(image_std)

    def place(self, image: Image.Image) -> np.ndarray:
        """One line as uint8 ``(1, image_height, image_width)``: grey, scaled, centred on paper."""
        grey = image.convert("L")
        height = min(self.text_height, self.image_height)
        width = round(grey.width * height / grey.height)
        width = max(MIN_TEXT_WIDTH, min(self.image_width - self.image_width // 32, width))
        canvas = Image.new("L", (self.image_width, self.image_height), PAPER)
        # int(0.5 * difference) for the leading side, as the reference's ``centered``.
        canvas.paste(grey.resize((width, height), resample=self.resample),
                     ((self.image_width - width) // 2, (self.image_height - height) // 2))
        return np.asarray(canvas, dtype=np.uint8)[None]

    def preprocess(self, images, return_tensors=None, do_rescale: bool | None = None,
                   do_normalize: bool | None = None, **kwargs) -> BatchFeature:
        images = [images] if isinstance(images, Image.Image) else list(images)
        pixels = np.stack([self.place(image) for image in images]).astype(np.float32)
        if self.do_rescale if do_rescale is None else do_rescale:
            pixels = pixels * np.float32(self.rescale_factor)
        if self.do_normalize if do_normalize is None else do_normalize:
            mean = np.asarray(self.image_mean, dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(self.image_std, dtype=np.float32).reshape(-1, 1, 1)
            pixels = (pixels - mean) / std
        return BatchFeature({"pixel_values": pixels}, tensor_type=return_tensors)


def build_ctc_processor(config) -> TrOCRProcessor:
    """The processor of a CTC recognizer's ``config``: its input size and its character vocabulary.

    ``TrOCRProcessor`` is only the pair (image processor, tokenizer) every entry point reads
    (``processor.image_processor``, ``processor.tokenizer``, one ``save_pretrained``); nothing of TrOCR's is in it,
    and it loads back with ``TrOCRProcessor.from_pretrained`` once ``ctc_families.register_auto_classes`` has named
    :class:`CtcLineImageProcessor` to ``AutoImageProcessor``."""
    image_processor = CtcLineImageProcessor(image_height=config.image_height, image_width=config.image_width,
                                            text_height=getattr(config, "text_height", None))
    return TrOCRProcessor(image_processor=image_processor, tokenizer=build_ctc_tokenizer(config.charset))
