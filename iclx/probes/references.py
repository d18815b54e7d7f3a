"""Reference in-context learners for linear regression, with their step sizes tuned on held-out tasks.

The gradient-descent family starts at theta_0 = 0 and descends R(theta) = 1/(2n) sum_i
(y_i - theta^T x_i)^2, whose negative gradient is g = 1/n X^T (y - X theta) (the 1/n normalisation
the LSA layers of iclx.models.lsa also use, so a step size means the same thing in both):

- ``gd``: theta <- theta + eta g, one step size for all k steps (tuned by line search);
- ``gd_per_step``: eta_l for each step l, tuned jointly;
- ``precond_gd``: theta <- theta + Gamma_l g with a d x d preconditioner per step, tuned jointly
  (the function class of a sparse-P LSA with k layers);
- ``gd++`` (von Oswald et al. 2023): each step also moves every input, query included, by
  x <- x - gamma_l C x with C = 1/n X^T X of the current inputs, then keeps descending on the
  moved inputs (a sparse-P step plus a curvature correction; a full-P LSA can express it);
- closed forms: ``ols`` (minimum-norm least squares), ``ridge`` (minimiser of
  R(theta) + lam/2 |theta|^2, lam tuned) and ``averaging`` (theta = 1/n sum_i y_i x_i, i.e. one GD step with eta = 1).

Tuning minimises the mean squared error on the ``tune`` tasks (float64); every reference is then
scored on separate ``eval`` tasks, the ones the trained model is scored on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from iclx.probes.tasks import TaskBatch

Predictor = Callable[["Statistics"], Tensor]  # tasks -> [B, k] predictions after each step


@dataclass
class Statistics:
    """What every reference needs from a task: C = 1/n X^T X, b = 1/n X^T y and the query.

    GD, GD++, ridge and OLS see the context only through (C, b) and are functions of C's
    eigenvalues, so they run in its eigenbasis (C = V diag(lambda) V^T) at O(d) per task and step:
    tuning on tens of thousands of tasks takes seconds. Preconditioned GD uses C itself.
    """

    second_moment: Tensor  # [B, d, d] C
    correlation: Tensor  # [B, d]    b
    xq: Tensor  # [B, d]
    yq: Tensor  # [B]
    eigenvalues: Tensor  # [B, d]    lambda
    eigenvectors: Tensor  # [B, d, d] V
    spectral_correlation: Tensor  # [B, d] V^T b
    spectral_query: Tensor  # [B, d]       V^T x_q

    @classmethod
    def of(cls, batch: TaskBatch) -> Statistics:
        second_moment = batch.xs.transpose(1, 2) @ batch.xs / batch.n
        correlation = torch.einsum("bnd,bn->bd", batch.xs, batch.ys) / batch.n
        eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)
        project = eigenvectors.transpose(1, 2)
        return cls(
            second_moment, correlation, batch.xq, batch.yq, eigenvalues, eigenvectors,
            _apply(project, correlation), _apply(project, batch.xq),
        )

    @property
    def d(self) -> int:
        return self.xq.shape[-1]

    def with_query(self, xq: Tensor) -> Statistics:
        """The same tasks asked about another query (differentiable in ``xq``)."""
        spectral_query = _apply(self.eigenvectors.transpose(1, 2), xq)
        return replace(self, xq=xq, spectral_query=spectral_query)


def _apply(matrix: Tensor, vector: Tensor) -> Tensor:
    """A scalar, a [d, d] or a [B, d, d] matrix times [B, d] vectors."""
    if matrix.ndim == 0:
        return matrix * vector
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def gd(stats: Statistics, steps: Sequence[Tensor]) -> Tensor:
    """[B, k]: predictions after each GD step with step sizes ``steps``.

    In the eigenbasis the descent direction g = 1/n X^T (y - X theta) starts at b and a step
    theta += eta g scales its coordinates by (1 - eta lambda); the prediction grows by eta g^T x_q.
    """
    eigenvalues, direction, query = stats.eigenvalues, stats.spectral_correlation, stats.spectral_query
    prediction = torch.zeros_like(stats.yq)
    predictions = []
    for eta in steps:
        prediction = prediction + eta * (direction * query).sum(-1)
        direction = (1 - eta * eigenvalues) * direction
        predictions.append(prediction)
    return torch.stack(predictions, dim=-1)


def preconditioned_gd(stats: Statistics, preconditioners: Sequence[Tensor]) -> Tensor:
    """[B, k]: predictions after each step theta += Gamma_l g, Gamma_l a d x d matrix (or a scalar).

    Residual form: g starts at b and becomes g - C Gamma g; the prediction grows by (Gamma g)^T x_q.
    """
    direction, prediction = stats.correlation, torch.zeros_like(stats.yq)
    predictions = []
    for gamma in preconditioners:
        step = _apply(gamma, direction)
        prediction = prediction + (step * stats.xq).sum(-1)
        direction = direction - _apply(stats.second_moment, step)
        predictions.append(prediction)
    return torch.stack(predictions, dim=-1)


def gd_plus_plus(stats: Statistics, steps: Sequence[Tensor], curvature: Sequence[Tensor]) -> Tensor:
    """[B, k]: GD++ predictions after each step.

    A step (eta, gamma) moves the prediction by eta g^T x_q and the residuals by -eta X g, then every
    input by M = I - gamma C, which shares C's eigenvectors: g <- M (I - eta C) g, x_q <- M x_q and
    lambda <- lambda (1 - gamma lambda)^2.
    """
    eigenvalues, direction, query = stats.eigenvalues, stats.spectral_correlation, stats.spectral_query
    prediction = torch.zeros_like(stats.yq)
    predictions = []
    for eta, gamma in zip(steps, curvature):
        prediction = prediction + eta * (direction * query).sum(-1)
        move = 1 - gamma * eigenvalues
        direction = move * (1 - eta * eigenvalues) * direction
        query = move * query
        eigenvalues = eigenvalues * move**2
        predictions.append(prediction)
    return torch.stack(predictions, dim=-1)


def ridge(stats: Statistics, lam: float) -> Tensor:
    """[B, 1]: the minimiser of R(theta) + lam/2 |theta|^2, i.e. (C + lam I)^-1 b."""
    eigenvalues, correlation, query = stats.eigenvalues, stats.spectral_correlation, stats.spectral_query
    return (correlation * query / (eigenvalues + lam)).sum(-1, keepdim=True)


def ols(stats: Statistics) -> Tensor:
    """[B, 1]: minimum-norm least squares C^+ b (interpolates when n < d: C has d - n zero eigenvalues)."""
    eigenvalues, correlation, query = stats.eigenvalues, stats.spectral_correlation, stats.spectral_query
    tolerance = 1e-10 * eigenvalues.amax(-1, keepdim=True)
    inverse = torch.where(eigenvalues > tolerance, 1 / eigenvalues.clamp_min(1e-300), torch.zeros_like(eigenvalues))
    return (correlation * query * inverse).sum(-1, keepdim=True)


def averaging(stats: Statistics) -> Tensor:
    """[B, 1]: theta = 1/n sum_i y_i x_i = b."""
    return (stats.correlation * stats.xq).sum(-1, keepdim=True)


def mse(predictions: Tensor, targets: Tensor) -> Tensor:
    return ((predictions - targets) ** 2).mean()


# --- tuning -----------------------------------------------------------------------------------


def line_search(
    loss_of: Callable[[float], float], low: float, high: float, grid_points: int = 41, refinements: int = 40
) -> float:
    """Minimise a 1-d loss over [low, high]: a log-spaced grid, then golden section around its best point.

    The grid guards against the local minima of k-step GD's loss (a polynomial of degree 2k in eta).
    """
    grid = [math.exp(v) for v in torch.linspace(math.log(low), math.log(high), grid_points).tolist()]
    losses = [loss_of(v) for v in grid]
    best = min(range(grid_points), key=lambda i: losses[i] if math.isfinite(losses[i]) else math.inf)
    a, b = math.log(grid[max(best - 1, 0)]), math.log(grid[min(best + 1, grid_points - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss_of(math.exp(c)), loss_of(math.exp(d))
    for _ in range(refinements):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss_of(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss_of(math.exp(d))
    return math.exp((a + b) / 2)


def fit(parameters: list[Tensor], loss: Callable[[], Tensor], iterations: int = 100) -> None:
    """Minimise ``loss()`` over ``parameters`` (in place) with L-BFGS."""
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        parameters, lr=1.0, max_iter=iterations, history_size=20,
        tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)
    for p in parameters:
        p.requires_grad_(False)


@dataclass
class Reference:
    """A tuned reference: its predictor and its predictions on the eval tasks."""

    name: str
    steps: int  # GD steps (0 for closed forms)
    predict: Predictor  # statistics -> [B, k] (k = max(steps, 1)), differentiable in the query
    params: dict[str, list[float]] = field(default_factory=dict)  # what was tuned, for the table
    predictions: Tensor | None = None  # [B_eval, k], filled by score()
    step_losses: list[float] = field(default_factory=list)  # eval loss after each step
    loss: float = math.nan  # eval loss of the final prediction

    def score(self, evaluation: Statistics) -> Reference:
        with torch.no_grad():
            self.predictions = self.predict(evaluation)
        self.step_losses = [float(mse(p, evaluation.yq)) for p in self.predictions.unbind(-1)]
        self.loss = self.step_losses[-1]
        return self

    def describe(self) -> str:
        return " ".join(f"{k}=[{', '.join(f'{v:.4g}' for v in values)}]" for k, values in self.params.items())


def _curvature(tune: Statistics) -> float:
    """The mean eigenvalue of C: step sizes scale as its inverse, ridge penalties as it."""
    return float(tune.eigenvalues.mean())


def tune_gd(tune: Statistics, steps: int) -> Reference:
    """k-step GD with one step size, tuned by line search."""

    def loss_of(eta: float) -> float:
        return float(mse(gd(tune, [eta] * steps)[:, -1], tune.yq))

    scale = _curvature(tune)
    eta = line_search(loss_of, 1e-3 / scale, 10.0 / scale)
    return Reference("gd", steps, lambda s: gd(s, [eta] * steps), {"eta": [eta]})


def tune_gd_per_step(tune: Statistics, start: Reference) -> Reference:
    """One step size per step, tuned jointly, listed in ascending order.

    Scalar steps commute (the final prediction is a polynomial in C), so the loss is symmetric in
    them and equal steps, the tuned constant step ``start`` included, are a saddle: the search
    starts from steps spread around it instead, and the order is fixed by sorting.
    """
    k = start.steps
    spread = torch.linspace(0.5, 1.5, k, dtype=tune.yq.dtype)
    etas = start.params["eta"][0] * spread
    fit([etas], lambda: mse(gd(tune, list(etas))[:, -1], tune.yq))
    etas = etas.sort().values
    return Reference("gd_per_step", k, lambda s: gd(s, list(etas)), {"eta": etas.tolist()})


def tune_preconditioned_gd(tune: Statistics, start: Reference) -> Reference:
    """A d x d preconditioner per step, tuned jointly from ``start``'s per-step step sizes times I."""
    eye = torch.eye(tune.d, dtype=tune.yq.dtype)
    gammas = torch.stack([eta * eye for eta in start.params["eta"]])
    fit([gammas], lambda: mse(preconditioned_gd(tune, list(gammas))[:, -1], tune.yq))
    mean_diagonal = gammas.diagonal(dim1=1, dim2=2).mean(-1).tolist()
    return Reference(
        "precond_gd", start.steps, lambda s: preconditioned_gd(s, list(gammas)), {"mean_diag": mean_diagonal}
    )


