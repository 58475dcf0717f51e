"""Publishing a run: the exported plain model, its processor, a model card and (optionally) the ``lail/`` sidecar,
staged in one folder and uploaded with ``huggingface_hub.HfApi``. Never the LLM, never the training-time model.

Trainer's own ``push_to_hub`` is switched off (it would push the training model, possibly the LAIL subclass);
its ``push_to_hub`` / ``hub_model_id`` / ``hub_private_repo`` / ``hub_revision`` fields are read here instead.
Tokens come from the environment (``HF_TOKEN``) or ``hf auth login`` only, so none is ever in a recipe, card,
config or ``training_args.bin``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .card import (ctc_facts, lail_training_settings, render_card, resolve_license, run_facts, template_path,
                   validate_card)

logger = logging.getLogger("trocr_lail")

FACTS_FILE = "run_facts.json"  # in output_dir, next to the export; local only (never uploaded)
UPLOAD_DIR = "hub_upload"


class PushError(RuntimeError):
    pass


NO_LICENSE = ("needs a license for the model card: set hub_license (mit, apache-2.0, cc-by-4.0, ..., or other), "
              "and make sure it allows what the base checkpoint's and the data's licenses allow")


def take_push_request(training_args, model_name_or_path: str | None = None) -> dict | None:
    """Our push settings from ``training_args``, with Trainer's own push switched off. Rejects tokens in args and,
    before any training step, a push with no license (``hub_license``, or the base checkpoint's known one)."""
    if getattr(training_args, "hub_token", None):
        raise ValueError("Do not put hub_token in a recipe or on the command line: Trainer would store it in "
                         "training_args.bin. Set HF_TOKEN in the environment or run `hf auth login`.")
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id or "/" not in training_args.hub_model_id:
        raise ValueError(f"push_to_hub needs hub_model_id as 'owner/name', got {training_args.hub_model_id!r}")
    if not training_args.export:
        raise ValueError("push_to_hub pushes the exported plain model: it needs export: true")
    license_id = resolve_license(getattr(training_args, "hub_license", None), model_name_or_path)
    if not license_id:
        raise ValueError(f"push_to_hub {NO_LICENSE} (the base checkpoint {model_name_or_path!r} has no known "
                         "license)")
    request = {"repo_id": training_args.hub_model_id, "revision": getattr(training_args, "hub_revision", None),
               "license": license_id,
               "private": True if training_args.hub_private_repo is None else bool(training_args.hub_private_repo),
               "dry_run": training_args.hub_dry_run, "lail_sidecar": training_args.hub_lail_sidecar}
    training_args.push_to_hub = False
    return request


def save_run_facts(output_dir: str | Path, model_args, data_args, training_args, lail_args,
                   test_metrics: dict | None, global_step: int | None, peft_args=None) -> dict:
    facts = run_facts(model_args, data_args, training_args, lail_args, test_metrics, global_step, peft_args)
    if lail_args is not None and lail_args.lail:
        facts["lail_training"] = lail_training_settings(lail_args)
    Path(output_dir, FACTS_FILE).write_text(json.dumps(facts, indent=2, default=str) + "\n")
    return facts


def prepare_upload(output_dir: str | Path, repo_id: str | None, dest: str | Path | None = None,
                   lail_sidecar: bool = True, export_dir: str | Path | None = None,
                   license_id: str | None = None) -> Path:
    """Write exactly what would be uploaded into ``dest`` (default ``<output_dir>/hub_upload``): the files of
    ``<output_dir>/export`` (model, processor, ``trocr_pipeline.py``, a CTC recognizer's model code), ``README.md``
    (the card) and, for LAIL runs with ``lail_sidecar``, ``lail/``. ``license_id`` overrides the run's recorded
    license; with neither, refused."""
    output_dir = Path(output_dir)
    export_dir = Path(export_dir) if export_dir else output_dir / "export"
    if not (export_dir / "config.json").is_file():
        raise FileNotFoundError(f"{export_dir} has no exported model (config.json); run `trocr-lail export` first")
    facts_path = output_dir / FACTS_FILE
    facts = json.loads(facts_path.read_text()) if facts_path.is_file() else _facts_from_export(export_dir)
    facts["license"] = resolve_license(license_id, None) or facts.get("license")
    facts["ctc"] = ctc_facts(export_dir)
    if not facts["license"]:
        raise ValueError(f"Publishing {export_dir} {NO_LICENSE} (trocr-lail push --license ID)")
    dest = Path(dest) if dest else output_dir / UPLOAD_DIR
    if dest.exists():
        if dest.resolve() != (output_dir / UPLOAD_DIR).resolve() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} exists and is not empty; choose an empty or new folder")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted(export_dir.iterdir()):
        if path.is_file() and path.name != "README.md":
            shutil.copy2(path, dest / path.name)

    training_config = json.loads((output_dir / "config.json").read_text()) if (output_dir / "config.json").is_file() \
        else {}
    with_sidecar = bool(lail_sidecar and training_config.get("lail"))
    if with_sidecar:
        _write_sidecar(output_dir, dest / "lail", repo_id, facts)
    render_card(facts, repo_id, lail_sidecar=with_sidecar).save(dest / "README.md")
    problems = validate_card(dest / "README.md", forbidden=_private_strings(output_dir))
    if problems:
        raise ValueError(f"Model card {dest / 'README.md'} is not valid: {'; '.join(problems)}")
    return dest


