"""Ending a multi-process run cleanly."""

from __future__ import annotations

import sys


def close_process_group() -> None:
    """Call after a run succeeded, on every rank, once the run's objects (trainer, DDP model) are released: wait for
    the others, then destroy the default process group.

    A process that exits with a live gloo group can abort while the interpreter shuts down (gloo's worker threads still
    hold tensors whose destructors need the GIL), so a run that trained, saved and exported exits -6; NCCL warns at
    every exit. Only on success: a rank that failed while the others wait in a collective would block here
    (torchtitan #1342), so an error skips this and exits with its own code, and the launcher stops the others."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group, and no torch import for a CLI call
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        # Gloo's barrier() keeps the collectives still in flight alive inside its own work, which a gloo worker thread
        # frees later, needing the GIL; if the group's last reference drops meanwhile, the main thread joins that
        # worker while holding the GIL: a deadlock (seen under load). monitored_barrier syncs by send/recv of its own
        # tensors, and names the ranks that never arrive.
        dist.monitored_barrier(wait_all_ranks=True)
    else:
        dist.barrier()
    dist.destroy_process_group()
