"""What a model was trained on, kept in its config, and a warning when predict/evaluate inputs are far outside it.

A recogniser trained on lines of up to 48 characters never writes more (the first quickstart read 45-63 character
lines at 71% CER), and one trained on 8:1 lines squashes a 30:1 strip beyond reading. Training measures the
training split's image aspect ratios (width / height) and transcription lengths (characters) and stores their
1st-99th percentile range in the model config (``trocr_lail_training_ranges``), which the export keeps.
``predict`` and ``evaluate`` then warn, naming the lines, when an input's aspect ratio is more than ``FAR`` times
outside that range, or a reference text is more than ``FAR_LENGTH`` times longer than the training lines (a model
trained on lines of up to 48 characters read 45-63 character lines at 71% CER: 1.2 x 48 = 58 flags most of them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PIL import Image

logger = logging.getLogger("trocr_lail")

CONFIG_KEY = "trocr_lail_training_ranges"
FAR, FAR_LENGTH = 1.5, 1.2
MEASURED_ROWS, MEASURED_STREAM_ROWS = 2000, 256  # stream rows are rendered to be measured: fewer


def _percentiles(values: list[float]) -> list[float]:
    values = sorted(values)
    return [round(values[int(0.01 * (len(values) - 1))], 3), round(values[int(0.99 * (len(values) - 1))], 3)]


def _size(value) -> tuple[int, int]:
    """(width, height) of a PIL image, a path or datasets' ``{"bytes", "path"}`` from its header only."""
    import io

    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, dict):
        value = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
    with Image.open(value) as image:
        return image.size


def measure(dataset) -> dict | None:
    """Ranges of up to ``MEASURED_ROWS`` evenly spaced rows of a training split (a ``datasets.Dataset`` with
    ``image``/``text`` columns, or a synthetic stream); None if it cannot be measured (e.g. pixels only)."""
    import datasets

    streamed = not isinstance(dataset, datasets.Dataset)
    count = min(len(dataset), MEASURED_STREAM_ROWS if streamed else MEASURED_ROWS)
    rows = [round(i * len(dataset) / count) for i in range(count)]
    if streamed:
        samples = [dataset[i] for i in rows]
        sizes, texts = [_size(s["image"]) for s in samples], [s["text"] for s in samples]
    else:
        if "image" not in dataset.column_names or "text" not in dataset.column_names:
            return None
        subset = dataset.select(rows).cast_column("image", datasets.Image(decode=False))
        sizes, texts = [], list(subset["text"])
        for value in subset["image"]:
            try:
                sizes.append(_size(value))
            except OSError:  # unreadable rows are validate.py's business; measure the rest
                continue
    if not sizes:
        return None
    return {"aspect_ratio": _percentiles([w / max(h, 1) for w, h in sizes]),
            "text_length": _percentiles([len(t) for t in texts if isinstance(t, str)] or [0]),
            "lines_measured": len(sizes)}


def record(config, dataset) -> dict | None:
    """Measure ``dataset`` and store the ranges in ``config`` (a model config; saved and exported with it)."""
    ranges = measure(dataset)
    if ranges:
        setattr(config, CONFIG_KEY, ranges)
        logger.info("Training ranges (1st-99th percentile), stored in the model config: %s", ranges)
    return ranges


def out_of_range(ranges: dict, sizes: Sequence[tuple[int, int] | None] = (), texts: Sequence[str] = (),
                 names: Sequence[str] | None = None) -> list[str]:
    """Warning messages (empty when every input is within the trained range, widened by ``FAR``/``FAR_LENGTH``)."""
    messages = []
    low, high = ranges["aspect_ratio"]
    aspects = [(i, size[0] / max(size[1], 1)) for i, size in enumerate(sizes) if size]
    far = [(i, aspect) for i, aspect in aspects if not low / FAR <= aspect <= high * FAR]
    if far:
        shown = ", ".join(f"{names[i] if names else f'line {i}'}: {aspect:.1f}" for i, aspect in far[:5])
        messages.append(f"{len(far)} of {len(sizes)} input lines have an aspect ratio (width/height) far outside "
                        f"the training range {low:.1f}-{high:.1f} ({shown}); expect misreadings. Crop lines to one "
                        "text line, split very long lines, or fine-tune on similar lines.")
    longest = ranges["text_length"][1]
    long = [(i, len(t)) for i, t in enumerate(texts) if len(t) > FAR_LENGTH * max(longest, 1)]
    if long:
        shown = ", ".join(f"{names[i] if names else f'line {i}'}: {n} chars" for i, n in long[:5])
        messages.append(f"{len(long)} of {len(texts)} reference lines are far longer than the training lines (up "
                        f"to {longest:g} characters; {shown}): the model was never taught to write that many.")
    return messages


def warn_inputs(config, images: Sequence = (), texts: Sequence[str] = (), names: Sequence[str] | None = None):
    """Log (and return) out-of-range warnings for a model whose config carries training ranges; models trained
    before ranges were recorded, or elsewhere, get no check."""
    ranges = getattr(config, CONFIG_KEY, None)
    if not ranges:
        return []
    sizes = []
    for image in images:
        try:
            sizes.append(_size(image))
        except OSError:  # unreadable: the reader reports it; not an aspect problem
            sizes.append(None)
    messages = out_of_range(ranges, sizes, texts, [str(n) for n in names] if names is not None else None)
    for message in messages:
        logger.warning(message)
    return messages