def push(folder: str | Path, repo_id: str, private: bool = True, revision: str | None = None, api=None,
         retry_hint: str | None = None) -> str:
    """Create ``repo_id`` (private by default; an existing repo keeps its visibility) and upload ``folder``.
    On failure the folder stays as it is and the error says how to retry."""
    from huggingface_hub import HfApi

    api = api or HfApi()  # token: HF_TOKEN or the `hf auth login` cache, never an argument
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder), revision=revision,
                                   commit_message="Upload TrOCR model trained with trocr-lail")
    except Exception as err:  # noqa: BLE001 - any upload failure gets the same retry advice
        hint = retry_hint or f"trocr-lail push --folder {folder} --hub_model_id {repo_id}"
        raise PushError(f"Pushing {folder} to {repo_id} failed: {type(err).__name__}: {err}\n"
                        f"Nothing local was changed; the folder is intact. Retry with: {hint}") from err
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"


def publish(output_dir: str | Path, request: dict) -> Path:
    """Stage ``<output_dir>/hub_upload`` and push it unless ``request['dry_run']``."""
    folder = prepare_upload(output_dir, request["repo_id"], lail_sidecar=request["lail_sidecar"],
                            license_id=request["license"])
    if request["dry_run"]:
        logger.info("hub_dry_run: wrote the folder that would be pushed to %s: %s", request["repo_id"], folder)
        return folder
    private = " --public" if not request["private"] else ""
    url = push(folder, request["repo_id"], private=request["private"], revision=request["revision"],
               retry_hint=f"trocr-lail push {output_dir} --hub_model_id {request['repo_id']}{private}")
    logger.info("Pushed %s to %s", folder, url)
    return folder


def _write_sidecar(output_dir: Path, dest: Path, repo_id: str | None, facts: dict) -> None:
    import jinja2

    from ..lail.sidecar import write_sidecar

    write_sidecar(output_dir, dest, facts.get("lail_training"))
    llm = (facts.get("lail") or {}).get("llm", "the LLM used in training")
    text = jinja2.Template(template_path("lail_sidecar.md").read_text()).render(
        repo_id=repo_id or "path/to/this/model", llm=llm)
    (dest / "README.md").write_text(text)


def _facts_from_export(export_dir: Path) -> dict:
    """Card facts for an export with no run record (``trocr-lail export`` of an arbitrary checkpoint)."""
    generation_file = export_dir / "generation_config.json"  # a CTC recognizer has none
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
    return {"base_model": None, "base_description": "a checkpoint not recorded by trocr-lail", "dataset": None,
            "dataset_description": "not recorded", "num_beams": generation.get("num_beams", 1),
            "max_length": generation.get("max_length"), "hyperparameters": {}, "lail": None, "license": None}


def _private_strings(output_dir: Path) -> tuple[str, ...]:
    return (str(Path.home()), str(output_dir.resolve()))
