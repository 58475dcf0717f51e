"""Issue 13, command line: user errors are one line and a non-zero exit (a traceback only with --debug), predict
exits 1 when it read nothing, and predict decodes through the training loader (same sizes, 16-bit, frames)."""

import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image

from trocr_lail import cli
from trocr_lail.cli import main, run_script
from trocr_lail.data.images import DecodeImages, load_rgb
from trocr_lail.inference.reader import load_image

from conftest import export_tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from trocr_lail.models.tiny import build_tiny_processor

    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"), max_length=6)


@pytest.fixture
def never_reads(monkeypatch):
    def reader(args):
        raise AssertionError("the model was loaded although the command should have stopped first")

    monkeypatch.setattr(cli, "_reader", reader)


def one_error_line(capsys, *expected: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert not captured.out
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_missing_input_path(exported, capsys, never_reads):
    assert main(["predict", str(exported), "no/such/scan.png"]) == 2
    one_error_line(capsys, "trocr-lail predict: error: No image files found for 'no/such/scan.png'", "--debug")


def test_missing_model_dir(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["predict", str(tmp_path / "no-model"), str(tmp_path / "a.png")]) == 2
    line = one_error_line(capsys, "no such model folder")
    assert "HFValidationError" not in line and "Repo id" not in line


def test_txt_output_is_refused_before_reading(exported, tmp_path, capsys, never_reads):
    Image.new("L", (40, 12), 255).save(tmp_path / "a.png")
    assert main(["predict", str(exported), str(tmp_path / "a.png"), "--output", str(tmp_path / "out.txt")]) == 2
    one_error_line(capsys, "--output", "out.txt: use a .jsonl or .csv file name")
    assert not (tmp_path / "out.txt").exists()


def test_every_file_unreadable_exits_1(exported, tmp_path, capsys, never_reads):
    (tmp_path / "a.png").write_bytes(b"not an image")
    Image.new("L", (1, 1), 0).save(tmp_path / "dot.png")  # the training validator refuses it: so does predict
    assert main(["predict", str(exported), str(tmp_path / "a.png"), str(tmp_path / "dot.png")]) == 1
    captured = capsys.readouterr()
    assert not captured.out and "Traceback" not in captured.err
    assert "dot.png: image is 1x1 pixels, below 4 on a side" in captured.err
    assert "no image could be read (2 file(s), all skipped); nothing written" in captured.err


def test_debug_shows_the_traceback(exported):
    with pytest.raises(FileNotFoundError, match="No image files found"):
        main(["predict", str(exported), "no/such/scan.png", "--debug"])


def test_animated_gif_is_read_by_its_first_frame_and_said(exported, tmp_path, capsys):
    frames = [Image.new("L", (40, 12), shade) for shade in (0, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert main(["predict", str(exported), str(tmp_path / "anim.gif"), "--no_progress", "--device", "cpu"]) == 0
    assert f"{tmp_path / 'anim.gif'}: 2 frames; reading the first" in capsys.readouterr().err


def test_sixteen_bit_png_reads_the_same_in_predict_training_and_validation(tmp_path):
    values = np.linspace(1000, 2000, 40 * 12).reshape(12, 40).astype(np.uint16)  # a dim 16-bit scan
    Image.fromarray(values).save(tmp_path / "deep.png")
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)  # as a viewer shows it, not contrast-stretched
    predicted = np.asarray(load_image(tmp_path / "deep.png"))
    assert predicted.shape == (12, 40, 3) and np.array_equal(predicted[..., 0], expected)
    raw = datasets.Dataset.from_dict({"image": [str(tmp_path / "deep.png")]}).cast_column(
        "image", datasets.Image(decode=False))
    trained = np.asarray(DecodeImages()(raw[:1])["image"][0])
    assert np.array_equal(trained, predicted) and np.array_equal(np.asarray(load_rgb(str(tmp_path / "deep.png"))),
                                                                predicted)


def test_unknown_recipe_key_is_one_line(tmp_path, capsys):
    from trocr_lail.run import main as train_main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "tiny", "bogus_key": 1}))
    assert run_script("finetune", train_main, ["--config", str(recipe)]) == 2
    one_error_line(capsys, "finetune: error: Unknown keys in recipe", "bogus_key")


def test_finetune_script_speaks_in_one_line(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"synthetic": True, "per_device_train_batch_size": 0,
                                      "output_dir": str(tmp_path / "out")}))
    result = subprocess.run([sys.executable, str(ROOT / "recipes" / "finetune.py"), "--config", str(recipe)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "finetune: error: per_device_train_batch_size = 0: must be a whole number >= 1 (run with --debug for the "
        "traceback)")


def test_evaluate_names_bad_metadata_lines_or_skips_them(exported, tmp_path, capsys):
    import json

    test = tmp_path / "data" / "test"
    test.mkdir(parents=True)
    Image.new("L", (40, 12), 255).save(test / "a.png")
    (test / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "ab"}) + "\n"
                                         + json.dumps({"file_name": "../a.png", "text": "up"}) + "\n")
    flags = ["evaluate", str(exported), "--report_dir", str(tmp_path / "report"), "--no_progress",
             "--data_dir", str(tmp_path / "data"), "--device", "cpu"]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "1 bad line(s) in" in err and "metadata.jsonl line 2" in err and "outside the split folder" in err
    assert main([*flags, "--skip_bad_samples", "true"]) == 0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["lines"] == 1
