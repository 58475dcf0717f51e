"""The ablation report: per cell, test CER mean and standard deviation over seeds for every test set and branch
(the decoder's, and the greedy CTC head's when the run has one); per LAIL cell, the paired bootstrap interval of
its CER difference from its baseline (``uncertainty.py``), read from the runs' per-line predictions; a plot
with error bars. Written by ``recipes/ablate.py`` as ``ablation.md``, ``ablation.json`` and ``ablation.png``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..evaluation.metrics import line_edits
from ..evaluation.test_sets import predictions_file
from .ablation import Grid, baseline_of
from .uncertainty import Difference, mean_std, paired_bootstrap

METRIC = re.compile(r"^(test(?:_[a-z_]+)?)_cer$")
BRANCHES = {"": "decoder", "_ctc": "CTC"}


def evaluated_sets(rows: list[dict]) -> list[tuple[str, str]]:
    """(test set, branch suffix) pairs found in the rows' metrics: ("test", ""), ("test", "_ctc"), ..."""
    found = {}
    for row in rows:
        for key in row:
            match = METRIC.match(key)
            if match:
                name = match.group(1)
                branch = "_ctc" if name.endswith("_ctc") else ""
                found[(name.removesuffix(branch), branch)] = None
    return sorted(found, key=lambda item: (item[0] != "test", item[0], item[1]))


def summarise(grid: Grid, rows: list[dict]) -> list[dict]:
    """One entry per cell: seeds, and (mean, std) of every test CER and of the cost columns."""
    keys = [f"{name}{branch}_cer" for name, branch in evaluated_sets(rows)] + ["test_wer"]
    summary = []
    for cell in grid.cells:
        runs = [row for row in rows if row["cell"] == cell.name]
        if not runs:
            continue
        entry = {"cell": cell.name, "overrides": cell.overrides, "seeds": [row.get("seed") for row in runs]}
        for key in keys:
            values = [row[key] for row in runs if key in row]
            if values:
                entry[key] = mean_std(values)
        # Over the steps its train_runtime covers: fewer than max_steps when early stopping ended the run, only
        # those after the checkpoint when it was resumed (train_steps_run; runs from before it count all steps).
        per_step = [row["train_runtime"] / steps for row in runs if "train_runtime" in row and
                    (steps := row.get("train_steps_run") or row.get("global_step") or row.get("max_steps"))]
        if per_step:
            entry["seconds_per_step"] = mean_std(per_step)
        for key in ("global_step", "best_global_step"):
            values = [row[key] for row in runs if row.get(key) is not None]
            if values:
                entry[key] = mean_std(values)
        memory = [row["peak_memory_gib"] for row in runs if "peak_memory_gib" in row]
        if memory:
            entry["peak_memory_gib"] = mean_std(memory)
        summary.append(entry)
    return summary


def _edits(run_dir: str, test_set: str, branch: str):
    path = predictions_file(run_dir, test_set)
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    field = "ctc_prediction" if branch == "_ctc" else "prediction"
    if not rows or field not in rows[0]:
        return None
    return line_edits([row["text"] for row in rows], [row[field] for row in rows])


def compare(grid: Grid, rows: list[dict], num_samples: int = 10000) -> list[dict]:
    """Paired bootstrap of every LAIL cell against its baseline, per test set and branch, over the seeds both ran
    (seed s of the cell paired with seed s of the baseline). Cells without per-line predictions are left out."""
    by_run = {(row["cell"], row.get("seed")): row for row in rows}
    comparisons = []
    for cell in grid.cells:
        baseline = baseline_of(grid, cell)
        if baseline is None:
            continue
        seeds = [seed for (name, seed) in by_run if name == cell.name and (baseline.name, seed) in by_run]
        for test_set, branch in evaluated_sets(rows):
            edits_a, edits_b, lengths = [], [], None
            for seed in seeds:
                a = _edits(by_run[(cell.name, seed)]["run_dir"], test_set, branch)
                b = _edits(by_run[(baseline.name, seed)]["run_dir"], test_set, branch)
                if a is None or b is None:
                    break
                if (a[1] != b[1]).any() or (lengths is not None and (a[1] != lengths).any()):
                    raise ValueError(f"{cell.name} and {baseline.name} were tested on different lines "
                                     f"({test_set}, seed {seed}): paired comparison impossible")
                edits_a.append(a[0])
                edits_b.append(b[0])
                lengths = a[1]
            else:
                if seeds:
                    difference = paired_bootstrap(edits_a, edits_b, lengths, num_samples=num_samples)
                    # The interval resamples lines for these seeds; per-seed differences show training noise.
                    per_seed = [float((a.sum() - b.sum()) / max(1, lengths.sum())) for a, b in zip(edits_a, edits_b)]
                    comparisons.append({"cell": cell.name, "baseline": baseline.name, "test_set": test_set,
                                        "branch": BRANCHES[branch], "difference": difference,
                                        "per_seed": per_seed})
    return comparisons


