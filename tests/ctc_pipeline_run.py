"""Run in a fresh process with any transformers (4.57.x or 5.x), trocr_lail not imported: read images from a CTC
recognizer's export with ``pipeline("image-to-text", model=EXPORT, trust_remote_code=True)``, check that the
pipeline, model and image processor classes all come from the export's own files (``transformers_modules``), that
the texts read without confidences are those read with them, and print the records with confidences as JSON.

Usage: ctc_pipeline_run.py [--batch_size N] MODEL_DIR IMAGE..."""

import json
import sys

from transformers import pipeline

args = sys.argv[1:]
batch_size = 1
if args[0] == "--batch_size":
    batch_size, args = int(args[1]), args[2:]
model_dir, *images = args
reader = pipeline("image-to-text", model=model_dir, trust_remote_code=True, device="cpu")
origins = {type(reader).__module__, type(reader.model).__module__, type(reader.image_processor).__module__}
if "trocr_lail" in sys.modules or not all(origin.startswith("transformers_modules") for origin in origins):
    sys.exit(f"not the export's remote code: {sorted(origins)}")
texts = [out[0]["generated_text"] for out in reader(images, batch_size=batch_size)]
records = [out[0] for out in reader(images, batch_size=batch_size, return_confidence=True)]
if [record["generated_text"] for record in records] != texts:
    sys.exit(f"return_confidence changed the text: {records} against {texts}")
print(json.dumps(records))
