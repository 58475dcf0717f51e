"""Model card: the facts of a run (sanitised: Hub ids only, never local paths, user names or tokens) rendered
from ``hub_cards/model_card.md`` (TrOCR) or ``hub_cards/ctc_model_card.md`` (the CTC recognizers, whose
architecture facts come from the export's ``config.json`` and weights: :func:`ctc_facts`) with huggingface_hub's
ModelCard tooling, and an offline validity check."""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
from dataclasses import asdict
from importlib import resources
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
LAIL_CITATION = """@article{altinok2025lail,
  title   = {Boosting CTC-Based ASR Using LLM-Based Intermediate Loss Regularization},
  author  = {Altinok, Duygu},
  journal = {arXiv preprint arXiv:2506.22846},
  year    = {2025}
}"""
PIPELINE_TAG = "image-to-text"
BATCH_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # saved with the weights, not trained
CTC_FAMILIES = {"crnn": "CNN-BiLSTM-CTC", "mobilevit_ctc": "MobileViT-CTC"}  # config.json model_type -> name
# Licenses of base checkpoints we know (prefix of the Hub id -> the Hub's license id); a fine-tune inherits them.
KNOWN_LICENSES = {"microsoft/trocr-": "mit"}
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")  # the Hub's license ids: mit, apache-2.0, cc-by-4.0, other, ...
HYPERPARAMETERS = ("learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay", "optim",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs",
                   "label_smoothing_factor", "max_grad_norm", "seed", "bf16", "fp16")


def template_path(name: str = "model_card.md") -> Path:
    """A template from ``hub_cards/``: inside the installed package (wheel) or at the source checkout's root
    (editable install / PYTHONPATH)."""
    packaged = Path(str(resources.files("trocr_lail"))) / "hub_cards" / name
    if packaged.is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "hub_cards" / name  # trocr_lail/hub/card.py -> the checkout
    if source.is_file():
        return source
    raise FileNotFoundError(f"Model card template {name} is neither in the package ({packaged}) nor in the "
                            f"source tree ({source}); reinstall trocr-lail.")


def public_id(value: str | None) -> str | None:
    """``value`` if it names something on the Hub (``owner/name``), None for local paths and anything else."""
    if not value or not HUB_ID.match(value) or Path(value).expanduser().exists():
        return None
    return value


def known_license(base_model: str | None) -> str | None:
    """The license of a base checkpoint we know, e.g. ``mit`` for ``microsoft/trocr-*``; None otherwise."""
    return next((value for prefix, value in KNOWN_LICENSES.items() if (base_model or "").startswith(prefix)), None)


def resolve_license(hub_license: str | None, model_name_or_path: str | None) -> str | None:
    """``hub_license`` if set (checked to be a Hub license id), else the base checkpoint's known license."""
    if hub_license:
        if not LICENSE_ID.match(hub_license):
            raise ValueError(f"hub_license {hub_license!r} is not a Hub license id (lowercase, e.g. mit, apache-2.0, "
                             "cc-by-4.0, or other)")
        return hub_license
    return known_license(public_id(model_name_or_path))


