"""The ablation runner: grid expansion, flags that the recipe parser accepts, shared budget, report."""

import sys
from pathlib import Path

import pytest
import yaml

from trocr_lail.ablation import Grid, cell_name, command, expand, markdown_table, run_grid, to_flags, write_report
from trocr_lail.run import parse_args

from conftest import TINY_ARGS

QUICKSTART_LAIL = str(Path(__file__).parents[1] / "recipes/quickstart/lail.yaml")


def write_grid(tmp_path, **spec):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"recipe": QUICKSTART_LAIL, "output_dir": str(tmp_path / "out"), **spec}, sort_keys=False))
    return path


def test_grid_is_the_cartesian_product_plus_named_cells(tmp_path):
    grid = Grid.from_file(write_grid(
        tmp_path, overrides={"max_steps": 7}, grid={"lail_layers": [[1], [1, 2]], "lail_alpha": [0.25, 0.5]},
        cells=[{"name": "baseline", "lail": False}]))
    assert [c.name for c in grid.cells] == ["layers=1_alpha=0.25", "layers=1_alpha=0.5", "layers=1-2_alpha=0.25",
                                            "layers=1-2_alpha=0.5", "baseline"]
    assert all(c.overrides["max_steps"] == 7 for c in grid.cells)
    assert expand({}) == [{}] and cell_name({}) == "base"
    only_named = Grid.from_file(write_grid(tmp_path, cells=[{"name": "baseline", "lail": False}]))
    assert [c.name for c in only_named.cells] == ["baseline"]  # no grid: no unnamed recipe-default cell


def test_cell_flags_reach_the_run_arguments(tmp_path):
    grid = Grid.from_file(write_grid(tmp_path, grid={"lail_layers": [[1, 2]], "lail_alpha": [0.25]},
                                     cells=[{"name": "baseline", "lail": False, "synthetic_train_samples": 100}]))
    lail_cmd, base_cmd = (command(grid, cell) for cell in grid.cells)
    assert lail_cmd[:2] == [sys.executable, str(Path(__file__).parents[1] / "recipes/finetune.py")]
    model, data, training, lail, _ = parse_args(lail_cmd[2:])
    assert lail.lail_layers == [1, 2] and lail.lail_alpha == 0.25 and lail.lail
    assert training.output_dir == str(tmp_path / "out" / "layers=1-2_alpha=0.25")
    _, data, _, lail, _ = parse_args(base_cmd[2:])
    assert not lail.lail and data.synthetic_train_samples == 100
    assert to_flags({"augment": False, "lail_layers": [3, 6]}) == ["--augment", "false", "--lail_layers", "3", "6"]
    with pytest.raises(ValueError, match="null"):
        to_flags({"lail_layer_weights": None})


def test_cells_must_share_seed_and_budget(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        Grid.from_file(write_grid(tmp_path, cells=[{"name": "lucky", "seed": 3}]))
    with pytest.raises(ValueError, match="unknown keys"):
        Grid.from_file(write_grid(tmp_path, cels=[]))
    with pytest.raises(ValueError, match="repeat"):
        Grid.from_file(write_grid(tmp_path, cells=[{"name": "a"}, {"name": "a"}]))


def test_report_table_and_plot(tmp_path):
    grid = Grid.from_file(write_grid(tmp_path, grid={"lail_alpha": [0.25, 0.5]}))
    rows = [{"cell": c.name, **c.overrides, "test_cer": cer, "test_wer": 2 * cer}
            for c, cer in zip(grid.cells, (0.1234, 0.5))]
    rows[0].update(max_steps=100, train_runtime=25.0, peak_memory_gib=1.234)
    table = markdown_table(rows, ["lail_alpha"])
    assert "| alpha=0.25 | 0.25 | 12.34% | 24.68% | 0.250 | 1.23 |" in table
    assert "| alpha=0.5 | 0.5 | 50.00% | 100.00% |  |  |" in table
    (tmp_path / "out").mkdir()
    report = write_report(grid, rows, "grid.yaml")
    assert "python recipes/ablate.py --grid grid.yaml" in report.read_text()
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_two_cell_grid_runs_and_resumes(tmp_path):
    tiny = dict(zip(TINY_ARGS[::2], TINY_ARGS[1::2]))
    overrides = {k.removeprefix("--"): v for k, v in tiny.items() if k != "--tiny_patch_size"}
    overrides.update(tiny_patch_size=[16, 8], lail=False, synthetic_train_samples=16, synthetic_eval_samples=4,
                     max_steps=2, per_device_train_batch_size=8, generation_max_length=8, logging_steps=1,
                     max_target_length=32)
    grid = Grid.from_file(write_grid(tmp_path, overrides=overrides, grid={"learning_rate": [1e-3, 1e-2]}))
    assert [row["cell"] for row in run_grid(grid, shard=(1, 2))] == ["learning_rate=0.01"]
    rows = run_grid(grid)  # runs the other shard's cell, re-uses this one
    assert [row["cell"] for row in rows] == ["learning_rate=0.001", "learning_rate=0.01"]
    assert all(0 <= row["test_cer"] for row in rows)
    (tmp_path / "out" / "learning_rate=0.01" / "export").rename(tmp_path / "moved")  # a rerun must not retrain
    assert run_grid(grid) == rows and not (tmp_path / "out" / "learning_rate=0.01" / "export").exists()
