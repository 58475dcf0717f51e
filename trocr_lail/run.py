"""The training run behind ``recipes/finetune.py``: load, train, evaluate on test, export. The model is a TrOCR
(VisionEncoderDecoder) or a CTC recognizer (``config:crnn``, ``config:mobilevit-ctc`` or a saved one), which has
its own collator and trainer and, when built by name, takes its vocabulary from the training texts."""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import torch
from transformers import set_seed

from .configs import ModelArguments, TrainingArguments
from .data.collator import CtcCollator, CtcLailCollator, LailCollator, LineCollator, texts_from_codes
from .data.prepare import prepare_splits, skip_report
from .data.sources import load_splits
from .data.stream import split_texts
from .evaluation.degradations import add_degraded_splits
from .evaluation.metrics import build_compute_metrics, decode, line_cer
from .evaluation.test_sets import evaluate_test_sets
from .hub.export import export_model
from .hub.push import publish, save_run_facts, take_push_request
from .inference.ranges import record as record_training_ranges
from .lail.config import LailArguments
from .lail.diagnostic_plots import plot_lail_diagnostics
from .models.adapters import apply_peft
from .models.ctc import CtcVisionEncoderDecoderModel
from .models.ctc_families import is_ctc_recognizer, is_ctc_source
from .models.ctc_vocab import unseen_characters
from .models.loading import load_ctc_processor_and_model, load_processor_and_model
from .models.vocabulary import extend_vocabulary
from .parser import parse_recipe
from .preflight import check_loaded_model, check_settings
from .training.checkpoints import disk_full_guard, resolve_resume, resumed_step
from .training.plots import plot_training
from .training.stopping import StagedEarlyStopping

logger = logging.getLogger("trocr_lail")


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args, lail_args, peft_args = parse_recipe(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.WARNING)
    check_settings(model_args, data_args, training_args, lail_args, peft_args)  # seconds, before any loading
    # Before Trainer exists (it must not push the training model) and before any step (a bad license fails now).
    push_request = take_push_request(training_args, model_args.model_name_or_path)
    set_seed(training_args.seed)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    # Everything that can fail to load (model, processor, data, LLM) loads before trainer.train.
    ctc = is_ctc_source(model_args.model_name_or_path)
    if not ctc:
        processor, model = _load_trocr(model_args, training_args)
        check_loaded_model(model, training_args, lail_args)  # LAIL depth, disk space: before data and the LLM
    with training_args.main_process_first(desc="loading data"):
        splits = add_degraded_splits(load_splits(data_args), data_args)
    if ctc:  # a CTC recognizer built by name needs the training texts' characters: after the data
        processor, model = load_ctc_processor_and_model(model_args, split_texts(splits[data_args.train_split]))
        check_loaded_model(model, training_args, lail_args)
        _warn_unseen(splits, model.config.charset, training_args.process_index == 0)
    elif model_args.extend_vocabulary:  # before the checks below, which refuse characters the tokenizer lacks
        extend_vocabulary(model, processor.tokenizer, split_texts(splits[data_args.train_split]))
    record_training_ranges(model.config, splits[data_args.train_split])  # kept in the export: predict warns
    splits, data_summary, decoders = prepare_splits(splits, processor.tokenizer, model_args.max_target_length,
                                                    data_args, is_main=training_args.process_index == 0,
                                                    image_processor=processor.image_processor)
    train_dataset = splits[data_args.train_split]
    eval_dataset = splits[data_args.validation_split] if data_args.validation_split else None
    if not ctc:  # a CTC recognizer generates nothing
        _align_generation(model, training_args)
    if lail_args.lail:
        model, collator, trainer_kwargs = _lail_setup(model, processor, model_args, lail_args, ctc,
                                                      training_args.device.type)
    elif ctc:
        collator, trainer_kwargs = CtcCollator(processor, model_args.max_target_length), {}
    else:
        collator, trainer_kwargs = LineCollator(processor, model_args.max_target_length), {}
    if peft_args.use_peft:
        model = apply_peft(model, peft_args)  # after LAIL, so its connectors stay fully trainable
    trainer = build_trainer(model, processor, training_args, train_dataset, eval_dataset, collator,
                            **trainer_kwargs)
    start_step = resumed_step(resume)  # now: by the end, checkpoint rotation may have deleted that checkpoint
    start = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    trainer.nonfinite.raise_if_stopped(training_args.output_dir)
    with disk_full_guard("the final model", training_args.output_dir, training_args.output_dir):
        trainer.save_model()
        trainer.save_state()
    if peft_args.use_peft and trainer.is_world_process_zero():
        # PEFT saves only adapter files; the model config (with its LAIL entry) is what export/sidecar tools read.
        trainer.model.get_base_model().config.save_pretrained(training_args.output_dir)
    metrics = {**train_output.metrics, "train_seconds": train_seconds, "peak_memory_gib": peak_memory_gib(),
               "train_steps_run": trainer.state.global_step - start_step}
    trainer.save_metrics("train", metrics)

    test_metrics = None
    if data_args.test_split:
        test = splits[data_args.test_split]
        output = trainer.predict(test, metric_key_prefix="test")
        output.metrics.update(evaluate_test_sets(trainer, splits, data_args, processor.tokenizer, output))
        trainer.log_metrics("test", output.metrics)
        trainer.save_metrics("test", output.metrics)
        metrics.update(output.metrics)
        test_metrics = {**output.metrics, "test_lines": len(test)}
        if trainer.is_world_process_zero():
            print(f"\nTest CER {output.metrics['test_cer']:.2%}, WER {output.metrics['test_wer']:.2%} "
                  f"on {len(test)} lines of split '{data_args.test_split}'.")
            _preview(list(test["text"]), decode(processor.tokenizer, output.predictions),
                     training_args.num_preview_predictions)
    if training_args.export and trainer.is_world_process_zero():
        # export_model leaves the LAIL connectors and every other training-only part out.
        path = export_model(trainer.model, processor, Path(training_args.output_dir) / "export",
                            num_beams=training_args.generation_num_beams or 1,
                            max_length=training_args.generation_max_length or model_args.max_target_length)
        logger.info("Exported the %s model to %s", "CTC recognizer" if ctc else "plain VisionEncoderDecoder", path)
    skipped = skip_report(data_summary, decoders)
    if skipped and trainer.is_world_process_zero():
        logger.warning(skipped)
    metrics["nonfinite_skipped_steps"] = trainer.nonfinite.skipped_steps
    if trainer.is_world_process_zero():
        for plot in [*plot_training(trainer.state.log_history, training_args.output_dir),
                     *plot_lail_diagnostics(trainer.state.log_history, training_args.output_dir)]:
            logger.info("Wrote %s", plot)
        save_run_facts(training_args.output_dir, model_args, data_args, training_args, lail_args, test_metrics,
                       trainer.state.global_step, peft_args)
        if push_request:
            publish(training_args.output_dir, push_request)
    return metrics


def peak_memory_gib() -> float:
    """Peak accelerator memory allocated by torch, or the process's peak resident memory on CPU."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _load_trocr(model_args: ModelArguments, training_args: TrainingArguments):
    if training_args.ctc_weight > 0:
        # Loaded as the CTC class, a saved run's trained head (config.ctc, ctc_head weights) comes with it; a plain
        # load would drop those weights as unexpected and the run would train a fresh head.
        processor, model = load_processor_and_model(model_args, model_class=CtcVisionEncoderDecoderModel)
        model = CtcVisionEncoderDecoderModel.with_head(model, model_args.ctc_upsample, model_args.model_name_or_path)
        if training_args.ctc_guided_attention > 0:
            model.enable_guided_attention()
        return processor, model
    return load_processor_and_model(model_args)


def _warn_unseen(splits, charset: str, is_main: bool) -> None:
    """Name, per split, the characters it has and the CTC vocabulary lacks (a saved recognizer's: those it was
    trained with), which the model can never write. The dataset check that follows refuses the lines holding them,
    or drops them, counted, under skip_bad_samples."""
    for name, split in splits.items():
        unseen = unseen_characters(split_texts(split), charset)
        if unseen and is_main:
            logger.warning("Split '%s' has %d character(s) outside the model's vocabulary, which it can never "
                           "write: %r", name, len(unseen), "".join(sorted(unseen)))


def _lail_setup(model, processor, model_args: ModelArguments, lail_args: LailArguments, ctc: bool = False,
                device_type: str = "cpu"):
    from .lail.ctc_modeling import LailCtcRecognizer
    from .lail.llm import load_frozen_llm
    from .lail.modeling import LailVisionEncoderDecoderModel
    from .lail.trainer import CtcLailTrainer, LailTrainer

    llm, llm_tokenizer = load_frozen_llm(lail_args, trust_remote_code=model_args.trust_remote_code,
                                         strict_safetensors=model_args.strict_safetensors, device_type=device_type)
    model_class, collator_class, trainer_class = (LailCtcRecognizer, CtcLailCollator, CtcLailTrainer) if ctc \
        else (LailVisionEncoderDecoderModel, LailCollator, LailTrainer)
    model = model_class.from_plain(model, lail_args.model_config(), llm.config.hidden_size)
    model.attach_llm(llm, checkpointing=lail_args.lail_llm_gradient_checkpointing)
    if lail_args.lail_connectors_path:
        from .lail.sidecar import load_connector_weights

        load_connector_weights(model, lail_args.lail_connectors_path)
    collator = collator_class(processor, model_args.max_target_length, llm_tokenizer=llm_tokenizer,
                              prompt=lail_args.lail_prompt)
    return model, collator, {"trainer_class": trainer_class, "lail_args": lail_args}


def build_trainer(model, processor, args, train_dataset, eval_dataset, collator, trainer_class=None, **kwargs):
    from .training.ctc_trainer import CtcLineTrainer
    from .training.trainer import LineRecognitionTrainer

    lail_args = kwargs.get("lail_args")
    start = lail_args.lail_connector_only_steps if lail_args is not None else 0
    callbacks = [StagedEarlyStopping(args.early_stopping_patience, start_step=start)] \
        if args.early_stopping_patience else []
    ctc = is_ctc_recognizer(model)
    # The CTC trainer hands the metrics the raw reference texts, as code points (CtcCollator).
    compute_metrics = build_compute_metrics(processor.tokenizer, texts_from_codes if ctc else None)
    return (trainer_class or (CtcLineTrainer if ctc else LineRecognitionTrainer))(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, data_collator=collator,
        processing_class=processor, compute_metrics=compute_metrics, callbacks=callbacks, **kwargs,
    )


def _align_generation(model, args: TrainingArguments) -> None:
    # Seq2SeqTrainer reads beams/length from the args at eval time; the model's generation config is what
    # ends up in the export, so keep both in agreement.
    if args.generation_num_beams:
        model.generation_config.num_beams = args.generation_num_beams
    if args.generation_max_length:
        model.generation_config.max_length = args.generation_max_length


def _preview(references: list[str], predictions: list[str], count: int) -> None:
    for reference, prediction in list(zip(references, predictions))[:count]:
        print(f"  truth: {reference}\n  pred : {prediction}   (line CER {line_cer(reference, prediction):.1%})")
