"""Which checkpoint a run resumes from. Re-running the same command after a crash continues where it stopped
(the alignment-handbook convention), so a killed multi-hour run loses at most ``save_steps`` steps."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger("trocr_lail")

FRESH = ("false", "no", "none", "never")
LAST = ("true", "yes", "auto", "last")


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """Newest ``checkpoint-N`` that was fully written. Trainer writes ``trainer_state.json`` last, so a directory
    without it is a save that was interrupted (kill during saving) and must not be resumed from."""
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
             if p.is_dir() and (m := pattern.match(p.name))]
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").is_file():
            return path
        logger.warning("Ignoring incomplete checkpoint %s (no trainer_state.json: the save was interrupted).", path)
    return None


def resolve_resume(value, output_dir: str | Path) -> str | None:
    """``resume_from_checkpoint``: unset resumes from the last complete checkpoint in ``output_dir`` if any;
    true/auto/last requires one; false/no starts fresh; anything else is a checkpoint path."""
    text = None if value is None else str(value).strip().lower()
    if text in FRESH or value is False:
        return None
    last = last_complete_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if text is None or text in LAST:
        if last is None and text is not None:
            raise FileNotFoundError(f"resume_from_checkpoint={value!r} but {output_dir} holds no complete checkpoint")
        if last is not None:
            logger.warning("Resuming from %s (set resume_from_checkpoint: false to start over).", last)
        return None if last is None else str(last)
    if not Path(value).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: {value} is not a directory")
    return str(value)
