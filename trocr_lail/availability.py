"""Turn "could not load from the Hub" failures into one message that says what is missing and how to get it.

Every model, processor, dataset and LLM is loaded before ``trainer.train`` starts, inside :func:`hub_resource`,
so an uncached id in offline mode (or a typo, or a gated repo without login) stops the run before any step.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class ResourceUnavailableError(OSError):
    """A model, processor, dataset or LLM id that can be neither found locally nor downloaded."""


def offline_variables() -> list[str]:
    return [name for name in OFFLINE_VARIABLES if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")]


def unavailable_message(kind: str, name: str, option: str, error: BaseException, repo_type: str = "model") -> str:
    offline = offline_variables()
    reason = f"it is not in the local cache and {', '.join(offline)} forbids downloading it" if offline else \
        "it is neither a local directory nor in the local cache, and downloading it failed"
    fixes = [f"to download it: {'unset ' + ', '.join(offline) + ' and ' if offline else ''}re-run with network access",
             f"or fetch it elsewhere: `hf download {name}{' --repo-type dataset' if repo_type == 'dataset' else ''}` "
             "and copy the Hugging Face cache (HF_HOME) here",
             f"or set {option} to a local directory holding it",
             "if it is private or gated: `hf auth login` (or export HF_TOKEN) with an account that has access",
             "and check the id for typos"]
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"Cannot load {kind} '{name}' ({option}): {reason}.\n  " + "\n  ".join(fixes)
            + f"\n(Underlying error: {type(error).__name__}: {detail})")


@contextmanager
def hub_resource(kind: str, name: str, option: str, repo_type: str = "model"):
    """Re-raise loading failures of a Hub id as :class:`ResourceUnavailableError`; local paths keep their error."""
    try:
        yield
    except ResourceUnavailableError:
        raise
    except OSError as err:
        if Path(name).exists():
            raise
        raise ResourceUnavailableError(unavailable_message(kind, name, option, err, repo_type)) from err
