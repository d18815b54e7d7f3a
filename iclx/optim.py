"""The ``optimizer`` group: optimizers and learning-rate schedules.

``optimizer: {name: adamw, lr: ..., ..., schedule: {name: cosine, warmup_steps: ..., min_lr_ratio: ...}}``.
Weight decay applies to weight matrices only: never to biases, norm gains or embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from iclx.registry import build, register

NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weight matrices, and undecayed biases, norms and embeddings.

    Tied parameters (an embedding shared with the output head) are counted once, undecayed.
    """
    no_decay: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, NO_DECAY_MODULES) or p.ndim < 2 or pname.endswith("bias"):
                no_decay.add(id(p))
    decay, keep = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (keep if id(p) in no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@register("optimizer", "adamw")
def adamw(
    params: Any,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    weight_decay: float = 0.1,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)


@register("optimizer", "adam")
def adam(
    params: Any,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@register("optimizer", "adagrad")
def adagrad(
    params: Any,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(
        params, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
        initial_accumulator_value=initial_accumulator_value,
    )


@register("optimizer", "adafactor")
def adafactor(
    params: Any,
    lr: float = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    clip_threshold: float = 1.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    # Shazeer & Stern 2018: factored second moments, no first moment; torch's version takes
    # a given lr (no relative step size), decays beta2 as 1 - t^beta2_decay and clips updates at d.
    return torch.optim.Adafactor(
        params, lr=lr, beta2_decay=beta2_decay, eps=eps, d=clip_threshold, weight_decay=weight_decay
    )


@register("optimizer", "sgd")
def sgd(
    params: Any,
    lr: float = 1e-2,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


# --- schedules: a multiplier of the base lr as a function of (step, total_steps) -------------------

Schedule = Callable[[int, int], float]


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


@register("schedule", "constant")
def constant(warmup_steps: int = 0) -> Schedule:
    return lambda step, total: _warmup(step, warmup_steps)


@register("schedule", "cosine")
def cosine(warmup_steps: int = 0, min_lr_ratio: float = 0.1) -> Schedule:
    def multiplier(step: int, total: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


@register("schedule", "linear")
def linear(warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> Schedule:
    def multiplier(step: int, total: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return 1 - (1 - min_lr_ratio) * progress

    return multiplier


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any], key: str = "optimizer") -> torch.optim.Optimizer:
    """The optimizer named by ``cfg`` over ``model``'s parameters, weight decay on matrices only."""
    weight_decay = float(cfg.get("weight_decay", 0.0) or 0.0)
    return build("optimizer", cfg, key=key, exclude=("schedule",), params=param_groups(model, weight_decay))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any] | None, total_steps: int, key: str = "optimizer.schedule"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR from the ``schedule`` section (constant when absent)."""
    multiplier = build("schedule", cfg or {"name": "constant"}, key=key)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: multiplier(step, total_steps))


def lightning_optimizers(
    model: nn.Module, cfg: Mapping[str, Any], total_steps: int, key: str = "optimizer"
) -> dict[str, Any]:
    """What a LightningModule's ``configure_optimizers`` returns: optimizer + per-step schedule.
    ``key`` is where ``cfg`` sits in the run config, for error messages."""
    optimizer = build_optimizer(model, cfg, key=key)
    scheduler = build_scheduler(optimizer, cfg.get("schedule"), total_steps, key=f"{key}.schedule")
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
