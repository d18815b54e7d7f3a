"""How closely a trained model's in-context predictions follow gradient descent.

All comparisons use the held-out ``eval`` tasks and are computed in float64:

- ``loss``: the model's mean squared error; ``loss_ratio``: it over ``gd_loss``, the loss of the
  GD reference with as many steps as the model has layers (step sizes tuned per step; one tuned
  step for a one-layer model). ``<reference>_loss`` for every reference (``gd<k>_loss`` and
  ``gd<k>_step`` for constant-step GD with k steps); ``best_gd_loss`` is the best GD schedule
  (constant, per-step or preconditioned) with as many steps as layers, ``loss_vs_best_gd`` the
  model's loss over it and ``beats_every_gd`` 1.0 when the model is below all of them.
- ``pred_abs_diff``: mean |y_model - y_GD|; ``pred_cos``: cosine between the two prediction vectors
  over tasks; ``sensitivity_cos``: mean over tasks of the cosine between d y_model / d x_q and
  d y_GD / d x_q (von Oswald et al. 2023).
- layer k: ``layer<k>_loss`` of the readout after layer k and ``layer<k>_tuned_rel_err``, its
  relative error |y_k - y_GD,k| / |y_GD,k| against the first k steps of the GD reference. Models
  whose layers are preconditioned GD steps (a sparse-P LSA) add ``layer<k>_gd_rel_err`` against GD
  with their own preconditioners Gamma_l (``readout_rel_err`` is the worst layer), ``learned_step<l>``
  (mean diagonal of Gamma_l) and ``anisotropy<l>`` (|Gamma_l - mean_diag I| / |Gamma_l|), beside
  ``tuned_step<l>``, the GD reference's step sizes.
- ``theory_step``: n / (n + d + 1 + noise^2), the optimal single step for Gaussian inputs, and
  ``learned_over_theory`` for a one-layer LSA.
- ``constructed_gd_rel_err``: the hand-built one-step LSA (iclx.probes.constructed) with the tuned
  step, against one GD step, in float32: a check of the conventions that every run repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iclx.probes.constructed import one_gd_step_lsa
from iclx.probes.references import Reference, Statistics, mse, preconditioned_gd
from iclx.probes.tasks import TaskBatch

GD_SCHEDULES = ("gd", "gd_per_step", "precond_gd")


def relative_error(predictions: Tensor, reference: Tensor) -> float:
    return float((predictions - reference).norm() / reference.norm())


def prediction_cosine(a: Tensor, b: Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=0))


def mean_cosine(a: Tensor, b: Tensor) -> float:
    """Mean over rows of the cosine between ``a``'s and ``b``'s rows."""
    return float(F.cosine_similarity(a, b, dim=-1).mean())


def query_sensitivities(predict: Callable[[Tensor], Tensor], xq: Tensor) -> Tensor:
    """[B, d]: d prediction / d x_q per task (one backward pass: a task's prediction depends on
    its own query only)."""
    xq = xq.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(predict(xq).sum(), xq)
    return gradient


@dataclass
class ModelReadout:
    layer_predictions: Tensor  # [B, L] float64
    sensitivities: Tensor  # [B, d] float64


def read_model(model: nn.Module, evaluation: TaskBatch, chunk: int = 1024) -> ModelReadout:
    """The model's layer readouts and query sensitivities on ``evaluation``, in chunks of tasks."""
    dtype = next(model.parameters()).dtype
    tasks = evaluation.to(dtype)
    layers, sensitivities = [], []
    for start in range(0, evaluation.yq.shape[0], chunk):
        part = TaskBatch(*(t[start : start + chunk] for t in (tasks.xs, tasks.ys, tasks.xq, tasks.yq, tasks.theta)))
        with torch.no_grad():
            layers.append(model.layer_predictions(part).double())
        sensitivities.append(query_sensitivities(lambda xq: model(part.with_query(xq)), part.xq).double())
    return ModelReadout(torch.cat(layers), torch.cat(sensitivities))


