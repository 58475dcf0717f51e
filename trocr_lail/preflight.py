"""Settings checked before any work: the one place for checks that need only the configuration (and a glance at
the file system), run at the top of ``run.main`` so a bad setting fails in the first seconds, not after the data,
the model and the LLM have loaded.

:func:`check_settings` collects every problem and raises one :class:`SettingsError`, one line per setting (name,
value, what is allowed); settings that are legal but have no effect (``save_steps`` with ``save_strategy: no``)
are warnings. :func:`check_loaded_model` covers the two checks that need the model's size: LAIL layer indices for
sources whose depth the config alone does not give, and free disk space for the checkpoints the run will keep.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger("trocr_lail")

GiB = 2**30


class SettingsError(ValueError):
    """One or more settings that cannot work; one line each, naming the setting and the allowed values."""


def _strategy(value) -> str:
    return str(getattr(value, "value", value))  # IntervalStrategy / SaveStrategy enums, or their strings


def _default(cls, name: str):
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name


def model_source_problem(option: str, name: str | None, special: tuple[str, ...] = ()) -> str | None:
    """A model/LLM source that is neither special, an existing model folder, nor a well-formed Hub id."""
    if not name or name in special:
        return None
    if name.startswith("config:"):  # config:<preset>: a published architecture built from its config
        from .models.ctc_families import CTC_SHAPES
        from .models.shapes import SHAPES

        presets = [*SHAPES, *CTC_SHAPES]
        return None if name[len("config:"):] in presets else \
            f"{option} = {name!r}: allowed presets are {', '.join('config:' + s for s in presets)}"
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else \
            f"{option} = {name!r}: a folder without config.json; point it at a saved model folder"
    if path.exists() or _looks_like_path(name):
        return f"{option} = {name!r}: no such model folder; give an existing folder or a Hub id (owner/name)"
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return f"{option} = {name!r}: neither an existing folder nor a valid Hub id (owner/name)"
    return None


def encoder_shape(model_args) -> tuple[int, int] | None:
    """(layers, width) of the encoder, when the config alone gives them: the tiny model, or a local folder."""
    if model_args.model_name_or_path == "tiny":
        return model_args.tiny_encoder_layers, model_args.tiny_encoder_dim
    from .models.shapes import build_config, is_config_name

    if is_config_name(model_args.model_name_or_path):
        try:
            encoder = build_config(model_args.model_name_or_path).encoder
        except ValueError:
            return None  # an unknown preset is reported by model_source_problem
        return encoder.num_hidden_layers, encoder.hidden_size
    config = Path(model_args.model_name_or_path).expanduser() / "config.json"
    try:
        encoder = json.loads(config.read_text())["encoder"]
        return int(encoder["num_hidden_layers"]), int(encoder["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tap_sizes(model_args) -> list[int] | None:
    """The width of each ``hidden_states`` entry LAIL can tap, when the config alone gives them: a TrOCR encoder's
    (``encoder_shape``) or a CTC recognizer's built by name."""
    from .models.ctc_families import build_ctc_config, is_ctc_shape

    if is_ctc_shape(model_args.model_name_or_path):
        return list(build_ctc_config(model_args.model_name_or_path, charset="").hidden_state_sizes)
    shape = encoder_shape(model_args)
    return None if shape is None else [shape[1]] * (shape[0] + 1)


def _positive(problems: list[str], args, *names: str, allow_none: bool = False) -> None:
    for name in names:
        value = getattr(args, name)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} = {value!r}: must be a whole number >= 1")


def _ctc_recognizer_problems(model_args, data_args, training_args, lail_args, peft_args) -> list[str]:
    """Settings that have no meaning for a pure CTC recognizer (``config:crnn``, ``config:mobilevit-ctc`` or a
    saved one), or that it does not support yet."""
    name = model_args.model_name_or_path
    problems = []
    if training_args.ctc_weight:
        problems.append(f"ctc_weight = {training_args.ctc_weight}: adds a CTC head to a TrOCR model; {name} is a CTC "
                        "recognizer and trains by CTC alone (set ctc_weight: 0)")
    if (training_args.generation_num_beams or 1) > 1:
        problems.append(f"generation_num_beams = {training_args.generation_num_beams}: {name} is a CTC recognizer, "
                        "read by best-path decoding (leave generation_num_beams unset or 1)")
    if model_args.processor_name_or_path and name.startswith("config:"):
        problems.append(f"processor_name_or_path = {model_args.processor_name_or_path!r}: {name} builds its "
                        "processor from its input size and the training texts' characters (leave it unset)")
    if data_args.augment == "da2":
        problems.append(f"augment = 'da2': ends with the TrOCR paper's resize to a fixed input size, which would "
                        f"squash the lines {name} reads at their own width (use light or none)")
    if peft_args is not None and peft_args.use_peft:
        problems.append(f"use_peft: true: {name} is a CTC recognizer, trained in full (set use_peft: false)")
    if model_args.extend_vocabulary:
        problems.append(f"extend_vocabulary: true: grows a TrOCR decoder's vocabulary; {name} is a CTC recognizer, "
                        "whose output classes are its vocabulary: the training texts' characters, a saved one's "
                        "those it was trained with (set extend_vocabulary: false)")
    return problems


def _lail_problems(lail_args, model_args) -> list[str]:
    from transformers.activations import ACT2FN

    from .lail.config import normalise_layers
    from .lail.connectors import CONNECTORS
    from .lail.llm import DTYPE_CHOICES

    problems = []
    if lail_args.lail_connector not in CONNECTORS:
        problems.append(f"lail_connector = {lail_args.lail_connector!r}: allowed are {', '.join(sorted(CONNECTORS))}")
    if lail_args.lail_connector_activation not in ACT2FN:
        problems.append(f"lail_connector_activation = {lail_args.lail_connector_activation!r}: allowed are e.g. "
                        "gelu, relu, silu, tanh (transformers' ACT2FN)")
    if lail_args.lail_llm_dtype not in DTYPE_CHOICES:
        problems.append(f"lail_llm_dtype = {lail_args.lail_llm_dtype!r}: allowed are {', '.join(DTYPE_CHOICES)}")
    if not lail_args.lail_layers:
        problems.append("lail_layers = []: tap at least one layer (e.g. [-1], the last)")
    sizes = tap_sizes(model_args)
    tapped = []
    if sizes is not None and lail_args.lail_layers:
        try:
            tapped = normalise_layers(lail_args.lail_layers, len(sizes) - 1)
        except ValueError as err:
            problems.append(str(err))
    _positive(problems, lail_args, "lail_qformer_queries", "lail_qformer_heads")
    _positive(problems, lail_args, "lail_connector_hidden_dim", allow_none=True)
    if lail_args.lail_connector == "qformer" and lail_args.lail_qformer_heads >= 1:
        widths = {lail_args.lail_connector_hidden_dim} if lail_args.lail_connector_hidden_dim else \
            {sizes[layer] for layer in tapped}
        for width in sorted(widths):
            if width % lail_args.lail_qformer_heads:
                problems.append(f"lail_qformer_heads = {lail_args.lail_qformer_heads}: must divide the qformer "
                                f"width {width} (lail_connector_hidden_dim, default the tapped layer's width)")
    for name in ("lail_downsample_blocks", "lail_connector_only_steps", "lail_alpha_warmup_steps"):
        if getattr(lail_args, name) < 0:
            problems.append(f"{name} = {getattr(lail_args, name)}: must be >= 0")
    if lail_args.lail_alpha < 0:
        problems.append(f"lail_alpha = {lail_args.lail_alpha}: must be >= 0")
    problems.append(model_source_problem("lail_llm", lail_args.lail_llm, special=("smollm2",)))
    if lail_args.lail_connectors_path and not Path(lail_args.lail_connectors_path).is_dir():
        problems.append(f"lail_connectors_path = {lail_args.lail_connectors_path!r}: no such folder")
    return problems


def _data_problems(data_args, training_args) -> list[str]:
    from .data.sources import metadata_path, source_problem

    problems = [source_problem(data_args)]
    splits = [s for s in (data_args.train_split, data_args.validation_split, data_args.test_split) if s]
    if data_args.data_dir and not problems[0]:
        root = Path(data_args.data_dir)
        if not root.is_dir():
            problems.append(f"data_dir = {data_args.data_dir!r}: no such folder")
        else:
            for split in splits:
                try:
                    metadata_path(root / split)
                except FileNotFoundError as err:
                    problems.append(f"data_dir: split '{split}': {err}")
    if data_args.synthetic:
        _positive(problems, data_args, "synthetic_train_samples", "synthetic_eval_samples")
        if data_args.corpus_file and not Path(data_args.corpus_file).is_file():
            problems.append(f"corpus_file = {data_args.corpus_file!r}: no such file")
    _positive(problems, data_args, "max_train_samples", "max_eval_samples", allow_none=True)
    evaluating = _strategy(training_args.eval_strategy) != "no"
    if evaluating and not data_args.validation_split:
        problems.append(f"eval_strategy = {_strategy(training_args.eval_strategy)}: needs a validation_split (or set "
                        "eval_strategy: no)")
    return problems


def _training_problems(model_args, training_args) -> list[str]:
    from .training.nonfinite import POLICIES

    problems = []
    _positive(problems, training_args, "per_device_train_batch_size", "per_device_eval_batch_size",
              "gradient_accumulation_steps")
    _positive(problems, training_args, "generation_num_beams", "generation_max_length", allow_none=True)
    _positive(problems, model_args, "max_target_length", "ctc_upsample")
    if model_args.model_name_or_path == "tiny":
        _positive(problems, model_args, "tiny_image_height", "tiny_image_width", "tiny_encoder_layers",
                  "tiny_encoder_dim", "tiny_decoder_layers", "tiny_decoder_dim")
        patch = model_args.tiny_patch_size
        if len(patch) != 2 or not all(isinstance(p, int) and p >= 1 for p in patch) or \
                patch[0] > model_args.tiny_image_height or patch[1] > model_args.tiny_image_width:
            problems.append(f"tiny_patch_size = {patch}: two whole numbers [height, width], each >= 1 and at most "
                            "the tiny image size")
    if training_args.nonfinite_loss_policy not in POLICIES:
        problems.append(f"nonfinite_loss_policy = {training_args.nonfinite_loss_policy!r}: allowed are "
                        f"{', '.join(POLICIES)}")
    if training_args.early_stopping_patience is not None:
        if training_args.early_stopping_patience < 1:
            problems.append(f"early_stopping_patience = {training_args.early_stopping_patience}: must be >= 1")
        elif not (training_args.load_best_model_at_end and training_args.metric_for_best_model):
            problems.append("early_stopping_patience: needs load_best_model_at_end: true and metric_for_best_model "
                            "(e.g. cer with greater_is_better: false)")
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        problems.append(f"max_steps = {training_args.max_steps}, num_train_epochs = "
                        f"{training_args.num_train_epochs}: set one of them > 0")
    return problems


def _warn_without_effect(training_args) -> None:
    cls = type(training_args)
    if _strategy(training_args.save_strategy) == "no":
        if training_args.save_steps != _default(cls, "save_steps"):
            steps = f"{training_args.save_steps:g}"
            logger.warning("save_steps = %s has no effect: save_strategy is 'no', so no checkpoint is written. Add "
                           "--save_strategy steps to save every %s steps.", steps, steps)
        if training_args.save_total_limit is not None:
            logger.warning("save_total_limit = %s has no effect: save_strategy is 'no'.",
                           training_args.save_total_limit)
    optim = _strategy(training_args.optim)
    if getattr(training_args, "optim_muon", False) and optim != _strategy(_default(cls, "optim")):
        logger.warning("optim = %s has no effect: optim_muon is true, so Muon and AdamW train the model "
                       "(trocr_lail/training/optim.py).", optim)
    if _strategy(training_args.eval_strategy) == "no" and training_args.eval_steps is not None:
        logger.warning("eval_steps = %s has no effect: eval_strategy is 'no'. Add --eval_strategy steps.",
                       training_args.eval_steps)


def check_output_dir(output_dir: str | Path) -> None:
    """``output_dir`` exists (created if needed) and accepts a file: a probe write, since permission bits say
    nothing for root and nothing about read-only mounts."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".trocr-lail-write-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise SettingsError(f"output_dir = {str(output_dir)!r} is not writable ({err.strerror or err}); choose "
                            "another output_dir or fix its permissions") from None


def check_settings(model_args, data_args, training_args, lail_args, peft_args=None) -> None:
    """Every check the configuration alone allows; raises :class:`SettingsError` listing each bad setting."""
    problems = [model_source_problem("model_name_or_path", model_args.model_name_or_path, special=("tiny",)),
                model_source_problem("processor_name_or_path", model_args.processor_name_or_path)]
    problems += _training_problems(model_args, training_args)
    problems += _data_problems(data_args, training_args)
    from .models.ctc_families import is_ctc_source

    if is_ctc_source(model_args.model_name_or_path):
        problems += _ctc_recognizer_problems(model_args, data_args, training_args, lail_args, peft_args)
    if lail_args.lail:
        problems += _lail_problems(lail_args, model_args)
    if model_args.extend_vocabulary and peft_args is not None and peft_args.use_peft:
        problems.append("extend_vocabulary: true with use_peft: true: the adapters leave the decoder's embeddings "
                        "frozen, so the new characters' rows would never train; fine-tune fully to extend")
    problems = [problem for problem in problems if problem]
    if problems:
        raise SettingsError("Invalid settings:\n  " + "\n  ".join(problems) if len(problems) > 1 else problems[0])
    _warn_without_effect(training_args)
    if training_args.should_save:
        check_output_dir(training_args.output_dir)


def checkpoints_kept(training_args) -> int:
    """How many checkpoints the run leaves on disk at most (the estimate's multiplier)."""
    if _strategy(training_args.save_strategy) == "no":
        return 0
    saves = math.inf
    if _strategy(training_args.save_strategy) == "steps" and training_args.max_steps > 0:
        steps = training_args.save_steps
        steps = math.ceil(steps * training_args.max_steps) if steps < 1 else steps  # a fraction of max_steps
        saves = math.ceil(training_args.max_steps / steps)
    limit = training_args.save_total_limit
    if limit:
        saves = min(saves, limit + bool(training_args.load_best_model_at_end))
    return 1 if saves == math.inf else int(saves)  # unbounded epochs: at least one, said in the warning


def estimate_run_bytes(model, training_args) -> int:
    """Rough disk need: each kept checkpoint holds the weights plus AdamW's two moments per trainable parameter;
    the final model and the export hold the weights once more each."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer = sum(2 * p.numel() * 4 for p in model.parameters() if p.requires_grad)
    finals = 1 + bool(getattr(training_args, "export", False))
    return checkpoints_kept(training_args) * (weights + optimizer) + finals * weights


def check_loaded_model(model, training_args, lail_args) -> None:
    """Checks that need the model: LAIL layers against its real depth, and free space in ``output_dir``."""
    if lail_args.lail:
        from .lail.config import normalise_layers
        from .lail.taps import hidden_state_sizes

        try:
            normalise_layers(lail_args.lail_layers, len(hidden_state_sizes(model.config)) - 1)
        except ValueError as err:
            raise SettingsError(str(err)) from None
    if not training_args.should_save:
        return
    need = estimate_run_bytes(model, training_args)
    free = shutil.disk_usage(training_args.output_dir).free
    kept = checkpoints_kept(training_args)
    if need > free:
        raise SettingsError(
            f"output_dir = {training_args.output_dir!r} has {free / GiB:.2f} GiB free, but this run writes about "
            f"{need / GiB:.2f} GiB ({kept} checkpoint(s) of weights + optimizer state, the final model"
            f"{' and the export' if getattr(training_args, 'export', False) else ''}); free space, lower "
            "save_total_limit, or choose another output_dir")
    logger.info("Disk: about %.2f GiB needed in %s (%d checkpoint(s) kept), %.2f GiB free.", need / GiB,
                training_args.output_dir, kept, free / GiB)