DIAGNOSTICS = (("lail_prefix_info_layer_", "prefix info"), ("lail_prefix_info_mismatched_layer_", "another line's"),
               ("lail_grad_ratio_layer_", "grad ratio"))


def diagnostic_histories(rows: list[dict], marker: str = DIAGNOSTICS[0][0]
                         ) -> dict[str, list[tuple[int | None, list[dict]]]]:
    """Per LAIL cell, each run's seed and its logged entries that carry diagnostics (a key starting with
    ``marker``: by default the training entries; ``eval_...`` for the evaluations')."""
    histories: dict[str, list[tuple[int | None, list[dict]]]] = {}
    for row in rows:
        state = Path(row["run_dir"]) / "trainer_state.json"
        if state.is_file():
            history = [entry for entry in json.loads(state.read_text())["log_history"]
                       if any(key.startswith(marker) for key in entry)]
            if history:
                histories.setdefault(row["cell"], []).append((row.get("seed"), history))
    return histories


def _taps(history: list[dict], prefix: str = DIAGNOSTICS[0][0]) -> list[str]:
    return sorted({key[len(prefix):] for entry in history for key in entry if key.startswith(prefix)}, key=int)


def diagnostics_table(rows: list[dict]) -> str:
    """LAIL runs' training diagnostics (``lail/trainer.py``) at their first, middle and last logged step, mean
    over seeds: prefix information (nats/token), the same with another line's prefix, LAIL/recognition gradient."""
    histories = diagnostic_histories(rows)
    if not histories:
        return ""
    lines = ["| cell | tap | step | " + " | ".join(title for _, title in DIAGNOSTICS) + " |",
             "|" + " --- |" * (3 + len(DIAGNOSTICS))]
    for cell, seeded in histories.items():
        runs = [history for _, history in seeded]
        taps = _taps(runs[0])
        count = min(len(history) for history in runs)
        for tap in taps:
            for position in sorted({0, count // 2, count - 1}):
                values = []
                for prefix, _ in DIAGNOSTICS:
                    found = [h[position][prefix + tap] for h in runs if prefix + tap in h[position]]
                    values.append(_pm(mean_std(found), 1.0, 2, "") if found else "")
                lines.append(f"| {cell} | {tap} | {runs[0][position]['step']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def validation_prefix_table(rows: list[dict]) -> str:
    """The prefix gate on validation lines: at each LAIL run's first, middle and last evaluation, the prefix
    information with the line's own prefix, with another line's (the same batches), and their difference (what the
    prefix says about its own line), in nats/token, mean ± std over seeds."""
    own, other = "eval_lail_prefix_info_layer_", "eval_lail_prefix_info_mismatched_layer_"
    lines = ["| cell | tap | step | own line | another line | own - another |", "|" + " --- |" * 6]
    for cell, seeded in diagnostic_histories(rows, other).items():
        runs = [history for _, history in seeded]
        count = min(len(entries) for entries in runs)
        for tap in _taps(runs[0], other):
            for position in sorted({0, count // 2, count - 1}):
                pairs = [(e[position][own + tap], e[position][other + tap]) for e in runs]
                cells = [_pm(mean_std(values), 1.0, 2, "") for values in
                         ([a for a, _ in pairs], [b for _, b in pairs], [a - b for a, b in pairs])]
                lines.append(f"| {cell} | {tap} | {runs[0][position]['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def plot_diagnostics(rows: list[dict], path: Path) -> bool:
    """Every LAIL run's prefix information (solid; dotted: another line's prefix) and gradient ratio over
    training, one colour per run; False when no run logged diagnostics."""
    histories = diagnostic_histories(rows)
    if not histories:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (info_ax, ratio_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    runs = [(cell, seed, history) for cell, seeded in histories.items() for seed, history in seeded]
    for color, (cell, seed, history) in enumerate(runs):
        for tap in _taps(history):
            label = f"{cell}, seed {seed}, tap {tap}"
            for prefix, axis, style in ((DIAGNOSTICS[0][0], info_ax, "-"), (DIAGNOSTICS[1][0], info_ax, ":"),
                                        (DIAGNOSTICS[2][0], ratio_ax, "-")):
                points = [(e["step"], e[prefix + tap]) for e in history if prefix + tap in e]
                if points:
                    axis.plot(*zip(*points), linestyle=style, color=f"C{color}", marker="o", markersize=2,
                              label=label if style == "-" else None)
    info_ax.axhline(0.0, color="black", linewidth=0.8)
    info_ax.set_ylabel("nats / token")
    info_ax.set_title("Prefix information (dotted: another line's prefix); above 0 the prefix informs", fontsize=10)
    ratio_ax.set_yscale("log")
    ratio_ax.set_ylabel("|grad LAIL| / |grad recognition|")
    ratio_ax.set_xlabel("optimizer step")
    for axis in (info_ax, ratio_ax):
        axis.grid(True, alpha=0.3)
    info_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _pm(value: tuple[float, float | None] | None, scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    if value is None:
        return ""
    mean, std = value
    return f"{scale * mean:.{digits}f}{unit}" + ("" if std is None else f" ± {scale * std:.{digits}f}")


def markdown_table(summary: list[dict], columns: list[str], sets: list[tuple[str, str]]) -> str:
    """Per cell: the overrides in ``columns``, seeds, then each test set's CER as mean ± std over seeds."""
    metric_keys = [f"{name}{branch}_cer" for name, branch in sets]
    titles = [f"{name.replace('_', ' ')}{' CTC' if branch else ''} CER" for name, branch in sets]
    header = ["cell", *columns, "seeds", *titles[:1], "test WER", *titles[1:], "steps", "best step", "s/step",
              "peak GiB"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for entry in summary:
        overrides = entry["overrides"]
        values = [_pm(entry.get(key)) for key in metric_keys]
        cells = [entry["cell"], *(json.dumps(overrides[c]) if c in overrides else "" for c in columns),
                 str(len(entry["seeds"])), *values[:1], _pm(entry.get("test_wer")), *values[1:],
                 _pm(entry.get("global_step"), 1.0, 0, ""), _pm(entry.get("best_global_step"), 1.0, 0, ""),
                 _pm(entry.get("seconds_per_step"), 1.0, 3, ""), _pm(entry.get("peak_memory_gib"), 1.0, 2, "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def differences_table(comparisons: list[dict]) -> str:
    header = ["cell", "baseline", "test set", "branch", "CER difference", "95% interval", "lines x seeds",
              "verdict", "per seed", "seeds agree"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for item in comparisons:
        d: Difference = item["difference"]
        per_seed = item.get("per_seed", [])
        signs = {(value > 0) - (value < 0) for value in per_seed}
        agree = "" if len(per_seed) < 2 else ("yes" if len(signs) == 1 else "no")
        lines.append(f"| {item['cell']} | {item['baseline']} | {item['test_set']} | {item['branch']} | "
                     f"{100 * d.delta:+.2f} pp | [{100 * d.low:+.2f}, {100 * d.high:+.2f}] pp | "
                     f"{d.lines} x {d.seeds} | {d.verdict} | "
                     + ", ".join(f"{100 * value:+.1f}" for value in per_seed) + f" | {agree} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], sets: list[tuple[str, str]], path: Path) -> None:
    """Bars of mean test CER per cell, one group per test set, error bars one standard deviation over seeds; one
    panel per branch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    branches = list(dict.fromkeys(branch for _, branch in sets))
    fig, axes = plt.subplots(len(branches), 1, figsize=(max(8, 1.2 * len(summary) * max(1, len(sets) / 3) + 2),
                                                        3.6 * len(branches)), squeeze=False)
    for ax, branch in zip(axes[:, 0], branches):
        names = [name for name, b in sets if b == branch]
        width = 0.8 / len(names)
        for number, name in enumerate(names):
            key = f"{name}{branch}_cer"
            means = [100 * entry[key][0] if key in entry else 0.0 for entry in summary]
            errors = [100 * (entry[key][1] or 0.0) if key in entry else 0.0 for entry in summary]
            positions = [i + (number - (len(names) - 1) / 2) * width for i in range(len(summary))]
            ax.bar(positions, means, width, yerr=errors, capsize=3, label=name.replace("_", " "))
        ax.set_xticks(range(len(summary)), [entry["cell"] for entry in summary], rotation=30, ha="right",
                      fontsize=8)
        ax.set_ylabel(f"{BRANCHES[branch]} test CER (%)")
        ax.grid(axis="y", alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_title("Test CER per cell: mean, error bar 1 sd over seeds (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(grid: Grid, rows: list[dict], grid_file: str, num_samples: int = 10000) -> Path:
    out = Path(grid.output_dir)
    keys = list(dict.fromkeys(key for cell in grid.cells for key in cell.overrides))
    missing = object()
    # Columns for what differs between cells; what all share is listed once.
    columns = [key for key in keys if len({json.dumps(cell.overrides.get(key, missing), default=str)
                                           for cell in grid.cells}) > 1]
    shared = {key: grid.cells[0].overrides[key] for key in keys if key not in columns}
    sets = evaluated_sets(rows)
    summary = summarise(grid, rows)
    comparisons = compare(grid, rows, num_samples=num_samples)
    seeds = f" over seeds {grid.seeds}" if grid.seeds else ""
    text = (f"# Ablation: `{grid.recipe}`\n\nCommand: `python recipes/ablate.py --grid {grid_file}`\n\n"
            f"Every cell: `{json.dumps(shared)}`.\n\n"
            f"Test CER per cell, mean ± standard deviation{seeds}:\n\n" + markdown_table(summary, columns, sets))
    if comparisons:
        text += ("\nEach LAIL cell against its baseline (lail off, same other settings): corpus CER difference "
                 "pooled over seeds, paired bootstrap 95% interval over test lines (negative = LAIL reads "
                 "better). The interval resamples lines for these seeds only; the per-seed differences (pp) show "
                 "how much training noise moves it:\n\n" + differences_table(comparisons))
    diagnostics = diagnostics_table(rows)
    if diagnostics:
        text += ("\nLAIL diagnostics in training (mean ± std over seeds): prefix information, the same with another "
                 "line's prefix (nats/token; their difference is what the prefix says about its own line), and the "
                 "LAIL/recognition gradient ratio into the tapped layer:\n\n" + diagnostics
                 + "\n![LAIL diagnostics](ablation_diagnostics.png)\n")
    if grid.curve:
        from .curves import curve_rows, curve_table, plot_curves

        curve = curve_rows(grid, rows, _edits, num_samples=num_samples)
        if curve:
            text += (f"\nTest CER against `{grid.curve}` (clean test lines), each variant's runs pooled over the other "
                     "grid keys and seeds, 95% bootstrap interval over lines; non-baseline variants also against the "
                     "baseline variant on the same lines and seeds (paired):\n\n" + curve_table(curve, grid.curve)
                     + "\n![CER curve](ablation_curve.png)\n")
            plot_curves(curve, grid.curve, out / "ablation_curve.png")
    gate = validation_prefix_table(rows)
    if gate:
        text += ("\nThe prefix on validation lines (nats/token, mean ± std over seeds): what the tap's prefix tells "
                 "the frozen LLM with the line's own prefix and with another line's, on the same batches; their "
                 "difference is what it says about the line itself:\n\n" + gate)
    report = out / "ablation.md"
    report.write_text(text + "\n![test CER per cell](ablation.png)\n")
    payload = {"summary": summary, "differences": [{**item, "difference": vars(item["difference"]),
                                                    "verdict": item["difference"].verdict} for item in comparisons]}
    (out / "ablation.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(summary, sets, out / "ablation.png")
    plot_diagnostics(rows, out / "ablation_diagnostics.png")
    return report
