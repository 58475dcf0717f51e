"""Publishing: a LAIL run with push_to_hub + hub_dry_run stages exactly the upload folder (plain export,
processor, a valid card, lail/ sidecar, never the LLM); real pushes go through HfApi (mocked here)."""

import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from safetensors import safe_open
from transformers import VisionEncoderDecoderModel

from trocr_lail.hub.card import render_card, validate_card
from trocr_lail.hub.push import PushError, prepare_upload, push, take_push_request
from trocr_lail.run import main

from conftest import TINY_ARGS, run_tf4_pipeline, save_tiny_llm


@pytest.fixture(scope="module")
def lail_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubrun")
    out = root / "run"
    main(TINY_ARGS + [
        "--synthetic", "true", "--synthetic_train_samples", "16", "--synthetic_eval_samples", "4",
        "--max_steps", "4", "--per_device_train_batch_size", "8", "--output_dir", str(out), "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--generation_max_length", "8", "--logging_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "2",
        "--lail", "true", "--lail_llm", str(save_tiny_llm(root / "llm")), "--lail_layers", "1", "2",
        "--lail_alpha_schedule", "linear_warmup", "--lail_alpha_warmup_steps", "2",
        "--push_to_hub", "true", "--hub_model_id", "someone/tiny-trocr", "--hub_dry_run", "true",
        "--hub_license", "apache-2.0",
    ])
    return out


