"""Training ranges (aspect ratio, text length) travel in the export's config; predict and evaluate warn, naming
the lines, when inputs are far outside them, and stay quiet when they are not."""

import json
import logging

import datasets
import pytest
from PIL import Image

from trocr_lail.cli import main as cli_main
from trocr_lail.data.stream import SyntheticLineStream
from trocr_lail.data.synthetic import LineSpec
from trocr_lail.inference.ranges import CONFIG_KEY, measure, out_of_range
from trocr_lail.run import main

from conftest import TINY_ARGS

RANGES = {"aspect_ratio": [8.0, 20.0], "text_length": [5, 50]}


def test_inputs_within_the_range_get_no_warning():
    assert out_of_range(RANGES, sizes=[(320, 32), (640, 32), (256, 32)], texts=["a" * 50, "b" * 60]) == []


def test_far_aspect_ratios_and_long_references_are_named():
    messages = out_of_range(RANGES, sizes=[(320, 32), (3200, 32), (40, 32)], texts=["a" * 40, "b" * 61],
                            names=["ok.png", "strip.png", "word.png"])
    assert len(messages) == 2
    assert "2 of 3 input lines" in messages[0] and "strip.png: 100.0" in messages[0] and "word.png: 1.2" in messages[0]
    assert "1 of 2 reference lines" in messages[1] and "strip.png: 61 chars" in messages[1]


def test_measure_a_stored_split_and_a_stream():
    images = [Image.new("L", (10 * (i % 5 + 1) * 4, 40)) for i in range(50)]
    stored = datasets.Dataset.from_dict({"image": images, "text": ["x" * (i % 9 + 1) for i in range(50)]})
    stored = stored.cast_column("image", datasets.Image())
    ranges = measure(stored)
    assert ranges["aspect_ratio"] == [1.0, 5.0] and ranges["text_length"] == [1, 9] and ranges["lines_measured"] == 50
    streamed = measure(SyntheticLineStream(LineSpec(max_chars=30, min_aspect=10.0), 40))
    assert streamed["aspect_ratio"][0] >= 10.0 - 0.1 and streamed["text_length"][1] <= 30


@pytest.mark.slow
def test_export_carries_the_ranges_and_predict_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    main(TINY_ARGS + ["--synthetic", "true", "--synthetic_train_samples", "16", "--synthetic_eval_samples", "2",
                      "--synthetic_min_aspect", "12", "--max_steps", "1", "--per_device_train_batch_size", "4",
                      "--output_dir", str(out), "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no",
                      "--validation_split", "null", "--test_split", "null", "--generation_max_length", "4"])
    ranges = json.loads((out / "export" / "config.json").read_text())[CONFIG_KEY]
    assert ranges["aspect_ratio"][0] >= 11.9 and ranges["lines_measured"] == 16
    Image.new("RGB", (int(ranges["aspect_ratio"][1] * 2 * 40), 40), "white").save(tmp_path / "strip.png")
    Image.new("RGB", (int(ranges["aspect_ratio"][0] * 40), 40), "white").save(tmp_path / "fine.png")
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        assert cli_main(["predict", str(out / "export"), str(tmp_path / "fine.png"), "--no_progress",
                         "--device", "cpu"]) == 0
    assert not [r for r in caplog.records if "aspect ratio" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        cli_main(["predict", str(out / "export"), str(tmp_path / "strip.png"), "--no_progress", "--device", "cpu"])
    warned = [r.getMessage() for r in caplog.records if "aspect ratio" in r.getMessage()]
    assert len(warned) == 1 and "strip.png" in warned[0]
