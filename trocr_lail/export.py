"""Export a trained model as a plain ``VisionEncoderDecoderModel`` directory that any transformers user can load:
``pipeline("image-to-text", model=dir, trust_remote_code=True)`` on 4.57.x and 5.x (the folder carries
``trocr_pipeline.py``, registered in ``config.json``), or ``VisionEncoderDecoderModel.from_pretrained``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import GenerationConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

from . import pipeline
from .adapters import merged

TRAINING_ONLY_CONFIG_KEYS = ("lail", "ctc")


def plain_model(model) -> VisionEncoderDecoderModel:
    """Copy the standard VisionEncoderDecoder weights of ``model`` (a subclass, or with adapters merged) into a
    fresh plain model. Strict loading: a missing or extra standard key is an error, not a silent gap. Training-only
    parts (LAIL connectors, the CTC head) and their config entries (``lail``, ``ctc``) are left out."""
    config = VisionEncoderDecoderConfig.from_dict(
        {k: v for k, v in model.config.to_dict().items() if not k.startswith(TRAINING_ONLY_CONFIG_KEYS)})
    config.architectures = ["VisionEncoderDecoderModel"]
    plain = VisionEncoderDecoderModel(config=config)
    wanted = plain.state_dict().keys()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in wanted}, strict=True)
    return plain


def export_model(model, processor, export_dir: str | Path, num_beams: int = 1, max_length: int = 128) -> Path:
    """Write ``model`` as a plain model dir. PEFT adapters are merged into ``model`` in place first (the export
    is the last thing a run does with its model)."""
    export_dir = Path(export_dir)
    model = merged(model)
    plain = plain_model(model)
    plain.generation_config = GenerationConfig(
        decoder_start_token_id=model.config.decoder_start_token_id, eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id, max_length=max_length, num_beams=num_beams,
        early_stopping=num_beams > 1,
    )
    plain.config.custom_pipelines = pipeline.custom_pipelines_entry()
    plain.save_pretrained(export_dir, safe_serialization=True)
    shutil.copyfile(pipeline.__file__, export_dir / pipeline.EXPORT_FILE)
    processor.save_pretrained(export_dir)
    # transformers 4.57.x loaders look for the image processor and tokenizer files one by one.
    processor.image_processor.save_pretrained(export_dir)
    _portable_tokenizer_config(export_dir / "tokenizer_config.json")
    return export_dir


def _portable_tokenizer_config(path: Path) -> None:
    # 5.x names fast tokenizers "TokenizersBackend", a class 4.57.x does not have; both know the 4.x name.
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2) + "\n")
