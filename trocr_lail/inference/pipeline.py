"""An ``image-to-text`` pipeline for TrOCR and CTC line models, for transformers 4.57.x and 5.x alike.

transformers 5.x removed the ``image-to-text`` task. Every model that trocr-lail exports carries this file as
``trocr_pipeline.py`` and names it in ``config.json`` under ``custom_pipelines`` (the Hub's custom-pipeline
mechanism), so that, with transformers alone::

    from transformers import pipeline
    reader = pipeline("image-to-text", model="you/your-model", trust_remote_code=True)
    reader("line.png")                          # [{'generated_text': '...'}]
    reader(["a.png", "b.png"], batch_size=8)    # [[{'generated_text': ...}], [{'generated_text': ...}]]
    reader("line.png", return_confidence=True)  # adds conf, tokens, token_conf, char_conf (describe_line)

It reads like ``trocr_lail.inference.reader.LineReader`` (``trocr-lail predict``): EXIF orientation applied,
transparency put on white paper, 16-bit grey scaled to 8 bits (as training decodes it), the model's generation config
unless overridden. A CTC recognizer's export (CRNN, MobileViT-CTC) carries its model code too (``auto_map``), which
the same ``trust_remote_code=True`` loads; it is read in one forward pass and decoded, with its confidences, by the
model's own ``best_path`` (``models/ctc_recognizer.py`` in trocr-lail, copied into the export), so that this file
holds no second copy of the decoding.
``import trocr_lail`` registers the same class locally as the ``trocr-image-to-text`` task (no remote code).

This file is copied into exported models: it may import only the standard library, PIL and transformers
(which brings torch).
"""

from __future__ import annotations

import math
import os

import torch
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


def chosen_token_logprobs(out, eos_token_id, temperatures=(1.0,)):
    """The chosen tokens of each generated line, their log-probabilities at each of ``temperatures``, and which
    of them count: those up to and including the first EOS.

    ``out`` is what ``generate(..., output_scores=True, return_dict_in_generate=True)`` returns. A token's score
    row is the one generation chose it from: greedy or sampling, its line's; beam search, the final beam's at that
    step (``beam_indices``, as ``compute_transition_scores`` reads them). The row (logits after the logits
    processors; with beams, log-probabilities after them) is divided by the temperature and renormalised, so that
    greedy and beams mean the same thing and temperature 1 is the distribution the token was chosen from. Step by
    step, only the final beams' rows, rather than ``compute_transition_scores``' stacked copy of every beam's
    scores: one vocabulary-wide copy per temperature of that would cost beams x temperatures x the scores' memory.
    Returns ``(tokens [lines, steps], logprobs [temperatures, lines,
    steps], keep [lines, steps])``."""
    beams = getattr(out, "beam_indices", None)
    if beams is None:
        beams = torch.arange(out.scores[0].shape[0], device=out.sequences.device)[:, None].expand(-1, len(out.scores))
    steps = int((beams >= 0).sum(dim=1).max())
    tokens, rows = out.sequences[:, -steps:], beams[:, :steps].clamp(min=0)
    logprobs = torch.zeros(len(temperatures), *tokens.shape, device=tokens.device)
    for step in range(steps):
        scores = out.scores[step][rows[:, step]].float()
        chosen = tokens[:, step, None]
        for index, temperature in enumerate(temperatures):
            logprobs[index, :, step] = torch.log_softmax(scores / temperature, dim=-1).gather(1, chosen)[:, 0]
    eos = torch.tensor(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id], device=tokens.device)
    is_eos = torch.isin(tokens, eos).int()
    keep = ((torch.cumsum(is_eos, dim=1) - is_eos) == 0) & (beams[:, :steps] >= 0)
    return tokens.cpu(), logprobs.cpu(), keep.cpu()


def line_confidence(logprobs, keep) -> float:
    """The geometric mean of the kept tokens' probabilities (1.0 for a line with none)."""
    kept = logprobs[keep]
    return math.exp(kept.mean().item()) if len(kept) else 1.0


def character_confidences(text: str, prefixes: list[str], token_conf: list[float]) -> list[float]:
    """One confidence per character of ``text``: that of the first token whose prefix (``prefixes[k]``: the
    decoded text of tokens ``0..k``) reaches the character. Decoding prefixes rather than tokens one by one keeps
    what the tokenizer does across tokens (a character split over byte tokens reads as U+FFFD until its last byte
    arrives, which then owns it; spaces merged or cleaned up) and guarantees one value per character."""
    confidences, done = [], 0
    for prefix, conf in zip(prefixes, token_conf):
        reached = len(os.path.commonprefix([prefix, text]))
        confidences += [conf] * (reached - done) if reached > done else []
        done = max(done, reached)
    return confidences


def describe_line(tokenizer, tokens, logprobs, keep) -> dict:
    """A line's text and scores from its row of :func:`chosen_token_logprobs`: ``conf`` (the geometric mean of
    the kept tokens' probabilities, EOS included), ``tokens`` (their vocabulary entries, EOS included),
    ``token_conf`` (each one's probability) and ``char_conf`` (per character of the text, see
    :func:`character_confidences`; EOS writes no character)."""
    ids = tokens[keep].tolist()
    token_conf = [math.exp(value) for value in logprobs[keep].tolist()]
    prefixes = tokenizer.batch_decode([ids[: k + 1] for k in range(len(ids))], skip_special_tokens=True)
    text = prefixes[-1] if prefixes else ""
    return {"text": text, "conf": line_confidence(logprobs, keep), "tokens": tokenizer.convert_ids_to_tokens(ids),
            "token_conf": token_conf, "char_conf": character_confidences(text, prefixes, token_conf)}