def gd_reference(references: list[Reference], steps: int) -> Reference:
    """The GD schedule the model is compared with: per-step tuned step sizes, or one tuned step."""
    by_key = {(r.name, r.steps): r for r in references}
    return by_key.get(("gd_per_step", steps)) or by_key[("gd", steps)]


def compare(
    model: nn.Module,
    readout: ModelReadout,
    evaluation: TaskBatch,
    references: list[Reference],
    optimal_one_step: float | None = None,
) -> dict[str, float]:
    """The probe's metrics (see the module docstring), all plain floats."""
    stats = Statistics.of(evaluation)
    steps = readout.layer_predictions.shape[1]
    final = readout.layer_predictions[:, -1]
    reference = gd_reference(references, steps)
    metrics: dict[str, float] = {"loss": float(mse(final, evaluation.yq))}
    for k in range(steps):
        metrics[f"layer{k + 1}_loss"] = float(mse(readout.layer_predictions[:, k], evaluation.yq))
    metrics["gd_loss"] = reference.loss
    metrics["loss_ratio"] = metrics["loss"] / reference.loss
    for r in references:
        label = f"gd{r.steps}" if r.name == "gd" else r.name.replace("++", "pp")
        metrics[f"{label}_loss"] = r.loss
        if r.name == "gd":
            metrics[f"gd{r.steps}_step"] = r.params["eta"][0]
    best_gd = min(r.loss for r in references if r.name in GD_SCHEDULES and r.steps == steps)
    metrics["best_gd_loss"] = best_gd
    metrics["loss_vs_best_gd"] = metrics["loss"] / best_gd
    metrics["beats_every_gd"] = float(metrics["loss"] < best_gd)

    gd_final = reference.predictions[:, -1]
    metrics["pred_abs_diff"] = float((final - gd_final).abs().mean())
    metrics["pred_cos"] = prediction_cosine(final, gd_final)
    gd_sensitivities = query_sensitivities(lambda xq: reference.predict(stats.with_query(xq))[:, -1], stats.xq)
    metrics["sensitivity_cos"] = mean_cosine(readout.sensitivities, gd_sensitivities)
    for k in range(steps):
        layer, gd_steps = readout.layer_predictions[:, k], reference.predictions[:, k]
        metrics[f"layer{k + 1}_tuned_rel_err"] = relative_error(layer, gd_steps)
    for l, eta in enumerate(reference.params["eta"]):
        metrics[f"tuned_step{l + 1}"] = eta

    preconditioners = getattr(model, "preconditioners", lambda: None)()
    if preconditioners is not None:
        gammas = preconditioners.detach().double()
        own = preconditioned_gd(stats, list(gammas))
        errors = [relative_error(readout.layer_predictions[:, k], own[:, k]) for k in range(steps)]
        for k, error in enumerate(errors):
            metrics[f"layer{k + 1}_gd_rel_err"] = error
        metrics["readout_rel_err"] = max(errors)
        for l, gamma in enumerate(gammas):
            mean_diagonal = float(gamma.diagonal().mean())
            metrics[f"learned_step{l + 1}"] = mean_diagonal
            isotropic = mean_diagonal * torch.eye(len(gamma), dtype=gamma.dtype)
            metrics[f"anisotropy{l + 1}"] = float((gamma - isotropic).norm() / gamma.norm())
    if optimal_one_step is not None:
        metrics["theory_step"] = optimal_one_step
        if steps == 1 and "learned_step1" in metrics:
            metrics["learned_over_theory"] = metrics["learned_step1"] / optimal_one_step

    one_step = next(r for r in references if r.name == "gd" and r.steps == 1)
    constructed = one_gd_step_lsa(evaluation.d, one_step.params["eta"][0])  # float32, like a trained model
    with torch.no_grad():
        constructed_predictions = constructed(evaluation.to(torch.float32)).double()
    metrics["constructed_gd_rel_err"] = relative_error(constructed_predictions, one_step.predictions[:, 0])
    return metrics
