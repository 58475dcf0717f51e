"""Load (or build) the processor and model a run starts from: a VisionEncoderDecoder (TrOCR), or a CTC recognizer
(``ctc_families.py``), whose vocabulary comes from the training texts when it is built by name."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import GenerationConfig, TrOCRProcessor, VisionEncoderDecoderModel

from ..availability import hub_resource
from ..configs import ModelArguments
from .ctc_families import build_ctc_model, is_ctc_shape, load_ctc_model, load_ctc_processor
from .ctc_processor import build_ctc_processor
from .ctc_vocab import charset_from_texts
from .shapes import build_model, build_processor, is_config_name
from .tiny import build_tiny_model, build_tiny_processor

logger = logging.getLogger("trocr_lail")

RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def weights_kwargs(strict_safetensors: bool) -> dict:
    """``from_pretrained`` options for weight files. Strict: safetensors only. Otherwise safetensors when published,
    else ``.bin`` through transformers' ``torch.load(weights_only=True)``, which unpickles tensors only (no code)."""
    return {"use_safetensors": True if strict_safetensors else None, "weights_only": True}


def hub_kwargs(args: ModelArguments) -> dict:
    """Loading options shared by every ``from_pretrained`` of a run."""
    return {"revision": args.revision, "trust_remote_code": args.trust_remote_code,
            **weights_kwargs(args.strict_safetensors)}


def note_pickle_weights(name: str, revision: str | None = None, strict: bool = False) -> None:
    """Say when a checkpoint has only pickled weights (local dir or Hub cache): they load weights-only, or are
    refused under ``strict_safetensors``."""
    if pickle_only(name, revision):
        if strict:
            raise ValueError(f"{name} has only pickled .bin weights and strict_safetensors is true; convert them to "
                             "safetensors or set strict_safetensors: false (they load with weights_only=True).")
        logger.warning("%s has no safetensors weights: loading pytorch_model.bin with torch.load(weights_only=True), "
                       "which reads tensors only and runs no code (strict_safetensors: true refuses it).", name)


def pickle_only(name: str, revision: str | None = None) -> bool:
    def present(filename: str) -> bool:
        if Path(name).is_dir():
            return (Path(name) / filename).is_file()
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, filename, revision=revision), str)

    return not any(map(present, SAFE_WEIGHTS)) and any(map(present, PICKLE_WEIGHTS))


def load_processor(args: ModelArguments) -> TrOCRProcessor:
    if args.model_name_or_path == "tiny":
        processor = build_tiny_processor(args.tiny_image_height, args.tiny_image_width)
    elif is_config_name(args.model_name_or_path) and not args.processor_name_or_path:
        processor = build_processor(args.model_name_or_path)
    else:
        name = args.processor_name_or_path or args.model_name_or_path
        with hub_resource("processor", name, "processor_name_or_path / model_name_or_path"):
            processor = TrOCRProcessor.from_pretrained(name, revision=args.revision,
                                                       trust_remote_code=args.trust_remote_code)
    return set_resample(processor, args.image_resample)


def set_resample(processor, name: str | None):
    """Use the ``name`` resize filter (None: keep the processor's own)."""
    if name:
        if name not in RESAMPLE:
            raise ValueError(f"image_resample: {name!r} is not one of {', '.join(RESAMPLE)}")
        processor.image_processor.resample = RESAMPLE[name]
    return processor


def load_processor_and_model(args: ModelArguments, model_class=VisionEncoderDecoderModel, **model_kwargs):
    """``model_class`` is what a saved model loads as, so that its own extra submodules (a trained CTC head) load
    with it instead of being dropped as unexpected weights. Models built from config (tiny, ``config:``) come
    back plain, initialised exactly as without it; callers add their heads."""
    processor = load_processor(args)
    if args.model_name_or_path == "tiny":
        model = build_tiny_model(
            processor, encoder_layers=args.tiny_encoder_layers, encoder_dim=args.tiny_encoder_dim,
            decoder_layers=args.tiny_decoder_layers, decoder_dim=args.tiny_decoder_dim,
            patch_size=tuple(args.tiny_patch_size), max_length=args.max_target_length, dropout=args.tiny_dropout,
        )
    elif is_config_name(args.model_name_or_path):
        model = build_model(args.model_name_or_path)
    else:
        with hub_resource("model", args.model_name_or_path, "model_name_or_path"):
            note_pickle_weights(args.model_name_or_path, args.revision, args.strict_safetensors)
            model = model_class.from_pretrained(args.model_name_or_path, **hub_kwargs(args), **model_kwargs)
    set_special_tokens(model, processor.tokenizer)
    return processor, model


def load_ctc_processor_and_model(args: ModelArguments, training_texts):
    """A CTC recognizer and its processor. By name (``config:crnn``, ...): random weights, with the characters of
    ``training_texts`` as its vocabulary (kept in ``config.charset``); saved (a run's output_dir, a checkpoint, an
    export): its own vocabulary, weights and processor."""
    name = args.model_name_or_path
    if is_ctc_shape(name):
        model = build_ctc_model(name, charset_from_texts(training_texts))
        processor = build_ctc_processor(model.config)
    else:
        with hub_resource("model", name, "model_name_or_path"):
            note_pickle_weights(name, args.revision, args.strict_safetensors)
            model = load_ctc_model(name, **hub_kwargs(args))
            processor = load_ctc_processor(args.processor_name_or_path or name, revision=args.revision)
    return set_resample(processor, args.image_resample), model


def decoder_start_id(model, tokenizer) -> int:
    """The checkpoint's own start id (config, then generation config); else fairseq's convention for TrOCR
    decoders, ``</s>`` (TrOCR was trained starting from it: 0 is the most reported TrOCR fine-tuning bug,
    transformers #25132 / #27142); else the tokenizer's BOS/CLS for other decoders."""
    for source in (model.config, model.generation_config):
        start = getattr(source, "decoder_start_token_id", None) if source is not None else None
        if start is not None:
            return start
    if getattr(model.config.decoder, "model_type", None) == "trocr":
        return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id


def set_special_tokens(model, tokenizer) -> None:
    """Make the ids the loss (label shifting) and ``generate`` need agree with the tokenizer."""
    # transformers 5.x configs no longer carry generation ids as attributes; 4.57.x ones may hold None.
    start = decoder_start_id(model, tokenizer)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    model.config.decoder_start_token_id = start
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = eos
    vocab = model.config.decoder.vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"Tokenizer has {len(tokenizer)} tokens but the decoder only {vocab} embeddings.")
    if model.generation_config is None:
        model.generation_config = GenerationConfig()
    model.generation_config.decoder_start_token_id = start
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos
