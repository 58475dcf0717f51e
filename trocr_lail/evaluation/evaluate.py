"""Evaluate a model on one dataset split: batched reading (the same code as ``predict``), corpus CER/WER, how
the line confidences track correctness (``confidence.py``), a Markdown + HTML report and a JSON file of the
metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets

from ..configs import DataArguments
from ..data.sources import PageScan, load_split, metadata_scans, require_clean_metadata
from ..inference.ranges import warn_inputs
from ..inference.reader import LineReader
from .confidence import calibration
from .metrics import cer, wer
from .report import write_report


def image_sources(images: list) -> list[str | None]:
    """Each row's image file as the dataset records it (local folders: the full path; Hub datasets: the file name
    they were built from, if any), None for images with no file (synthetic lines, embedded bytes); from the
    undecoded ``image`` column."""
    return [value.get("path") if isinstance(value, dict) else None for value in images]


def evaluate_model(reader: LineReader, data_args: DataArguments, split: str, report_dir: str | Path,
                   batch_size: int = 8, progress: bool = False, model_name: str = "model", num_worst: int = 20,
                   **generate_kwargs) -> dict:
    dataset = load_split(data_args, split)
    require_clean_metadata(data_args, split)
    # Undecoded: the reader decodes through the training loader (same size, 16-bit and frame rules).
    images = list(dataset.cast_column("image", datasets.Image(decode=False))["image"])
    references = list(dataset["text"])
    warn_inputs(reader.model.config, images, references)
    start = time.perf_counter()
    scored = reader.read(images, batch_size=batch_size, progress=progress, scored=True, **generate_kwargs)
    seconds = time.perf_counter() - start
    predictions, confidences = [text for text, _ in scored], [conf for _, conf in scored]
    beams = generate_kwargs.get("num_beams") or reader.model.generation_config.num_beams or 1
    metrics = {"cer": cer(references, predictions), "wer": wer(references, predictions), "lines": len(references),
               "split": split, "num_beams": beams, "lines_per_second": len(references) / seconds,
               **calibration(confidences, references, predictions)}
    report_dir = Path(report_dir)
    write_report(report_dir, f"Evaluation of {model_name} on split '{split}'", metrics, images, references,
                 predictions, num_worst=num_worst, confidences=confidences)
    scan = metadata_scans(data_args, [split]).get(split) if data_args.data_dir else None
    lines = scan.rows[: len(references)] if isinstance(scan, PageScan) else None  # (xml, line id, image, order)
    if lines:
        metrics["pages"] = page_cers(lines, references, predictions)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (report_dir / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for row, (source, truth, prediction) in enumerate(zip(image_sources(images), references, predictions)):
            record = {"row": row, "image": source, "text": truth, "prediction": prediction,
                      "confidence": round(confidences[row], 6)}
            if lines:
                record.update(page=lines[row][0], line_id=lines[row][1])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return metrics


def page_cers(lines: list[tuple], references: list[str], predictions: list[str]) -> dict[str, dict]:
    """CER and line count per page file, for splits of PAGE/ALTO pages (corpus CER over the page's lines)."""
    pages: dict[str, list[int]] = {}
    for row, line in enumerate(lines):
        pages.setdefault(line[0], []).append(row)
    return {page: {"cer": cer([references[r] for r in rows], [predictions[r] for r in rows]), "lines": len(rows)}
            for page, rows in pages.items()}
