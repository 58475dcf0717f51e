"""Command-line parsing: one YAML recipe per run, with CLI flags overriding it (``--max_steps 5``)."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .configs import DataArguments, ModelArguments, TrainingArguments
from .lail.config import LailArguments
from .models.adapters import PeftArguments

NULLS = ("null", "None", "~")  # YAML's spellings of None, also accepted on the command line


def _may_be_none(cls, name: str) -> bool:
    # The declared annotation: HfArgumentParser rewrites ``field.type`` of Optional fields without the None.
    for klass in cls.__mro__:
        annotation = inspect.get_annotations(klass).get(name)
        if annotation is not None:
            return "None" in str(annotation) or "Optional" in str(annotation)
    return False


def _nulls_to_none(parsed):
    """``--test_split null`` means what ``test_split: null`` means in the YAML: no value (argparse keeps the
    string). Only for fields declared Optional; ``__post_init__`` checks run again on the result."""
    changed = {f.name: None for f in dataclasses.fields(parsed)
               if f.init and getattr(parsed, f.name) in NULLS and _may_be_none(type(parsed), f.name)}
    return dataclasses.replace(parsed, **changed) if changed else parsed


class RecipeParser(HfArgumentParser):
    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        """Parse ``--config recipe.yaml`` plus flags. Unknown YAML keys or flags raise, naming them."""
        args = list(sys.argv[1:] if args is None else args)
        if "--config" in args:
            at = args.index("--config")
            if at + 1 >= len(args):
                raise ValueError("--config needs a path to a YAML recipe")
            config_path = Path(args[at + 1])
            del args[at : at + 2]
            self.set_defaults(**self._read_recipe(config_path))
        # argparse converts string defaults with each field's type, so YAML's "2e-5" (a string) becomes a float.
        return tuple(_nulls_to_none(parsed) for parsed in
                     self.parse_args_into_dataclasses(args=args, look_for_args_file=False))

    def _read_recipe(self, path: Path) -> dict:
        if not path.is_file():
            raise FileNotFoundError(f"Recipe {path} does not exist")
        recipe = yaml.safe_load(path.read_text()) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"Recipe {path} must be a mapping of argument names to values")
        known = {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise ValueError(f"Unknown keys in recipe {path}: {', '.join(unknown)}. "
                             "Run with --help to list the valid arguments.")
        return recipe


def parse_recipe(argv: list[str] | None = None) -> tuple:
    """The arguments of a training run, ``(model, data, training, lail, peft)``, from ``--config recipe.yaml`` plus
    flags (``sys.argv`` when ``argv`` is None)."""
    parser = RecipeParser((ModelArguments, DataArguments, TrainingArguments, LailArguments, PeftArguments))
    return parser.parse_args_and_config(argv)