class TrOCRLinePipeline(Pipeline):
    """Reads one text line per image with a ``VisionEncoderDecoderModel`` (TrOCR) or a CTC recognizer (a model
    with ``best_path``); returns ``[{"generated_text": ...}]`` per image, like transformers 4.57's
    ``ImageToTextPipeline``. Generation keyword arguments (``num_beams=4``, ``max_new_tokens=...``, or
    ``generate_kwargs={...}``) override a TrOCR model's generation config; a CTC recognizer refuses them (it does
    not generate). With ``return_confidence=True`` each record also has ``conf``, ``tokens``, ``token_conf`` and
    ``char_conf`` (see :func:`describe_line`), at ``confidence_temperature`` (default 1), as ``trocr-lail predict
    --confidence`` writes them."""

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, generate_kwargs=None, timeout=None, return_confidence=None,
                             confidence_temperature=None, **kwargs):
        unknown = sorted(set(kwargs) - set(GENERATION_KEYS))
        if unknown:
            raise TypeError(f"{CLASS_NAME} got unknown arguments {unknown}; generation settings go in "
                            f"generate_kwargs={{...}} or as one of {', '.join(GENERATION_KEYS)}")
        forward = {**(generate_kwargs or {}), **{k: v for k, v in kwargs.items() if v is not None}}
        if return_confidence:
            forward["confidence_temperature"] = confidence_temperature or 1.0
        return ({} if timeout is None else {"timeout": timeout}), forward, {}

    def preprocess(self, image, timeout=None):
        pixels = self.image_processor(images=open_line_image(image, timeout), return_tensors="pt").pixel_values
        return {"pixel_values": pixels.to(self.model.dtype)}

    def _forward(self, model_inputs, confidence_temperature=None, **generate_kwargs):  # in inference mode, on device
        if callable(getattr(self.model, "best_path", None)):
            return self._forward_ctc(model_inputs["pixel_values"], confidence_temperature, generate_kwargs)
        if confidence_temperature is None:
            return {"ids": self.model.generate(model_inputs["pixel_values"], **generate_kwargs)}
        out = self.model.generate(model_inputs["pixel_values"], output_scores=True, return_dict_in_generate=True,
                                  **generate_kwargs)
        tokens, logprobs, keep = chosen_token_logprobs(out, self.model.generation_config.eos_token_id,
                                                       (confidence_temperature,))
        return {"ids": out.sequences, "tokens": tokens, "logprobs": logprobs[0], "keep": keep}

    def _forward_ctc(self, pixel_values, confidence_temperature, generate_kwargs):
        if generate_kwargs:
            raise ValueError(f"{', '.join(sorted(generate_kwargs))}: a CTC recognizer reads each line in one pass "
                             "(best path); there is no generation to configure")
        tokens, logprobs, keep = self.model.best_path(self.model(pixel_values=pixel_values).logits,
                                                      (confidence_temperature or 1.0,))
        # Tensors, not lists: the pipeline splits a batch's outputs row by row only for tensors. The padding is the
        # blank, the tokenizer's padding token, which decoding skips.
        if confidence_temperature is None:
            return {"ids": tokens}
        return {"ids": tokens, "tokens": tokens, "logprobs": logprobs[0], "keep": keep}

    def postprocess(self, model_outputs):
        if "logprobs" not in model_outputs:
            return [{"generated_text": self.tokenizer.decode(ids, skip_special_tokens=True)}
                    for ids in model_outputs["ids"]]
        lines = [describe_line(self.tokenizer, *row) for row in zip(model_outputs["tokens"],
                                                                     model_outputs["logprobs"], model_outputs["keep"])]
        return [{"generated_text": line.pop("text"), **line} for line in lines]


def custom_pipelines_entry(model_class: str = "VisionEncoderDecoderModel") -> dict:
    """What ``config.json`` needs under ``custom_pipelines`` to load this file for the ``image-to-text`` task, with
    ``model_class`` (a transformers class name: ``AutoModelForCTC`` for the CTC recognizers) loading the model."""
    return {TASK: {"impl": f"{EXPORT_FILE.removesuffix('.py')}.{CLASS_NAME}", "pt": [model_class], "type": "image"}}


def register() -> None:
    """Register the pipeline in this process as ``trocr-image-to-text`` (our code, so no trust_remote_code). It
    loads a CTC recognizer's export too once its family is registered with ``AutoModelForCTC``
    (``trocr_lail.models.ctc_families.register_auto_classes``)."""
    from transformers import AutoModelForCTC, VisionEncoderDecoderModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if LOCAL_TASK not in PIPELINE_REGISTRY.supported_tasks:
        # AutoModelForCTC first: it refuses a TrOCR config, where VisionEncoderDecoderModel would build a random
        # model around a CTC recognizer's config rather than fail.
        PIPELINE_REGISTRY.register_pipeline(LOCAL_TASK, pipeline_class=TrOCRLinePipeline,
                                            pt_model=(AutoModelForCTC, VisionEncoderDecoderModel), type="image")
