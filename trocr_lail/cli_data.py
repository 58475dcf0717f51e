"""The ``trocr-lail`` commands about data, not models: ``validate`` (check a data folder or a recipe's dataset) and
``render`` (a contact sheet of synthetic lines). ``cli.py`` registers them."""

from __future__ import annotations

import argparse
from pathlib import Path


# --- validate ------------------------------------------------------------------------------------------------
def add_validate(parser: argparse.ArgumentParser) -> None:
    # DIR is not an argparse positional: with --config, recipe overrides (--tiny_patch_size 16 8) would fill it.
    parser.usage = ("%(prog)s DIR [--model MODEL] [--max_target_length N]\n"
                    "       %(prog)s --config RECIPE.yaml [recipe overrides, e.g. --data_dir DIR]")
    parser.add_argument("--config", default=None, help="YAML recipe whose data and model settings to check.")
    parser.add_argument("--model", default=None, help="With DIR: check the text against this model's tokenizer "
                                                        "(exported dir or Hub id). Default: no tokenizer checks.")
    parser.add_argument("--max_target_length", type=int, default=None,
                        help="With DIR: count targets longer than this many tokens (default 128).")
    parser.add_argument("--all_problems", action="store_true", help="Print every problem (default: the first 10).")
    parser.add_argument("--problems_file", default=None,
                        help="Write every problem to this text file, one a line, to work through.")
    parser.epilog = ("DIR is a data folder checked without a recipe: train/ validation/ test/ subfolders, or one "
                     "split, each with metadata.jsonl or metadata.csv (file_name, text), or with page images and "
                     "their PAGE-XML / ALTO files.")
    parser.set_defaults(run=run_validate, allow_extra=True)


def run_validate(args, extra: list[str]) -> int:
    from .data import validate

    if args.config:
        if args.model:
            raise SystemExit("trocr-lail validate: with --config, the recipe names the model "
                             "(or override it: --model_name_or_path MODEL)")
        overrides = [*extra, *(["--max_target_length", str(args.max_target_length)] if args.max_target_length
                               else [])]
        return _validate_recipe(["--config", args.config, *overrides], args.all_problems, args.problems_file)
    if len(extra) != 1 or extra[0].startswith("-"):
        raise SystemExit("trocr-lail validate: give one data folder (trocr-lail validate DIR [--model MODEL]) or "
                         f"a recipe (--config recipe.yaml); got {extra or 'nothing'}")
    from .configs import DataArguments, ModelArguments
    from .data.sources import METADATA_FILES, is_page_folder, load_local_split, metadata_scans

    def is_split(path: Path) -> bool:
        return any((path / meta).is_file() for meta in METADATA_FILES) or is_page_folder(path)

    folder = Path(extra[0])
    root = folder
    split_dirs = {name: folder / name for name in ("train", "validation", "test") if is_split(folder / name)}
    if not split_dirs and is_split(folder):
        split_dirs, root = {folder.name: folder}, folder.parent
    if not split_dirs:
        raise SystemExit(f"trocr-lail validate: {folder} has no {' or '.join(METADATA_FILES)}, and no train/, "
                         "validation/ or test/ subfolder with one")
    tokenizer = None
    if args.model:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=False)
    import datasets

    splits = datasets.DatasetDict({name: load_local_split(path) for name, path in split_dirs.items()})
    max_length = args.max_target_length or ModelArguments.max_target_length
    scans = metadata_scans(DataArguments(data_dir=str(root)), splits)  # bad metadata lines, in the same report
    summary = validate.validate_splits(splits, tokenizer, max_length, scans=scans)
    return validate.report(summary, tokenizer_note="" if tokenizer else
                           "(no --model: tokenizer coverage and target lengths not checked)",
                           all_problems=args.all_problems, problems_file=args.problems_file)


def _validate_recipe(argv: list[str], all_problems: bool = False, problems_file: str | None = None) -> int:
    """Check the splits a recipe loads against its model's tokenizer; 1 if any row is bad."""
    from .data import validate
    from .data.sources import load_splits, metadata_scans
    from .models.loading import load_processor
    from .parser import parse_recipe

    model_args, data_args, *_ = parse_recipe(argv)
    processor = load_processor(model_args)
    splits = load_splits(data_args)
    if model_args.extend_vocabulary and data_args.train_split in splits:  # what the run will add before training
        from .data.stream import split_texts
        from .models.vocabulary import characters_to_add

        added = characters_to_add(processor.tokenizer, split_texts(splits[data_args.train_split]))
        processor.tokenizer.add_tokens(added)
        print(f"extend_vocabulary: training adds {len(added)} character(s) of split '{data_args.train_split}' as "
              f"new tokens{': ' + ''.join(added) if added else ''}")
    summary = validate.validate_splits(splits, processor.tokenizer, model_args.max_target_length,
                                       check_images=data_args.validate_images, scans=metadata_scans(data_args, splits))
    return validate.report(summary, all_problems=all_problems, problems_file=problems_file)


# --- render --------------------------------------------------------------------------------------------------
def add_render(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sheet", required=True, help="Output image (.png).")
    parser.add_argument("--config", default=None,
                        help="Recipe whose synthetic settings (text files, font folder, printed share, ...) to use.")
    parser.add_argument("--split", default="train", choices=("train", "validation", "test"),
                        help="Which split's fonts and text (default train).")
    parser.add_argument("--lines", type=int, default=24, help="Rows on the sheet (default 24).")
    parser.add_argument("--seed", type=int, default=None, help="Rendering seed (default: the recipe's, or 0).")
    parser.add_argument("--start", type=int, default=0, help="First line index (default 0).")
    parser.set_defaults(run=run_render)


def run_render(args) -> int:
    from .data.sheet import contact_sheet
    from .data.synthetic import LineSpec

    if args.config:
        from .data.stream import line_spec
        from .parser import parse_recipe

        spec = line_spec(parse_recipe(["--config", args.config])[1], args.split)
    else:
        spec = LineSpec(split=args.split)
    if args.seed is not None:
        spec = LineSpec(**{**spec.__dict__, "seed": args.seed})
    contact_sheet(spec, args.lines, start=args.start).save(args.sheet)
    print(f"wrote {args.lines} {args.split} lines (seed {spec.seed}) to {args.sheet}")
    return 0
