"""Secrets never reach disk, pickles load weights-only (strict_safetensors refuses them), remote code needs a flag, an uncached Hub id fails before training
with a message that says how to make it available."""

from pathlib import Path

import pytest
import torch
from transformers import VisionEncoderDecoderModel

from trocr_lail.availability import ResourceUnavailableError
from trocr_lail.configs import DataArguments, ModelArguments
from trocr_lail.data.sources import load_splits
from trocr_lail.lail.config import LailArguments
from trocr_lail.lail.llm import load_frozen_llm
from trocr_lail.models.loading import hub_kwargs, load_processor_and_model
from trocr_lail.run import main

from conftest import TINY_ARGS, make_tiny_model

FAKE_TOKEN = "hf_reliabilityTestFakeToken0123456789abcdef"
FAKE_ID = "no-such-org/no-such-model-xyz"
RUN = ["--synthetic", "true", "--synthetic_train_samples", "8", "--synthetic_eval_samples", "2",
       "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu", "true", "--logging_steps", "1",
       "--generation_max_length", "8", "--validation_split", "null", "--dataloader_num_workers", "0"]


def saved_tiny(tmp_path, processor, safe=True) -> Path:
    folder = tmp_path / "local-model"
    model = make_tiny_model(processor)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if not safe:  # transformers 5.x no longer writes pickles itself: make the legacy layout by hand
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.mark.slow
def test_token_and_local_paths_never_written(tmp_path, tiny_processor, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    model_dir = saved_tiny(tmp_path, tiny_processor)
    out = tmp_path / "out"
    main(["--model_name_or_path", str(model_dir), *RUN, "--max_steps", "2", "--save_strategy", "steps",
          "--save_steps", "1", "--output_dir", str(out), "--push_to_hub", "false"])
    written = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "checkpoint-2" / "model.safetensors").is_file() and (out / "export").is_dir()
    for path in written:
        assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    assert not [p for p in written if p.name == "training_args.bin"]  # pickles: replaced by training_args.json
    assert (out / "training_args.json").is_file()
    for path in (out / "export").iterdir():  # what gets pushed must not reveal this machine's layout
        assert str(tmp_path).encode() not in path.read_bytes(), path


def test_hub_token_argument_is_refused(tmp_path):
    with pytest.raises(ValueError, match="HF_TOKEN"):
        main(TINY_ARGS + RUN + ["--hub_token", FAKE_TOKEN, "--output_dir", str(tmp_path)])


def test_pickled_weights_load_weights_only_by_default_and_strict_refuses(tmp_path, tiny_processor, caplog):
    model_dir = saved_tiny(tmp_path, tiny_processor, safe=False)
    assert (model_dir / "pytorch_model.bin").is_file() and not (model_dir / "model.safetensors").exists()
    with caplog.at_level("WARNING", logger="trocr_lail"):
        _, model = load_processor_and_model(ModelArguments(model_name_or_path=str(model_dir)))
    assert "weights_only=True" in caplog.text and "strict_safetensors" in caplog.text
    expected = make_tiny_model(tiny_processor).state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())  # the saved weights, not fresh
    with pytest.raises(ValueError, match="strict_safetensors"):
        load_processor_and_model(ModelArguments(model_name_or_path=str(model_dir), strict_safetensors=True))
    defaults = hub_kwargs(ModelArguments(model_name_or_path="x"))
    assert defaults["trust_remote_code"] is False and defaults["weights_only"] is True
    assert hub_kwargs(ModelArguments(model_name_or_path="x", strict_safetensors=True))["use_safetensors"] is True


def test_a_bin_only_checkpoint_dir_trains_and_everything_written_is_safetensors(tmp_path, tiny_processor):
    model_dir = saved_tiny(tmp_path, tiny_processor, safe=False)
    out = tmp_path / "out"
    main(["--model_name_or_path", str(model_dir), *RUN, "--max_steps", "2", "--save_strategy", "steps",
          "--save_steps", "2", "--output_dir", str(out)])
    written = {p.name for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in written and not {n for n in written if n.endswith((".bin", ".pt"))} - {
        "optimizer.pt", "scheduler.pt", "rng_state.pth"}  # Trainer's own state files stay torch files


class _RunsCode:
    def __reduce__(self):
        import os

        return os.system, (f"touch {_RunsCode.marker}",)


def test_a_malicious_bin_is_refused_not_executed(tmp_path, tiny_processor):
    """weights_only=True: a pickle that would run code on load fails instead."""
    model_dir = saved_tiny(tmp_path, tiny_processor, safe=False)
    _RunsCode.marker = tmp_path / "pwned"
    torch.save({"weights": _RunsCode()}, model_dir / "pytorch_model.bin")
    with pytest.raises(Exception):
        load_processor_and_model(ModelArguments(model_name_or_path=str(model_dir)))
    assert not _RunsCode.marker.exists()


@pytest.mark.parametrize("what", ["model", "dataset", "llm"])
def test_uncached_hub_id_says_how_to_get_it(what, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ResourceUnavailableError) as caught:
        if what == "model":
            load_processor_and_model(ModelArguments(model_name_or_path=FAKE_ID))
        elif what == "dataset":
            load_splits(DataArguments(dataset_name=FAKE_ID))
        else:
            load_frozen_llm(LailArguments(lail=True, lail_llm=FAKE_ID))
    message = str(caught.value)
    assert f"'{FAKE_ID}'" in message and "not in the local cache" in message and "HF_HUB_OFFLINE" in message
    assert f"hf download {FAKE_ID}" in message and "local directory" in message
    assert ("--repo-type dataset" in message) == (what == "dataset")


def test_run_fails_before_training_on_an_uncached_llm(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    with pytest.raises(ResourceUnavailableError, match="lail_llm"):
        main(TINY_ARGS + RUN + ["--lail", "true", "--lail_llm", FAKE_ID, "--max_steps", "1",
                                "--output_dir", str(out)])
    assert not (out / "trainer_state.json").exists() and not list(out.glob("checkpoint-*"))
