"""``trocr-lail``: predict, evaluate, export, push. Each subcommand is an ``add_<name>`` function that declares
its arguments and sets ``run``; ``SUBCOMMANDS`` at the bottom is the one place that lists them."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path


def _generation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch_size", type=int, default=8, help="Lines per forward pass (default 8).")
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size (default: the model's config).")
    parser.add_argument("--max_length", type=int, default=None, help="Max tokens (default: the model's config).")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, or auto (default).")
    parser.add_argument("--no_progress", action="store_true", help="No progress bar.")


def _reader(args):
    from .inference import LineReader

    return LineReader.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)


# --- predict -------------------------------------------------------------------------------------------------
def add_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Exported model dir (or Hub id) with its processor.")
    parser.add_argument("inputs", nargs="+", help="Image files, folders of images, or globs ('scans/**/*.png').")
    parser.add_argument("--output", default=None,
                        help="Write results to this .jsonl or .csv file (columns file, text) instead of stdout.")
    _generation_args(parser)
    parser.set_defaults(run=run_predict)


def run_predict(args) -> int:
    from .inference import collect_image_paths, load_image
    from .ranges import warn_inputs

    paths = collect_image_paths(args.inputs)
    readable, skipped = [], []
    for path in paths:  # decode up front: a bad file is named and skipped, not a crash after an hour of reading
        try:
            load_image(path)
            readable.append(path)
        except Exception as err:  # noqa: BLE001 - PIL raises many types for unreadable files
            skipped.append(path)
            print(f"skipping {path}: not a readable image ({type(err).__name__}: {err})", file=sys.stderr)
    reader = _reader(args)
    warn_inputs(reader.model.config, readable, names=readable)
    texts = reader.read(readable, progress=not args.no_progress, num_beams=args.num_beams,
                        max_length=args.max_length)
    rows = [{"file": str(path), "text": text} for path, text in zip(readable, texts)]
    if args.output:
        _write_rows(Path(args.output), rows)
        print(f"wrote {len(rows)} lines to {args.output}", file=sys.stderr)
    else:
        for row in rows:
            print(f"{row['file']}\t{row['text']}")
    if skipped:
        print(f"{len(skipped)} of {len(paths)} files skipped (unreadable)", file=sys.stderr)
    return 0


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["file", "text"])
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix.lower() == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        raise ValueError(f"--output {path}: use a .jsonl or .csv file name")


# --- evaluate ------------------------------------------------------------------------------------------------
def add_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Exported model dir (or Hub id) with its processor.")
    parser.add_argument("--config", default=None, help="Recipe YAML to take the data settings from.")
    parser.add_argument("--split", default="test", help="Split to evaluate (default test).")
    parser.add_argument("--report_dir", required=True, help="Folder for report.md, report.html, metrics.json.")
    parser.add_argument("--num_worst", type=int, default=20, help="Worst lines shown in the report.")
    _generation_args(parser)
    parser.epilog = ("Data flags are the recipe's: --synthetic true, --data_dir DIR, --dataset_name ID, "
                     "--max_eval_samples N, ... (they override --config).")
    parser.set_defaults(run=run_evaluate, allow_extra=True)


def run_evaluate(args, extra: list[str]) -> int:
    import dataclasses

    import yaml
    from transformers import HfArgumentParser

    from .configs import DataArguments
    from .evaluation import evaluate_model

    parser = HfArgumentParser(DataArguments)
    if args.config:  # a training recipe: only its data settings matter here
        recipe = yaml.safe_load(Path(args.config).read_text()) or {}
        parser.set_defaults(**{f.name: recipe[f.name] for f in dataclasses.fields(DataArguments) if f.name in recipe})
    (data_args,) = parser.parse_args_into_dataclasses(args=extra, look_for_args_file=False)
    metrics = evaluate_model(_reader(args), data_args, args.split, args.report_dir, batch_size=args.batch_size,
                             progress=not args.no_progress, model_name=args.model,
                             num_worst=args.num_worst, num_beams=args.num_beams, max_length=args.max_length)
    print(f"CER {metrics['cer']:.2%}  WER {metrics['wer']:.2%}  on {metrics['lines']} lines of '{args.split}' "
          f"(beams {metrics['num_beams']}); report: {Path(args.report_dir) / 'report.html'}")
    return 0


# --- export --------------------------------------------------------------------------------------------------
def add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="Training output dir or checkpoint-N dir (plain or LAIL model).")
    parser.add_argument("output", help="Folder for the plain VisionEncoderDecoder model and processor.")
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size to store (default: checkpoint's).")
    parser.add_argument("--max_length", type=int, default=None, help="Max length to store (default: checkpoint's).")
    parser.set_defaults(run=run_export)


def run_export(args) -> int:
    from transformers import TrOCRProcessor, VisionEncoderDecoderModel

    from .export import export_model
    from .loading import set_special_tokens

    checkpoint = Path(args.checkpoint)
    processor_dir = checkpoint if (checkpoint / "tokenizer_config.json").is_file() else checkpoint.parent
    processor = TrOCRProcessor.from_pretrained(processor_dir)
    # Loaded as the plain class: LAIL connector weights are left out (with a warning), which is the point.
    model = VisionEncoderDecoderModel.from_pretrained(checkpoint, use_safetensors=True)
    set_special_tokens(model, processor.tokenizer)
    generation = model.generation_config
    path = export_model(model, processor, args.output, num_beams=args.num_beams or generation.num_beams or 1,
                        max_length=args.max_length or generation.max_length)
    print(f"exported plain model to {path}")
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
    parser.set_defaults(run=run_push)


def run_push(args) -> int:
    from .hub import prepare_upload, push

    if bool(args.output_dir) == bool(args.folder):
        raise SystemExit("trocr-lail push: give either OUTPUT_DIR or --folder")
    folder = Path(args.folder) if args.folder else prepare_upload(args.output_dir, args.hub_model_id,
                                                                  lail_sidecar=not args.no_lail_sidecar)
    if args.dry_run:
        print(f"dry run: {folder} holds exactly what would be pushed to {args.hub_model_id}")
        return 0
    print(push(folder, args.hub_model_id, private=not args.public, revision=args.revision))
    return 0


def add_validate(parser: argparse.ArgumentParser) -> None:
    from .data.validate import add_arguments, run

    add_arguments(parser)
    parser.set_defaults(run=lambda args, extra: run(argparse.Namespace(**vars(args), overrides=extra)),
                        allow_extra=True)


def add_render(parser: argparse.ArgumentParser) -> None:
    from .data.sheet import add_arguments, run

    add_arguments(parser)
    parser.set_defaults(run=run)


SUBCOMMANDS = {
    "predict": (add_predict, "Read text lines from images (files, folders, globs) -> stdout, JSONL or CSV."),
    "evaluate": (add_evaluate, "CER/WER of a model on a dataset split, with a Markdown + HTML report."),
    "export": (add_export, "Training checkpoint -> plain VisionEncoderDecoder model dir."),
    "validate": (add_validate, "Check a recipe's dataset up front (images, text, tokenizer, lengths); exit 1 if bad."),
    "push": (add_push, "Push an exported model, its card and the lail/ sidecar to the Hub (private by default)."),
    "render": (add_render, "Contact sheet of the synthetic lines a recipe renders (--sheet out.png)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trocr-lail", description="TrOCR (+LAIL) line recognition toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, help_text) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    args, extra = build_parser().parse_known_args(argv)
    if getattr(args, "allow_extra", False):
        return args.run(args, extra)
    if extra:
        raise SystemExit(f"trocr-lail {args.command}: unrecognized arguments: {' '.join(extra)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
