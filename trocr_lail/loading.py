"""Load (or build) the processor and VisionEncoderDecoder model a run starts from."""

from __future__ import annotations

from transformers import GenerationConfig, TrOCRProcessor, VisionEncoderDecoderModel

from .availability import hub_resource
from .configs import ModelArguments
from .tiny import build_tiny_model, build_tiny_processor


def hub_kwargs(args: ModelArguments) -> dict:
    """Loading options shared by every ``from_pretrained`` of a run. Pickled ``.bin`` weights can run code when
    loaded, so safetensors are required unless ``allow_pickle_weights`` says otherwise."""
    return {"revision": args.revision, "trust_remote_code": args.trust_remote_code,
            "use_safetensors": None if args.allow_pickle_weights else True}


def load_processor(args: ModelArguments) -> TrOCRProcessor:
    if args.model_name_or_path == "tiny":
        return build_tiny_processor(args.tiny_image_height, args.tiny_image_width)
    name = args.processor_name_or_path or args.model_name_or_path
    with hub_resource("processor", name, "processor_name_or_path / model_name_or_path"):
        return TrOCRProcessor.from_pretrained(name, revision=args.revision, trust_remote_code=args.trust_remote_code)


def load_processor_and_model(args: ModelArguments, model_class=VisionEncoderDecoderModel, **model_kwargs):
    processor = load_processor(args)
    if args.model_name_or_path == "tiny":
        model = build_tiny_model(
            processor, encoder_layers=args.tiny_encoder_layers, encoder_dim=args.tiny_encoder_dim,
            decoder_layers=args.tiny_decoder_layers, decoder_dim=args.tiny_decoder_dim,
            patch_size=tuple(args.tiny_patch_size), max_length=args.max_target_length, dropout=args.tiny_dropout,
        )
        if model_class is not VisionEncoderDecoderModel:
            model = model_class(config=model.config, **model_kwargs)
    else:
        with hub_resource("model", args.model_name_or_path, "model_name_or_path"):
            model = model_class.from_pretrained(args.model_name_or_path, **hub_kwargs(args), **model_kwargs)
    set_special_tokens(model, processor.tokenizer)
    return processor, model


def set_special_tokens(model, tokenizer) -> None:
    """Make the ids the loss (label shifting) and ``generate`` need agree with the tokenizer."""
    # transformers 5.x configs no longer carry generation ids as attributes; 4.57.x ones may hold None.
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model.generation_config, "decoder_start_token_id", None)
    if start is None:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
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
