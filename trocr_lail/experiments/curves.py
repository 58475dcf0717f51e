"""CER against one grid key (``curve:`` in a grid file, e.g. the training-set size), one line per variant.

At each value of the key, a variant's lines are pooled over the grid's other keys (the target writers) and its
seeds: the corpus CER is edits over characters of all of them, with a percentile bootstrap interval over test lines
(each line's edits summed over its seeds). A partial grid pools, at each value, only the runs (grid point and
seed) that every variant with results there has, so that no point of the curve compares writers against others.
Each non-baseline variant is also compared with the baseline variant on the same lines, seed for seed: the pooled
CER difference with its paired interval. Sample efficiency, the claim of the research notes, is whether the
variants' curves part where lines are few.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ablation import Cell, Grid, baseline_of
from .uncertainty import bootstrap_ratio

BRANCH_FIELDS = {"": "decoder", "_ctc": "CTC head"}


def _sites(grid: Grid, edits: dict, value) -> dict[str, dict[tuple, Cell]]:
    """Per variant: its cells' runs at ``value`` that have results, keyed by (grid point, seed)."""
    cells = {cell.name: cell for cell in grid.cells}
    sites: dict[str, dict[tuple, Cell]] = {}
    for name, seed in edits:
        cell = cells.get(name)
        if cell is not None and cell.variant is not None and cell.overrides.get(grid.curve) == value:
            sites.setdefault(cell.variant, {})[(cell.point, seed)] = cell
    return sites


def _pooled(grid: Grid, edits: dict, variant: str, value):
    """Per line of every run of ``variant`` at ``value`` that every variant with results there has: edits summed
    over seeds, characters times seeds, and the same for the baseline variant's cell on those lines (None where a
    cell has no baseline runs). ``edits``: each run's (edits, characters) per line, by (cell name, seed)."""
    sites = _sites(grid, edits, value)
    if variant not in sites:
        return None
    common = set.intersection(*(set(runs) for runs in sites.values()))
    own, base, weight = [], [], []
    for point, seed in sorted(common, key=str):
        cell = sites[variant][(point, seed)]
        found = edits[(cell.name, seed)]
        baseline = baseline_of(grid, cell)
        paired = None if baseline is None else edits.get((baseline.name, seed))
        own.append(found[0])
        weight.append(found[1])
        base.append(None if paired is None else paired[0])
    return (own, base, weight) if own else None


def curve_rows(grid: Grid, rows: list[dict], edits_of, num_samples: int = 10000) -> list[dict]:
    """One row per (variant, value of the curve key, branch): corpus CER and interval, runs pooled; for a
    non-baseline variant also the paired difference from the baseline variant over the runs both have."""
    values = list(dict.fromkeys(cell.overrides.get(grid.curve) for cell in grid.cells if cell.variant))
    variants = list(dict.fromkeys(cell.variant for cell in grid.cells if cell.variant))
    out = []
    for branch, name in BRANCH_FIELDS.items():
        # Each run's test lines read once per branch, for every variant and value that pools or pairs them.
        line_edits = {(row["cell"], row.get("seed")): found for row in rows
                      if (found := edits_of(row["run_dir"], "test", branch)) is not None}
        for variant in variants:
            for value in values:
                pooled = _pooled(grid, line_edits, variant, value)
                if pooled is None:
                    continue
                own, base, weight = pooled
                edits, chars = np.concatenate(own), np.concatenate(weight)
                row = {"variant": variant, grid.curve: value, "branch": name, "runs": len(own),
                       "cer": edits.sum() / chars.sum(), "interval": bootstrap_ratio(edits, chars, num_samples)}
                pairs = [(a, b, w) for a, b, w in zip(own, base, weight) if b is not None]
                if pairs:
                    diff = np.concatenate([a - b for a, b, _ in pairs])
                    paired_chars = np.concatenate([w for _, _, w in pairs])
                    row.update(difference=diff.sum() / paired_chars.sum(), paired_runs=len(pairs),
                               difference_interval=bootstrap_ratio(diff, paired_chars, num_samples))
                out.append(row)
    return out


def curve_table(rows: list[dict], key: str) -> str:
    lines = [f"| branch | variant | {key} | runs | CER [95% interval] | vs baseline, paired (pp) [95% interval] |",
             "|" + " --- |" * 6]
    for row in rows:
        low, high = row["interval"]
        versus = ""
        if "difference" in row:
            d_low, d_high = row["difference_interval"]
            versus = (f"{row['difference'] * 100:+.2f} [{d_low * 100:+.2f}, {d_high * 100:+.2f}] "
                      f"({row['paired_runs']} runs)")
        lines.append(f"| {row['branch']} | {row['variant']} | {row[key]} | {row['runs']} | "
                     f"{row['cer'] * 100:.2f}% [{low * 100:.2f}, {high * 100:.2f}] | {versus} |")
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict], key: str, path: Path) -> bool:
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    branches = list(dict.fromkeys(row["branch"] for row in rows))
    fig, axes = plt.subplots(1, len(branches), figsize=(5 * len(branches), 4), squeeze=False)
    for axis, branch in zip(axes[0], branches):
        for variant in dict.fromkeys(row["variant"] for row in rows):
            points = sorted((row[key], row["cer"] * 100, *(v * 100 for v in row["interval"]))
                            for row in rows if row["branch"] == branch and row["variant"] == variant)
            x, y, low, high = (np.array(column) for column in zip(*points))
            axis.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=variant)
        axis.set_xscale("log")
        axis.set_xlabel(key)
        axis.set_ylabel("test CER (%)")
        axis.set_title(f"{branch}: runs pooled, 95% bootstrap interval over lines", fontsize=9)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
