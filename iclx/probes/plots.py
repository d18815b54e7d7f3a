"""The probe's figures: training loss against the GD lines, layer-wise alignment, preconditioners."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from iclx.plots import pyplot
from iclx.probes.references import Reference

# references drawn as horizontal lines on the loss curve, with their colours
# (exact solvers such as OLS reach ~0 without noise and stay in the table, off this log scale)
CURVE_REFERENCES = {
    "zero": "0.5", "gd": "tab:blue", "gd_per_step": "tab:cyan", "precond_gd": "tab:purple", "gd++": "tab:green",
}


def _log_scale(ax: Any) -> None:
    """A log y axis with plain tick labels ("0.01", not mathtext "10^-2", which is slow to lay out);
    call it after plotting, so that a narrow range gets ticks at 1, 2 and 5 times powers of 10."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if math.log10(high / low) < 2:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _smooth(values: Tensor, window: int) -> Tensor:
    """Trailing moving average (shorter at the start)."""
    cumulative = torch.cat([torch.zeros(1, dtype=values.dtype), values.cumsum(0)])
    ends = torch.arange(1, len(values) + 1)
    starts = (ends - window).clamp_min(0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def loss_curve(train_losses: Tensor, references: list[Reference], model_loss: float, steps: int, title: str) -> Any:
    """The query loss during training (fresh tasks, so it estimates the test loss) against the
    tuned references with as many steps as the model has layers; log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    losses = train_losses.double()
    x = torch.arange(1, len(losses) + 1)
    ax.plot(x, losses, color="tab:red", alpha=0.2, linewidth=0.8)
    ax.plot(x, _smooth(losses, max(1, len(losses) // 50)), color="tab:red", label="model (training, smoothed)")
    ax.plot([len(losses)], [model_loss], "o", color="tab:red", label=f"model (eval) {model_loss:.4g}")
    for r in references:
        colour = CURVE_REFERENCES.get(r.name)
        if colour is None or (r.steps not in (0, steps)) or r.loss <= 0:
            continue
        label = f"{r.name}" + (f" ({_steps(r.steps)})" if r.steps else "") + f" {r.loss:.4g}"
        ax.axhline(r.loss, color=colour, linestyle="--", linewidth=1.2, label=label)
    _log_scale(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel("query squared error")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    return fig


def _steps(k: int) -> str:
    return f"{k} step" + "s" * (k != 1)


def layer_alignment(
    metrics: dict[str, float], references: list[Reference], reference: Reference, layers: int, title: str
) -> Any:
    """Left: loss of the readout after layer k against k GD steps. Right: relative error of the
    layer-k readout against k steps of GD (tuned; and with the model's own preconditioners)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ks = list(range(1, layers + 1))
    left.plot(ks, [metrics[f"layer{k}_loss"] for k in ks], "o-", color="tab:red", label="model, layer k readout")
    gd_losses = {r.steps: r.loss for r in references if r.name == "gd"}
    left.plot(ks, [gd_losses[k] for k in ks], "s--", color="tab:blue", label="gd, k steps (step tuned for k)")
    for r, colour in ((reference, "tab:cyan"), *((r, "tab:green") for r in references if r.name == "gd++")):
        if r.name != "gd":
            left.plot(ks, r.step_losses, "^:", color=colour, label=f"{r.name}, its first k steps")
    left.set_xlabel("layer k / GD steps")
    left.set_ylabel("query squared error")
    low, high = left.get_ylim()
    if high / max(low, 1e-300) > 10:  # a log axis only pays off over a wide range
        _log_scale(left)
    left.set_xticks(ks)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    tuned = [metrics[f"layer{k}_tuned_rel_err"] for k in ks]
    right.plot(ks, tuned, "o-", color="tab:cyan", label=f"vs {reference.name} (first k steps)")
    if "layer1_gd_rel_err" in metrics:
        own = [metrics[f"layer{k}_gd_rel_err"] for k in ks]
        right.plot(ks, own, "o-", color="tab:purple", label="vs GD with the model's own preconditioners")
        right.axhline(1e-3, color="0.5", linestyle=":", linewidth=1, label="1e-3")
    _log_scale(right)
    right.set_xlabel("layer k")
    right.set_ylabel("relative error of the readout")
    right.set_xticks(ks)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def preconditioners(gammas: Tensor, title: str) -> Any:
    """Heatmaps of the learned preconditioners Gamma_l (a multiple of I means plain GD steps)."""
    plt = pyplot()
    layers = len(gammas)
    fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 3.2), squeeze=False)
    bound = float(gammas.abs().max())
    for l, (ax, gamma) in enumerate(zip(axes[0], gammas)):
        image = ax.imshow(gamma.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set_title(f"layer {l + 1}: mean diag {float(gamma.diagonal().mean()):.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig
