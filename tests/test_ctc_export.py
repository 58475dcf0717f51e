"""A CTC recognizer's export ships like a TrOCR one: its model code and ``trocr_pipeline.py`` make
``pipeline("image-to-text", trust_remote_code=True)`` read it with transformers alone (5.x and 4.57.x, each in a
fresh process) exactly as ``trocr-lail predict`` does, confidences included; without remote code it loads in a
process that registered the families; ``evaluate`` reports on it; the push dry run stages it with a complete card."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCTC, MobileViTConfig, pipeline

import trocr_lail.run
from trocr_lail.cli import main
from trocr_lail.data.synthetic import generate
from trocr_lail.hub.card import validate_card
from trocr_lail.hub.export import export_model
from trocr_lail.hub.push import prepare_upload
from trocr_lail.inference import pipeline as line_pipeline
from trocr_lail.inference.reader import LineReader
from trocr_lail.models import ctc_families
from trocr_lail.models.crnn.configuration_crnn import CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_processor import build_ctc_processor
from trocr_lail.models.mobilevit_ctc.configuration_mobilevit_ctc import MobileVitCtcConfig, backbone_values
from trocr_lail.models.mobilevit_ctc.modeling_mobilevit_ctc import MobileVitCtcForCTC

from conftest import tf4_python
from recipe_smoke import write_line_folder

HERE = Path(__file__).resolve().parent
CHARSET = " abcdefghijklmnopqrstuvwxyz"
TINY_MOBILEVIT = dict(hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 8, 8, 8, 8, 16], num_attention_heads=2,
                      expand_ratio=2.0, output_stride=8)
FAMILIES = {
    "crnn": (CrnnForCTC, CrnnConfig(charset=CHARSET, image_height=32, image_width=256, stem_channels=4,
                                    cnn_blocks=[[1, 8], "M", [1, 8], "M", [1, 16]], lstm_hidden_size=8)),
    "mobilevit_ctc": (MobileVitCtcForCTC, MobileVitCtcConfig(charset=CHARSET, image_height=32, image_width=256,
                                                             mobilevit=backbone_values(MobileViTConfig(
                                                                 **TINY_MOBILEVIT)))),
}
ALLOWED_IMPORTS = {"__future__", "collections", "dataclasses", "numpy", "PIL", "tokenizers", "torch", "transformers"}


def image_sensitive_ctc_export(out_dir: Path, family: str = "crnn", scale: float = 4.0) -> Path:
    """A tiny random recognizer whose text depends on the image: at the default init every line reads the same
    character, which would let a reader that ignored its input pass an equality test."""
    model_class, config = FAMILIES[family]
    torch.manual_seed(0)
    model = model_class(config.__class__.from_dict(config.to_dict())).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if (name.endswith("weight") and param.dim() > 1) or "weight_ih" in name:
                param.mul_(scale)
        if family == "mobilevit_ctc":  # at its init the features vanish on the way up (batch-norm gains ~N(0, 0.02))
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    torch.nn.init.ones_(module.weight)
    return export_model(model, build_ctc_processor(model.config), out_dir)


def line_images(folder: Path, count: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(generate("test", count, seed=4, min_aspect=4.0)):
        paths.append(folder / f"{i}.png")
        row["image"].save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return image_sensitive_ctc_export(tmp_path_factory.mktemp("run") / "export")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return line_images(tmp_path_factory.mktemp("lines"))


@pytest.fixture(scope="module")
def predicted(export, paths, tmp_path_factory):
    """``trocr-lail predict --confidence`` rows of the lines."""
    out = tmp_path_factory.mktemp("predict") / "lines.jsonl"
    assert main(["predict", str(export), *map(str, paths), "--confidence", "--output", str(out), "--device", "cpu",
                 "--no_progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({row["text"] for row in rows}) >= 4 and len({row["conf"] for row in rows}) >= 4  # lines differ
    return rows


def test_export_carries_its_model_code_and_the_pipeline_file(export):
    config = json.loads((export / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_crnn.CrnnConfig",
                                  "AutoModelForCTC": "modeling_crnn.CrnnForCTC"}
    assert config["custom_pipelines"] == {"image-to-text": {
        "impl": "trocr_pipeline.TrOCRLinePipeline", "pt": ["AutoModelForCTC"], "type": "image"}}
    assert json.loads((export / "preprocessor_config.json").read_text())["auto_map"] == {
        "AutoImageProcessor": "ctc_processor.CtcLineImageProcessor"}
    assert (export / "trocr_pipeline.py").read_bytes() == Path(line_pipeline.__file__).read_bytes()
    code = {path.stem: path.read_text() for path in export.glob("*.py") if path.name != "trocr_pipeline.py"}
    assert set(code) == {"configuration_crnn", "modeling_crnn", "ctc_recognizer", "ctc_decoding", "ctc_vocab",
                         "ctc_processor"}
    for name, source in code.items():
        tree = ast.parse(source)
        relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
        assert all(node.level in (0, 1) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)), name
        assert relative <= set(code), name  # flat: every relative import is a file of the export
        absolute = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        absolute |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        assert absolute <= ALLOWED_IMPORTS, (name, absolute - ALLOWED_IMPORTS)  # never trocr_lail
    # 4.57.x copies only directly imported files: the model module names ctc_decoding itself.
    assert re.search(r"^from \.ctc_decoding import", code["modeling_crnn"], re.MULTILINE)


def run_remote_pipeline(python: str, export: Path, paths: list[Path], batch_size: int) -> list[dict]:
    result = subprocess.run([python, str(HERE / "ctc_pipeline_run.py"), "--batch_size", str(batch_size),
                             str(export), *map(str, paths)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_same_lines(records: list[dict], rows: list[dict]) -> None:
    """Pipeline records against predict's JSONL rows (rounded to 4 decimals)."""
    for record, row in zip(records, rows, strict=True):
        assert record["generated_text"] == row["text"] and record["tokens"] == row["tokens"]
        for key in ("conf", "token_conf", "char_conf"):
            assert record[key] == pytest.approx(row[key], abs=6e-5), key


