"""``trocr-lail export --onnx`` in the transformers 4.57.x venv (optimum-onnx needs < 4.58): ONNX Runtime reads the
same text as PyTorch, and as LineReader on 5.x, on an export of the quickstart's model shape (random weights
scaled so that the text depends on the image)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from trocr_lail.inference.reader import LineReader

from conftest import tf4_python
from test_pipeline import image_sensitive_export

ROOT = Path(__file__).resolve().parent.parent


def quickstart_shaped_export(out_dir: Path) -> Path:
    """The quickstart recipe's model (architecture, processor, max length), random weights: no training needed."""
    import torch

    from trocr_lail.models.loading import load_processor_and_model
    from trocr_lail.parser import parse_recipe

    model_args, *_ = parse_recipe(["--config", str(ROOT / "recipes" / "quickstart" / "baseline.yaml"),
                                   "--output_dir", str(out_dir.parent / "unused")])
    torch.manual_seed(0)
    processor, model = load_processor_and_model(model_args)
    return image_sensitive_export(out_dir, processor, model, max_length=24)


def test_onnx_export_reads_like_pytorch(tmp_path):
    from trocr_lail.data.synthetic import generate

    python = tf4_python()
    export = quickstart_shaped_export(tmp_path / "export")
    paths = []
    for i, row in enumerate(generate("test", 6, seed=4, min_aspect=8.0)):
        paths.append(tmp_path / f"{i}.png")
        row["image"].save(paths[-1])
    result = subprocess.run([python, str(Path(__file__).with_name("tf4_onnx.py")), "--batch_size", "3",
                             str(export), str(tmp_path / "onnx"), *map(str, paths)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode == 3 and not os.environ.get("CI"):
        pytest.skip(f"{result.stderr.strip()}; `make venv-tf4` installs it")
    assert result.returncode == 0, result.stderr[-3000:]
    texts = json.loads(result.stdout.strip().splitlines()[-1])
    expected = LineReader.from_pretrained(export, device="cpu").read(paths)
    assert len(set(expected)) >= 4  # texts differ by image: the equalities below can fail
    assert texts["onnx"] == texts["torch"] == expected
    onnx_files = {p.name for p in (tmp_path / "onnx").iterdir()}
    assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx",
            "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"} <= onnx_files


def test_onnx_export_without_optimum_says_what_to_install(tmp_path):
    try:
        import optimum.exporters.onnx  # noqa: F401
        pytest.skip("optimum-onnx is installed here")
    except ImportError:
        pass
    from trocr_lail.cli import main

    export = image_sensitive_export(tmp_path / "export")
    with pytest.raises(ImportError, match=r"pip install 'trocr-lail\[onnx\]'.*transformers 4.57"):
        main(["export", str(export), str(tmp_path / "onnx"), "--onnx"])
    assert not (tmp_path / "onnx").exists()
