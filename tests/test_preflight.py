"""Issue 13, settings: everything the configuration alone can tell fails in the first seconds (before the model,
the data or the LLM load), one line per setting with the allowed values; LAIL layers are the indices tapped."""

import errno
import logging
import os
import tempfile
import time

import pytest

from trocr_lail import preflight, run
from trocr_lail.lail.config import normalise_layers
from trocr_lail.parser import parse_recipe  # the same parse as run.main
from trocr_lail.preflight import SettingsError, check_loaded_model, check_output_dir, estimate_run_bytes

from conftest import TINY_ARGS
from test_lail import batch, lail_trainer


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if run.main gets as far as loading a model or data."""
    def loaded(*args, **kwargs):
        raise AssertionError("a setting problem was found only after loading")

    monkeypatch.setattr(run, "load_processor_and_model", loaded)
    monkeypatch.setattr(run, "load_splits", loaded)


def main(tmp_path, *flags):
    return run.main([*TINY_ARGS, "--synthetic", "true", "--output_dir", str(tmp_path / "out"), "--use_cpu", "true",
                     "--report_to", "none", *flags])


def test_normalise_layers():
    assert normalise_layers([-1, 0, 2, -3, 1], 2) == [2, 0, 2, 0, 1]
    for bad in (99, -7, 3, -4):
        with pytest.raises(ValueError, match=rf"lail_layers: {bad} is out of range for a 2-layer encoder; allowed "
                                             r"are -3\.\.2 \(0 = embeddings, -1 = last layer\)"):
            normalise_layers([bad], 2)


@pytest.mark.parametrize("layer", ["99", "-7"])
def test_out_of_range_layers_fail_before_loading(tmp_path, no_loading, layer):
    start = time.perf_counter()
    with pytest.raises(SettingsError, match=rf"^lail_layers: {layer} is out of range for a 2-layer encoder; "
                                            r"allowed are -3\.\.2"):
        main(tmp_path, "--lail", "true", "--lail_layers", layer)
    assert time.perf_counter() - start < 10


def test_out_of_range_layers_of_a_loaded_model(tiny_model):
    from trocr_lail.configs import TrainingArguments
    from trocr_lail.lail.config import LailArguments

    with pytest.raises(SettingsError, match="lail_layers: 5 is out of range for a 2-layer encoder"):
        check_loaded_model(tiny_model, TrainingArguments(output_dir="unused", save_strategy="no"),
                           LailArguments(lail=True, lail_layers=[5]))


def test_logs_name_the_tapped_layer(tmp_path, tiny_processor):
    from trocr_lail.models.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    trainer, model, _ = lail_trainer(tmp_path, tiny_processor, tokenizer, layers=(-1, -3))
    assert model.lail_layers == [2, 0]
    model.train()
    trainer.compute_loss(model, batch(tiny_processor, tokenizer))
    assert {"lail_loss_layer_2", "lail_loss_layer_0"} <= set(trainer._metrics["train"])
    assert not any(key.startswith("lail_loss_layer_-") for key in trainer._metrics["train"])


@pytest.mark.parametrize("flags, message", [
    (["--lail", "true", "--lail_connector", "nonsense"],
     r"^lail_connector = 'nonsense': allowed are downsample, linear, qformer$"),
    (["--per_device_train_batch_size", "0"], r"^per_device_train_batch_size = 0: must be a whole number >= 1$"),
    (["--gradient_accumulation_steps", "0"], r"^gradient_accumulation_steps = 0: must be a whole number >= 1$"),
    (["--lail", "true", "--lail_llm_dtype", "float8"], r"^lail_llm_dtype = 'float8': allowed are auto, float32, bfloat16"),
    (["--lail", "true", "--lail_connector", "qformer", "--lail_qformer_heads", "5"],
     r"lail_qformer_heads = 5: must divide the qformer width 32"),
    (["--nonfinite_loss_policy", "ignore"], r"nonfinite_loss_policy = 'ignore': allowed are"),
    (["--eval_strategy", "steps", "--validation_split", "null"], r"eval_strategy = steps: needs a validation_split"),
    (["--model_name_or_path", "./no/such/model"], r"model_name_or_path = './no/such/model': no such model folder"),
    (["--lail", "true", "--lail_llm", "/no/such/llm"], r"lail_llm = '/no/such/llm': no such model folder"),
    (["--synthetic", "false", "--data_dir", "/no/such/data"], r"data_dir = '/no/such/data': no such folder"),
    (["--early_stopping_patience", "2"], r"early_stopping_patience: needs load_best_model_at_end"),
])
def test_bad_settings_fail_before_loading(tmp_path, no_loading, flags, message):
    with pytest.raises(SettingsError, match=message):
        main(tmp_path, *flags)


def test_several_bad_settings_are_listed_together(tmp_path, no_loading):
    with pytest.raises(SettingsError) as caught:
        main(tmp_path, "--per_device_train_batch_size", "0", "--lail", "true", "--lail_connector", "nonsense",
             "--lail_layers", "99")
    lines = str(caught.value).splitlines()
    assert lines[0] == "Invalid settings:" and len(lines) == 4
    assert [line.strip().split(" ")[0] for line in lines[1:]] == ["per_device_train_batch_size", "lail_connector",
                                                                  "lail_layers:"]


def test_config_presets_and_hub_ids_are_not_rejected(tmp_path, monkeypatch):
    model_args, data_args, training_args, lail_args, peft_args = parse_recipe(
        [*TINY_ARGS, "--synthetic", "true", "--output_dir", str(tmp_path), "--lail", "true",
         "--lail_layers", "99", "--model_name_or_path", "microsoft/trocr-base-stage1"])
    preflight.check_settings(model_args, data_args, training_args, lail_args, peft_args)  # depth unknown: later
    model_args.model_name_or_path = "config:trocr-small"  # a preset's depth is known from its config: now
    with pytest.raises(SettingsError, match="lail_layers: 99 is out of range for a 12-layer encoder"):
        preflight.check_settings(model_args, data_args, training_args, lail_args, peft_args)
    lail_args.lail_layers = [12]
    preflight.check_settings(model_args, data_args, training_args, lail_args, peft_args)


def test_save_steps_without_a_save_strategy_warns(tmp_path, caplog):
    args = parse_recipe(["--config", "recipes/quickstart/baseline.yaml", "--save_steps", "10",
                           "--output_dir", str(tmp_path)])
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        preflight.check_settings(*args)
    assert "save_steps = 10 has no effect: save_strategy is 'no', so no checkpoint is written. Add " \
           "--save_strategy steps" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        preflight.check_settings(*parse_recipe(["--config", "recipes/quickstart/baseline.yaml",
                                                  "--output_dir", str(tmp_path)]))
    assert "save_steps" not in caplog.text
    assert "has no effect" not in caplog.text  # the quickstart sets optim_muon and leaves optim alone
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        preflight.check_settings(*parse_recipe(["--config", "recipes/quickstart/baseline.yaml",
                                                  "--output_dir", str(tmp_path), "--optim", "sgd"]))
    assert "optim = sgd has no effect: optim_muon is true" in caplog.text


def test_read_only_output_dir_fails_before_loading(tmp_path, no_loading, monkeypatch):
    # Root ignores permission bits, so the read-only mount is simulated where the probe write happens.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(SettingsError, match=r"output_dir = '.*out' is not writable \(Read-only file system\); "
                                            "choose another output_dir"):
        main(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_unwritable_output_dir_for_a_normal_user(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(SettingsError, match="is not writable"):
        check_output_dir(locked / "run")


def test_probe_leaves_nothing_behind(tmp_path):
    check_output_dir(tmp_path / "new" / "run")
    assert list((tmp_path / "new" / "run").iterdir()) == []


def test_disk_space_estimate_and_refusal(tmp_path, tiny_model, monkeypatch):
    from trocr_lail.configs import TrainingArguments
    from trocr_lail.lail.config import LailArguments

    args = TrainingArguments(output_dir=str(tmp_path), save_strategy="steps", save_steps=10, max_steps=100,
                             save_total_limit=3, use_cpu=True, report_to=[])
    params = sum(p.numel() for p in tiny_model.parameters())
    # 3 checkpoints of fp32 weights + two fp32 AdamW moments, plus the final model and the export.
    assert estimate_run_bytes(tiny_model, args) == 3 * (4 * params + 8 * params) + 2 * 4 * params
    args.save_total_limit = None
    assert estimate_run_bytes(tiny_model, args) == 10 * 12 * params + 8 * params  # 100 / 10 saves, none deleted
    usage = preflight.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with pytest.raises(SettingsError, match=r"has 0\.00 GiB free, but this run writes about 0\.\d\d GiB \(10 "
                                            r"checkpoint\(s\) of weights \+ optimizer state, the final model and "
                                            r"the export\); free space, lower save_total_limit"):
        check_loaded_model(tiny_model, args, LailArguments())


def test_full_output_disk_fails_before_data_loading(tmp_path, monkeypatch):
    usage = preflight.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: usage._replace(free=1000))

    def loaded(*args, **kwargs):
        raise AssertionError("data loaded before the disk check")

    monkeypatch.setattr(run, "load_splits", loaded)
    with pytest.raises(SettingsError, match="GiB free, but this run writes about"):
        main(tmp_path)


def test_null_on_the_command_line_means_none(tmp_path):
    _, data_args, training_args, *_ = parse_recipe(["--synthetic", "true", "--validation_split", "null",
                                                      "--test_split", "None", "--output_dir", str(tmp_path)])
    assert data_args.validation_split is None and data_args.test_split is None
    assert data_args.train_split == "train" and training_args.output_dir == str(tmp_path)


def test_config_presets_are_checked_from_their_published_shape():
    from trocr_lail.configs import ModelArguments
    from trocr_lail.preflight import encoder_shape, model_source_problem

    assert encoder_shape(ModelArguments(model_name_or_path="config:trocr-large")) == (24, 1024)
    assert model_source_problem("model_name_or_path", "config:trocr-base") is None
    assert "allowed presets are config:trocr-small" in model_source_problem("model_name_or_path", "config:trocr-xl")
