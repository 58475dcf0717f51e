"""Kill a training run with SIGKILL between checkpoints, re-run the same command: it resumes from the last
complete checkpoint and its per-step losses equal those of a run that was never interrupted. For the TrOCR path
and for a CTC recognizer (``config:crnn`` at the slim widths of ``test_ctc_training``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_ARGS
from trocr_lail.training.checkpoints import checkpoint_problem

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY = 12, 4
# Slows each step (not its math) so the kill lands between checkpoints: loaded at interpreter start-up.
SLOW_STEPS = """
import time
from trocr_lail.training.trainer import LineRecognitionTrainer
_step = LineRecognitionTrainer.training_step
def training_step(self, *args, **kwargs):
    time.sleep(0.25)
    return _step(self, *args, **kwargs)
LineRecognitionTrainer.training_step = training_step
# config:crnn at slim widths (the subprocess cannot take a pytest monkeypatch).
from test_ctc_training import SLIM
from trocr_lail.models import ctc_families
ctc_families.CTC_SHAPES["crnn"] = SLIM["crnn"]
"""
MODELS = {"trocr": TINY_ARGS,
          "crnn": ["--model_name_or_path", "config:crnn", "--synthetic_max_chars", "24"]}  # 64 frames a line


def command(output_dir: Path, model: str) -> list[str]:
    return [sys.executable, str(ROOT / "recipes" / "finetune.py"), *MODELS[model],
            "--synthetic", "true", "--synthetic_train_samples", "96", "--synthetic_eval_samples", "2",
            "--augment", "false", "--max_steps", str(STEPS), "--per_device_train_batch_size", "4",
            "--save_strategy", "steps", "--save_steps", str(SAVE_EVERY), "--save_total_limit", "1",  # as recipes do
            "--logging_steps", "1",
            "--learning_rate", "1e-3", "--seed", "3", "--validation_split", "null", "--test_split", "null",
            "--export", "false", "--use_cpu", "true", "--report_to", "none", "--dataloader_num_workers", "1",
            "--output_dir", str(output_dir)]


def losses(output_dir: Path) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    hooks = tmp_path_factory.mktemp("hooks")
    (hooks / "sitecustomize.py").write_text(SLOW_STEPS)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
            "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("datasets-cache"))}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_sigkill_then_same_command_resumes_exactly(tmp_path, env, model):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(command(reference, model), env=env, check=True, capture_output=True, timeout=300)

    process = subprocess.Popen(command(crashed, model), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = crashed / f"checkpoint-{SAVE_EVERY}"
    deadline = time.monotonic() + 240
    # Complete, not merely begun: trainer_state.json exists from the moment Trainer opens it, and a kill before
    # its write ends rightly sends the re-run to the previous checkpoint (here none): the CI flake of stop 31.
    while checkpoint_problem(first) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed, not finished
    assert sorted(p.name for p in crashed.glob("checkpoint-*")) == [f"checkpoint-{SAVE_EVERY}"]
    assert not (crashed / "trainer_state.json").exists()

    result = subprocess.run(command(crashed, model), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from {crashed / f'checkpoint-{SAVE_EVERY}'}" in result.stderr
    steps_run = [json.loads((d / "train_results.json").read_text())["train_steps_run"] for d in (reference, crashed)]
    assert steps_run == [STEPS, STEPS - SAVE_EVERY]  # what each call's train_runtime covers
    expected, resumed = losses(reference), losses(crashed)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(SAVE_EVERY + 1, STEPS + 1):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step

    # Cut off after its final checkpoint (in its test, say): the same command finishes without a step past max_steps.
    (crashed / "trainer_state.json").unlink()
    (crashed / "model.safetensors").unlink()
    result = subprocess.run(command(crashed, model), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checkpoint-{STEPS} is at max_steps={STEPS}: training is done" in result.stderr
    assert json.loads((crashed / "trainer_state.json").read_text())["global_step"] == STEPS
    assert json.loads((crashed / "train_results.json").read_text())["train_steps_run"] == 0
    assert sorted(p.name for p in crashed.glob("checkpoint-*")) == [f"checkpoint-{STEPS}"]
    assert losses(crashed) == resumed
    final, last = (load_file(d / "model.safetensors") for d in (crashed, crashed / f"checkpoint-{STEPS}"))
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)  # not re-initialised
