"""Run inside the transformers 4.57.x venv: load an exported model with pipeline("image-to-text") and print the
texts it reads from the given images as a JSON list. Used by tests/test_end_to_end.py."""

import json
import sys

import transformers
from transformers import pipeline

assert transformers.__version__.startswith("4.57"), transformers.__version__
model_dir, *images = sys.argv[1:]
reader = pipeline("image-to-text", model=model_dir, device="cpu")
print(json.dumps([out[0]["generated_text"] for out in reader(images)]))