def run_facts(model_args, data_args, training_args, lail_args, test_metrics: dict | None = None,
              global_step: int | None = None, peft_args=None) -> dict:
    """What the card says about a run, as JSON-serialisable values with no local paths in them."""
    from ..models.ctc_families import is_ctc_shape

    base = public_id(model_args.model_name_or_path)
    if model_args.model_name_or_path == "tiny":
        base_description = "a tiny TrOCR-shaped model built from config (random initialisation, character tokenizer)"
    elif is_ctc_shape(model_args.model_name_or_path):
        base_description = (f"the `{model_args.model_name_or_path}` configuration, trained from scratch (random "
                            "initialisation, character vocabulary from the training texts)")
    else:
        base_description = f"[{base}](https://huggingface.co/{base})" if base else "a local checkpoint"
    dataset = public_id(data_args.dataset_name)
    if dataset:
        dataset_description = f"[{dataset}](https://huggingface.co/datasets/{dataset})"
    elif data_args.synthetic:
        dataset_description = ("synthetic handwriting lines (English prose rendered in handwriting fonts by "
                               "trocr-lail; test font unseen in training)")
    else:
        dataset_description = "a private local dataset of line images"
    hyper = {key: getattr(training_args, key) for key in HYPERPARAMETERS if hasattr(training_args, key)}
    hyper = {k: (v.value if hasattr(v, "value") else v) for k, v in hyper.items()}  # enums -> their names
    if getattr(training_args, "optim_muon", False):  # it replaces `optim`, which would still say adamw
        hyper["optim"] = "Muon (transformer blocks' matrices) + AdamW (the rest)"
    if hyper.get("max_steps", -1) > 0:
        hyper.pop("num_train_epochs", None)  # max_steps wins; the epoch default would mislead
    hyper.update(world_size=training_args.world_size, max_target_length=model_args.max_target_length,
                 augment=data_args.augment, optimizer_steps_done=global_step)
    if peft_args is not None and peft_args.use_peft:
        hyper["adapters"] = (f"{'DoRA' if peft_args.use_dora else 'LoRA'} r={peft_args.lora_r} "
                             f"alpha={peft_args.lora_alpha} on {'+'.join(peft_args.lora_parts)}, merged into the "
                             "published weights")
    facts = {
        "base_model": base, "base_description": base_description, "dataset": dataset,
        "dataset_description": dataset_description, "num_beams": training_args.generation_num_beams or 1,
        "max_length": training_args.generation_max_length or model_args.max_target_length,
        "hyperparameters": hyper, "lail": None,
        "license": resolve_license(getattr(training_args, "hub_license", None), model_args.model_name_or_path),
    }
    metrics = test_metrics or {}
    if "test_cer" in metrics:
        facts.update(test_cer=metrics["test_cer"], test_wer=metrics["test_wer"], test_split=data_args.test_split,
                     test_lines=metrics.get("test_lines"))
    if lail_args is not None and lail_args.lail:
        llm = lail_args.lail_llm
        facts["lail"] = {
            "llm": "SmolLM2-135M-Instruct" if llm == "smollm2" else (public_id(llm) or "a local causal LM"),
            "layers": list(lail_args.lail_layers), "layer_weights": lail_args.layer_weights(),
            "connector": lail_args.lail_connector, "alpha_schedule": _alpha_schedule(lail_args),
            "every_k_steps": lail_args.lail_every_k_steps,
            "connector_only_steps": lail_args.lail_connector_only_steps,
        }
    return facts


def lail_training_settings(lail_args) -> dict:
    """The LAIL loss settings a later run needs to continue as this one trained (local paths removed)."""
    settings = {k: v for k, v in asdict(lail_args).items() if k.startswith("lail")}
    if settings.get("lail_llm") != "smollm2":
        settings["lail_llm"] = public_id(settings.get("lail_llm")) or "<local causal LM>"
    settings.pop("lail_connectors_path", None)
    return settings


def ctc_facts(export_dir: str | Path) -> dict | None:
    """What the card says about a CTC recognizer's export (None for a TrOCR export): its family, architecture,
    input, character vocabulary and parameter count (from the weights' shapes; nothing is loaded)."""
    from safetensors import safe_open

    export_dir = Path(export_dir)
    config = json.loads((export_dir / "config.json").read_text())
    family = CTC_FAMILIES.get(config.get("model_type"))
    if family is None:
        return None
    with safe_open(str(export_dir / "model.safetensors"), "pt") as weights:
        parameters = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys()
                         if not key.endswith(BATCH_NORM_BUFFERS))
    if config["model_type"] == "crnn":
        stages = ", ".join("max-pool" if block == "M" else f"{block[0]} x {block[1]} channels"
                           for block in config["cnn_blocks"])
        architecture = (f"{config['stem_kernel']}x{config['stem_kernel']} stem convolution (stride "
                        f"{tuple(config['stem_stride'])}), ResNet basic blocks ({stages}), column max-pool over "
                        f"the height, {config['lstm_layers']}-layer BiLSTM (hidden {config['lstm_hidden_size']} per "
                        "direction), linear CTC head")
        stride = config["stem_stride"][1] * 2 ** config["cnn_blocks"].count("M")
    else:
        backbone = config["mobilevit"]
        architecture = (f"MobileViT encoder (hidden sizes {backbone['hidden_sizes']}, output stride "
                        f"{backbone['output_stride']}), max-pool over the height, linear CTC head")
        stride = backbone["output_stride"]
    return {"family": family, "model_type": config["model_type"], "architecture": architecture,
            "parameters": parameters, "charset_size": len(config["charset"]),
            "image_size": f"{config['image_height']} x {config['image_width']}",
            "frames": config["image_width"] // stride,
            "pretrained_backbone": public_id(config.get("pretrained_backbone"))}


def _alpha_schedule(args) -> str:
    schedule = args.lail_alpha_schedule
    if schedule == "linear_warmup":
        return f"linear warm-up from 0 to {args.lail_alpha} over {args.lail_alpha_warmup_steps} steps"
    if schedule == "ramp":
        return f"{args.lail_alpha_start} until step {args.lail_alpha_ramp_step}, then {args.lail_alpha}"
    if schedule == "decay":
        return (f"{args.lail_alpha} until step {args.lail_alpha_decay_step}, then linearly to "
                f"{args.lail_alpha_end} at the last step")
    return f"constant {args.lail_alpha}"


