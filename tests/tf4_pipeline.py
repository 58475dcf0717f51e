"""Run inside the transformers 4.57.x venv: read the given images with an exported model through 4.57's own
``ImageToTextPipeline`` and through the model's ``trocr_pipeline.py`` (``trust_remote_code=True``), check both
give the same texts, and print them as a JSON list. Used by the tests (export, predict, push dry-run).

Exports register ``trocr_pipeline.py`` under ``custom_pipelines`` for the ``image-to-text`` task, so 4.57's
built-in class is reached with ``pipeline_class=`` (a plain ``pipeline("image-to-text", model=...)`` asks for
``trust_remote_code``).

With ``--confidence``, print instead the custom pipeline's records with ``return_confidence=True`` (the built-in
class has no confidences), read with ``--num_beams`` and ``--confidence_temperature`` if given.

Usage: tf4_pipeline.py [--batch_size N] [--confidence] [--num_beams N] [--confidence_temperature T] MODEL_DIR
IMAGE..."""

import json
import sys

import transformers
from transformers import pipeline
from transformers.pipelines import ImageToTextPipeline

assert transformers.__version__.startswith("4.57"), transformers.__version__
args = sys.argv[1:]
batch_size, confidence, generation = 1, {}, {}
while args[0].startswith("--"):
    if args[0] == "--confidence":
        confidence["return_confidence"], args = True, args[1:]
    elif args[0] == "--confidence_temperature":
        confidence["confidence_temperature"], args = float(args[1]), args[2:]
    elif args[0] == "--num_beams":
        generation["num_beams"], args = int(args[1]), args[2:]
    else:
        assert args[0] == "--batch_size", args[0]
        batch_size, args = int(args[1]), args[2:]
model_dir, *images = args
texts = {}
for name, options in (("built-in", {"pipeline_class": ImageToTextPipeline}), ("custom", {"trust_remote_code": True})):
    reader = pipeline("image-to-text", model=model_dir, device="cpu", **options)
    outputs = reader(images, batch_size=batch_size, generate_kwargs=generation)  # 4.57's class takes no num_beams=
    texts[name] = [out[0]["generated_text"] for out in outputs]
if texts["built-in"] != texts["custom"]:
    sys.exit(f"4.57's ImageToTextPipeline and trocr_pipeline.py disagree: {texts}")
if confidence:
    records = [out[0] for out in reader(images, batch_size=batch_size, generate_kwargs=generation, **confidence)]
    if [record["generated_text"] for record in records] != texts["custom"]:
        sys.exit(f"return_confidence changed the text: {records} against {texts['custom']}")
    print(json.dumps(records))
else:
    print(json.dumps(texts["built-in"]))
