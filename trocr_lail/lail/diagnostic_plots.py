"""``lail_diagnostics.png``: is each tap's prefix informative (prefix information, train and eval, with the
mismatched-prefix control), and how hard does LAIL pull on the encoder (gradient ratio)? Written at the end of a
LAIL run next to ``plots.plot_training``'s figures; see ``lail/trainer.py`` for the definitions."""

from __future__ import annotations

from pathlib import Path

from ..training.plots import _save, series

INFO = "lail_prefix_info_layer_"
MISMATCHED = "lail_prefix_info_mismatched_layer_"
RATIO = "lail_grad_ratio_layer_"


def _layers(log_history: list[dict], prefix: str) -> list[str]:
    found = {key[len(prefix):] for entry in log_history for key in entry if key.startswith(prefix)}
    return sorted(found, key=int)


def plot_lail_diagnostics(log_history: list[dict], out_dir: str | Path) -> list[Path]:
    """Write ``lail_diagnostics.png`` when the run logged LAIL diagnostics; return the paths written."""
    layers = _layers(log_history, INFO) or _layers(log_history, "eval_" + INFO)
    if not layers:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (info_ax, ratio_ax) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, layer in enumerate(layers):
        color = colors[number % len(colors)]
        curves = [(INFO + layer, "-", "o", f"layer {layer}, train"),
                  (MISMATCHED + layer, ":", "o", f"layer {layer}, train, another line's prefix"),
                  ("eval_" + INFO + layer, "-", "s", f"layer {layer}, eval"),
                  ("eval_" + MISMATCHED + layer, ":", "x", f"layer {layer}, eval, another line's prefix")]
        for key, style, marker, label in curves:
            steps, values = series(log_history, key)
            if steps:
                info_ax.plot(steps, values, linestyle=style, marker=marker, markersize=3, color=color, label=label)
        steps, values = series(log_history, RATIO + layer)
        if steps:
            ratio_ax.plot(steps, values, marker="o", markersize=3, color=color, label=f"layer {layer}")
    info_ax.axhline(0.0, color="black", linewidth=0.8)
    info_ax.set_ylabel("nats / token")
    info_ax.set_title("Prefix information: LLM loss without prefix minus with it (above 0: the prefix informs)")
    info_ax.grid(True, alpha=0.3)
    info_ax.legend(loc="best", fontsize=8, framealpha=0.85)
    if ratio_ax.lines:
        ratios = [y for line in ratio_ax.lines for y in line.get_ydata()]
        if min(ratios) > 0:
            ratio_ax.set_yscale("log")
        ratio_ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ratio_ax.set_ylabel("|grad LAIL| / |grad recognition|")
    ratio_ax.set_title("Gradient into each tapped encoder layer: LAIL term over recognition loss")
    ratio_ax.grid(True, alpha=0.3)
    ratio_ax.set_xlabel("optimizer step")
    ratio_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path = _save(fig, Path(out_dir) / "lail_diagnostics.png")
    plt.close(fig)
    return [path]
