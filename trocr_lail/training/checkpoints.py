"""Which checkpoint a run resumes from, and saves that never cost a run. Re-running the same command after a
crash continues where it stopped (the alignment-handbook convention), so a killed multi-hour run loses at most
``save_steps`` steps; a checkpoint that is incomplete or damaged is passed over for the previous good one, and a
save that fails for lack of disk space says so and leaves the last complete checkpoint in place."""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger("trocr_lail")

FRESH = ("false", "no", "none", "never")
LAST = ("true", "yes", "auto", "last")
WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
LOW_SPACE = 64 * 2**20  # bytes left: a failed write with this little room is the disk being full


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (header unreadable, or shorter than it declares)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated ({size} bytes)"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"{path.name} is truncated (its header alone needs {length + 8} bytes, the file has {size})"
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return f"{path.name} has an unreadable header"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if 8 + length + end > size:
        return f"{path.name} is truncated ({size} of {8 + length + end} bytes)"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint ``path`` cannot be resumed from, or None. Checks without loading anything: the trainer
    state parses, every safetensors file holds all the bytes its header declares, and torch files (optimizer,
    scheduler, RNG) are complete zip archives (their directory sits at the end, so truncation shows)."""
    state = path / "trainer_state.json"
    if not state.is_file():  # Trainer writes it last: the save was interrupted
        return "no trainer_state.json (the save was interrupted)"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    weights = [path / name for name in WEIGHTS if (path / name).is_file()]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError):
            return "model.safetensors.index.json is unreadable"
        missing = [name for name in shards if not (path / name).is_file()]
        if missing:
            return f"weight shard(s) {missing} are missing"
        weights += [path / name for name in shards]
    if not weights:
        return f"no weights ({' or '.join(WEIGHTS)})"
    for file in weights:
        if problem := _safetensors_problem(file):
            return problem
    for file in sorted([*path.glob("*.pt"), *path.glob("*.pth")]):
        if not zipfile.is_zipfile(file):
            return f"{file.name} is truncated or corrupt"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """Newest ``checkpoint-N`` that is complete and readable; each newer one passed over is named with why."""
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
             if p.is_dir() and (m := pattern.match(p.name))]
    passed = []
    for _, path in sorted(found, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            for skipped, why in passed:
                logger.warning("Not resuming from %s: %s; falling back to %s.", skipped, why, path)
            return path
        passed.append((path, problem))
    for skipped, why in passed:
        logger.warning("Not resuming from %s: %s; no earlier complete checkpoint.", skipped, why)
    return None


def resumed_step(checkpoint: str | Path | None) -> int:
    """The optimizer step a run resumes at (0 for a fresh start): a resumed run's train_runtime covers only the
    steps after it."""
    if checkpoint is None:
        return 0
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]


def resolve_resume(value, output_dir: str | Path) -> str | None:
    """``resume_from_checkpoint``: unset resumes from the last complete checkpoint in ``output_dir`` if any;
    true/auto/last requires one; false/no starts fresh; anything else is a checkpoint path, which must be
    complete (a path the user chose is never silently replaced by another)."""
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
    if problem := checkpoint_problem(Path(value)):
        raise ValueError(f"resume_from_checkpoint: {value} cannot be resumed from: {problem}. Point it at another "
                         "checkpoint, or set it to auto to take the newest complete one.")
    return str(value)


def _disk_full(err: BaseException, directory: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch.save reports a short write as "unexpected pos N vs M" (a RuntimeError) and loses the errno.
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return False
    return isinstance(err, (OSError, RuntimeError)) and free < LOW_SPACE


@contextmanager
def disk_full_guard(what: str, target: str | Path, output_dir: str | Path):
    """Turn a save that runs out of disk space into one plain error. ``target`` is the checkpoint directory being
    written: a partial one (no trainer_state.json) is removed, since it cannot be resumed and holds the space."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        output_dir, target = Path(output_dir), Path(target)
        if not _disk_full(err, output_dir if output_dir.exists() else output_dir.parent):
            raise
        if target.name.startswith(PREFIX_CHECKPOINT_DIR) and target.is_dir() and \
                not (target / "trainer_state.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
        last = last_complete_checkpoint(output_dir) if output_dir.is_dir() else None
        kept = f"the last complete checkpoint, {last}, is intact" if last else "no complete checkpoint exists yet"
        raise OSError(errno.ENOSPC, f"No space left on the disk of {output_dir} while saving {what}; {kept}. "
                      "Free space (or lower save_total_limit), then re-run the same command to resume.") from err
