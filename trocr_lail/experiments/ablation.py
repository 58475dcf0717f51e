"""Ablation grids: run one recipe under many overrides with the same seeds and budget, tabulate test CER/WER.

A grid file (YAML)::

    recipe: recipes/quickstart/lail.yaml     # the base run; its seed and max_steps are every cell's
    output_dir: outputs/ablation-quickstart
    seeds: [42, 43, 44]                      # optional: every cell runs once per seed (default: the recipe's)
    overrides: {max_steps: 1500}             # applied to every cell
    grid:                                    # the cartesian product of these becomes cells
      lail_layers: [[1], [2], [1, 2]]
      lail_alpha: [0.25, 0.5]
    cells:                                   # extra named cells
      - {name: baseline, lail: false}
      - {name: low-data-lail, synthetic_train_samples: 1000}

or, for the same comparison at every point of a grid, ``variants`` (named override sets) crossed with it::

    grid: {synthetic_train_samples: [100, 300]}
    variants:                                # cells baseline_train_samples=100, lail_train_samples=100, ...
      - {name: baseline, lail: false}
      - {name: lail, lail: true}
    curve: synthetic_train_samples           # optional: each variant's CER against this key (curves.py)

Each cell (and seed) runs ``recipes/finetune.py`` in its own process (``launcher`` decides how: plain python by
default, ``accelerate launch`` on GPUs), writes to ``<output_dir>/<cell>/`` (``<output_dir>/<cell>/seed-<s>/``
with ``seeds``), and is skipped when its ``test_results.json`` already exists, so an interrupted grid resumes.
The report (``ablation_report.py``) gives each cell's mean and spread over seeds and each LAIL cell's paired
bootstrap interval against its baseline: the cell with ``lail`` off and the same non-LAIL settings.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FINETUNE = Path(__file__).resolve().parents[2] / "recipes" / "finetune.py"
BUDGET_KEYS = ("seed", "max_steps", "num_train_epochs")


@dataclass
class Cell:
    name: str
    overrides: dict = field(default_factory=dict)
    variant: str | None = None  # the named variant it comes from, when the grid has ``variants``
    point: str | None = None  # with ``variants``: the grid point it runs the variant at (its name without it)


@dataclass
class Grid:
    recipe: str
    output_dir: str
    cells: list[Cell]
    launcher: str = sys.executable
    seeds: list[int] | None = None
    curve: str | None = None  # a grid key: the report plots each variant's CER against it

    def runs(self) -> list[tuple[Cell, int | None]]:
        """Every (cell, seed) to run, seeds innermost; seed None: the recipe's own, in ``<output_dir>/<cell>``."""
        return [(cell, seed) for cell in self.cells for seed in (self.seeds or [None])]

    def run_dir(self, cell: Cell, seed: int | None = None) -> Path:
        out = Path(self.output_dir) / cell.name
        return out if seed is None else out / f"seed-{seed}"

    def recipe_lail(self) -> bool:
        return bool((yaml.safe_load(Path(self.recipe).read_text()) or {}).get("lail", False))

    @classmethod
    def from_file(cls, path: str | Path) -> "Grid":
        spec = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(spec) - {"recipe", "output_dir", "overrides", "grid", "variants", "cells", "launcher",
                                      "seeds", "curve"})
        if unknown or "recipe" not in spec or "output_dir" not in spec:
            raise ValueError(f"Grid {path}: needs 'recipe' and 'output_dir'; unknown keys: {unknown}")
        common = spec.get("overrides") or {}
        grid = spec.get("grid")
        cells = [Cell(cell_name(values), {**common, **values}) for values in expand(grid)] if grid else []
        if spec.get("variants"):
            if not grid:
                raise ValueError(f"Grid {path}: 'variants' are crossed with 'grid', which is missing")
            cells = [Cell(f"{variant['name']}_{cell.name}", {**cell.overrides, **overrides}, variant["name"],
                          cell.name)
                     for cell in cells for variant in spec["variants"] for overrides in [variant_overrides(variant)]]
        for extra in spec.get("cells") or []:
            extra = dict(extra)
            name = extra.pop("name", None) or cell_name(extra)
            cells.append(Cell(name, {**common, **extra}))
        names = [cell.name for cell in cells]
        if len(set(names)) != len(names):
            raise ValueError(f"Grid {path}: cell names repeat: {names}")
        for cell in cells:
            varied = sorted(set(cell.overrides) & set(BUDGET_KEYS) - set(common))
            if varied:
                raise ValueError(f"Grid {path}: cell {cell.name} changes {varied}; every cell must share the seed "
                                 "and budget (set them under 'overrides')")
        seeds = spec.get("seeds")
        if seeds is not None:
            if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds) \
                    or len(set(seeds)) != len(seeds):
                raise ValueError(f"Grid {path}: 'seeds' must be a list of distinct integers, not {seeds!r}")
            if "seed" in common:
                raise ValueError(f"Grid {path}: set either 'seeds' or overrides.seed, not both")
        curve = spec.get("curve")
        if curve is not None and (curve not in (grid or {}) or not spec.get("variants")):
            raise ValueError(f"Grid {path}: 'curve' must name a key of 'grid', with 'variants' to compare")
        return cls(spec["recipe"], spec["output_dir"], cells, spec.get("launcher", sys.executable), seeds, curve)


