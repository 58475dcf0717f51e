"""An ``image-to-text`` pipeline for TrOCR line models, for transformers 4.57.x and 5.x alike.

transformers 5.x removed the ``image-to-text`` task. Every model that trocr-lail exports carries this file as
``trocr_pipeline.py`` and names it in ``config.json`` under ``custom_pipelines`` (the Hub's custom-pipeline
mechanism), so that, with transformers alone::

    from transformers import pipeline
    reader = pipeline("image-to-text", model="you/your-model", trust_remote_code=True)
    reader("line.png")                          # [{'generated_text': '...'}]
    reader(["a.png", "b.png"], batch_size=8)    # [[{'generated_text': ...}], [{'generated_text': ...}]]

It reads like ``trocr_lail.inference.reader.LineReader`` (``trocr-lail predict``): EXIF orientation applied,
transparency put on white paper, 16-bit grey scaled to 8 bits (as training decodes it), the model's generation config
unless overridden.
``import trocr_lail`` registers the same class locally as the ``trocr-image-to-text`` task (no remote code).

This file is copied into exported models: it may import only the standard library, PIL and transformers
(which brings torch).
"""

from __future__ import annotations

import os

from PIL import Image, ImageOps
from transformers import Pipeline

TASK = "image-to-text"  # the key under config.json's custom_pipelines
LOCAL_TASK = "trocr-image-to-text"  # registered by `import trocr_lail`; needs no trust_remote_code
EXPORT_FILE = "trocr_pipeline.py"
CLASS_NAME = "TrOCRLinePipeline"
GENERATION_KEYS = ("max_new_tokens", "max_length", "num_beams", "early_stopping", "length_penalty",
                   "no_repeat_ngram_size", "repetition_penalty", "do_sample", "temperature", "top_k", "top_p")
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_line_image(image, timeout: float | None = None) -> Image.Image:
    """A path, an ``http(s)`` URL, a base64 string or a PIL image, as an upright RGB image."""
    if isinstance(image, (str, os.PathLike)) and os.path.isfile(image):
        with Image.open(image) as opened:
            opened.load()
            image = opened
    elif not isinstance(image, Image.Image):
        from transformers.image_utils import load_image  # URLs and base64 (converted to RGB there)

        image = load_image(str(image) if isinstance(image, os.PathLike) else image, timeout=timeout)
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_BIT_MODES:  # a plain convert("L") clips everything above 255 to white
        image = image.point(lambda value: value / 257.0 + 0.5).convert("L")  # 0..65535 -> 0..255, rounded
    if image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")  # transparent paper would otherwise turn black, under often black ink
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


class TrOCRLinePipeline(Pipeline):
    """Reads one text line per image with a ``VisionEncoderDecoderModel`` (TrOCR); returns
    ``[{"generated_text": ...}]`` per image, like transformers 4.57's ``ImageToTextPipeline``. Generation keyword
    arguments (``num_beams=4``, ``max_new_tokens=...``, or ``generate_kwargs={...}``) override the model's
    generation config."""

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, generate_kwargs=None, timeout=None, **kwargs):
        unknown = sorted(set(kwargs) - set(GENERATION_KEYS))
        if unknown:
            raise TypeError(f"{CLASS_NAME} got unknown arguments {unknown}; generation settings go in "
                            f"generate_kwargs={{...}} or as one of {', '.join(GENERATION_KEYS)}")
        forward = {**(generate_kwargs or {}), **{k: v for k, v in kwargs.items() if v is not None}}
        return ({} if timeout is None else {"timeout": timeout}), forward, {}

    def preprocess(self, image, timeout=None):
        pixels = self.image_processor(images=open_line_image(image, timeout), return_tensors="pt").pixel_values
        return {"pixel_values": pixels.to(self.model.dtype)}

    def _forward(self, model_inputs, **generate_kwargs):  # Pipeline.forward has set inference mode and device
        return {"ids": self.model.generate(model_inputs["pixel_values"], **generate_kwargs)}

    def postprocess(self, model_outputs):
        return [{"generated_text": self.tokenizer.decode(ids, skip_special_tokens=True)}
                for ids in model_outputs["ids"]]


def custom_pipelines_entry() -> dict:
    """What ``config.json`` needs under ``custom_pipelines`` to load this file for the ``image-to-text`` task."""
    return {TASK: {"impl": f"{EXPORT_FILE.removesuffix('.py')}.{CLASS_NAME}", "pt": ["VisionEncoderDecoderModel"],
                   "type": "image"}}


def register() -> None:
    """Register the pipeline in this process as ``trocr-image-to-text`` (our code, so no trust_remote_code)."""
    from transformers import VisionEncoderDecoderModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if LOCAL_TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(LOCAL_TASK, pipeline_class=TrOCRLinePipeline,
                                            pt_model=VisionEncoderDecoderModel, type="image")
