"""Export a trained model as a plain ``VisionEncoderDecoderModel`` directory that any transformers user can load:
``pipeline("image-to-text", model=dir, trust_remote_code=True)`` on 4.57.x and 5.x (the folder carries
``trocr_pipeline.py``, registered in ``config.json``), or ``VisionEncoderDecoderModel.from_pretrained``.

A CTC recognizer (``models/ctc_families.py``) exports as its inference model (weights, config with its
character vocabulary, processor), which ``AutoModelForCTC`` / ``TrOCRProcessor.from_pretrained`` read in a process
that has called ``ctc_families.register_auto_classes`` (``trocr-lail predict`` does), with no remote code; with
``trust_remote_code=True``, transformers alone reads it from the model code the export carries
(``remote_code.py``), and ``pipeline("image-to-text", ...)`` from the same ``trocr_pipeline.py``."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from transformers import GenerationConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

from ..inference import pipeline
from ..models.adapters import merged
from ..models.ctc_families import is_ctc_recognizer, is_saved_ctc_model, load_ctc_model
from .remote_code import name_image_processor, write_remote_code

TRAINING_ONLY_CONFIG_KEYS = ("lail", "ctc")
ONNX_TASK = "image-to-text-with-past"  # encoder, decoder and decoder-with-past graphs: fast greedy and beam search
CTC_ONNX_FILE = "model.onnx"
CTC_ONNX_OPSET = 17
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


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
    if is_ctc_recognizer(model):
        return export_ctc_model(model, processor, export_dir)
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
    save_processor(processor, export_dir)
    return export_dir


def export_ctc_model(model, processor, export_dir: str | Path) -> Path:
    """``model`` without its training-only parts (LAIL connectors and ``config.lail``; the CRNN's CTC shortcut:
    weights and ``shortcut_weight``), which change neither its predictions nor its eval loss; the training model
    itself is left as it is. The folder also gets the model's code and the pipeline file, named in
    ``config.json`` (``auto_map``, ``custom_pipelines``)."""
    export_dir = Path(export_dir)
    inference = model.without_lail() if hasattr(model, "without_lail") else copy.deepcopy(model)
    # A LAIL checkpoint read as its plain family (``trocr-lail export``) still carries the entry in its config.
    inference.config.__dict__.pop("lail", None)
    if hasattr(inference, "drop_shortcut"):
        inference.drop_shortcut()
    export_dir.mkdir(parents=True, exist_ok=True)
    inference.config.auto_map = write_remote_code(inference, export_dir)
    inference.config.custom_pipelines = pipeline.custom_pipelines_entry("AutoModelForCTC")
    inference.save_pretrained(export_dir, safe_serialization=True)
    shutil.copyfile(pipeline.__file__, export_dir / pipeline.EXPORT_FILE)
    save_processor(processor, export_dir)
    name_image_processor(export_dir)
    return export_dir


def save_processor(processor, export_dir: Path) -> None:
    processor.save_pretrained(export_dir)
    # transformers 4.57.x loaders look for the image processor and tokenizer files one by one.
    processor.image_processor.save_pretrained(export_dir)
    _portable_tokenizer_config(export_dir / "tokenizer_config.json")


def _portable_tokenizer_config(path: Path) -> None:
    # 5.x names fast tokenizers "TokenizersBackend", a class 4.57.x does not have; both know the 4.x name.
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2) + "\n")


def onnx_exporter():
    """optimum's ``main_export``, or an ImportError that says what to install."""
    try:
        from optimum.exporters.onnx import main_export
    except ImportError:
        raise ImportError("ONNX export needs optimum-onnx: pip install 'trocr-lail[onnx]'. optimum-onnx requires "
                          "transformers < 4.58, so use an environment with transformers 4.57.x for this step; the "
                          "ONNX model it writes runs anywhere ONNX Runtime does.") from None
    return main_export


def ctc_onnx_exporter():
    """``torch.onnx.export``, once the ``onnx`` package it writes with is there, or an ImportError that says what to
    install (any transformers version: optimum is not used for the CTC recognizers)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("ONNX export of a CTC recognizer needs the onnx package: pip install onnx (or "
                          "'trocr-lail[onnx]'); onnxruntime runs the result") from None
    return torch.onnx.export


def export_onnx(model_dir: str | Path, onnx_dir: str | Path) -> Path:
    """Convert the exported model in ``model_dir`` to ONNX in ``onnx_dir`` with optimum (``pip install
    'trocr-lail[onnx]'``), with the processor files next to it, for ``optimum.onnxruntime.ORTModelForVision2Seq``.
    A CTC recognizer goes to :func:`export_ctc_onnx` instead.

    optimum writes the processor only when it can load it, and loading the image processor needs Pillow, which
    ``optimum-onnx[onnxruntime]`` does not install: without it the export succeeds and silently leaves out
    ``preprocessor_config.json``. So the processor files are copied from ``model_dir`` and checked here."""
    if is_saved_ctc_model(str(model_dir)):
        return export_ctc_onnx(model_dir, onnx_dir)
    main_export = onnx_exporter()
    model_dir, onnx_dir = Path(model_dir), Path(onnx_dir)
    main_export(str(model_dir), output=str(onnx_dir), task=ONNX_TASK, device="cpu", trust_remote_code=False)
    for name in PROCESSOR_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, onnx_dir / name)
    missing = [name for name in ("preprocessor_config.json", "tokenizer_config.json", "encoder_model.onnx",
                                 "decoder_model.onnx") if not (onnx_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"ONNX export to {onnx_dir} is incomplete: {missing} missing")
    return onnx_dir


class _Logits(torch.nn.Module):
    """The recognizer's forward as ``pixel_values -> logits``: the one graph a CTC recognizer needs (eval mode: no
    shortcut, no dropout), which ONNX Runtime runs and a best-path decoder reads."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values, return_dict=True).logits


def export_ctc_onnx(model_dir: str | Path, onnx_dir: str | Path) -> Path:
    """The CTC recognizer exported in ``model_dir`` as ``onnx_dir/model.onnx`` (input ``pixel_values`` ``(batch,
    1, image_height, image_width)`` as the processor writes it, output ``logits`` ``(batch, frames, vocab)``, blank
    id 0; the batch size is free), with the processor files and ``config.json`` (its characters) next to it. Decode
    the logits by best path: argmax per frame, repeats collapsed, blanks and the outer spaces dropped
    (``models.ctc_recognizer.line_ids``). TorchScript-based ``torch.onnx.export`` (``dynamo=False``): the dynamo
    exporter would need onnxscript on top of onnx."""
    export = ctc_onnx_exporter()
    model_dir, onnx_dir = Path(model_dir), Path(onnx_dir)
    model = load_ctc_model(str(model_dir), use_safetensors=True, trust_remote_code=False).eval()
    onnx_dir.mkdir(parents=True, exist_ok=True)
    # Batch 2 while tracing, so that nothing batch-sized can be baked into the graph as a constant 1.
    sample = torch.zeros(2, 1, model.config.image_height, model.config.image_width)
    with torch.no_grad():
        export(_Logits(model), (sample,), str(onnx_dir / CTC_ONNX_FILE), dynamo=False,
               input_names=["pixel_values"], output_names=["logits"], opset_version=CTC_ONNX_OPSET,
               dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
    for name in ("config.json", *PROCESSOR_FILES):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, onnx_dir / name)
    return onnx_dir
