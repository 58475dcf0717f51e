"""Learning-rate schedules Hugging Face lacks: fairseq's ``inverse_sqrt``, which the TrOCR paper fine-tunes with,
and the step decay HTR best practices trains its CRNN with (``step_decay``).

Hugging Face's ``inverse_sqrt`` warms up linearly from 0; fairseq's from ``--warmup-init-lr`` (1e-8 in the paper):
``lr(t) = init + t * (peak - init) / warmup`` for ``t < warmup``, then ``peak * sqrt(warmup / t)``. After warm-up
both are the same curve.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def inverse_sqrt_factor(step: int, warmup_steps: int, peak_lr: float, warmup_init_lr: float) -> float:
    """The multiplier of ``peak_lr`` at optimizer step ``step``."""
    if step < warmup_steps:
        return (warmup_init_lr + step * (peak_lr - warmup_init_lr) / warmup_steps) / peak_lr
    return math.sqrt(warmup_steps / step) if warmup_steps else 1.0


def fairseq_inverse_sqrt(optimizer, warmup_steps: int, warmup_init_lr: float) -> LambdaLR:
    peaks = [group["lr"] for group in optimizer.param_groups]
    factors = [lambda step, peak=peak: inverse_sqrt_factor(step, warmup_steps, peak, warmup_init_lr) for peak in peaks]
    return LambdaLR(optimizer, factors)


def step_decay(optimizer, num_training_steps: int, milestones: list[float], gamma: float) -> LambdaLR:
    """The learning rate times ``gamma`` for each of ``milestones`` (fractions of ``num_training_steps``) passed:
    PyTorch's ``MultiStepLR`` at fractions of the run, as HTR best practices sets it (x0.1 at 50% and 75%)."""
    steps = [int(fraction * num_training_steps) for fraction in milestones]
    return LambdaLR(optimizer, lambda step: gamma ** sum(step >= milestone for milestone in steps))
