"""LAIL on the CTC recognizers (``trocr_lail/lail/ctc_modeling.py``): tiny CRNN and MobileViT-CTC built from config
and the tiny random Llama of ``test_lail.py``. The CLM gradient reaches only the layers below each tap, the LLM
never changes and never leaves the process, inference and the export are the plain recognizer."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import MobileViTConfig

import trocr_lail.cli
import trocr_lail.run
from trocr_lail.configs import DataArguments, ModelArguments
from trocr_lail.data.collator import CtcLailCollator
from trocr_lail.lail.config import LailArguments
from trocr_lail.lail.ctc_modeling import LailCtcRecognizer, lail_class
from trocr_lail.lail.trainer import CtcLailTrainer
from trocr_lail.models import ctc_families
from trocr_lail.models.crnn.configuration_crnn import CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_processor import build_ctc_processor
from trocr_lail.models.mobilevit_ctc.configuration_mobilevit_ctc import MobileVitCtcConfig, backbone_values
from trocr_lail.models.mobilevit_ctc.modeling_mobilevit_ctc import MobileVitCtcForCTC
from trocr_lail.preflight import SettingsError, check_settings

from conftest import save_tiny_llm
from recipe_smoke import write_line_folder
from test_ctc_training import RUN_ARGS, SLIM
from test_lail import TEXTS, llm_tokenizer, make_llm, training_args  # noqa: F401  (fixture)

CHARSET = "".join(sorted(set("".join(TEXTS)) | {" "}))
SIZE = dict(image_height=16, image_width=128)
# Tap widths that differ (12 after the column pool, 10 per BiLSTM layer; MobileViT stages 8..24, 32 expanded), so a
# connector built for the wrong tap fails.
CRNN = dict(SIZE, stem_channels=4, cnn_blocks=[[1, 8], "M", [1, 12]], lstm_hidden_size=5, lstm_dropout=0.0,
            head_dropout=0.0)
BACKBONE = dict(hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 12, 16, 20, 24, 32], num_attention_heads=2,
                expand_ratio=2.0, output_stride=8)


def plain(family: str):
    torch.manual_seed(0)
    if family == "crnn":
        return CrnnForCTC(CrnnConfig(charset=CHARSET, **CRNN))
    return MobileVitCtcForCTC(MobileVitCtcConfig(charset=CHARSET, head_dropout=0.0, **SIZE,
                                                 mobilevit=backbone_values(MobileViTConfig(**BACKBONE))))


def with_lail(family, tokenizer, layers, connector="linear", **options):
    args = LailArguments(lail=True, lail_layers=list(layers), lail_connector=connector, **options)
    llm = make_llm(tokenizer)
    model = LailCtcRecognizer.from_plain(plain(family), args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm)
    return model, llm, args


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (16, 96), dtype=np.uint8)) for _ in TEXTS]


def collator(model, tokenizer):
    return CtcLailCollator(build_ctc_processor(model.config), 32, llm_tokenizer=tokenizer)


def batch(model, tokenizer, rows=4):
    return collator(model, tokenizer)([{"image": image, "text": text}
                                       for image, text in zip(images()[:rows], TEXTS[:rows])])


def llm_inputs(inputs):
    return {key: inputs[key] for key in ("llm_input_ids", "llm_attention_mask", "llm_labels")}


@pytest.mark.parametrize("family,layers", [("crnn", [0, 1]), ("mobilevit", [2, -1])])
def test_losses_are_finite_and_inference_is_the_plain_recognizer(family, layers, llm_tokenizer):
    model, _, _ = with_lail(family, llm_tokenizer, layers, connector="downsample")
    inputs = batch(model, llm_tokenizer)
    outputs = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"], **llm_inputs(inputs))
    assert outputs.lail_losses.shape == (2,) and torch.isfinite(outputs.lail_losses).all()
    assert (outputs.lail_losses > 0).all() and torch.isfinite(outputs.loss)
    model.eval()
    reference = model.without_lail().eval()
    assert type(reference) is model.plain_class
    with torch.no_grad():  # without LLM inputs the forward is the recognizer's own
        torch.testing.assert_close(model(inputs["pixel_values"]).logits, reference(inputs["pixel_values"]).logits)


# (family, taps, modules below the highest tap, modules above it)
GRADIENT_CASES = [
    ("crnn", [0, 1], ("cnn.", "lstm.0."), ("lstm.1.", "lstm.2.", "head.", "shortcut.")),
    ("crnn", [0], ("cnn.",), ("lstm.", "head.", "shortcut.")),
    ("mobilevit", [2], ("mobilevit.conv_stem.", "mobilevit.encoder.layer.0.", "mobilevit.encoder.layer.1.",
                        "mobilevit.encoder.layer.2."),
     ("mobilevit.encoder.layer.3.", "mobilevit.encoder.layer.4.", "mobilevit.conv_1x1_exp.", "head.")),
]


@pytest.mark.parametrize("family,layers,below,above", GRADIENT_CASES, ids=lambda v: str(v))
def test_the_clm_gradient_reaches_the_layers_below_each_tap_and_nothing_above(family, layers, below, above,
                                                                              llm_tokenizer):
    model, llm, _ = with_lail(family, llm_tokenizer, layers)
    model.train()
    inputs = batch(model, llm_tokenizer)
    outputs = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"], **llm_inputs(inputs))
    outputs.lail_losses.sum().backward()  # the LAIL term alone
    params = dict(model.named_parameters())
    lower = {name: p for name, p in params.items() if name.startswith(below)}
    upper = {name: p for name, p in params.items() if name.startswith(above)}
    assert lower and upper and not set(lower) & set(upper)
    for name, p in lower.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no LAIL gradient below the tap"
    for name, p in upper.items():
        assert p.grad is None or not p.grad.any(), f"{name}: a LAIL gradient above the highest tap"
    assert all(p.grad is not None and p.grad.any() for n, p in params.items() if n.startswith("lail_connectors."))
    assert all(p.grad is None for p in llm.parameters())
    # The recognition loss, by contrast, reaches the layers above the taps.
    model.zero_grad()
    model(pixel_values=inputs["pixel_values"], labels=inputs["labels"]).loss.backward()
    assert all(p.grad is not None and p.grad.any() for name, p in upper.items() if "bias" not in name)


def line_dataset():
    return datasets.Dataset.from_dict({"image": images(), "text": TEXTS}).cast_column("image", datasets.Image())


def test_training_leaves_the_llm_bit_identical_outside_the_optimizer_and_logs_the_diagnostics(
        tmp_path, llm_tokenizer):
    model, llm, args = with_lail("crnn", llm_tokenizer, [0, 1], lail_alpha=0.5, lail_alpha_schedule="linear_warmup",
                                 lail_alpha_warmup_steps=2)
    before = {key: value.clone() for key, value in llm.state_dict().items()}
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    trainer = CtcLailTrainer(model=model, args=training_args(tmp_path, max_steps=2), train_dataset=line_dataset(),
                             data_collator=collator(model, llm_tokenizer), lail_args=args)
    trainer.train()
    assert all(torch.equal(value, before[key]) for key, value in llm.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in llm.parameters())
    llm_ids = {id(p) for p in llm.parameters()}
    assert trainer.optimizer.state and not {id(p) for p in trainer.optimizer.state} & llm_ids
    assert not any(key.startswith(("llm", "_llm")) for key in model.state_dict())
    changed = {key.split(".")[0] for key, value in model.state_dict().items()
               if value.is_floating_point() and not torch.equal(value, weights[key])}
    assert {"cnn", "lstm", "head", "lail_connectors"} <= changed
    first, second = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert (first["lail_alpha"], second["lail_alpha"]) == (0.0, 0.25)  # linear warmup over 2 steps
    for key in ("ctc_loss", "aux_ctc_loss", "lail_loss", "lail_loss_layer_0", "lail_loss_layer_1",
                "lail_uncond_loss", "lail_prefix_info_layer_1", "lail_prefix_info_mismatched_layer_0",
                "lail_grad_ratio_layer_0", "lail_grad_ratio_layer_1"):
        assert np.isfinite(first[key]), key


def test_preflight_accepts_lail_on_a_ctc_recognizer_and_checks_its_taps(tmp_path):
    from trocr_lail.configs import TrainingArguments

    model = ModelArguments(model_name_or_path="config:crnn")
    data = DataArguments(synthetic=True, augment="light")
    training = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], save_strategy="no")
    check_settings(model, data, training, LailArguments(lail=True, lail_layers=[0, 1]))
    with pytest.raises(SettingsError, match="lail_layers: 4 is out of range for a 3-layer encoder"):
        check_settings(model, data, training, LailArguments(lail=True, lail_layers=[0, 4]))
    # The paper-era CRNN's taps are 256 wide after the pool and 512 after a BiLSTM layer: 3 heads divide neither.
    with pytest.raises(SettingsError, match="must divide the qformer width 256"):
        check_settings(model, data, training, LailArguments(lail=True, lail_layers=[0, 1],
                                                            lail_connector="qformer", lail_qformer_heads=3))


@pytest.fixture(scope="module")
def crnn_lail_run(tmp_path_factory):
    """Two steps of recipes/finetune.py's run with LAIL on config:crnn (slim widths, the tiny Llama), evaluating and
    saving at each step, exporting at the end."""
    root = tmp_path_factory.mktemp("crnn-lail")
    folder = write_line_folder(root / "lines", {"train": 4, "validation": 2, "test": 2})
    llm_dir = save_tiny_llm(root / "llm")
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ctc_families.CTC_SHAPES, "crnn", SLIM["crnn"])
        metrics = trocr_lail.run.main([
            "--model_name_or_path", "config:crnn", "--data_dir", str(folder), "--output_dir", str(out),
            "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
            "--lail", "true", "--lail_llm", str(llm_dir), "--lail_layers", "0", "1",
            "--lail_connector", "downsample", "--lail_alpha", "0.3", *RUN_ARGS])
    return out, metrics


def test_finetune_trains_lail_on_config_crnn_and_exports_the_plain_recognizer(crnn_lail_run):
    out, metrics = crnn_lail_run
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and np.isfinite(metrics["train_loss"]) and "test_cer" in metrics
    train = [entry for entry in state["log_history"] if "loss" in entry]
    evals = [entry for entry in state["log_history"] if "eval_loss" in entry]
    assert all(np.isfinite(entry["lail_loss_layer_1"]) for entry in train)
    assert evals and all(np.isfinite(entry["eval_lail_loss"]) and "eval_cer" in entry for entry in evals)
    # The checkpoint keeps the connectors (and config.lail) for the strict resume, and never the LLM.
    with safe_open(out / "checkpoint-2" / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert any(key.startswith("lail_connectors.") for key in keys) and not any("llm" in key for key in keys)
    reloaded = lail_class(CrnnForCTC).from_pretrained(out / "checkpoint-2", use_safetensors=True)
    assert reloaded.lail_layers == [0, 1] and reloaded.llm is None
    # The export is the plain recognizer: no connector, no LLM, no lail entry; it loads as CrnnForCTC.
    with safe_open(out / "export" / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert not any("lail" in key or "llm" in key or key.startswith("shortcut.") for key in keys)
    assert "lail" not in json.loads((out / "export" / "config.json").read_text())
    exported = ctc_families.load_ctc_model(str(out / "export"))
    assert type(exported) is CrnnForCTC
    assert set(exported.state_dict()) == {key for key in reloaded.without_lail().state_dict()
                                          if not key.startswith("shortcut.")}


def test_cli_export_of_a_lail_ctc_checkpoint_writes_the_plain_recognizer(crnn_lail_run, tmp_path):
    out, _ = crnn_lail_run
    assert trocr_lail.cli.main(["export", str(out / "checkpoint-2"), str(tmp_path / "export")]) == 0
    with safe_open(tmp_path / "export" / "model.safetensors", "pt") as weights:
        exported = {key: weights.get_tensor(key) for key in weights.keys()}
    with safe_open(out / "export" / "model.safetensors", "pt") as weights:
        by_the_run = {key: weights.get_tensor(key) for key in weights.keys()}
    assert "lail" not in json.loads((tmp_path / "export" / "config.json").read_text())
    # The last checkpoint is the run's final model: the same keys and weights as the run's own export.
    assert exported.keys() == by_the_run.keys()
    assert all(torch.equal(exported[key], by_the_run[key]) for key in exported)


def test_the_connector_only_stage_leaves_the_recognizer_exactly_as_it_was_batch_norm_statistics_included(
        tmp_path, llm_tokenizer):
    """The prefix gate on a CRNN (lail_connector_only_steps = max_steps): only the connectors learn. The CRNN's batch
    norm keeps running statistics, which a forward in training mode updates even without gradients: they must stay
    at the starting recognizer's, or the frozen recognizer would adapt to the new data (and read differently)."""
    model, _, args = with_lail("crnn", llm_tokenizer, [0, 1], connector="downsample", lail_connector_only_steps=2)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    trainer = CtcLailTrainer(model=model, args=training_args(tmp_path, max_steps=2), train_dataset=line_dataset(),
                             data_collator=collator(model, llm_tokenizer), lail_args=args)
    trainer.train()
    changed = {key for key, value in model.state_dict().items() if not torch.equal(value, before[key])}
    assert changed and all(key.startswith("lail_connectors.") for key in changed), sorted(changed)
    assert all(module.training for module in model.modules())  # the recognizer's own mode is given back
    for entry in [entry for entry in trainer.state.log_history if "loss" in entry]:
        assert "ctc_loss" not in entry and all(np.isfinite(entry[f"lail_loss_layer_{tap}"]) for tap in (0, 1))
