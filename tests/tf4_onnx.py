"""Run inside the transformers 4.57.x venv (with optimum-onnx[onnxruntime]), with the repository root on
PYTHONPATH: ``trocr-lail export MODEL_DIR ONNX_DIR --onnx``, then read the images with ONNX Runtime
(``ORTModelForVision2Seq``) and with PyTorch (the same exported model) and print both lists of texts as JSON.
Exit status 3 when optimum-onnx is not installed (the test skips, or fails under CI).

Usage: tf4_onnx.py [--batch_size N] MODEL_DIR ONNX_DIR IMAGE..."""

import json
import sys

import transformers

assert transformers.__version__.startswith("4.57"), transformers.__version__
try:
    from optimum.onnxruntime import ORTModelForVision2Seq
except ImportError as err:
    print(f"optimum-onnx[onnxruntime] is not installed in {sys.prefix}: {err}", file=sys.stderr)
    sys.exit(3)
from PIL import Image
from transformers import TrOCRProcessor, VisionEncoderDecoderModel

from trocr_lail.cli import main

args = sys.argv[1:]
batch_size = 1
if args[0] == "--batch_size":
    batch_size, args = int(args[1]), args[2:]
model_dir, onnx_dir, *images = args
assert main(["export", model_dir, onnx_dir, "--onnx"]) == 0
processor = TrOCRProcessor.from_pretrained(onnx_dir)  # the processor files must be in the ONNX folder
models = {"onnx": ORTModelForVision2Seq.from_pretrained(onnx_dir),
          "torch": VisionEncoderDecoderModel.from_pretrained(model_dir).eval()}
texts = {name: [] for name in models}
for start in range(0, len(images), batch_size):
    pixels = processor(images=[Image.open(p).convert("RGB") for p in images[start : start + batch_size]],
                       return_tensors="pt").pixel_values
    for name, model in models.items():
        texts[name] += processor.batch_decode(model.generate(pixels), skip_special_tokens=True)
print(json.dumps(texts))
