"""Run inside the transformers 4.57.x venv: load an exported model with pipeline("image-to-text") and print the
texts it reads from the given images as a JSON list. Used by the tests (export, predict, push dry-run).

Usage: tf4_pipeline.py [--batch_size N] MODEL_DIR IMAGE..."""

import json
import sys

import transformers
from transformers import pipeline

assert transformers.__version__.startswith("4.57"), transformers.__version__
args = sys.argv[1:]
batch_size = 1
if args[0] == "--batch_size":
    batch_size, args = int(args[1]), args[2:]
model_dir, *images = args
reader = pipeline("image-to-text", model=model_dir, device="cpu")
print(json.dumps([out[0]["generated_text"] for out in reader(images, batch_size=batch_size)]))
