"""``trocr-lail``: predict, evaluate, export, push, validate, render. Each subcommand is an ``add_<name>`` function
that declares its arguments and sets ``run``; ``SUBCOMMANDS`` at the bottom is the one place that lists them."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path

from .cli_data import add_render, add_validate
from .distributed import close_process_group

OUTPUT_SUFFIXES = (".jsonl", ".csv")
DEBUG_FLAG = "--debug"


def _generation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch_size", type=int, default=8, help="Lines per forward pass (default 8).")
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size (default: the model's config).")
    parser.add_argument("--max_length", type=int, default=None, help="Max tokens (default: the model's config).")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, or auto (default).")
    parser.add_argument("--no_progress", action="store_true", help="No progress bar.")
    parser.add_argument("--image_resample", default=None, choices=["bilinear", "bicubic", "nearest", "lanczos"],
                        help="Resize filter (default: the processor's; the TrOCR paper resized bicubic).")
    parser.add_argument("--strict_safetensors", action="store_true",
                        help="Refuse pickled .bin weights (default: load them weights-only, which runs no code).")


def _reader(args):
    from .inference.reader import LineReader

    return LineReader.from_pretrained(args.model, device=args.device, batch_size=args.batch_size,
                                      strict_safetensors=args.strict_safetensors, image_resample=args.image_resample)


# --- predict -------------------------------------------------------------------------------------------------
def add_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Exported model dir (or Hub id) with its processor.")
    parser.add_argument("inputs", nargs="+", help="Image files, folders of images, or globs ('scans/**/*.png'); "
                                                  "or folders of page images with PAGE-XML / ALTO files.")
    parser.add_argument("--output", default=None,
                        help="Write results to this .jsonl or .csv file (columns file, text) instead of stdout; for "
                             "page folders, the folder for copies of their XML files with the recognised text.")
    parser.add_argument("--confidence", action="store_true",
                        help="Add each line's confidence (column conf: the geometric mean of its tokens' "
                             "probabilities; always written into page files); JSONL output also gets tokens, "
                             "token_conf and char_conf.")
    parser.add_argument("--confidence_temperature", type=float, default=1.0,
                        help="Divide the score rows by T before taking the token probabilities (default 1; "
                             "`evaluate --fit_temperature_on validation` fits one). The text does not change.")
    _generation_args(parser)
    parser.set_defaults(run=run_predict)


def run_predict(args) -> int:
    from .data.images import BadImage, frame_count
    from .data.pages.lines import holds_pages
    from .inference.ranges import warn_inputs
    from .inference.reader import collect_image_paths, load_image

    if any(Path(item).is_dir() and holds_pages(Path(item)) for item in args.inputs):
        return _predict_pages(args)
    if args.output and Path(args.output).suffix.lower() not in OUTPUT_SUFFIXES:  # before an hour of reading
        raise ValueError(f"--output {args.output}: use a .jsonl or .csv file name")
    check_model_source(args.model)
    paths = collect_image_paths(args.inputs)
    readable, skipped = [], []
    for path in paths:  # decode up front: a bad file is named and skipped, not a crash after an hour of reading
        try:
            frames = frame_count(load_image(path))  # the loader training and validation use: same rules
        except BadImage as err:
            skipped.append(path)
            print(f"skipping {err}", file=sys.stderr)
            continue
        if frames > 1:
            print(f"{path}: {frames} frames; reading the first", file=sys.stderr)
        readable.append(path)
    if not readable:
        print(f"trocr-lail predict: no image could be read ({len(paths)} file(s), all skipped); nothing written",
              file=sys.stderr)
        return 1
    reader = _reader(args)
    warn_inputs(reader.model.config, readable, names=readable)
    scores = {"confidence_temperature": args.confidence_temperature} if args.confidence else {}
    results = reader.read(readable, progress=not args.no_progress, num_beams=args.num_beams,
                          max_length=args.max_length, scored=args.confidence, **scores)
    detailed = bool(args.output) and Path(args.output).suffix.lower() == ".jsonl"
    rows = [confidence_row(path, result, detailed) if args.confidence else {"file": str(path), "text": result}
            for path, result in zip(readable, results)]
    if args.output:
        _write_rows(Path(args.output), rows)
        print(f"wrote {len(rows)} lines to {args.output}", file=sys.stderr)
    else:
        for row in rows:
            print("\t".join(str(value) for value in row.values()))
    if skipped:
        print(f"{len(skipped)} of {len(paths)} files skipped (unreadable)", file=sys.stderr)
    return 0


def confidence_row(path: Path, line: dict, detailed: bool) -> dict:
    """A predict row with ``LineReader.read_scored``'s scores (4 decimals); the per-token and per-character lists
    only where the format has room for them (JSONL), so CSV and stdout keep their columns."""
    row = {"file": str(path), "text": line["text"], "conf": round(line["conf"], 4)}
    if detailed:
        row.update(tokens=line["tokens"], token_conf=[round(c, 4) for c in line["token_conf"]],
                   char_conf=[round(c, 4) for c in line["char_conf"]])
    return row


def _predict_pages(args) -> int:
    """Page folders in, copies of their page files with the recognised text out (never the inputs)."""
    from .inference.pages import read_pages

    if not args.output or Path(args.output).suffix.lower() in OUTPUT_SUFFIXES:
        raise ValueError("page folders (PAGE-XML / ALTO) need --output OUT_DIR, a folder for the copies of their "
                         "XML files with the recognised text")
    folders = [Path(item) for item in args.inputs]
    if not all(folder.is_dir() for folder in folders):
        raise ValueError(f"give either page folders or line images, not both: {args.inputs}")
    check_model_source(args.model)
    reader, problems = _reader(args), []
    for folder in folders:
        out = Path(args.output) / folder.name if len(folders) > 1 else Path(args.output)
        result = read_pages(reader, folder, out, progress=not args.no_progress, num_beams=args.num_beams,
                            max_length=args.max_length, confidence_temperature=args.confidence_temperature)
        problems += result.problems
        print(f"{folder}: read {result.lines} lines of {len(result.written)} page file(s) into {out}",
              file=sys.stderr)
    for file, line_id, message in problems:
        print(f"skipped {file}{f' line {line_id}' if line_id else ''}: {message}", file=sys.stderr)
    return 0


def check_model_source(model: str) -> None:
    """A model argument that is neither a saved model folder nor a Hub id fails here, in words, instead of as
    ``HFValidationError: Repo id must be ...`` from deep inside ``from_pretrained``."""
    from .preflight import model_source_problem

    if problem := model_source_problem("MODEL", model):
        raise FileNotFoundError(problem)


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["file", "text"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# --- evaluate ------------------------------------------------------------------------------------------------
def add_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Exported model dir (or Hub id) with its processor.")
    parser.add_argument("--config", default=None, help="Recipe YAML to take the data settings from.")
    parser.add_argument("--split", default="test", help="Split to evaluate (default test).")
    parser.add_argument("--report_dir", required=True, help="Folder for report.md, report.html, metrics.json.")
    parser.add_argument("--num_worst", type=int, default=20, help="Worst lines shown in the report.")
    parser.add_argument("--fit_temperature_on", default=None, metavar="SPLIT",
                        help="Also fit a confidence temperature on this split (e.g. validation) and report the "
                             "evaluated split's ECE at it (for predict --confidence_temperature).")
    _generation_args(parser)
    parser.epilog = ("Data flags are the recipe's: --synthetic true, --data_dir DIR, --dataset_name ID, "
                     "--max_eval_samples N, ... (they override --config).")
    parser.set_defaults(run=run_evaluate, allow_extra=True)


def run_evaluate(args, extra: list[str]) -> int:
    import dataclasses

    import yaml
    from transformers import HfArgumentParser

    from .configs import DataArguments
    from .evaluation.evaluate import evaluate_model

    parser = HfArgumentParser(DataArguments)
    if args.config:  # a training recipe: only its data settings matter here
        recipe = yaml.safe_load(Path(args.config).read_text()) or {}
        parser.set_defaults(**{f.name: recipe[f.name] for f in dataclasses.fields(DataArguments) if f.name in recipe})
    (data_args,) = parser.parse_args_into_dataclasses(args=extra, look_for_args_file=False)
    check_model_source(args.model)
    metrics = evaluate_model(_reader(args), data_args, args.split, args.report_dir, batch_size=args.batch_size,
                             progress=not args.no_progress, model_name=args.model,
                             num_worst=args.num_worst, num_beams=args.num_beams, max_length=args.max_length,
                             fit_temperature_on=args.fit_temperature_on)
    print(f"CER {metrics['cer']:.2%}  WER {metrics['wer']:.2%}  on {metrics['lines']} lines of '{args.split}' "
          f"(beams {metrics['num_beams']}); report: {Path(args.report_dir) / 'report.html'}")
    if "confidence_temperature" in metrics:
        print(f"confidence ECE {metrics['confidence_ece']:.4f} at temperature 1, "
              f"{metrics['confidence_ece_at_temperature']:.4f} at {metrics['confidence_temperature']:.3g} (fitted on "
              f"{metrics['temperature_fitted_on']}: predict --confidence_temperature)")
    for page, scores in metrics.get("pages", {}).items():
        print(f"  CER {scores['cer']:.2%} on {scores['lines']} lines of {page}")
    return 0


# --- export --------------------------------------------------------------------------------------------------
def add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="Training output dir, checkpoint-N dir (plain or LAIL model) or an export.")
    parser.add_argument("output", help="Folder for the plain VisionEncoderDecoder model and processor (with --onnx: "
                                       "for the ONNX model and processor).")
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size to store (default: checkpoint's).")
    parser.add_argument("--max_length", type=int, default=None, help="Max length to store (default: checkpoint's).")
    parser.add_argument("--onnx", action="store_true",
                        help="Write an ONNX model (encoder, decoder, decoder with past) for ONNX Runtime / optimum's "
                             "ORTModelForVision2Seq. Needs `pip install 'trocr-lail[onnx]'` (transformers 4.57.x). "
                             "A CTC recognizer: one graph, pixel_values -> logits (model.onnx; needs onnx).")
    parser.set_defaults(run=run_export)


def run_export(args) -> int:
    import tempfile

    from transformers import TrOCRProcessor, VisionEncoderDecoderModel

    from .hub.export import ctc_onnx_exporter, export_model, export_onnx, onnx_exporter
    from .models.ctc_families import is_saved_ctc_model, load_ctc_model, load_ctc_processor
    from .models.loading import set_special_tokens

    checkpoint = Path(args.checkpoint)
    processor_dir = checkpoint if (checkpoint / "tokenizer_config.json").is_file() else checkpoint.parent
    ctc = is_saved_ctc_model(str(checkpoint))
    if args.onnx:  # a missing onnx (CTC) or optimum (TrOCR): say so before loading anything
        (ctc_onnx_exporter if ctc else onnx_exporter)()
    if ctc:
        model = load_ctc_model(str(checkpoint), use_safetensors=True)
        processor = load_ctc_processor(processor_dir)
        settings = {}  # a CTC recognizer generates nothing: no beams, no length to store
    else:
        processor = TrOCRProcessor.from_pretrained(processor_dir)
        # Loaded as the plain class: LAIL connector weights are left out (with a warning), which is the point.
        model = VisionEncoderDecoderModel.from_pretrained(checkpoint, use_safetensors=True)
        set_special_tokens(model, processor.tokenizer)
        generation = model.generation_config
        settings = {"num_beams": args.num_beams or generation.num_beams or 1,
                    "max_length": args.max_length or generation.max_length}
    if not args.onnx:
        kind = "CTC recognizer" if ctc else "plain model"
        print(f"exported {kind} to {export_model(model, processor, args.output, **settings)}")
        return 0
    with tempfile.TemporaryDirectory() as plain_dir:
        path = export_onnx(export_model(model, processor, plain_dir, **settings), args.output)
    print(f"exported ONNX model to {path}")
    return 0


# --- push ----------------------------------------------------------------------------------------------------
def add_push(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", nargs="?", default=None,
                        help="Training output dir (with export/); the upload folder is staged in it.")
    parser.add_argument("--folder", default=None, help="Push this already staged folder as is (e.g. a retry).")
    parser.add_argument("--hub_model_id", required=True, help="owner/name on the Hub.")
    parser.add_argument("--public", action="store_true", help="Create the repo public (default: private).")
    parser.add_argument("--revision", default=None, help="Branch to push to (default: main).")
    parser.add_argument("--no_lail_sidecar", action="store_true", help="Leave out lail/ (connectors) on LAIL runs.")
    parser.add_argument("--dry_run", action="store_true", help="Stage the folder and print its path; no upload.")
    parser.add_argument("--license", default=None,
                        help="License id for the card (default: the run's hub_license or its base checkpoint's).")
    parser.set_defaults(run=run_push)


def run_push(args) -> int:
    from .hub.push import prepare_upload, push

    if bool(args.output_dir) == bool(args.folder):
        raise SystemExit("trocr-lail push: give either OUTPUT_DIR or --folder")
    folder = Path(args.folder) if args.folder else prepare_upload(args.output_dir, args.hub_model_id,
                                                                  lail_sidecar=not args.no_lail_sidecar,
                                                                  license_id=args.license)
    if args.dry_run:
        print(f"dry run: {folder} holds exactly what would be pushed to {args.hub_model_id}")
        return 0
    print(push(folder, args.hub_model_id, private=not args.public, revision=args.revision))
    return 0


SUBCOMMANDS = {
    "predict": (add_predict, "Read text lines from images (files, folders, globs) -> stdout, JSONL or CSV."),
    "evaluate": (add_evaluate, "CER/WER of a model on a dataset split, with a Markdown + HTML report."),
    "export": (add_export, "Training checkpoint -> plain VisionEncoderDecoder model dir."),
    "validate": (add_validate, "Check a data folder or a recipe's dataset (images, text, tokenizer, lengths); exit 1 if bad."),
    "push": (add_push, "Push an exported model, its card and the lail/ sidecar to the Hub (private by default)."),
    "render": (add_render, "Contact sheet of the synthetic lines a recipe renders (--sheet out.png)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trocr-lail", description="TrOCR (+LAIL) line recognition toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, help_text) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the input or the settings are wrong" (their messages say what and what to do), as opposed
    to bugs: these print as one message, without a traceback."""
    from .hub.push import PushError
    from .training.nonfinite import NonFiniteLossError

    return ValueError, OSError, NonFiniteLossError, PushError


def run_script(name: str, function, argv: list[str] | None = None) -> int:
    """Run ``function(argv)`` for a command-line entry point: a user error prints ``NAME: error: message`` on
    stderr and returns 2 (a traceback only with ``--debug`` anywhere on the line, or TROCR_LAIL_DEBUG=1); an int
    result is the exit status, anything else means success. A multi-process run ends with its process group closed
    on success only (trocr_lail.distributed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("TROCR_LAIL_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        result = function(argv)
    except user_errors() as err:
        if debug:
            raise
        print(f"{name}: error: {err} (run with {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        return 2
    close_process_group()
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in SUBCOMMANDS), None)
    return run_script(f"trocr-lail {command}" if command else "trocr-lail", _dispatch, argv)


def _dispatch(argv: list[str]) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    args, extra = build_parser().parse_known_args(argv)
    if getattr(args, "allow_extra", False):
        return args.run(args, extra)
    if extra:
        raise SystemExit(f"trocr-lail {args.command}: unrecognized arguments: {' '.join(extra)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
