from PIL import Image

from trocr_lail.training.plots import plot_training, series


def test_series_reads_log_history():
    history = [{"loss": 2.0, "step": 1}, {"eval_cer": 0.5, "step": 2}, {"loss": 1.0, "step": 3}]
    assert series(history, "loss") == ([1, 3], [2.0, 1.0])


def test_plot_training_writes_readable_pngs(tmp_path):
    history = [{"loss": 3 - s / 10, "s2s_loss": 2.5 - s / 10, "lail_loss": 1.0, "lail_loss_layer_1": 1.1,
                "lail_loss_layer_2": 0.9, "lail_alpha": 0.5, "step": s} for s in range(1, 6)]
    history += [{"eval_cer": 0.9 - s / 10, "eval_loss": 1.0, "step": s} for s in (2, 4)]
    paths = plot_training(history, tmp_path)
    assert [p.name for p in paths] == ["training_loss.png", "eval_cer.png"]
    assert Image.open(paths[0]).size == (1080, 900)  # 9 x 7.5 inches at 120 dpi: two panels (loss, alpha)
    assert plot_training([{"train_runtime": 1.0, "step": 5}], tmp_path / "none") == []


def test_eval_cer_plot_only_when_evaluation_ran(tmp_path):
    # eval_strategy "no" (the quickstart): the log has losses only, so only training_loss.png
    losses = [{"loss": 2.0, "step": 1}, {"loss": 1.0, "step": 2}]
    assert [p.name for p in plot_training(losses, tmp_path / "no_eval")] == ["training_loss.png"]
    assert not (tmp_path / "no_eval" / "eval_cer.png").exists()
    # one evaluation is enough for the plot
    one = plot_training(losses + [{"eval_cer": 0.4, "step": 2}], tmp_path / "eval")
    assert [p.name for p in one] == ["training_loss.png", "eval_cer.png"]