@pytest.mark.parametrize("batch_size", [1, 4])
def test_remote_code_pipeline_reads_like_predict_on_5x(export, paths, predicted, batch_size):
    assert_same_lines(run_remote_pipeline(sys.executable, export, paths, batch_size), predicted)


def test_remote_code_pipeline_reads_like_predict_on_4_57(export, paths, predicted):
    assert_same_lines(run_remote_pipeline(tf4_python(), export, paths, batch_size=4), predicted)


def test_a_mobilevit_ctc_export_reads_through_its_remote_code_too(paths, tmp_path):
    export = image_sensitive_ctc_export(tmp_path / "export", "mobilevit_ctc")
    assert json.loads((export / "config.json").read_text())["auto_map"]["AutoModelForCTC"] == (
        "modeling_mobilevit_ctc.MobileVitCtcForCTC")
    expected = LineReader.from_pretrained(export, device="cpu").read(paths, scored=True)
    assert len({line["text"] for line in expected}) >= 3  # texts differ by image: the equality below can fail
    records = run_remote_pipeline(sys.executable, export, paths, batch_size=3)
    assert [record["generated_text"] for record in records] == [line["text"] for line in expected]
    assert [record["conf"] for record in records] == pytest.approx([line["conf"] for line in expected], abs=1e-6)


def test_pipeline_in_this_process_reads_like_line_reader(export, paths):
    reader = pipeline("image-to-text", model=str(export), trust_remote_code=True, device="cpu")
    expected = LineReader.from_pretrained(export, device="cpu").read(paths)
    assert reader(str(paths[1])) == [{"generated_text": expected[1]}]
    assert reader([str(p) for p in paths], batch_size=4) == [[{"generated_text": text}] for text in expected]
    with pytest.raises(ValueError, match="num_beams: a CTC recognizer reads each line in one pass"):
        reader(str(paths[0]), num_beams=3)


