"""Command-line parsing: one YAML recipe per run, with CLI flags overriding it (``--max_steps 5``)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser


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
        return self.parse_args_into_dataclasses(args=args, look_for_args_file=False)

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