@pytest.mark.slow
def test_dry_run_folder_holds_exactly_the_upload(lail_run):
    upload = lail_run / "hub_upload"
    names = {str(p.relative_to(upload)) for p in upload.rglob("*") if p.is_file()}
    assert names == {"config.json", "generation_config.json", "model.safetensors", "processor_config.json",
                     "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "README.md", "trocr_pipeline.py",
                     "lail/connectors.safetensors", "lail/lail_config.json", "lail/README.md"}
    with safe_open(str(upload / "model.safetensors"), "pt") as weights:
        assert all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    with safe_open(str(upload / "lail" / "connectors.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    with safe_open(str(lail_run / "model.safetensors"), "pt") as weights:  # the training checkpoint
        trained = {k for k in weights.keys() if k.startswith("lail_connectors.")}
    assert keys == trained and keys  # all connector weights, nothing else (no LLM, no TrOCR)
    lail_config = json.loads((upload / "lail" / "lail_config.json").read_text())
    assert lail_config["lail"]["lail_layers"] == [1, 2] and lail_config["lail"]["llm_hidden_size"] == 32
    assert lail_config["training"]["lail_llm"] == "<local causal LM>"  # local path withheld


@pytest.mark.slow
def test_no_local_paths_user_or_token_anywhere(lail_run):
    private = [str(lail_run.resolve().parent), str(Path.home())]
    for path in (lail_run / "hub_upload").rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json"):
            text = path.read_text()
            assert not any(value in text for value in private), path
            assert "hf_" not in text or "hf_hub" in text
    args = json.loads((lail_run / "training_args.json").read_text())  # replaces the pickled training_args.bin
    assert args["push_to_hub"] is False and args.get("hub_token") in (None, "<HUB_TOKEN>")  # redacted, never pushed


@pytest.mark.slow
def test_card_validates_and_describes_the_run(lail_run):
    card_path = lail_run / "hub_upload" / "README.md"
    assert validate_card(card_path, forbidden=(str(lail_run.resolve()),)) == []
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    assert card.data.pipeline_tag == "image-to-text" and card.data.library_name == "transformers"
    assert card.data.base_model is None and not card.data.datasets  # tiny model, synthetic data: no Hub ids
    assert card.data.license == "apache-2.0" and "- **License:** apache-2.0" in card.text
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    test_results = json.loads((lail_run / "test_results.json").read_text())
    assert results == {"cer": test_results["test_cer"], "wer": test_results["test_wer"]}
    text = card.text
    assert f"{test_results['test_cer'] * 100:.2f}%" in text and "beam size 1" in text
    assert "linear warm-up from 0 to 0.5 over 2 steps" in text and "| connector | linear |" in text
    call = 'pipeline("image-to-text", model="someone/tiny-trocr", trust_remote_code=True)'
    assert text.index(call) < text.index("pipeline_class=ImageToTextPipeline")  # the 5.x call comes first
    assert "pip install trocr-lail" not in text and "pip install transformers torch pillow" in text
    assert "TrOCR: Transformer-Based" in text and "arXiv:2506.22846" in text  # both citations
    assert "| learning_rate |" in text and "| optimizer_steps_done | 4 |" in text


@pytest.mark.slow
def test_training_plots_written(lail_run):
    assert (lail_run / "training_loss.png").stat().st_size > 10_000
    assert (lail_run / "eval_cer.png").stat().st_size > 10_000


def _line_images(folder, count=3):
    from trocr_lail.data.synthetic import generate

    paths = []
    for i, row in enumerate(generate("test", count, seed=5)):
        row["image"].save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


@pytest.mark.slow
def test_dry_run_folder_loads_in_transformers_4_57_pipeline(lail_run, tmp_path):
    from trocr_lail.inference.reader import LineReader

    paths = _line_images(tmp_path)
    upload = lail_run / "hub_upload"
    assert run_tf4_pipeline(upload, paths) == LineReader.from_pretrained(upload, device="cpu").read(paths)


@pytest.mark.slow
def test_dry_run_folder_reads_with_the_image_to_text_pipeline_on_5x(lail_run, tmp_path):
    from transformers import pipeline

    from trocr_lail.inference.reader import LineReader

    paths = _line_images(tmp_path)
    upload = lail_run / "hub_upload"
    reader = pipeline("image-to-text", model=str(upload), trust_remote_code=True, device="cpu")
    texts = [out[0]["generated_text"] for out in reader([str(p) for p in paths], batch_size=2)]
    assert texts == LineReader.from_pretrained(upload, device="cpu").read(paths)


@pytest.mark.slow
def test_sidecar_continues_lail_training(lail_run):
    from trocr_lail.lail.sidecar import load_lail_model

    model = load_lail_model(lail_run / "hub_upload")
    trained = VisionEncoderDecoderModel.from_pretrained(lail_run)  # plain view of the training checkpoint
    with safe_open(str(lail_run / "model.safetensors"), "pt") as weights:
        for key, value in model.lail_connectors.state_dict().items():
            assert torch.equal(value, weights.get_tensor("lail_connectors." + key))
    assert torch.equal(model.decoder.output_projection.weight, trained.decoder.output_projection.weight)


@pytest.mark.slow
def test_push_failure_keeps_folder_and_says_how_to_retry(lail_run):
    upload = lail_run / "hub_upload"
    before = sorted(p.name for p in upload.rglob("*"))
    api = mock.Mock()
    api.upload_folder.side_effect = OSError("connection reset")
    with pytest.raises(PushError, match="connection reset") as err:
        push(upload, "someone/tiny-trocr", api=api)
    assert "Retry with: trocr-lail push --folder" in str(err.value) and str(upload) in str(err.value)
    assert sorted(p.name for p in upload.rglob("*")) == before
    api.create_repo.assert_called_once_with("someone/tiny-trocr", repo_type="model", private=True, exist_ok=True)


@pytest.mark.slow
def test_push_uploads_the_staged_folder(lail_run, tmp_path):
    api = mock.Mock()
    api.upload_folder.return_value = SimpleNamespace(commit_url="https://huggingface.co/someone/x/commit/1")
    folder = prepare_upload(lail_run, "someone/x", dest=tmp_path / "stage", lail_sidecar=False)
    assert not (folder / "lail").exists() and "lail/README.md" not in (folder / "README.md").read_text()
    assert push(folder, "someone/x", private=False, api=api).endswith("/commit/1")
    api.create_repo.assert_called_once_with("someone/x", repo_type="model", private=False, exist_ok=True)
    assert api.upload_folder.call_args.kwargs["folder_path"] == str(folder)


def _args(**overrides):
    defaults = {"push_to_hub": True, "hub_model_id": "me/model", "hub_private_repo": None, "hub_token": None,
                "hub_revision": None, "hub_dry_run": False, "hub_lail_sidecar": True, "export": True,
                "hub_license": "mit"}
    return SimpleNamespace(**{**defaults, **overrides})


def test_take_push_request_disables_trainer_push():
    args = _args()
    request = take_push_request(args)
    assert request["private"] is True and request["repo_id"] == "me/model" and args.push_to_hub is False
    assert request["license"] == "mit"
    assert take_push_request(_args(hub_private_repo=False))["private"] is False
    assert take_push_request(_args(push_to_hub=False)) is None
    with pytest.raises(ValueError, match="HF_TOKEN"):
        take_push_request(_args(hub_token="hf_secret"))
    with pytest.raises(ValueError, match="owner/name"):
        take_push_request(_args(hub_model_id=None))
    with pytest.raises(ValueError, match="export: true"):
        take_push_request(_args(export=False))


def test_push_license_defaults_to_the_base_checkpoint_and_is_required():
    assert take_push_request(_args(hub_license=None), "microsoft/trocr-base-stage1")["license"] == "mit"
    assert take_push_request(_args(hub_license="apache-2.0"), "microsoft/trocr-base-stage1")["license"] == "apache-2.0"
    assert take_push_request(_args(hub_license="other"), "tiny")["license"] == "other"
    for base in ("tiny", "someone/unknown-trocr", None):
        with pytest.raises(ValueError, match="needs a license.*hub_license"):
            take_push_request(_args(hub_license=None), base)
    with pytest.raises(ValueError, match="not a Hub license id"):
        take_push_request(_args(hub_license="MIT License"), "tiny")


def test_card_names_muon_when_it_replaced_optim(tmp_path):
    from trocr_lail.configs import DataArguments, ModelArguments, TrainingArguments
    from trocr_lail.hub.card import run_facts

    facts = run_facts(ModelArguments(), DataArguments(synthetic=True),
                      TrainingArguments(output_dir=str(tmp_path), report_to="none", optim_muon=True), None,
                      {"test_cer": 0.2, "test_wer": 0.4, "test_lines": 5}, global_step=10)
    assert facts["hyperparameters"]["optim"].startswith("Muon")


def test_validate_card_catches_problems(tmp_path):
    facts = {"base_model": "microsoft/trocr-base-stage1", "base_description": "x", "dataset": "Teklia/IAM-line",
             "dataset_description": "IAM", "num_beams": 10, "max_length": 128, "hyperparameters": {"seed": 1},
             "lail": None, "test_cer": 0.05, "test_wer": 0.1, "test_split": "test", "test_lines": 5, "license": "mit"}
    card = render_card(facts, "me/model")
    card.save(tmp_path / "good.md")
    assert validate_card(tmp_path / "good.md") == []
    assert card.data.base_model == "microsoft/trocr-base-stage1" and card.data.datasets == ["Teklia/IAM-line"]
    _check_metadata_with_huggingface_hub((tmp_path / "good.md").read_text(), facts)
    render_card({**facts, "license": None}, "me/model").save(tmp_path / "unlicensed.md")
    assert validate_card(tmp_path / "unlicensed.md") == ["no license"]
    broken = (tmp_path / "good.md").read_text().replace("value: 0.05", "value: not-a-number")
    (tmp_path / "broken.md").write_text(broken)
    assert validate_card(tmp_path / "broken.md") == ["eval result 'cer' has no numeric value"]
    text = (tmp_path / "good.md").read_text()
    (tmp_path / "bad.md").write_text(text.replace("pipeline_tag: image-to-text", "pipeline_tag: text-generation")
                                     + "\nhf_" + "a" * 30 + "\n/home/alice/run\n")
    problems = validate_card(tmp_path / "bad.md", forbidden=("/home/alice",))
    assert len(problems) == 3 and "pipeline_tag" in problems[0] and "token" in problems[1]


def test_sidecar_refuses_a_different_lail_config(tiny_processor, tmp_path):
    from conftest import make_tiny_model
    from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel
    from trocr_lail.lail.sidecar import load_connector_weights, write_sidecar

    config = {"lail_layers": [1], "lail_connector": "linear", "lail_connector_activation": "gelu",
              "lail_connector_hidden_dim": None, "lail_downsample_blocks": 2, "lail_qformer_queries": 4,
              "lail_qformer_heads": 2}
    trained = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), config, 16)
    trained.save_pretrained(tmp_path / "ckpt")
    write_sidecar(tmp_path / "ckpt", tmp_path / "lail")
    fresh = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor, seed=1), config, 16)
    load_connector_weights(fresh, tmp_path / "lail")
    for key, value in trained.lail_connectors.state_dict().items():
        assert torch.equal(fresh.lail_connectors.state_dict()[key], value)
    other = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), {**config, "lail_layers": [2]},
                                                     16)
    with pytest.raises(ValueError, match="same lail_"):
        load_connector_weights(other, tmp_path / "lail")
    with pytest.raises(ValueError, match="not a LAIL checkpoint"):
        make_tiny_model(tiny_processor).save_pretrained(tmp_path / "plain")
        write_sidecar(tmp_path / "plain", tmp_path / "x")


