"""Evaluate a model on one dataset split (TrOCR or CTC recognizer): batched reading (the same code as
``predict``), corpus CER/WER, how the line confidences track correctness (``confidence.py``; optionally with a temperature fitted on another split),
a Markdown + HTML report and a JSON file of the metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets

from ..configs import DataArguments
from ..data.sources import PageScan, load_split, metadata_scans, require_clean_metadata
from ..inference.ranges import warn_inputs
from ..inference.reader import LineReader
from .confidence import TEMPERATURES, calibration, expected_calibration_error, fit_temperature
from .metrics import cer, wer
from .report import write_report


def image_sources(images: list) -> list[str | None]:
    """Each row's image file as the dataset records it (local folders: the full path; Hub datasets: the file name
    they were built from, if any), None for images with no file (synthetic lines, embedded bytes); from the
    undecoded ``image`` column."""
    return [value.get("path") if isinstance(value, dict) else None for value in images]


def split_lines(data_args: DataArguments, split: str) -> tuple[list, list[str]]:
    """A split's images, undecoded (the reader decodes through the training loader: same size, 16-bit and frame
    rules), and their texts."""
    dataset = load_split(data_args, split)
    require_clean_metadata(data_args, split)
    return list(dataset.cast_column("image", datasets.Image(decode=False))["image"]), list(dataset["text"])


def fitted_temperature(reader: LineReader, data_args: DataArguments, split: str, **read_kwargs) -> tuple[float, int]:
    """The confidence temperature fitted on ``split``'s lines (``confidence.fit_temperature``), and their count."""
    images, references = split_lines(data_args, split)
    lines = reader.read(images, scored=True, temperatures=TEMPERATURES, **read_kwargs)
    return fit_temperature([line["conf_at"] for line in lines],
                           [line["text"] == truth for line, truth in zip(lines, references)]), len(lines)


def evaluate_model(reader: LineReader, data_args: DataArguments, split: str, report_dir: str | Path,
                   batch_size: int = 8, progress: bool = False, model_name: str = "model", num_worst: int = 20,
                   fit_temperature_on: str | None = None, **generate_kwargs) -> dict:
    """With ``fit_temperature_on`` (a split, e.g. validation), a confidence temperature is fitted on its lines
    and the ECE of the evaluated split reported at it too; the report and predictions keep temperature 1."""
    images, references = split_lines(data_args, split)
    warn_inputs(reader.model.config, images, references)
    fitted = {}
    if fit_temperature_on:
        temperature, count = fitted_temperature(reader, data_args, fit_temperature_on, batch_size=batch_size,
                                                progress=progress, **generate_kwargs)
        fitted = {"confidence_temperature": temperature, "temperature_fitted_on": f"{fit_temperature_on} "
                                                                                  f"({count} lines)"}
    start = time.perf_counter()
    scored = reader.read(images, batch_size=batch_size, progress=progress, scored=True,
                         temperatures=(fitted["confidence_temperature"],) if fitted else (), **generate_kwargs)
    seconds = time.perf_counter() - start
    predictions, confidences = [line["text"] for line in scored], [line["conf"] for line in scored]
    if fitted:
        fitted["confidence_ece_at_temperature"] = expected_calibration_error(
            [line["conf_at"][0] for line in scored], [p == r for p, r in zip(predictions, references)])
    # A CTC recognizer has no generation config: its best path is what one beam is to a decoder.
    beams = 1 if reader.ctc else generate_kwargs.get("num_beams") or reader.model.generation_config.num_beams or 1
    metrics = {"cer": cer(references, predictions), "wer": wer(references, predictions), "lines": len(references),
               "split": split, "num_beams": beams, "lines_per_second": len(references) / seconds,
               **calibration(confidences, references, predictions), **fitted}
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