def tune_gd_plus_plus(tune: Statistics, start: Reference) -> Reference:
    """GD++ step sizes and curvature corrections, tuned jointly from ``start`` (no correction)."""
    etas = torch.tensor(start.params["eta"], dtype=tune.yq.dtype)
    gammas = torch.zeros_like(etas)
    fit([etas, gammas], lambda: mse(gd_plus_plus(tune, list(etas), list(gammas))[:, -1], tune.yq))
    return Reference(
        "gd++", start.steps, lambda s: gd_plus_plus(s, list(etas), list(gammas)),
        {"eta": etas.tolist(), "gamma": gammas.tolist()},
    )


def tune_ridge(tune: Statistics) -> Reference:
    scale = _curvature(tune)
    lam = line_search(lambda v: float(mse(ridge(tune, v)[:, -1], tune.yq)), 1e-9 * scale, 1e2 * scale)
    return Reference("ridge", 0, lambda s: ridge(s, lam), {"lambda": [lam]})


def tuned_references(tune: Statistics, evaluation: Statistics, steps: int) -> list[Reference]:
    """Every reference for a model with ``steps`` layers, tuned on ``tune``, scored on ``evaluation``.

    ``gd`` is tuned for every k = 1..steps (the layer-wise comparison needs each). The per-step and
    GD++ schedules have ``steps`` steps and exist only for steps > 1 (with one step they are
    ``gd``: a curvature correction after the last step changes nothing).
    """
    references = [
        Reference("zero", 0, lambda s: torch.zeros_like(s.yq).unsqueeze(-1)),
        Reference("averaging", 0, averaging, {"eta": [1.0]}),
    ]
    constant_step = [tune_gd(tune, k) for k in range(1, steps + 1)]
    references += constant_step
    per_step = tune_gd_per_step(tune, constant_step[-1]) if steps > 1 else constant_step[-1]
    if steps > 1:
        references += [per_step, tune_gd_plus_plus(tune, per_step)]
    references.append(tune_preconditioned_gd(tune, per_step))
    references += [tune_ridge(tune), Reference("ols", 0, ols)]
    return [r.score(evaluation) for r in references]
