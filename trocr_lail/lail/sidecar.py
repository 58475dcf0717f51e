"""The ``lail/`` sidecar next to an exported model: trained connector weights and their configuration, so LAIL
training can continue from a published plain TrOCR. Never any LLM weight."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

PREFIX = "lail_connectors."
WEIGHTS = "connectors.safetensors"
CONFIG = "lail_config.json"


def write_sidecar(checkpoint_dir: str | Path, dest: str | Path, training_settings: dict | None = None) -> Path:
    """Copy the connector weights and ``config.lail`` of a LAIL training checkpoint into ``dest``."""
    checkpoint_dir, dest = Path(checkpoint_dir), Path(dest)
    config = json.loads((checkpoint_dir / "config.json").read_text())
    if not config.get("lail"):
        raise ValueError(f"{checkpoint_dir} is not a LAIL checkpoint (its config.json has no 'lail' entry)")
    # Full checkpoints hold "lail_connectors.*"; PEFT ones "base_model.model.lail_connectors.*" (modules_to_save).
    candidates = [checkpoint_dir / "model.safetensors", checkpoint_dir / "adapter_model.safetensors"]
    weights = next((path for path in candidates if path.is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{checkpoint_dir} has neither model.safetensors nor adapter_model.safetensors: the "
                                "LAIL sidecar needs the training checkpoint's weights")
    with safe_open(str(weights), "pt") as handle:
        tensors = {key[key.index(PREFIX):]: handle.get_tensor(key).contiguous()
                   for key in handle.keys() if PREFIX in key}
    if not tensors:
        raise ValueError(f"{weights} holds no {PREFIX}* weights")
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / WEIGHTS), metadata={"format": "pt"})
    payload = {"lail": config["lail"], "training": training_settings or {}}
    (dest / CONFIG).write_text(json.dumps(payload, indent=2) + "\n")
    return dest


def load_connector_weights(model, sidecar_dir: str | Path) -> None:
    """Load sidecar connectors into a ``LailVisionEncoderDecoderModel`` built with the same ``config.lail``;
    shapes and key sets must match exactly."""
    sidecar_dir = Path(sidecar_dir)
    saved = json.loads((sidecar_dir / CONFIG).read_text())["lail"]
    if saved != model.config.lail:
        raise ValueError(f"{sidecar_dir / CONFIG} was trained with lail={saved}, but this model has "
                         f"lail={model.config.lail}; use the same lail_* settings to continue from it.")
    with safe_open(str(sidecar_dir / WEIGHTS), "pt") as handle:
        tensors = {key[len(PREFIX):]: handle.get_tensor(key) for key in handle.keys()}
    model.lail_connectors.load_state_dict(tensors, strict=True)


def load_lail_model(model_dir: str | Path, revision: str = "main"):
    """A ``LailVisionEncoderDecoderModel``: the plain model in ``model_dir`` (local dir or Hub id) plus the
    connectors of its ``lail/`` sidecar. Attach the frozen LLM with ``attach_llm`` before training."""
    from transformers import VisionEncoderDecoderModel

    from .modeling import LailVisionEncoderDecoderModel

    root = Path(model_dir)
    if not root.is_dir():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(str(model_dir), revision=revision))
    sidecar = root / "lail"
    saved = json.loads((sidecar / CONFIG).read_text())["lail"]
    plain = VisionEncoderDecoderModel.from_pretrained(root, use_safetensors=True)
    config = {k: v for k, v in saved.items() if k != "llm_hidden_size"}
    model = LailVisionEncoderDecoderModel.from_plain(plain, config, saved["llm_hidden_size"])
    load_connector_weights(model, sidecar)
    return model