def variant_overrides(variant: dict) -> dict:
    if not isinstance(variant, dict) or not variant.get("name"):
        raise ValueError(f"Each of 'variants' needs a name: {variant!r}")
    return {key: value for key, value in variant.items() if key != "name"}


def expand(grid: dict) -> list[dict]:
    """Cartesian product of a ``{key: [values]}`` mapping, in the given key order."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def cell_name(values: dict) -> str:
    def fmt(value):
        if isinstance(value, (list, tuple)):
            return "-".join(map(str, value))
        if isinstance(value, str) and "/" in value:  # a font or data path: its file or folder name says enough
            return Path(value).stem
        return str(value)

    name = "_".join(f"{key.removeprefix('lail_').removeprefix('synthetic_')}={fmt(value)}"
                    for key, value in values.items()) or "base"
    return re.sub(r"[^A-Za-z0-9_.=-]", "", name)


def to_flags(overrides: dict) -> list[str]:
    """Recipe overrides as finetune.py flags (lists become several values, booleans true/false)."""
    flags = []
    for key, value in overrides.items():
        if value is None:
            raise ValueError(f"Override {key}: null cannot be passed as a flag; leave the key out instead")
        values = value if isinstance(value, (list, tuple)) else [value]
        flags += [f"--{key}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in values)]
    return flags


def command(grid: Grid, cell: Cell, seed: int | None = None) -> list[str]:
    seed_flags = [] if seed is None else ["--seed", str(seed)]
    return [*shlex.split(grid.launcher), str(FINETUNE), "--config", grid.recipe, *to_flags(cell.overrides),
            *seed_flags, "--output_dir", str(grid.run_dir(cell, seed))]


def run_grid(grid: Grid, dry_run: bool = False, shard: tuple[int, int] = (0, 1),
             collect_only: bool = False, only: str | None = None) -> list[dict]:
    """Run (or collect) every cell and seed, one row each; ``shard=(k, n)`` runs only runs k, k+n, ... of
    ``grid.runs()`` so n processes can share a grid (a final unsharded call then only collects).
    ``collect_only`` runs nothing and leaves out runs without results (a report on a partial grid).
    ``only`` (a regular expression) keeps the cells whose name it matches: a shard chosen by meaning."""
    rows = []
    index, count = shard
    runs = [(cell, seed) for cell, seed in grid.runs() if only is None or re.search(only, cell.name)]
    for cell, seed in runs[index::count]:
        out = grid.run_dir(cell, seed)
        results = out / "test_results.json"
        cmd = command(grid, cell, seed)
        if dry_run:
            print(shlex.join(cmd))
            continue
        if not results.is_file() and collect_only:
            print(f"[ablation] {cell.name}{'' if seed is None else f' seed {seed}'}: no results yet, left out")
            continue
        if not results.is_file():
            print(f"[ablation] {cell.name}{'' if seed is None else f' seed {seed}'}: {shlex.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True)
        train = out / "train_results.json"  # step time and peak memory, when the run wrote them
        rows.append({"cell": cell.name, "seed": seed, "run_dir": str(out), **cell.overrides,
                     **json.loads(results.read_text()), **(json.loads(train.read_text()) if train.is_file() else {}),
                     **steps_run(out)})
    return rows


def steps_run(run_dir: Path) -> dict:
    """Optimizer steps the run took and its best checkpoint's step (early stopping ends runs before max_steps)."""
    state = run_dir / "trainer_state.json"
    if not state.is_file():
        return {}
    state = json.loads(state.read_text())
    return {key: state[key] for key in ("global_step", "best_global_step") if state.get(key) is not None}


def baseline_of(grid: Grid, cell: Cell) -> Cell | None:
    """The baseline a LAIL cell is compared with: the cell with ``lail`` off and the same non-LAIL overrides
    (data size, CTC weight, ...). None for a baseline itself or a cell without one."""
    def is_baseline(candidate: Cell) -> bool:
        return not candidate.overrides.get("lail", grid.recipe_lail())

    def settings(candidate: Cell) -> dict:
        return {k: v for k, v in candidate.overrides.items() if not k.startswith("lail")}

    if is_baseline(cell):
        return None
    matches = [other for other in grid.cells if is_baseline(other) and settings(other) == settings(cell)]
    if len(matches) > 1:
        raise ValueError(f"Cell {cell.name} matches several baselines: {[m.name for m in matches]}")
    return matches[0] if matches else None