def test_without_remote_code_it_loads_only_where_the_families_are_registered(export, paths):
    ctc_families.register_auto_classes()
    model = AutoModelForCTC.from_pretrained(export, use_safetensors=True, trust_remote_code=False)
    assert type(model) is CrnnForCTC  # this package's class, not the export's copy
    with pytest.raises(ValueError, match="trust_remote_code"):  # the pipeline file is never run unasked
        pipeline("image-to-text", model=str(export), device="cpu")
    reader = pipeline("trocr-image-to-text", model=str(export), device="cpu")  # registered by import trocr_lail
    assert type(reader) is line_pipeline.TrOCRLinePipeline and type(reader.model) is CrnnForCTC
    assert reader(str(paths[0])) == [{"generated_text": LineReader.from_pretrained(export, device="cpu").read(
        paths[:1])[0]}]
    script = ("import sys; from transformers import AutoModelForCTC\n"
              "try: AutoModelForCTC.from_pretrained(sys.argv[1], trust_remote_code=False)\n"
              "except ValueError as err: print('refused' if 'trust_remote_code' in str(err) else err)\n")
    result = subprocess.run([sys.executable, "-c", script, str(export)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.stdout.strip().splitlines()[-1] == "refused", result.stderr[-2000:]


def test_evaluate_reports_on_a_ctc_export(export, tmp_path):
    data = write_line_folder(tmp_path / "data", {"train": 2, "validation": 3, "test": 4})
    report = tmp_path / "report"
    assert main(["evaluate", str(export), "--data_dir", str(data), "--split", "test", "--report_dir", str(report),
                 "--fit_temperature_on", "validation", "--device", "cpu", "--no_progress"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["lines"] == 4 and metrics["num_beams"] == 1 and 0 < metrics["cer"]
    for key in ("wer", "mean_confidence", "confidence_ece", "confidence_ece_at_temperature",
                "confidence_temperature", "least_confident_tenth_cer"):
        assert key in metrics, key
    rows = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
    images = sorted((data / "test").glob("*.png"))
    expected = LineReader.from_pretrained(export, device="cpu").read(images, scored=True)
    assert {Path(row["image"]).name: row["prediction"] for row in rows} == {
        image.name: line["text"] for image, line in zip(images, expected)}
    assert [row["confidence"] for row in rows] == pytest.approx([line["conf"] for line in expected], abs=1e-6)
    assert (report / "report.html").is_file() and "least confident" in (report / "report.md").read_text()


def test_card_of_a_ctc_export_names_what_a_user_needs(export):
    upload = prepare_upload(export.parent, "someone/tiny-crnn", license_id="mit")
    assert validate_card(upload / "README.md") == []
    card = (upload / "README.md").read_text()
    for needed in ("CNN-BiLSTM-CTC", "BiLSTM (hidden 8", "27 characters plus the CTC blank"
                   .replace("27", str(len(CHARSET))), "Trained on:", "Test CER / WER:", "Intended use",
                   'pipeline("image-to-text", model="someone/tiny-crnn", trust_remote_code=True)',
                   "register_auto_classes()", "trust_remote_code=False", "Confidence", "Retsinas"):
        assert needed in card, needed
    params = sum(p.numel() for p in ctc_families.load_ctc_model(str(export)).parameters())
    assert f"{params:,} parameters" in card
    tags = ModelCard.load(upload / "README.md").data.tags
    assert {"ctc", "crnn"} <= set(tags) and not {"trocr", "vision-encoder-decoder"} & set(tags)
    assert {"modeling_crnn.py", "trocr_pipeline.py", "model.safetensors"} <= {p.name for p in upload.iterdir()}


def test_a_ctc_run_with_hub_dry_run_stages_its_upload(tmp_path, monkeypatch):
    monkeypatch.setitem(ctc_families.CTC_SHAPES, "crnn", (CrnnConfig, dict(
        image_height=32, image_width=512, stem_channels=4, cnn_blocks=[[1, 8], "M", [1, 8], "M", [1, 16]],
        lstm_hidden_size=8)))
    data = write_line_folder(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})
    out = tmp_path / "run"
    trocr_lail.run.main([
        "--model_name_or_path", "config:crnn", "--data_dir", str(data), "--output_dir", str(out),
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--max_steps", "1",
        "--report_to", "none", "--use_cpu", "true", "--augment", "none", "--num_preview_predictions", "0",
        "--save_strategy", "no", "--push_to_hub", "true", "--hub_model_id", "someone/tiny-crnn",
        "--hub_dry_run", "true", "--hub_license", "apache-2.0"])
    upload = out / "hub_upload"
    assert validate_card(upload / "README.md", forbidden=(str(tmp_path),)) == []
    card = (upload / "README.md").read_text()
    assert "`config:crnn` configuration, trained from scratch" in card and "Test CER:** " in card
    assert "a private local dataset" in card and "apache-2.0" in card
    records = run_remote_pipeline(sys.executable, upload, sorted((data / "test").glob("*.png")), batch_size=2)
    assert len(records) == 2
