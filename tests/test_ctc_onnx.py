"""``trocr-lail export --onnx`` of a CTC recognizer (run in the transformers 4.57.x venv, which has onnx and
onnxruntime; torch.onnx.export needs onnx, which the main venv lacks): ONNX Runtime's logits equal PyTorch's at
batch sizes other than the traced one, and their best path is the text LineReader reads on 5.x."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from trocr_lail.cli import run_export
from trocr_lail.inference.reader import LineReader

from conftest import tf4_python
from test_ctc_export import image_sensitive_ctc_export, line_images

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("family", ["crnn", "mobilevit_ctc"])
def test_onnx_logits_equal_torch(tmp_path, family):
    python = tf4_python()
    export = image_sensitive_ctc_export(tmp_path / "export", family)
    paths = line_images(tmp_path / "lines")
    result = subprocess.run([python, str(HERE / "tf4_ctc_onnx.py"), str(export), str(tmp_path / "onnx"),
                             *map(str, paths)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    if result.returncode == 3 and not os.environ.get("CI"):
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for batch in (1, 3):
        assert report[f"max_abs_diff_batch_{batch}"] <= 1e-4 * max(1.0, report["logits_scale"])
        assert report[f"texts_onnx_batch_{batch}"] == report["texts_torch"]
    expected = LineReader.from_pretrained(export, device="cpu").read(paths)
    assert report["texts_torch"] == expected
    assert len(set(expected)) >= 3  # texts differ by image: the equalities above can fail
    assert {"model.onnx", "config.json", "preprocessor_config.json", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "onnx").iterdir()}


def test_onnx_export_without_onnx_says_what_to_install(tmp_path):
    try:
        import onnx  # noqa: F401

        pytest.skip("onnx is installed here")
    except ImportError:
        pass
    export = image_sensitive_ctc_export(tmp_path / "export")
    args = type("Args", (), {"checkpoint": str(export), "output": str(tmp_path / "onnx"), "onnx": True})()
    with pytest.raises(ImportError, match="needs the onnx package: pip install onnx"):
        run_export(args)
