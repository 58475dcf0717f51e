"""Ending a multi-process run cleanly."""

from __future__ import annotations

import sys


def close_process_group() -> None:
    """Call after a run succeeded, on every rank: wait for the others, then destroy the default process group.

    A process that exits with a live gloo group can abort while the interpreter shuts down (gloo's worker threads still
    hold tensors whose destructors need the GIL), so a run that trained, saved and exported exits -6; NCCL warns at
    every exit. Only on success: a rank that failed while the others wait in a collective would block here
    (torchtitan #1342), so an error skips this and exits with its own code."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group, and no torch import for a CLI call
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
