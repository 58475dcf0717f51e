"""Every recipe parses (unknown keys would fail), and the paper recipes carry the paper's hyper-parameters."""

from pathlib import Path

import pytest

from trocr_lail.parser import parse_recipe

# accelerate_configs/ holds launcher configs (test_accelerate_configs.py), ablations/ grids (below).
RECIPES = sorted(p for p in Path(__file__).parents[1].glob("recipes/*/*.yaml")
                 if p.parent.name not in ("accelerate_configs", "ablations"))
GRIDS = sorted(Path(__file__).parents[1].glob("recipes/ablations/*.yaml"))
# GPU-only precision flags are switched off so the recipes validate on a CPU machine.
CPU = ["--bf16", "false", "--fp16", "false", "--use_cpu", "true"]


def test_recipes_exist():
    names = {f"{p.parent.name}/{p.name}" for p in RECIPES}
    for size in ("small", "base", "large"):
        assert {f"trocr-{size}/baseline.yaml", f"trocr-{size}/lail.yaml"} <= names
    assert {"quickstart/baseline.yaml", "quickstart/lail.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses(recipe):
    model, data, training, lail, _ = parse_recipe(["--config", str(recipe), *CPU])
    assert training.output_dir.startswith("outputs/")
    assert lail.lail == recipe.stem.startswith("lail")


@pytest.mark.parametrize("size,paper_cer", [("small", 4.22), ("base", 3.42), ("large", 2.89)])
@pytest.mark.parametrize("kind", ["baseline", "lail"])
def test_paper_recipes(size, paper_cer, kind):
    """The IAM recipes carry the paper's fine-tuning command (shared/reference/trocr-paper-recipe.md)."""
    recipe = Path(__file__).parents[1] / f"recipes/trocr-{size}/{kind}.yaml"
    model, data, training, *_ = parse_recipe(["--config", str(recipe), *CPU])
    assert model.model_name_or_path == f"microsoft/trocr-{size}-stage1" and model.image_resample == "bicubic"
    assert data.dataset_name == "Teklia/IAM-line" and data.augment == "da2"
    assert training.learning_rate == 2e-5 and training.warmup_steps == 500 and training.weight_decay == 1e-4
    assert training.lr_scheduler_type.value == "inverse_sqrt" and training.warmup_init_lr == 1e-8
    assert training.max_grad_norm == 0.0  # no clipping
    assert training.per_device_train_batch_size * training.gradient_accumulation_steps == 64
    assert training.seed == 1111 and training.num_train_epochs == 300
    assert training.early_stopping_patience == 20 and training.metric_for_best_model == "loss"
    assert training.greater_is_better is False and training.load_best_model_at_end
    assert training.generation_num_beams == 10 and training.generation_max_length == 200
    assert str(paper_cer) in recipe.read_text() and str(paper_cer) in (recipe.parent / "README.md").read_text()


def test_fairseq_inverse_sqrt_warms_up_from_warmup_init_lr():
    import torch

    from trocr_lail.training.schedules import fairseq_inverse_sqrt

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    scheduler = fairseq_inverse_sqrt(optimizer, warmup_steps=500, warmup_init_lr=1e-8)
    lrs = []
    for _ in range(2001):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-8) and lrs[250] == pytest.approx(1e-8 + 250 * (2e-5 - 1e-8) / 500)
    assert lrs[500] == pytest.approx(2e-5) and lrs[2000] == pytest.approx(1e-5)  # peak * sqrt(500 / 2000)


@pytest.mark.parametrize("grid_file", GRIDS, ids=lambda p: p.name)
def test_ablation_grids_expand_to_valid_runs(grid_file):
    from trocr_lail.experiments.ablation import FINETUNE, Grid, command

    grid = Grid.from_file(grid_file)
    assert grid.cells
    for cell in grid.cells:
        cmd = command(grid, cell)
        parse_recipe(cmd[cmd.index(str(FINETUNE)) + 1:] + CPU)  # every cell's flags are valid run arguments


def test_quickstart_lail_recipe_is_the_baseline_plus_lail_options():
    import yaml

    folder = Path(__file__).parents[1] / "recipes/quickstart"
    baseline = yaml.safe_load((folder / "baseline.yaml").read_text())
    lail = yaml.safe_load((folder / "lail.yaml").read_text())
    assert {k: v for k, v in lail.items() if not k.startswith("lail") and k != "output_dir"} == \
        {k: v for k, v in baseline.items() if k != "output_dir"}


