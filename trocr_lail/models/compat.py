"""The few places where transformers 4.57.x and 5.x differ for what this toolkit uses."""

from __future__ import annotations

import transformers
from packaging.version import Version

TRANSFORMERS_5 = Version(transformers.__version__).major >= 5


def vit_image_processor_class():
    # 5.x's ViTImageProcessor needs torchvision; its PIL twin gives the same pixels without it and saves the
    # same preprocessor_config.json keys, so 4.57.x can load what 5.x saved.
    if TRANSFORMERS_5:
        from transformers import ViTImageProcessorPil

        return ViTImageProcessorPil
    from transformers import ViTImageProcessor

    return ViTImageProcessor
