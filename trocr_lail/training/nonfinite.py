"""Non-finite loss handling: detect it at the micro-batch it happens, name the term, and either skip the optimizer
step or stop cleanly after saving a checkpoint.

The backward pass still runs on the bad loss (so DDP's gradient hooks and the accumulation window stay intact on
every process); the update is dropped just before ``optimizer.step()`` by setting all gradients to ``None``, which
makes torch optimizers leave parameters and their state (momentum, step count) untouched. Processes agree through
one all-reduce per optimizer step, so either every rank skips or none does.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from transformers import TrainerCallback

logger = logging.getLogger("trocr_lail")

POLICIES = ("skip", "stop")


class NonFiniteLossError(RuntimeError):
    pass


def nonfinite_terms(terms: dict[str, torch.Tensor | None]) -> list[str]:
    """Names of the loss terms holding NaN or inf, as ``name=value``."""
    bad = []
    for name, value in terms.items():
        if value is not None and not bool(torch.isfinite(value.detach()).all()):
            bad.append(f"{name}={value.detach().float().cpu().tolist()}")
    return bad


class NonFiniteLossGuard(TrainerCallback):
    def __init__(self, policy: str):
        if policy not in POLICIES:
            raise ValueError(f"nonfinite_loss_policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.pending: list[str] = []  # bad terms seen in the current accumulation window, this process
        self.skipped_steps: list[int] = []
        self.stopped: str | None = None  # the report, once training was stopped

    def check(self, terms: dict[str, torch.Tensor | None], step: int) -> None:
        bad = nonfinite_terms(terms)
        if bad:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            logger.error("Non-finite loss at optimizer step %d (process %d): %s", step + 1, rank, ", ".join(bad))
            self.pending += bad

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        flag = torch.tensor([float(bool(self.pending))], device=args.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag)
        if flag.item() == 0:
            return
        model.zero_grad(set_to_none=True)  # optimizers skip parameters without gradients: no update at all
        report = (f"step {state.global_step + 1}: {', '.join(self.pending) or 'a term on another process'}")
        self.pending = []
        self.skipped_steps.append(state.global_step + 1)
        if self.policy == "skip":
            logger.warning("Skipped the update of %s (nonfinite_loss_policy=skip).", report)
        else:
            self.stopped = report

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped:
            control.should_save = True  # weights are the last finite ones: the bad update was dropped
            control.should_training_stop = True
        return control

    def raise_if_stopped(self, output_dir: str) -> None:
        if self.stopped:
            raise NonFiniteLossError(
                f"Training stopped: non-finite loss at {self.stopped}. The update was dropped and a checkpoint of "
                f"the last finite weights saved in {output_dir}. Lower the learning rate or check the data, or set "
                "nonfinite_loss_policy: skip to skip such steps.")
