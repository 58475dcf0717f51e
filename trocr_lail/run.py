"""The training run behind ``recipes/finetune.py``: load, train, evaluate on test, export."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import EarlyStoppingCallback, set_seed

from .configs import DataArguments, ModelArguments, TrainingArguments
from .ctc import CtcVisionEncoderDecoderModel
from .data.augment import Augment
from .data.collator import LailCollator, LineCollator, encode_targets
from .data.pixels import preprocess_images
from .data.sources import load_splits
from .export import export_model
from .lail.config import LailArguments
from .loading import load_processor_and_model
from .metrics import build_compute_metrics, decode, line_cer
from .parser import RecipeParser

logger = logging.getLogger("trocr_lail")


def parse_args(argv: list[str] | None = None):
    parser = RecipeParser((ModelArguments, DataArguments, TrainingArguments, LailArguments))
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args, lail_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)
    processor, model = load_processor_and_model(model_args)
    if training_args.ctc_weight > 0:
        model = CtcVisionEncoderDecoderModel.from_plain(model, upsample=model_args.ctc_upsample)
    with training_args.main_process_first(desc="loading data"):
        splits = load_splits(data_args)
        if data_args.preprocess_images:
            splits = {name: preprocess_images(split, processor.image_processor, desc=f"Resizing {name} images once")
                      for name, split in splits.items()}
    train_dataset = splits[data_args.train_split]
    _warn_overlong(processor.tokenizer, list(train_dataset["text"]), model_args.max_target_length)
    if data_args.augment:
        train_dataset = train_dataset.with_transform(Augment())
    eval_dataset = splits[data_args.validation_split] if data_args.validation_split else None
    _align_generation(model, training_args)

    if lail_args.lail:
        model, collator, trainer_kwargs = _lail_setup(model, processor, model_args, lail_args)
    else:
        collator, trainer_kwargs = LineCollator(processor, model_args.max_target_length), {}
    trainer = build_trainer(model, processor, training_args, train_dataset, eval_dataset, collator,
                            **trainer_kwargs)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    trainer.save_model()
    trainer.save_state()

    metrics = {"train_seconds": train_seconds}
    if data_args.test_split:
        test = splits[data_args.test_split]
        output = trainer.predict(test, metric_key_prefix="test")
        trainer.log_metrics("test", output.metrics)
        trainer.save_metrics("test", output.metrics)
        metrics.update(output.metrics)
        if trainer.is_world_process_zero():
            print(f"\nTest CER {output.metrics['test_cer']:.2%}, WER {output.metrics['test_wer']:.2%} "
                  f"on {len(test)} lines of split '{data_args.test_split}'.")
            _preview(list(test["text"]), decode(processor.tokenizer, output.predictions),
                     training_args.num_preview_predictions)
    if training_args.export and trainer.is_world_process_zero():
        path = export_model(trainer.model, processor, Path(training_args.output_dir) / "export",
                            num_beams=training_args.generation_num_beams or 1,
                            max_length=training_args.generation_max_length or model_args.max_target_length)
        logger.info("Exported plain VisionEncoderDecoder model to %s", path)
    return metrics


def _lail_setup(model, processor, model_args: ModelArguments, lail_args: LailArguments):
    from .lail.llm import load_frozen_llm
    from .lail.modeling import LailVisionEncoderDecoderModel
    from .lail.trainer import LailTrainer

    llm, llm_tokenizer = load_frozen_llm(lail_args, trust_remote_code=model_args.trust_remote_code)
    model = LailVisionEncoderDecoderModel.from_plain(model, lail_args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm, checkpointing=lail_args.lail_llm_gradient_checkpointing)
    collator = LailCollator(processor, model_args.max_target_length, llm_tokenizer=llm_tokenizer,
                            prompt=lail_args.lail_prompt)
    return model, collator, {"trainer_class": LailTrainer, "lail_args": lail_args}


def build_trainer(model, processor, args, train_dataset, eval_dataset, collator, trainer_class=None, **kwargs):
    from .trainer import LineRecognitionTrainer

    callbacks = [EarlyStoppingCallback(args.early_stopping_patience)] if args.early_stopping_patience else []
    return (trainer_class or LineRecognitionTrainer)(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, data_collator=collator,
        processing_class=processor, compute_metrics=build_compute_metrics(processor.tokenizer),
        callbacks=callbacks, **kwargs,
    )


def _align_generation(model, args: TrainingArguments) -> None:
    # Seq2SeqTrainer reads beams/length from the args at eval time; the model's generation config is what
    # ends up in the export, so keep both in agreement.
    if args.generation_num_beams:
        model.generation_config.num_beams = args.generation_num_beams
    if args.generation_max_length:
        model.generation_config.max_length = args.generation_max_length


def _warn_overlong(tokenizer, texts: list[str], max_length: int) -> None:
    # Counted up front over the whole split: the collator's own counter lives in dataloader workers.
    _, truncated = encode_targets(tokenizer, texts, max_length)
    if truncated:
        logger.warning("%d of %d training transcriptions exceed max_target_length=%d tokens and will be truncated.",
                       truncated, len(texts), max_length)


def _preview(references: list[str], predictions: list[str], count: int) -> None:
    for reference, prediction in list(zip(references, predictions))[:count]:
        print(f"  truth: {reference}\n  pred : {prediction}   (line CER {line_cer(reference, prediction):.1%})")
