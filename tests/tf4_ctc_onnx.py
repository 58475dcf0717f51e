"""Run inside a venv with onnx and onnxruntime (the transformers 4.57.x one has them), with the repository root on
PYTHONPATH: ``trocr-lail export MODEL_DIR ONNX_DIR --onnx`` of a CTC recognizer's export, then its logits from ONNX
Runtime (in batches of 1 and of 3: the graph was traced at 2) against PyTorch's, and the best-path texts of both.
Prints one JSON object. Exit status 3 when onnx or onnxruntime is not installed (the test skips, or fails in CI).

Usage: tf4_ctc_onnx.py MODEL_DIR ONNX_DIR IMAGE..."""

import json
import sys

try:
    import onnx  # noqa: F401
    import onnxruntime
except ImportError as err:
    print(f"onnx and onnxruntime are needed in {sys.prefix}: {err}", file=sys.stderr)
    sys.exit(3)
import numpy as np
import torch

from trocr_lail.cli import main
from trocr_lail.inference.reader import load_image
from trocr_lail.models.ctc_families import load_ctc_model, load_ctc_processor
from trocr_lail.models.ctc_recognizer import line_ids

model_dir, onnx_dir, *images = sys.argv[1:]
assert main(["export", model_dir, onnx_dir, "--onnx"]) == 0
processor = load_ctc_processor(onnx_dir)  # the processor files must be in the ONNX folder
pixels = processor(images=[load_image(path) for path in images], return_tensors="pt").pixel_values
model = load_ctc_model(model_dir).eval()
with torch.no_grad():
    expected = model(pixels).logits
session = onnxruntime.InferenceSession(f"{onnx_dir}/model.onnx", providers=["CPUExecutionProvider"])
report = {}
for batch in (1, 3):
    got = np.concatenate([session.run(["logits"], {"pixel_values": pixels[start : start + batch].numpy()})[0]
                          for start in range(0, len(pixels), batch)])
    report[f"max_abs_diff_batch_{batch}"] = float(np.abs(got - expected.numpy()).max())
    report[f"texts_onnx_batch_{batch}"] = processor.batch_decode(line_ids(torch.from_numpy(got),
                                                                          model.config.charset))
report["texts_torch"] = processor.batch_decode(line_ids(expected, model.config.charset))
report["logits_scale"] = float(expected.abs().max())
print(json.dumps(report))