def load_yaml(path: str) -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / path).read_text())


@pytest.mark.parametrize("folder,quickstart", [("adaptation", "quickstart/baseline.yaml"),
                                               ("crnn-adaptation", "crnn/quickstart.yaml")])
def test_adaptation_recipes_are_stage1_as_the_quickstart_and_lail_as_the_baseline_plus_lail_options(folder,
                                                                                                     quickstart):
    quickstart, stage1 = load_yaml(f"recipes/{quickstart}"), load_yaml(f"recipes/{folder}/stage1.yaml")
    baseline, lail = load_yaml(f"recipes/{folder}/baseline.yaml"), load_yaml(f"recipes/{folder}/lail.yaml")
    assert {k: v for k, v in stage1.items() if k != "output_dir"} == \
        {k: v for k, v in quickstart.items() if k != "output_dir"}
    assert baseline["model_name_or_path"] == lail["model_name_or_path"] == stage1["output_dir"]
    assert baseline["synthetic_min_aspect"] == stage1["synthetic_min_aspect"]  # stage 1's input aspect
    assert {k: v for k, v in lail.items() if not k.startswith("lail") and k != "output_dir"} == \
        {k: v for k, v in baseline.items() if k != "output_dir"}


# What the CRNN's adaptation may set otherwise than TrOCR's: where it starts and writes, its input aspect, its own
# optimiser, and TrOCR-only settings (the hybrid CTC head, the decoder's beams and length).
CRNN_OWN = {"model_name_or_path", "output_dir", "synthetic_min_aspect", "optim", "optim_muon", "learning_rate",
            "weight_decay", "lr_scheduler_type", "warmup_steps", "max_grad_norm", "label_smoothing_factor",
            "ctc_weight", "ctc_guided_attention", "generation_num_beams", "generation_max_length"}


def test_the_crnn_goes_through_trocrs_adaptation_protocol():
    """Issue 23, item 5: the same target hands, lines, stopping, test and LLM settings (LAIL at the notes' taps),
    the same comparison grid, and a gate per connector kind at each of the notes' taps."""
    trocr = {kind: load_yaml(f"recipes/adaptation/{kind}.yaml") for kind in ("baseline", "lail")}
    crnn = {kind: load_yaml(f"recipes/crnn-adaptation/{kind}.yaml") for kind in ("baseline", "lail")}
    shared = lambda recipe: {k: v for k, v in recipe.items() if k not in CRNN_OWN}  # noqa: E731
    assert shared(crnn["baseline"]) == shared(trocr["baseline"])
    assert {**shared(crnn["lail"]), "lail_layers": None} == {**shared(trocr["lail"]), "lail_layers": None}
    assert crnn["lail"]["lail_layers"] == load_yaml("recipes/crnn/lail.yaml")["lail_layers"] == [0, 1]
    grid = load_yaml("recipes/ablations/adaptation-crnn.yaml")
    trocr_grid = load_yaml("recipes/ablations/adaptation.yaml")
    assert grid["recipe"] == "recipes/crnn-adaptation/lail.yaml" and grid["output_dir"] == "results/adaptation-crnn"
    # The CRNN grid also pins the LLM's precision (recipes/crnn-adaptation/README.md: the same numbers on another CPU).
    assert grid["overrides"].pop("lail_llm_dtype") == "float32"
    assert {k: v for k, v in grid.items() if k not in ("recipe", "output_dir")} == \
        {k: v for k, v in trocr_grid.items() if k not in ("recipe", "output_dir")}
    gate = load_yaml("recipes/ablations/adaptation-crnn-gate.yaml")
    assert gate["recipe"] == grid["recipe"] and gate["output_dir"] == "results/adaptation-crnn-gate"
    assert gate["overrides"]["lail_connector_only_steps"] == gate["overrides"]["max_steps"]  # connector-only
    cells = {(cell["lail_connector"], tuple(cell["lail_layers"])) for cell in gate["cells"]}
    assert cells == {(kind, (tap,)) for kind in ("linear", "downsample", "qformer") for tap in (0, 1)}