def _check_metadata_with_huggingface_hub(text: str, facts: dict) -> None:
    """The card's YAML read by huggingface_hub alone: ModelCardData fields and the model-index parser."""
    import yaml
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    metadata = yaml.safe_load(text.split("---")[1])
    data = ModelCardData(**metadata, ignore_metadata_errors=False)
    assert (data.license, data.base_model, data.datasets) == ("mit", facts["base_model"], [facts["dataset"]])
    assert data.pipeline_tag == "image-to-text" and data.library_name == "transformers"
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "model" and {(r.metric_type, r.metric_value, r.dataset_type, r.dataset_split) for r in results} \
        == {("cer", 0.05, "Teklia/IAM-line", "test"), ("wer", 0.1, "Teklia/IAM-line", "test")}


def test_card_of_a_hub_start_names_base_model_license_and_dataset(tmp_path):
    from trocr_lail.configs import DataArguments, ModelArguments, TrainingArguments
    from trocr_lail.hub.card import run_facts

    facts = run_facts(ModelArguments(model_name_or_path="microsoft/trocr-base-stage1"),
                      DataArguments(dataset_name="Teklia/IAM-line"),
                      TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none"), None,
                      {"test_cer": 0.05, "test_wer": 0.1, "test_lines": 5}, global_step=10)
    assert facts["license"] == "mit"  # no hub_license: microsoft/trocr-* weights are MIT
    assert facts["hyperparameters"]["optim"].startswith("adamw")
    render_card(facts, "me/model").save(tmp_path / "README.md")
    assert validate_card(tmp_path / "README.md") == []
    _check_metadata_with_huggingface_hub((tmp_path / "README.md").read_text(), facts)
