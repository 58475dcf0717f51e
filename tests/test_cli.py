"""trocr-lail predict / evaluate / export on tiny models built in seconds."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from trocr_lail.cli import SUBCOMMANDS, main
from trocr_lail.data.synthetic import generate
from trocr_lail.evaluation.metrics import cer
from trocr_lail.inference.reader import LineReader

from conftest import export_tiny, run_tf4_pipeline


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from trocr_lail.models.tiny import build_tiny_processor

    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"), max_length=10)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i, row in enumerate(generate("test", 5, seed=7, min_aspect=4.0)):
        image = row["image"]
        (image.convert("L") if i % 2 else image.convert("RGBA")).save(folder / f"{i}.png")
    return folder


def test_subcommands_registered_in_one_place():
    assert list(SUBCOMMANDS) == ["predict", "evaluate", "export", "validate", "push", "render"]


def test_predict_prints_texts(exported, image_dir, capsys):
    assert main(["predict", str(exported), str(image_dir), "--batch_size", "2", "--device", "cpu"]) == 0
    printed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    paths = sorted(image_dir.glob("*.png"))
    assert [p for p, _ in printed] == [str(p) for p in paths]
    assert [t for _, t in printed] == LineReader.from_pretrained(exported, device="cpu").read(paths)


def test_predict_writes_jsonl_and_csv_and_skips_unreadable(exported, image_dir, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    inputs = [str(image_dir / "0.png"), str(image_dir / "1.png"), str(broken)]
    assert main(["predict", str(exported), *inputs, "--output", str(tmp_path / "out.jsonl"), "--no_progress"]) == 0
    assert main(["predict", str(exported), *inputs, "--output", str(tmp_path / "out.csv"), "--no_progress"]) == 0
    err = capsys.readouterr().err
    assert f"skipping {broken}" in err and "1 of 3 files skipped" in err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    with (tmp_path / "out.csv").open() as handle:
        assert list(csv.DictReader(handle)) == rows
    assert [r["file"] for r in rows] == inputs[:2]


def test_predict_equals_transformers_4_57_pipeline(exported, image_dir, capsys):
    paths = sorted(image_dir.glob("*.png"))
    main(["predict", str(exported), *map(str, paths), "--batch_size", "3", "--no_progress"])
    texts = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert texts == run_tf4_pipeline(exported, paths, batch_size=3)


def test_evaluate_writes_report(exported, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["evaluate", str(exported), "--report_dir", str(report), "--split", "test", "--no_progress",
                 "--synthetic", "true", "--synthetic_eval_samples", "4", "--synthetic_min_aspect", "4",
                 "--num_worst", "3"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    rows = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
    assert metrics["lines"] == 4 and metrics["cer"] == pytest.approx(cer([r["text"] for r in rows],
                                                                         [r["prediction"] for r in rows]))
    assert {r["text"] for r in rows} == {row["text"] for row in generate("test", 4, seed=0, min_aspect=4.0)}
    md = (report / "report.md").read_text()
    assert f"{metrics['cer']:.2%}" in md and md.count("images/worst_") == 3
    assert (report / "report.html").is_file() and "CER" in capsys.readouterr().out


def test_export_lail_checkpoint_to_plain(tiny_processor, tmp_path, capsys):
    from safetensors import safe_open

    from conftest import make_tiny_model
    from trocr_lail.lail.modeling import LailVisionEncoderDecoderModel

    lail_config = {"lail_layers": [1], "lail_connector": "linear", "lail_connector_activation": "gelu",
                   "lail_connector_hidden_dim": None, "lail_downsample_blocks": 2, "lail_qformer_queries": 4,
                   "lail_qformer_heads": 2}
    model = LailVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), lail_config, 16)
    model.save_pretrained(tmp_path / "ckpt")
    tiny_processor.save_pretrained(tmp_path / "ckpt")
    assert main(["export", str(tmp_path / "ckpt"), str(tmp_path / "plain"), "--num_beams", "3"]) == 0
    with safe_open(str(tmp_path / "plain" / "model.safetensors"), "pt") as weights:
        assert weights.keys() and all(k.startswith(("encoder.", "decoder.")) for k in weights.keys())
    assert json.loads((tmp_path / "plain" / "generation_config.json").read_text())["num_beams"] == 3
    assert "lail" not in json.loads((tmp_path / "plain" / "config.json").read_text())


def test_unknown_flag_is_an_error(exported):
    with pytest.raises(SystemExit, match="--bogus"):
        main(["predict", str(exported), "x.png", "--bogus"])


def test_render_writes_a_contact_sheet_of_the_split(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["render", "--sheet", str(sheet), "--split", "test", "--lines", "3", "--seed", "2"]) == 0
    image = Image.open(sheet)
    assert image.height == 3 * (64 + 16 + 8) + 8 and image.width > 1000
    assert np.asarray(image.convert("L")).min() < 100  # ink, not a blank page
    assert "wrote 3 test lines (seed 2)" in capsys.readouterr().out


def test_evaluate_released_line_on_a_bin_only_checkpoint(tmp_path, capsys, caplog):
    """The recipe READMEs' check of a released checkpoint (`trocr-lail evaluate microsoft/trocr-*-handwritten ...`,
    which publish only pytorch_model.bin), on a local stand-in with the same flags."""
    import torch
    from safetensors.torch import load_file

    from recipe_smoke import write_line_folder
    from trocr_lail.hub.export import export_model
    from trocr_lail.models.loading import set_special_tokens
    from trocr_lail.models.tiny import build_tiny_model, build_tiny_processor

    processor = build_tiny_processor(16, 64)
    model = build_tiny_model(processor, encoder_layers=1, encoder_dim=32, decoder_layers=1, decoder_dim=32,
                             patch_size=(16, 8), max_length=200)  # positions for the 200-token cap
    set_special_tokens(model, processor.tokenizer)
    released = export_model(model, processor, tmp_path / "released", num_beams=1, max_length=20)
    torch.save(load_file(released / "model.safetensors"), released / "pytorch_model.bin")
    (released / "model.safetensors").unlink()
    data = write_line_folder(tmp_path / "iam", {"test": 2})
    with caplog.at_level("WARNING", logger="trocr_lail"):
        assert main(["evaluate", str(released), "--data_dir", str(data), "--split", "test", "--num_beams", "10",
                     "--max_length", "200", "--image_resample", "bicubic", "--report_dir", str(tmp_path / "r"),
                     "--no_progress"]) == 0
    assert "weights_only=True" in caplog.text
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["lines"] == 2 and metrics["num_beams"] == 10
    assert main(["evaluate", str(released), "--data_dir", str(data), "--split", "test", "--strict_safetensors",
                 "--report_dir", str(tmp_path / "r2"), "--no_progress"]) == 2
    assert "strict_safetensors" in capsys.readouterr().err
