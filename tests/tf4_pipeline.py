"""Run inside the transformers 4.57.x venv: read the given images with an exported model through 4.57's own
``ImageToTextPipeline`` and through the model's ``trocr_pipeline.py`` (``trust_remote_code=True``), check both
give the same texts, and print them as a JSON list. Used by the tests (export, predict, push dry-run).

Exports register ``trocr_pipeline.py`` under ``custom_pipelines`` for the ``image-to-text`` task, so 4.57's
built-in class is reached with ``pipeline_class=`` (a plain ``pipeline("image-to-text", model=...)`` asks for
``trust_remote_code``).

Usage: tf4_pipeline.py [--batch_size N] MODEL_DIR IMAGE..."""

import json
import sys

import transformers
from transformers import pipeline
from transformers.pipelines import ImageToTextPipeline

assert transformers.__version__.startswith("4.57"), transformers.__version__
args = sys.argv[1:]
batch_size = 1
if args[0] == "--batch_size":
    batch_size, args = int(args[1]), args[2:]
model_dir, *images = args
texts = {}
for name, options in (("built-in", {"pipeline_class": ImageToTextPipeline}), ("custom", {"trust_remote_code": True})):
    reader = pipeline("image-to-text", model=model_dir, device="cpu", **options)
    texts[name] = [out[0]["generated_text"] for out in reader(images, batch_size=batch_size)]
if texts["built-in"] != texts["custom"]:
    sys.exit(f"4.57's ImageToTextPipeline and trocr_pipeline.py disagree: {texts}")
print(json.dumps(texts["built-in"]))
