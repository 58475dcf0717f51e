"""The ablation runner: grid expansion, seeds, flags that the recipe parser accepts, shared budget, baselines,
report (mean and spread over seeds, paired bootstrap intervals read from per-line predictions)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trocr_lail.evaluation.metrics import line_edits
from trocr_lail.experiments.ablation import Grid, baseline_of, cell_name, command, expand, run_grid, steps_run, to_flags
from trocr_lail.experiments.ablation_report import (compare, evaluated_sets, markdown_table, summarise,
                                                   validation_prefix_table, write_report)
from trocr_lail.experiments.uncertainty import paired_bootstrap
from trocr_lail.parser import parse_recipe

from conftest import TINY_ARGS, save_tiny_llm

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
    model, data, training, lail, _ = parse_recipe(lail_cmd[2:])
    assert lail.lail_layers == [1, 2] and lail.lail_alpha == 0.25 and lail.lail
    assert training.output_dir == str(tmp_path / "out" / "layers=1-2_alpha=0.25")
    _, data, _, lail, _ = parse_recipe(base_cmd[2:])
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


def test_seeds_run_every_cell_once_per_seed(tmp_path):
    grid = Grid.from_file(write_grid(tmp_path, seeds=[3, 4], cells=[{"name": "baseline", "lail": False},
                                                                      {"name": "lail", "lail_alpha": 0.25}]))
    assert [(cell.name, seed) for cell, seed in grid.runs()] == [("baseline", 3), ("baseline", 4), ("lail", 3),
                                                                 ("lail", 4)]
    cmd = command(grid, *grid.runs()[3])
    _, _, training, lail, _ = parse_recipe(cmd[2:])
    assert training.seed == 4 and lail.lail_alpha == 0.25
    assert training.output_dir == str(tmp_path / "out" / "lail" / "seed-4")
    for bad in ([], [1, 1], "3", [1.5]):
        with pytest.raises(ValueError, match="distinct integers"):
            Grid.from_file(write_grid(tmp_path, seeds=bad, cells=[{"name": "a"}]))
    with pytest.raises(ValueError, match="not both"):
        Grid.from_file(write_grid(tmp_path, seeds=[1], overrides={"seed": 2}, cells=[{"name": "a"}]))


def test_each_lail_cell_is_paired_with_the_baseline_of_its_other_settings(tmp_path):
    grid = Grid.from_file(write_grid(tmp_path, overrides={"max_steps": 5}, cells=[
        {"name": "base-500", "lail": False, "synthetic_train_samples": 500},
        {"name": "base-full", "lail": False},
        {"name": "lail-500", "lail_alpha": 0.5, "synthetic_train_samples": 500},
        {"name": "lail-full-ramp", "lail_alpha_schedule": "ramp", "lail_alpha_ramp_step": 2},
        {"name": "lail-lr", "learning_rate": 0.1}]))
    pairs = {cell.name: getattr(baseline_of(grid, cell), "name", None) for cell in grid.cells}
    assert pairs == {"base-500": None, "base-full": None, "lail-500": "base-500", "lail-full-ramp": "base-full",
                     "lail-lr": None}


def fake_run(root, name, seed, texts, predictions, ctc=None):
    run = root / name / f"seed-{seed}"
    run.mkdir(parents=True)
    rows = [{"text": t, "prediction": p, **({"ctc_prediction": ctc[i]} if ctc else {})}
            for i, (t, p) in enumerate(zip(texts, predictions))]
    (run / "test_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    edits, lengths = line_edits(texts, predictions)
    return {"cell": name, "seed": seed, "run_dir": str(run), "test_cer": edits.sum() / lengths.sum(),
            "test_wer": 0.5, **({"test_ctc_cer": 0.9} if ctc else {})}


def test_report_pools_seeds_and_bootstraps_line_pairs(tmp_path):
    grid = Grid.from_file(write_grid(tmp_path, seeds=[1, 2], cells=[{"name": "baseline", "lail": False},
                                                                      {"name": "lail", "lail_alpha": 0.5}]))
    texts = ["the cat", "a dog", "hello", "on the mat"]
    base = {1: ["the cat", "a dig", "hallo", "on tho mat"], 2: ["tha cat", "a dog", "hello", "on the"]}
    lail = {1: ["the cat", "a dog", "hello", "on the mat"], 2: ["the cat", "a dog", "hello", "on the mat"]}
    out = tmp_path / "out"
    rows = [fake_run(out, "baseline", s, texts, base[s], ctc=texts) for s in (1, 2)]
    rows += [fake_run(out, "lail", s, texts, lail[s], ctc=texts) for s in (1, 2)]
    rows[0].update(max_steps=100, train_runtime=25.0, peak_memory_gib=1.25)
    # Early stopping ended this run at step 70 (best checkpoint at 40), and it was resumed at step 30: its last
    # call's 20 s cover 40 steps, 0.5 s each (not 20 / 70).
    rows[1].update(max_steps=100, global_step=70, best_global_step=40, train_runtime=20.0, train_steps_run=40,
                   peak_memory_gib=1.75)
    assert evaluated_sets(rows) == [("test", ""), ("test", "_ctc")]
    summary = summarise(grid, rows)
    cers = [rows[0]["test_cer"], rows[1]["test_cer"]]
    assert summary[0]["test_cer"] == pytest.approx((np.mean(cers), np.std(cers, ddof=1)))
    assert summary[1]["test_cer"] == (0.0, 0.0)
    table = markdown_table(summary, ["lail_alpha"], evaluated_sets(rows))
    assert (f"| baseline |  | 2 | {100 * np.mean(cers):.2f}% ± {100 * np.std(cers, ddof=1):.2f} | 50.00% ± 0.00 "
            f"| 90.00% ± 0.00 | 70 | 40 | {np.mean([0.25, 0.5]):.3f} ± {np.std([0.25, 0.5], ddof=1):.3f} "
            "| 1.50 ± 0.35 |") in table
    [decoder, ctc] = compare(grid, rows, num_samples=2000)
    expected = paired_bootstrap([line_edits(texts, lail[s])[0] for s in (1, 2)],
                                [line_edits(texts, base[s])[0] for s in (1, 2)], line_edits(texts, texts)[1],
                                num_samples=2000)
    assert decoder["difference"] == expected and decoder["baseline"] == "baseline"
    assert decoder["per_seed"] == pytest.approx([-3 / 27, -5 / 27])
    assert expected.delta == pytest.approx(-8 / 54)  # LAIL is exact; the baseline: 3 + 5 edits on 2 x 27 chars
    assert ctc["branch"] == "CTC" and ctc["difference"].delta == 0.0
    for seed, info in ((1, [0.1, 0.3, 0.5]), (2, [0.3, 0.5, 0.9])):  # the LAIL runs' training logs
        history = [{"step": 10 * i, "lail_prefix_info_layer_2": v, "lail_grad_ratio_layer_2": 2.0} for i, v in
                   enumerate(info, 1)]
        (out / "lail" / f"seed-{seed}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    report = write_report(grid, rows, "grid.yaml").read_text()
    assert "python recipes/ablate.py --grid grid.yaml" in report and "| lail | baseline | test | CTC |" in report
    assert "| -11.1, -18.5 | yes |" in report
    assert "| lail | 2 | 10 | 0.20 ± 0.14 |  | 2.00 ± 0.00 |" in report and "| lail | 2 | 30 | 0.70 ± 0.28 |" in report
    assert json.loads((out / "ablation.json").read_text())["differences"][1]["verdict"] == "no measurable effect"
    assert (out / "ablation.png").stat().st_size > 1000 and (out / "ablation_diagnostics.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_two_cell_grid_runs_and_resumes(tmp_path):
    tiny = dict(zip(TINY_ARGS[::2], TINY_ARGS[1::2]))
    overrides = {k.removeprefix("--"): v for k, v in tiny.items() if k != "--tiny_patch_size"}
    overrides.update(tiny_patch_size=[16, 8], lail=False, synthetic_train_samples=16, synthetic_eval_samples=4,
                     max_steps=2, per_device_train_batch_size=8, generation_max_length=8, logging_steps=1,
                     max_target_length=32)
    grid = Grid.from_file(write_grid(tmp_path, overrides=overrides, grid={"learning_rate": [1e-3, 1e-2]}))
    assert [row["cell"] for row in run_grid(grid, shard=(1, 2))] == ["learning_rate=0.01"]
    assert [row["cell"] for row in run_grid(grid, collect_only=True)] == ["learning_rate=0.01"]  # runs nothing
    rows = run_grid(grid)  # runs the other shard's cell, re-uses this one
    assert [row["cell"] for row in rows] == ["learning_rate=0.001", "learning_rate=0.01"]
    assert all(0 <= row["test_cer"] for row in rows)
    (tmp_path / "out" / "learning_rate=0.01" / "export").rename(tmp_path / "moved")  # a rerun must not retrain
    assert run_grid(grid) == rows and not (tmp_path / "out" / "learning_rate=0.01" / "export").exists()


@pytest.mark.slow
def test_a_seeded_baseline_vs_lail_grid_reports_intervals_for_both_branches(tmp_path):
    tiny = dict(zip(TINY_ARGS[::2], TINY_ARGS[1::2]))
    overrides = {k.removeprefix("--"): v for k, v in tiny.items() if k != "--tiny_patch_size"}
    overrides.update(tiny_patch_size=[16, 8], synthetic_train_samples=16, synthetic_eval_samples=4, max_steps=2,
                     per_device_train_batch_size=8, generation_max_length=8, logging_steps=1, max_target_length=32,
                     lail_llm=str(save_tiny_llm(tmp_path / "llm")), lail_connector="linear", lail_every_k_steps=1,
                     test_degradations=["noise"], export=False, ctc_upsample=2)
    grid = Grid.from_file(write_grid(tmp_path, seeds=[1, 2], overrides=overrides, cells=[
        {"name": "baseline", "lail": False}, {"name": "lail", "lail_layers": [1]}]))
    rows = run_grid(grid)
    assert [(row["cell"], row["seed"]) for row in rows] == [("baseline", 1), ("baseline", 2), ("lail", 1),
                                                            ("lail", 2)]
    report = write_report(grid, rows, "grid.yaml").read_text()
    for test_set, branch in (("test", "decoder"), ("test", "CTC"), ("test_noise", "decoder"),
                             ("test_noise", "CTC")):
        assert f"| lail | baseline | {test_set} | {branch} |" in report
    assert "x 2 |" in report  # 4 lines x 2 seeds


def test_steps_run_reads_where_early_stopping_ended_the_run(tmp_path):
    assert steps_run(tmp_path) == {}  # no trainer state: nothing claimed
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 1050, "best_global_step": 600,
                                                             "log_history": []}))
    assert steps_run(tmp_path) == {"global_step": 1050, "best_global_step": 600}
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 40, "best_global_step": None}))
    assert steps_run(tmp_path) == {"global_step": 40}  # no best checkpoint without evaluation


def test_variants_cross_the_grid_and_pair_with_their_baseline(tmp_path):
    grid = Grid.from_file(write_grid(
        tmp_path, grid={"synthetic_target_fonts": ["/fonts/hand-a.ttf", "/fonts/b/"], "synthetic_train_samples": [100]},
        variants=[{"name": "baseline", "lail": False}, {"name": "lail", "lail_connector_only_steps": 5}]))
    assert [c.name for c in grid.cells] == [
        "baseline_target_fonts=hand-a_train_samples=100", "lail_target_fonts=hand-a_train_samples=100",
        "baseline_target_fonts=b_train_samples=100", "lail_target_fonts=b_train_samples=100"]
    assert grid.cells[3].overrides == {"synthetic_target_fonts": "/fonts/b/", "synthetic_train_samples": 100,
                                       "lail_connector_only_steps": 5}
    assert baseline_of(grid, grid.cells[3]).name == grid.cells[2].name  # same font and N, not the other font's
    with pytest.raises(ValueError, match="name"):
        Grid.from_file(write_grid(tmp_path, grid={"lail_alpha": [1]}, variants=[{"lail": False}]))
    with pytest.raises(ValueError, match="missing"):
        Grid.from_file(write_grid(tmp_path, variants=[{"name": "a"}]))


def test_only_runs_the_cells_it_matches(tmp_path, capsys):
    grid = Grid.from_file(write_grid(tmp_path, seeds=[1, 2], grid={"synthetic_train_samples": [100, 300]},
                                     variants=[{"name": "baseline", "lail": False}, {"name": "lail"}]))
    run_grid(grid, dry_run=True, only="^baseline_.*=300$")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all("baseline_train_samples=300/seed-" in line for line in printed)


def test_the_gate_table_pairs_own_and_another_line_per_evaluation(tmp_path):
    rows = []
    for seed, (own, other) in {1: (2.0, 1.5), 2: (3.0, 2.0)}.items():
        run = tmp_path / f"seed-{seed}"
        run.mkdir()
        history = [{"step": step, "eval_lail_prefix_info_layer_2": own * step / 100,
                    "eval_lail_prefix_info_mismatched_layer_2": other * step / 100} for step in (50, 100)]
        history.insert(1, {"step": 75, "lail_prefix_info_layer_2": 9.0})  # a training entry: not the gate's
        (run / "trainer_state.json").write_text(json.dumps({"log_history": history}))
        rows.append({"cell": "lail", "seed": seed, "run_dir": str(run)})
    table = validation_prefix_table(rows)
    # step 100: own 2.0 and 3.0 (mean 2.5), another 1.5 and 2.0 (1.75), own - another 0.5 and 1.0 (0.75)
    assert "| lail | 2 | 100 | 2.50 ± 0.71 | 1.75 ± 0.35 | 0.75 ± 0.35 |" in table
    assert "| lail | 2 | 50 |" in table and "| 75 |" not in table
    assert validation_prefix_table([{"cell": "baseline", "seed": 1, "run_dir": str(tmp_path / "none")}]) == ""


def test_the_curve_pools_writers_and_seeds_per_variant_and_size(tmp_path):
    from trocr_lail.experiments.ablation_report import _edits
    from trocr_lail.experiments.curves import curve_rows, curve_table

    grid = Grid.from_file(write_grid(
        tmp_path, seeds=[1, 2], curve="synthetic_train_samples",
        grid={"synthetic_target_fonts": ["/f/a.ttf", "/f/b.ttf"], "synthetic_train_samples": [100, 300]},
        variants=[{"name": "baseline", "lail": False}, {"name": "lail"}]))
    texts = ["abcd", "efgh"]  # 8 characters per run
    wrong = {"baseline": 2, "lail": 1}  # characters wrong per run at N=100 (none at N=300)
    rows = []
    for cell in grid.cells:
        n = cell.overrides["synthetic_train_samples"]
        for seed in (1, 2):
            bad = wrong[cell.variant] if n == 100 else 0
            predictions = ["x" * bad + texts[0][bad:], texts[1]]
            rows.append(fake_run(tmp_path / "out", cell.name, seed, texts, predictions))
    curve = {(r["variant"], r["synthetic_train_samples"]): r for r in curve_rows(grid, rows, _edits, 200)
             if r["branch"] == "decoder"}
    # baseline at N=100: 2 writers x 2 seeds x 2 wrong of 8 characters each = 8 / 32
    assert curve[("baseline", 100)]["cer"] == pytest.approx(0.25) and curve[("baseline", 100)]["runs"] == 4
    assert curve[("lail", 100)]["cer"] == pytest.approx(0.125)
    assert curve[("lail", 100)]["difference"] == pytest.approx(-0.125) and curve[("lail", 100)]["paired_runs"] == 4
    assert curve[("lail", 300)]["cer"] == 0 and "difference" not in curve[("baseline", 300)]
    low, high = curve[("baseline", 100)]["interval"]
    assert low <= 0.25 <= high
    assert "| decoder | lail | 100 | 4 | 12.50% [" in curve_table(list(curve.values()), "synthetic_train_samples")
    with pytest.raises(ValueError, match="curve"):
        Grid.from_file(write_grid(tmp_path, grid={"lail_alpha": [1]}, curve="lail_alpha"))
    # A partial grid: LAIL has run writer a only, seed 1 only, at N=100. The baseline's point there pools the same
    # run (2 of 8 wrong), not all four; at N=300 the baseline is the only variant and keeps all its runs.
    partial = [row for row in rows if row["cell"].startswith("baseline") or row["cell"] == "lail_target_fonts=a_"
               "train_samples=100" and row["seed"] == 1]
    curve = {(r["variant"], r["synthetic_train_samples"]): r for r in curve_rows(grid, partial, _edits, 200)
             if r["branch"] == "decoder"}
    assert curve[("baseline", 100)]["runs"] == 1 and curve[("baseline", 100)]["cer"] == pytest.approx(0.25)
    assert curve[("lail", 100)]["runs"] == 1 and curve[("baseline", 300)]["runs"] == 4
    assert ("lail", 300) not in curve
