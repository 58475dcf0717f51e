"""Batched line reading with an exported (or any VisionEncoderDecoder) model, on transformers 4.57.x and 5.x.

``LineReader`` is what ``trocr-lail predict`` and ``trocr-lail evaluate`` run. Called like a pipeline it returns
what 4.57's ``pipeline("image-to-text")`` returns (``[{"generated_text": ...}]`` per image), which 5.x no longer
has. Same image loading (EXIF orientation, RGB), same processor, same generation config, same decoding: the same
text, but the batch is preprocessed in one processor call instead of one call per image.

It reads the CTC recognizers' exports too (``models/ctc_families.py``): one forward pass and the best path, as
their training evaluation decodes (``models.ctc_recognizer.line_ids``); their confidences come from the best path's
frame probabilities (``models.ctc_recognizer.best_path_scores``).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..data.images import load_rgb
from .pipeline import chosen_token_logprobs, describe_line, line_confidence

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pbm", ".pgm", ".ppm")


def collect_image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (their image files, sorted, not recursive) and globs (``**`` allowed), in argument order,
    each file once. A name that matches nothing is an error naming it."""
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"No image files found for {item!r} (not a file, a folder with images, or a "
                                    f"glob that matches files)")
        found.update(dict.fromkeys(matches))
    return list(found)


def load_image(image) -> Image.Image:
    """Any PIL-readable image (path, PIL image or datasets' ``{"bytes", "path"}``) as RGB, through the same loader
    as training and validation (``trocr_lail.data.images.load_rgb``: EXIF orientation, first frame, size limits,
    16-bit scaled by 255/65535, transparency on white); raises ``BadImage`` naming the file."""
    return load_rgb(str(image) if isinstance(image, Path) else image)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LineReader:
    """Reads text lines from images with a VisionEncoderDecoder model and its processor.

    >>> reader = LineReader.from_pretrained("outputs/quickstart-baseline/export")
    >>> reader(["line1.png", "line2.png"], batch_size=8)   # like pipeline("image-to-text") on 4.57.x
    [[{'generated_text': '...'}], [{'generated_text': '...'}]]
    """

    def __init__(self, model, processor, device: str | torch.device | None = "cpu", batch_size: int = 8):
        from ..models.ctc_families import is_ctc_recognizer

        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.batch_size = batch_size
        self.ctc = is_ctc_recognizer(model)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = "auto", batch_size: int = 8,
                        revision: str = "main", strict_safetensors: bool = False, image_resample: str | None = None):
        """``image_resample`` overrides the processor's resize filter (the paper's fairseq pipeline: bicubic).
        Checkpoints with only ``pytorch_model.bin`` (e.g. microsoft/trocr-*-handwritten) load weights-only unless
        ``strict_safetensors``."""
        from transformers import TrOCRProcessor, VisionEncoderDecoderModel

        from ..models.ctc_families import is_saved_ctc_model, load_ctc_model, load_ctc_processor
        from ..models.loading import note_pickle_weights, set_resample, weights_kwargs

        common = {"revision": revision, "trust_remote_code": False}
        note_pickle_weights(str(model_dir), revision, strict=strict_safetensors)
        if is_saved_ctc_model(str(model_dir)):
            processor = load_ctc_processor(model_dir, **common)
            model = load_ctc_model(str(model_dir), **weights_kwargs(strict_safetensors), **common)
        else:
            processor = TrOCRProcessor.from_pretrained(model_dir, **common)
            model = VisionEncoderDecoderModel.from_pretrained(model_dir, **weights_kwargs(strict_safetensors),
                                                              **common)
        return cls(model, set_resample(processor, image_resample), device=device, batch_size=batch_size)

    def batches(self, images: Sequence, batch_size: int | None = None, progress: bool = False,
                scored: bool = False, **generate_kwargs) -> Iterator[list]:
        """Texts batch by batch, in input order (with ``scored``: :meth:`read_scored`'s records, which also takes
        its ``confidence_temperature`` and ``temperatures`` from ``generate_kwargs``). ``generate_kwargs`` override
        the model's generation config (``num_beams``, ``max_length``, ...); None values are ignored."""
        batch_size = batch_size or self.batch_size
        generate_kwargs = {k: v for k, v in generate_kwargs.items() if v is not None}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(images), unit="line", desc="reading")
        for start in range(0, len(images), batch_size):
            chunk = [load_image(image) for image in images[start : start + batch_size]]
            yield (self.read_scored if scored else self.read_loaded)(chunk, **generate_kwargs)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        return self.processor(images=images, return_tensors="pt").pixel_values.to(self.device, self.model.dtype)

    @staticmethod
    def _refuse_generation(generate_kwargs: dict) -> None:
        if generate_kwargs:
            raise ValueError(f"{', '.join(sorted(generate_kwargs))}: a CTC recognizer reads each line in one pass "
                             "(best path); there is no generation to configure")

    @torch.inference_mode()
    def read_loaded(self, images: list[Image.Image], **generate_kwargs) -> list[str]:
        pixels = self._pixels(images)
        if self.ctc:
            from ..models.ctc_recognizer import line_ids

            self._refuse_generation(generate_kwargs)
            return self.processor.batch_decode(line_ids(self.model(pixels).logits, self.model.config.charset),
                                               skip_special_tokens=True)
        ids = self.model.generate(pixels, **generate_kwargs)
        return self.processor.batch_decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def read_scored(self, images: list[Image.Image], confidence_temperature: float = 1.0,
                    temperatures: Sequence[float] = (), **generate_kwargs) -> list[dict]:
        """Each line as ``pipeline.describe_line`` gives it: ``text`` (the same as :meth:`read_loaded`'s),
        ``conf`` (the geometric mean of the probabilities of the generated tokens, EOS included, padding after it
        not, each under the distribution generation chose it from: after its logits processors, with beams the
        final beam's, divided by ``confidence_temperature``), ``tokens``, ``token_conf`` and ``char_conf``. With
        ``temperatures``, also ``conf_at``: the line confidence at each of them (for fitting one). A CTC
        recognizer's tokens are its best path's characters, scored by their frames (the model's ``best_path``)."""
        pixels = self._pixels(images)
        temperatures = (confidence_temperature, *temperatures)
        if self.ctc:
            self._refuse_generation(generate_kwargs)
            tokens, logprobs, keep = self.model.best_path(self.model(pixels).logits, temperatures)
        else:
            out = self.model.generate(pixels, output_scores=True, return_dict_in_generate=True, **generate_kwargs)
            tokens, logprobs, keep = chosen_token_logprobs(out, self.model.generation_config.eos_token_id,
                                                           temperatures)
        lines = []
        for row in range(len(tokens)):
            lines.append(describe_line(self.processor.tokenizer, tokens[row], logprobs[0, row], keep[row]))
            if len(temperatures) > 1:
                lines[-1]["conf_at"] = [line_confidence(at[row], keep[row]) for at in logprobs[1:]]
        return lines

    def read(self, images: Sequence, batch_size: int | None = None, progress: bool = False, scored: bool = False,
             **generate_kwargs) -> list:
        return [text for batch in self.batches(images, batch_size, progress, scored, **generate_kwargs)
                for text in batch]

    def __call__(self, images, batch_size: int | None = None, **generate_kwargs):
        single = isinstance(images, (str, Path, Image.Image))
        texts = self.read([images] if single else list(images), batch_size, **generate_kwargs)
        records = [[{"generated_text": text}] for text in texts]
        return records[0] if single else records
