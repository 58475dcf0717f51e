"""Ablation grids: run one recipe under many overrides with the same seed and budget, tabulate test CER/WER.

A grid file (YAML)::

    recipe: recipes/quickstart/lail.yaml     # the base run; its seed and max_steps are every cell's
    output_dir: outputs/ablation-quickstart
    overrides: {max_steps: 1500}             # applied to every cell
    grid:                                    # the cartesian product of these becomes cells
      lail_layers: [[1], [2], [1, 2]]
      lail_alpha: [0.25, 0.5]
    cells:                                   # extra named cells
      - {name: baseline, lail: false}
      - {name: low-data-lail, synthetic_train_samples: 1000}

Each cell runs ``recipes/finetune.py`` in its own process (``launcher`` decides how: plain python by default,
``accelerate launch`` on GPUs), writes to ``<output_dir>/<cell>/``, and is skipped when its
``test_results.json`` already exists, so an interrupted grid resumes.
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

FINETUNE = Path(__file__).resolve().parents[1] / "recipes" / "finetune.py"
BUDGET_KEYS = ("seed", "max_steps", "num_train_epochs")


@dataclass
class Cell:
    name: str
    overrides: dict = field(default_factory=dict)


@dataclass
class Grid:
    recipe: str
    output_dir: str
    cells: list[Cell]
    launcher: str = sys.executable

    @classmethod
    def from_file(cls, path: str | Path) -> "Grid":
        spec = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(spec) - {"recipe", "output_dir", "overrides", "grid", "cells", "launcher"})
        if unknown or "recipe" not in spec or "output_dir" not in spec:
            raise ValueError(f"Grid {path}: needs 'recipe' and 'output_dir'; unknown keys: {unknown}")
        common = spec.get("overrides") or {}
        grid = spec.get("grid")
        cells = [Cell(cell_name(values), {**common, **values}) for values in expand(grid)] if grid else []
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
        return cls(spec["recipe"], spec["output_dir"], cells, spec.get("launcher", sys.executable))


def expand(grid: dict) -> list[dict]:
    """Cartesian product of a ``{key: [values]}`` mapping, in the given key order."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def cell_name(values: dict) -> str:
    def fmt(value):
        if isinstance(value, (list, tuple)):
            return "-".join(map(str, value))
        return str(value)

    name = "_".join(f"{key.removeprefix('lail_')}={fmt(value)}" for key, value in values.items()) or "base"
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


def command(grid: Grid, cell: Cell) -> list[str]:
    out = Path(grid.output_dir) / cell.name
    return [*shlex.split(grid.launcher), str(FINETUNE), "--config", grid.recipe, *to_flags(cell.overrides),
            "--output_dir", str(out)]


def run_grid(grid: Grid, dry_run: bool = False, shard: tuple[int, int] = (0, 1)) -> list[dict]:
    """Run (or collect) every cell; ``shard=(k, n)`` runs only cells k, k+n, ... so n processes can share a grid
    (a final unsharded call then only collects)."""
    rows = []
    index, count = shard
    for cell in grid.cells[index::count]:
        out = Path(grid.output_dir) / cell.name
        results = out / "test_results.json"
        cmd = command(grid, cell)
        if dry_run:
            print(shlex.join(cmd))
            continue
        if not results.is_file():
            print(f"[ablation] {cell.name}: {shlex.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True)
        train = out / "train_results.json"  # step time and peak memory, when the run wrote them
        rows.append({"cell": cell.name, **cell.overrides, **json.loads(results.read_text()),
                     **(json.loads(train.read_text()) if train.is_file() else {})})
    return rows


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    metrics = ["test_cer", "test_wer"]
    header = ["cell", *columns, "test CER", "test WER", "s/step", "peak GiB"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        steps = row.get("max_steps") or row.get("global_step")
        step_time = f"{row['train_runtime'] / steps:.3f}" if "train_runtime" in row and steps else ""
        memory = f"{row['peak_memory_gib']:.2f}" if "peak_memory_gib" in row else ""
        cells = [row["cell"], *(json.dumps(row.get(c, "")) if c in row else "" for c in columns),
                 *(f"{row[m]:.2%}" for m in metrics), step_time, memory]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4))
    names = [row["cell"] for row in rows]
    ax.bar(range(len(rows)), [100 * row["test_cer"] for row in rows], color="#4C72B0")
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test CER (%)")
    ax.set_title("Ablation: held-out test CER per cell (lower is better)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(grid: Grid, rows: list[dict], grid_file: str) -> Path:
    out = Path(grid.output_dir)
    columns = list(dict.fromkeys(key for cell in grid.cells for key in cell.overrides))
    report = out / "ablation.md"
    report.write_text(f"# Ablation: `{grid.recipe}`\n\nCommand: `python recipes/ablate.py --grid {grid_file}`\n\n"
                      + markdown_table(rows, columns) + "\n![test CER per cell](ablation.png)\n")
    plot(rows, out / "ablation.png")
    return report