def render_card(facts: dict, repo_id: str | None, lail_sidecar: bool = False):
    """A ``huggingface_hub.ModelCard`` for the run described by ``facts`` (from ``run_facts``)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    import transformers

    repo_id = repo_id or "path/to/this/model"
    name = repo_id.split("/")[-1]
    eval_results = None
    if facts.get("test_cer") is not None:
        dataset_type = facts["dataset"] or ("synthetic-handwriting" if "synthetic" in facts["dataset_description"]
                                            else "local-lines")
        common = {"task_type": PIPELINE_TAG, "dataset_type": dataset_type,
                  "dataset_name": facts["dataset"] or dataset_type, "dataset_split": facts["test_split"]}
        eval_results = [EvalResult(metric_type="cer", metric_name="Test CER", metric_value=facts["test_cer"],
                                   **common),
                        EvalResult(metric_type="wer", metric_name="Test WER", metric_value=facts["test_wer"],
                                   **common)]
    ctc = facts.get("ctc")
    tags = (["ctc", ctc["model_type"], "handwriting-recognition", "ocr", "trocr-lail"] if ctc
            else ["trocr", "handwriting-recognition", "ocr", "vision-encoder-decoder", "trocr-lail"])
    data = ModelCardData(
        model_name=name, license=facts.get("license"), base_model=facts["base_model"],
        datasets=[facts["dataset"]] if facts["dataset"] else None,
        language="en", library_name="transformers", pipeline_tag=PIPELINE_TAG, metrics=["cer", "wer"],
        tags=tags + (["lail"] if facts["lail"] else []), eval_results=eval_results,
    )
    return ModelCard.from_template(
        data, template_path=str(template_path("ctc_model_card.md" if ctc else "model_card.md")), model_name=name,
        repo_id=repo_id, lail_sidecar=lail_sidecar,
        lail_citation=LAIL_CITATION, transformers_version=transformers.__version__,
        trocr_lail_version=_version(), language_note=_language_note(facts),
        **{"test_cer": None, "test_wer": None, **facts},
    )


def _model_index_problems(data) -> list[str]:
    """The model-index read back with huggingface_hub's own parser (what the Hub's evaluation widget reads)."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    index = data.to_dict().get("model-index")
    if index is None:
        return []
    try:
        name, results = model_index_to_eval_results(index)
    except Exception as err:  # noqa: BLE001 - any parse error means the Hub cannot read it
        return [f"model-index does not parse: {type(err).__name__}: {err}"]
    problems = [] if results else ["model-index has no eval results"]
    problems += [f"eval result {r.metric_type!r} has no numeric value" for r in results
                 if not isinstance(r.metric_value, (int, float))]
    if name != data.model_name:
        problems.append(f"model-index name {name!r} differs from model_name {data.model_name!r}")
    return problems


def _language_note(facts: dict) -> str:
    if facts["base_description"].startswith("a tiny"):
        return ("Trained from scratch at toy scale on synthetic lines: a demonstration of the toolkit, not a "
                "usable handwriting reader.")
    return "English handwriting; other languages and scripts are out of scope unless the training data covered them."


def _version() -> str:
    try:
        return importlib.metadata.version("trocr-lail")
    except importlib.metadata.PackageNotFoundError:
        return "source"


def validate_card(path: str | Path, forbidden: tuple[str, ...] = ()) -> list[str]:
    """Problems with the card at ``path`` (empty list: valid). Offline checks of what the Hub requires and
    displays: YAML metadata that huggingface_hub parses, pipeline tag, library, metrics and, when present, a
    model-index it can read back; plus no tokens and none of the ``forbidden`` strings (local paths, user)."""
    from huggingface_hub import ModelCard

    text = Path(path).read_text(encoding="utf-8")
    problems = []
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as err:  # noqa: BLE001 - any parse error makes the card invalid; report it
        return [f"metadata does not parse: {err}"]
    data = card.data
    if data.pipeline_tag != PIPELINE_TAG:
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}, not {PIPELINE_TAG!r}")
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, not 'transformers'")
    if not data.metrics:
        problems.append("no metrics listed")
    if not data.license:
        problems.append("no license")
    elif not LICENSE_ID.match(str(data.license)):
        problems.append(f"license {data.license!r} is not a Hub license id")
    for key in ("base_model",):
        value = getattr(data, key, None)
        if value is not None and not public_id(value):
            problems.append(f"{key} {value!r} is not a Hub id")
    for dataset in data.datasets or []:
        if not public_id(dataset):
            problems.append(f"dataset {dataset!r} is not a Hub id")
    problems += _model_index_problems(data)
    if TOKEN.search(text):
        problems.append("contains something that looks like a Hugging Face token")
    problems += [f"contains {value!r}" for value in forbidden if value and value in text]
    if not card.text.strip():
        problems.append("empty card body")
    return problems
