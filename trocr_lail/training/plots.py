"""Training plots from ``trainer.state.log_history``: loss components and LAIL alpha over steps
(``training_loss.png``), eval CER over steps (``eval_cer.png``). Written at the end of a run."""

from __future__ import annotations

from pathlib import Path

LOSS_KEYS = ("loss", "s2s_loss", "lail_loss")  # total, seq2seq, weighted LAIL; lail_loss_layer_<l> follow
LAYER_PREFIX = "lail_loss_layer_"
LABELS = {"loss": "total loss", "s2s_loss": "seq2seq loss (L_s2s)", "lail_loss": "LAIL loss (layer-weighted sum)"}


def series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(entry["step"], float(entry[key])) for entry in log_history
              if key in entry and "step" in entry and entry[key] is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_training(log_history: list[dict], out_dir: str | Path) -> list[Path]:
    """Write the plots that have data; return their paths (none when nothing was logged)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    out_dir = Path(out_dir)
    written = []
    layer_keys = sorted({k for entry in log_history for k in entry if k.startswith(LAYER_PREFIX)},
                        key=lambda k: int(k[len(LAYER_PREFIX):]))
    losses = [(k, *series(log_history, k)) for k in (*LOSS_KEYS, *layer_keys)]
    losses = [item for item in losses if item[1]]
    alpha_steps, alphas = series(log_history, "lail_alpha")
    if losses:
        rows = 2 if alphas else 1
        fig, axes = plt.subplots(rows, 1, figsize=(9, 5.5 if rows == 1 else 7.5), sharex=True, squeeze=False,
                                 gridspec_kw={"height_ratios": [3, 1][:rows]})
        ax = axes[0, 0]
        for key, steps, values in losses:
            layer = key.startswith(LAYER_PREFIX)
            label = f"LAIL loss, encoder layer {key[len(LAYER_PREFIX):]}" if layer else LABELS[key]
            ax.plot(steps, values, label=label, linewidth=1.2 if layer else 2.0, linestyle="--" if layer else "-",
                    marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_ylabel("loss (training, per logging interval)")
        ax.set_title("Training losses")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=9, framealpha=0.85)
        if alphas:
            axes[1, 0].plot(alpha_steps, alphas, color="tab:purple", linewidth=2, drawstyle="steps-post")
            axes[1, 0].set_ylabel("LAIL alpha")
            axes[1, 0].set_ylim(bottom=0, top=max(max(alphas) * 1.15, 1e-3))
            axes[1, 0].grid(True, alpha=0.3)
        axes[-1, 0].set_xlabel("optimizer step")
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        written.append(_save(fig, out_dir / "training_loss.png"))
        plt.close(fig)
    steps, cers = series(log_history, "eval_cer")
    if cers:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax.plot(steps, cers, color="tab:red", linewidth=2, marker="o", markersize=4, label="validation CER")
        best = min(range(len(cers)), key=cers.__getitem__)
        ax.plot([steps[best]], [cers[best]], marker="*", markersize=14, color="tab:green", linestyle="none",
                label=f"best: {cers[best]:.1%} at step {steps[best]}")
        ax.legend(loc="best", fontsize=9, framealpha=0.85)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("character error rate")
        ax.set_title("Validation CER during training (lower is better)")
        ax.set_ylim(bottom=0, top=max(cers) * 1.08)  # CER can exceed 100% (insertions): keep every point in view
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "eval_cer.png"))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