def test_the_crnn_step_control_is_the_grids_baseline_with_the_connector_firsts_recognition_steps():
    """adaptation-crnn-steps.yaml: the CRNN grid's baseline runs at every N, only trained for the steps that the
    connector-first cell leaves its recognizer (max_steps minus the connector-only steps)."""
    from trocr_lail.experiments.ablation import Grid, command

    grid = Grid.from_file(Path(__file__).parents[1] / "recipes/ablations/adaptation-crnn.yaml")
    control = Grid.from_file(Path(__file__).parents[1] / "recipes/ablations/adaptation-crnn-steps.yaml")
    recipe = load_yaml(grid.recipe)
    assert control.recipe == grid.recipe and control.seeds == grid.seeds
    baselines = {cell.point: cell for cell in grid.cells if cell.variant == "baseline"}
    assert len(baselines) == 9
    assert sorted(baselines) == sorted(cell.name for cell in control.cells)
    for cell in control.cells:
        assert cell.overrides.pop("max_steps") == recipe["max_steps"] - recipe["lail_connector_only_steps"] == 400
        assert cell.overrides == baselines[cell.name].overrides
        flags = command(control, cell, 42)
        assert flags[flags.index("--output_dir") + 1] == f"results/adaptation-crnn-steps/{cell.name}/seed-42"


def test_trainer_uses_the_fairseq_warmup_when_warmup_init_lr_is_set(tmp_path):
    from conftest import TINY_ARGS
    from trocr_lail.run import main

    main([*TINY_ARGS, "--synthetic", "true", "--synthetic_train_samples", "8", "--synthetic_eval_samples", "2",
          "--validation_split", "null", "--test_split", "null", "--per_device_train_batch_size", "2",
          "--max_steps", "3", "--learning_rate", "1e-3", "--lr_scheduler_type", "inverse_sqrt", "--warmup_steps",
          "4", "--warmup_init_lr", "1e-8", "--logging_steps", "1", "--report_to", "none", "--use_cpu", "true",
          "--dataloader_num_workers", "0", "--export", "false", "--output_dir", str(tmp_path)])
    state = __import__("json").loads((tmp_path / "trainer_state.json").read_text())
    lrs = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    # The rate each update used: the first at exactly warmup_init_lr, then init + t * (peak - init) / warmup.
    assert lrs == pytest.approx([1e-8 + t * (1e-3 - 1e-8) / 4 for t in (0, 1, 2)], rel=1e-6, abs=0)


@pytest.mark.parametrize("family", ["crnn", "mobilevit"])
def test_ctc_recipes_follow_the_crnn_reference_and_lail_is_iam_plus_lail_options(family):
    """recipes/{crnn,mobilevit}/iam.yaml carry HTR best practices' training recipe
    (shared/reference/ctc-recognizers.md section 1); their lail.yaml adds only lail_* options."""
    import yaml

    folder = Path(__file__).parents[1] / "recipes" / family
    model, data, training, *_ = parse_recipe(["--config", str(folder / "iam.yaml"), *CPU])
    assert model.model_name_or_path == {"crnn": "config:crnn", "mobilevit": "config:mobilevit-ctc"}[family]
    assert data.dataset_name == "Teklia/IAM-line"
    assert training.optim.value == "adamw_torch" and training.learning_rate == 1e-3 and training.weight_decay == 5e-5
    assert training.lr_scheduler_type.value == "constant" and training.lr_step_milestones == [0.5, 0.75]
    assert training.lr_step_gamma == 0.1 and training.per_device_train_batch_size == 20
    assert training.num_train_epochs == {"crnn": 240, "mobilevit": 800}[family]
    target = {"crnn": "4.62%", "mobilevit": "4.4%"}[family]
    assert target in (folder / "iam.yaml").read_text() and target in (folder / "README.md").read_text()
    iam, lail = (yaml.safe_load((folder / name).read_text()) for name in ("iam.yaml", "lail.yaml"))
    assert {k: v for k, v in lail.items() if not k.startswith("lail") and k != "output_dir"} == \
        {k: v for k, v in iam.items() if k != "output_dir"}
    assert lail["lail_layers"] == {"crnn": [0, 1], "mobilevit": [2, 3]}[family]


def test_step_decay_multiplies_the_rate_by_gamma_at_each_milestone():
    import torch

    from trocr_lail.training.schedules import step_decay

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = step_decay(optimizer, num_training_steps=8, milestones=[0.5, 0.75], gamma=0.1)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1e-3] * 4 + [1e-4] * 2 + [1e-5] * 2)
    with pytest.raises(ValueError, match="lr_step_milestones needs lr_scheduler_type: constant"):
        parse_recipe(["--output_dir", "outputs/x", "--lr_step_milestones", "0.5", *CPU])
