"""trocr-lail: fine-tune TrOCR with Hugging Face Trainer, plus LAIL. Importing the package registers its
``trocr-image-to-text`` pipeline with transformers (``trocr_lail/inference/pipeline.py``)."""

from .inference.pipeline import register as _register_pipeline

_register_pipeline()
