"""Every shipped recipe runs: 2 optimizer steps on CPU, as shipped except the model (its real architecture from
config at slim widths, or tiny), the data (a small local folder), the LLM (SmolLM2), fp16/bf16 off and small batches (tests/recipe_smoke.py).
Evaluation, saving, early stopping, beams, report_to, PEFT and LAIL options all run as the recipe says."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

import trocr_lail.models.loading
from recipe_smoke import slim_ctc_model, slim_model, smoke_recipe, write_line_folder
from trocr_lail.models.ctc_families import is_ctc_source
from trocr_lail.run import main

ROOT = Path(__file__).parents[1]
# accelerate_configs/ are launcher configs and ablations/ grids (test_recipes.py); every other YAML is a run. The
# stage-2 recipes train on the synthetic stream, not a data folder: tests/test_stage2.py runs each of them for 2 CPU
# steps at config:trocr-small.
RECIPES = sorted(p for p in ROOT.glob("recipes/*/*.yaml") if p.parent.name not in ("accelerate_configs", "ablations")
                 and not p.name.startswith("stage2-"))

pytestmark = pytest.mark.slow


@pytest.fixture
def out_dir(tmp_path):
    """The run's output dir, deleted afterwards (checkpoints with optimizer state)."""
    yield tmp_path / "out"
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


@pytest.fixture(scope="module")
def line_folder(tmp_path_factory):
    return write_line_folder(tmp_path_factory.mktemp("iam-like"), {"train": 2, "validation": 1, "test": 1})


@pytest.mark.parametrize("recipe_path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_runs_two_steps(recipe_path, line_folder, tmp_path, out_dir, monkeypatch):
    recipe = smoke_recipe(recipe_path, line_folder, out_dir, stage1_dir=tmp_path / "stage1")
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr(trocr_lail.models.loading, "build_model", slim_model)
    monkeypatch.setattr(trocr_lail.models.loading, "build_ctc_model", slim_ctc_model)
    main(["--config", str(config)])
    out = out_dir
    state = json.loads((out / "trainer_state.json").read_text())
    metrics = json.loads((out / "all_results.json").read_text())
    assert state["global_step"] == 2
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    test = json.loads((out / "test_results.json").read_text())
    assert 0 <= test["test_cer"] and "test_loss" in test
    evals = [entry for entry in state["log_history"] if "eval_loss" in entry]
    if recipe.get("eval_strategy", "no") != "no" and recipe.get("validation_split", "validation"):
        assert evals and "eval_cer" in evals[-1]
    if recipe.get("load_best_model_at_end"):
        metric = recipe.get("metric_for_best_model", "loss")
        assert state["best_metric"] == pytest.approx(min(e[f"eval_{metric}"] for e in evals))
    if recipe.get("report_to") == "tensorboard":
        assert list(out.rglob("events.out.tfevents.*")), "tensorboard wrote no event file"
    if recipe.get("lail") and evals:
        assert all(torch.isfinite(torch.tensor(e["eval_lail_loss"])) for e in evals)
    if recipe.get("export", True):
        with safe_open(out / "export" / "model.safetensors", "pt") as weights:
            keys = list(weights.keys())
        if is_ctc_source(recipe["model_name_or_path"]):  # the plain recognizer: no connectors, no CRNN shortcut
            assert not any("lail" in k or "llm" in k or k.startswith("shortcut.") for k in keys)
            assert "lail" not in json.loads((out / "export" / "config.json").read_text())
        else:
            assert all(k.startswith(("encoder.", "decoder.")) for k in keys)  # plain VED: no connectors, no CTC head
            assert not any("lail" in k or "ctc" in k or "lora" in k for k in keys)
