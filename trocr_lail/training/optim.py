"""Muon for the hidden weight matrices, AdamW for everything else (``optim_muon: true``).

Muon (Jordan et al., 2024) orthogonalises each hidden matrix's momentum with a Newton-Schulz iteration, so every
direction of the update moves at the same rate; on small transformers it needs fewer steps than AdamW for the same
loss. As in the Muon reference and "Muon is Scalable" (Liu et al., 2025), embeddings, position tables, the patch
projection, output heads, biases and norms stay on AdamW, and Muon's update is rescaled to AdamW's RMS
(0.2 * sqrt(max(fan_out, fan_in))), so one learning rate, schedule and weight decay serve both.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def muon_parameter_names(model: nn.Module) -> set[str]:
    """Names of the trainable 2-D weights of ``nn.Linear`` layers inside transformer blocks: not the token or
    position embeddings, not the patch projection, not the output heads (language model, CTC), not a frozen LM."""
    heads = {id(module) for module in (model.get_output_embeddings() if hasattr(model, "get_output_embeddings")
                                       else None, getattr(model, "ctc_head", None)) if module is not None}
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module) not in heads and ".layers." in f".{module_name}." \
                and module.weight.requires_grad:
            names.add(f"{module_name}.weight")
    return names


def zeropower_via_newton_schulz(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximately orthogonal matrix with the singular vectors of ``matrix`` (Jordan et al.'s quintic);
    a stack ``(n, rows, cols)`` is orthogonalised matrix by matrix in one batched pass."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.float()
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer (so Trainer's scheduler, checkpoints and resume see one): groups with ``muon=True`` take
    Muon steps, the others AdamW steps (as ``torch.optim.AdamW``) with the same ``lr`` and decoupled
    ``weight_decay``."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
                 momentum: float = 0.95, ns_steps: int = 5):
        defaults = dict(lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps, momentum=momentum,
                        ns_steps=ns_steps, muon=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            (self._muon_step if group["muon"] else self._adamw_step)(group, params)
        return loss

    def _muon_step(self, group, params) -> None:
        momentum = group["momentum"]
        grads = [p.grad for p in params]
        buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
        torch._foreach_lerp_(buffers, grads, 1 - momentum)
        updates = torch._foreach_lerp(grads, buffers, momentum)  # Nesterov
        by_shape = {}
        for index, update in enumerate(updates):
            by_shape.setdefault(update.shape, []).append(index)
        for shape, indices in by_shape.items():  # one batched Newton-Schulz per shape: fewer, larger matmuls
            orthogonal = zeropower_via_newton_schulz(torch.stack([updates[i] for i in indices]), group["ns_steps"])
            scale = -group["lr"] * 0.2 * math.sqrt(max(shape))
            torch._foreach_add_([params[i] for i in indices], list(orthogonal.to(params[0].dtype).unbind()),
                                alpha=scale)

    def _adamw_step(self, group, params) -> None:
        beta1, beta2 = group["betas"]
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            self.state[p]["step"] += 1
        states = [self.state[p] for p in params]
        grads = [p.grad for p in params]
        exp_avg, exp_avg_sq = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_div(exp_avg_sq, [1 - beta2 ** s["step"] for s in states])
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(params, exp_avg, denom, [-group["lr"] / (1 - beta1 ** s["step"]) for s in states])


def build_muon_adamw(model: nn.Module, args, decay_names) -> MuonAdamW:
    """``MuonAdamW`` over ``model``'s trainable parameters with Trainer's lr, weight decay, betas and epsilon.
    Only ``decay_names`` (Trainer's ``get_decay_parameter_names``: not biases, not norms) take weight decay."""
    muon_names = muon_parameter_names(model)
    if not muon_names:  # else optim_muon would silently be plain AdamW
        raise ValueError(f"optim_muon: {type(model).__name__} has no trainable nn.Linear weights under a "
                         "'.layers.' module path (transformer blocks) for Muon to train")
    decay_names = set(decay_names)
    groups = {(True, True): [], (False, True): [], (False, False): []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_muon = name in muon_names
        decays = is_muon or name in decay_names
        groups[(is_muon, decays)].append(param)
    param_groups = [{"params": params, "muon": is_muon, "weight_decay": args.weight_decay if decays else 0.0}
                    for (is_muon, decays), params in groups.items() if params]
    return MuonAdamW(param_groups, lr=args.learning_rate, weight_decay=args.weight_decay,
                     betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
