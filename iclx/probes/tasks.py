"""In-context linear regression tasks, and what the probe needs from a model that solves them.

A task (Garg et al. 2022; von Oswald et al. 2023; Ahn et al. 2023) draws a weight vector
theta* ~ N(0, I_d), n context inputs x_1..x_n and a query x_q i.i.d. from the x distribution
(``gaussian``: N(0, I_d); ``uniform``: U[-x_range, x_range]^d), and labels
y = <theta*, x> + noise_std * eps with eps ~ N(0, 1), the query's label included. A model sees
(x_1, y_1) .. (x_n, y_n), x_q and predicts y_q; it is scored by the mean squared error over tasks.

Randomness comes from named streams (``train``, ``tune``, ``eval``) derived from the run's seed, so
training draws fresh tasks every step, the references are tuned on tasks that neither the model
nor the evaluation sees, and the same seed gives the same tasks.

A model the probe can train and compare (registered under kind ``model``, built with the runtime
argument ``d``) is a ``torch.nn.Module`` with the methods of :class:`InContextRegressor`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from iclx.errors import ConfigError
from iclx.registry import register


@dataclass
class TaskBatch:
    """A batch of B regression tasks with n context examples each."""

    xs: Tensor  # [B, n, d] context inputs
    ys: Tensor  # [B, n]    context labels
    xq: Tensor  # [B, d]    query input
    yq: Tensor  # [B]       query label (the target)
    theta: Tensor  # [B, d] the task's true weights

    @property
    def n(self) -> int:
        return self.xs.shape[1]

    @property
    def d(self) -> int:
        return self.xs.shape[2]

    def to(self, dtype: torch.dtype) -> TaskBatch:
        return TaskBatch(*(getattr(self, f.name).to(dtype) for f in fields(self)))

    def with_query(self, xq: Tensor) -> TaskBatch:
        """The same tasks asked about another query (for sensitivities d y / d x_q)."""
        return TaskBatch(self.xs, self.ys, xq, self.yq, self.theta)


@runtime_checkable
class InContextRegressor(Protocol):
    """The methods a model needs for the probe (besides being an ``nn.Module``)."""

    def forward(self, batch: TaskBatch) -> Tensor:
        """[B]: the prediction for each task's query."""
        ...

    def layer_predictions(self, batch: TaskBatch) -> Tensor:
        """[B, L]: the query prediction read out after each of the model's L layers."""
        ...

    def training_loss(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """(objective to minimise, mean squared error of the query prediction)."""
        ...


def is_in_context_regressor(model_class: type) -> bool:
    """Whether a registered model class can run the probe (checked before building it)."""
    return all(callable(getattr(model_class, m, None)) for m in ("layer_predictions", "training_loss"))


def stream_generator(seed: int, stream: str) -> torch.Generator:
    """A torch generator for one named random stream of a run (stable across processes)."""
    digest = hashlib.sha256(f"iclx.probe/{seed}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


@register("probe", "linear_regression")
@dataclass(frozen=True)
class LinearRegressionProbe:
    """The task distribution plus how much of it the probe uses (see the module docstring)."""

    d: int = 10  # input dimension
    n: int = 10  # context examples per task
    x_dist: Literal["gaussian", "uniform"] = "gaussian"
    x_range: float = 1.0  # uniform inputs lie in [-x_range, x_range]^d
    noise_std: float = 0.0  # label noise
    batch_size: int = 256  # tasks per training step, fresh every step
    max_steps: int = 2000  # training steps unless trainer.max_steps says otherwise
    tune_tasks: int = 65536  # held-out tasks the references' step sizes are tuned on
    eval_tasks: int = 8192  # held-out tasks every method is scored on

    def __post_init__(self) -> None:
        for name in ("d", "n", "batch_size", "max_steps", "tune_tasks", "eval_tasks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"probe.{name} must be >= 1, got {getattr(self, name)}")
        if self.x_range <= 0:
            raise ConfigError(f"probe.x_range must be > 0, got {self.x_range}")
        if self.noise_std < 0:
            raise ConfigError(f"probe.noise_std must be >= 0, got {self.noise_std}")

    def sample(self, num_tasks: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> TaskBatch:
        """``num_tasks`` tasks drawn with ``generator`` (float64 draws, so dtype changes no value's origin)."""

        def normal(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64)

        if self.x_dist == "gaussian":
            inputs = normal(num_tasks, self.n + 1, self.d)
        else:
            unit = torch.rand(num_tasks, self.n + 1, self.d, generator=generator, dtype=torch.float64)
            inputs = (2 * unit - 1) * self.x_range
        theta = normal(num_tasks, self.d)
        labels = torch.einsum("btd,bd->bt", inputs, theta) + self.noise_std * normal(num_tasks, self.n + 1)
        batch = TaskBatch(inputs[:, :-1], labels[:, :-1], inputs[:, -1], labels[:, -1], theta)
        return batch.to(dtype)

    def optimal_one_step(self) -> float | None:
        """The step size eta minimising the loss of one GD step theta = eta/n sum_i y_i x_i from 0.

        For x ~ N(0, I): E[C^2] = (n + d + 1)/n I with C = 1/n sum x_i x_i^T, so
        eta* = n / (n + d + 1 + noise_std^2). Known only for Gaussian inputs (None otherwise).
        """
        if self.x_dist != "gaussian":
            return None
        return self.n / (self.n + self.d + 1 + self.noise_std**2)
