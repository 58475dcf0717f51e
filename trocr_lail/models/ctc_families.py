"""The CTC recognizer families by name, like ``shapes.py``'s TrOCR shapes: ``config:crnn`` (HTR best practices,
paper era), ``config:crnn-2024`` (its 2024 rework) and ``config:mobilevit-ctc`` build a model from config with
random weights; a directory saved by ``save_pretrained`` loads back as its own family, read from its
``config.json`` ``model_type`` through transformers' Auto classes (registered here, in this process only: no
remote code is involved).

Unlike the TrOCR shapes these need the character vocabulary, built from the training texts
(``ctc_vocab.charset_from_texts``), because the output layer's size is the number of characters.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, AutoImageProcessor, AutoModelForCTC, TrOCRProcessor

from .crnn.configuration_crnn import PRESETS as CRNN_PRESETS
from .crnn.configuration_crnn import CrnnConfig
from .crnn.modeling_crnn import CrnnForCTC
from .ctc_processor import CtcLineImageProcessor
from .mobilevit_ctc.configuration_mobilevit_ctc import PRESETS as MOBILEVIT_PRESETS
from .mobilevit_ctc.configuration_mobilevit_ctc import MobileVitCtcConfig
from .mobilevit_ctc.modeling_mobilevit_ctc import MobileVitCtcForCTC

PREFIX = "config:"
FAMILIES = {CrnnConfig: CrnnForCTC, MobileVitCtcConfig: MobileVitCtcForCTC}
CTC_SHAPES = {**{name: (CrnnConfig, preset) for name, preset in CRNN_PRESETS.items()},
              **{name: (MobileVitCtcConfig, preset) for name, preset in MOBILEVIT_PRESETS.items()}}


def is_ctc_shape(name: str | None) -> bool:
    return bool(name) and name.startswith(PREFIX) and name[len(PREFIX):] in CTC_SHAPES


def is_saved_ctc_model(name: str | None) -> bool:
    """A local folder holding a saved CTC recognizer (a run's output_dir, a checkpoint, an export), by its
    ``config.json`` ``model_type``. Hub ids are not looked up (no network call to decide a model's kind)."""
    config = Path(name).expanduser() / "config.json" if name else None
    if config is None or not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") in {c.model_type for c in FAMILIES}
    except (OSError, ValueError, AttributeError):
        return False


def is_ctc_source(name: str | None) -> bool:
    """``model_name_or_path`` names a CTC recognizer: a family by name, or a saved one."""
    return is_ctc_shape(name) or is_saved_ctc_model(name)


def is_ctc_recognizer(model) -> bool:
    return isinstance(getattr(model, "config", None), tuple(FAMILIES))


def build_ctc_config(name: str, charset: str):
    if not is_ctc_shape(name):
        raise ValueError(f"model_name_or_path: unknown CTC recognizer {name!r}; choose one of "
                         f"{', '.join(PREFIX + shape for shape in CTC_SHAPES)}")
    config_class, preset = CTC_SHAPES[name[len(PREFIX):]]
    return config_class(charset=charset, **preset)


def build_ctc_model(name: str, charset: str, pretrained_backbone: str | None = None, **load_kwargs):
    """Random weights from the named configuration; for ``config:mobilevit-ctc``, ``pretrained_backbone`` (e.g.
    ``apple/mobilevit-small``) loads the published MobileViT weights into the encoder, with ``load_kwargs`` for
    its ``from_pretrained``."""
    config = build_ctc_config(name, charset)
    if pretrained_backbone is None:
        return FAMILIES[type(config)](config)
    if not isinstance(config, MobileVitCtcConfig):
        raise ValueError(f"{name} has no published backbone to load; pretrained_backbone is for "
                         f"{PREFIX}mobilevit-ctc")
    return MobileVitCtcForCTC.from_backbone(pretrained_backbone, charset, **load_kwargs)


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCTC`` / ``AutoImageProcessor`` (so ``TrOCRProcessor.from_pretrained``)
    read the families' saved models (idempotent). In-process only: nothing is written into the saved folders and no
    remote code is trusted; transformers cannot read these model types without this package."""
    for config_class, model_class in FAMILIES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForCTC.register(config_class, model_class, exist_ok=True)
        AutoImageProcessor.register(config_class, slow_image_processor_class=CtcLineImageProcessor, exist_ok=True)


def load_ctc_model(name_or_path: str, **load_kwargs):
    """A saved CTC recognizer (a run's output or export, or a Hub id), as the family its config names."""
    register_auto_classes()
    return AutoModelForCTC.from_pretrained(name_or_path, **load_kwargs)


def load_ctc_processor(name_or_path: str, **load_kwargs):
    """A saved CTC recognizer's processor (``ctc_processor.build_ctc_processor`` wrote it)."""
    register_auto_classes()
    return TrOCRProcessor.from_pretrained(name_or_path, **load_kwargs)
