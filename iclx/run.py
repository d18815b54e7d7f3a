"""The run context every stage receives: config, output folder, artifact store, loggers, seed.

Stages log through ``run.log_metrics`` / ``run.log_table`` / ``run.save_figure`` whether or not they
train, so ``metrics.csv`` and W&B see every stage; a stage that trains hands ``run.loggers`` to its
Lightning Trainer. Stages get what earlier stages produced from ``run.lineage`` (``iclx.lineage``):
artifacts built or loaded once per run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iclx.artifacts import ArtifactStore, write_json_atomic
from iclx.lineage import Lineage
from iclx.plots import save_png
from iclx.provenance import provenance
from iclx.tables import write_csv

log = logging.getLogger("iclx")


def set_threads(threads: int | None) -> None:
    """Torch's CPU thread count for this run (``threads`` in the config; None keeps the default)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (and CUDA when present) for reproducible numbers: Lightning's
    seeding (the same draws as seeding each library), without its log line."""
    from lightning.fabric.utilities.seed import seed_everything as seed_generators

    seed_generators(seed, verbose=False)
    os.environ["PYTHONHASHSEED"] = str(seed)


@dataclass
class Run:
    cfg: DictConfig
    out_dir: Path
    store: ArtifactStore
    seed: int
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option, from Hydra
    multirun: bool = False
    primary: bool = True  # False in data-parallel workers of rank > 0: they write no summary or logs
    loggers: list[Any] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    lineage: Lineage = field(init=False)
    _step: int = 0

    def __post_init__(self) -> None:
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        self.lineage = Lineage(self.cfg, self.store, run=self)

    @property
    def plots_dir(self) -> Path:
        return self.out_dir / "plots"

    @property
    def wandb(self) -> Any | None:
        """The Lightning WandbLogger of this run, if ``logger=wandb``."""
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                return logger
        return None

    # -- metrics ---------------------------------------------------------------------------------

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log scalars to every logger (metrics.csv, W&B). ``step`` defaults to the latest one."""
        if step is None:
            step = self._step
        self._step = max(self._step, int(step))
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        for logger in self.loggers:
            logger.log_metrics(clean, step=step)
            logger.save()

    def advance_step(self, step: int) -> None:
        """Tell the run that a trainer logged up to ``step``, so later stages log after it."""
        self._step = max(self._step, int(step))

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table: written as ``<key>.csv`` in the run folder and sent to W&B as a table."""
        write_csv(self.out_dir / f"{key.replace('/', '_')}.csv", columns, rows)
        if self.wandb is not None:
            self.wandb.log_table(key=key, columns=columns, data=[list(r) for r in rows])

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``plots/<name>.png`` (and to W&B as an image)."""
        path = save_png(fig, self.plots_dir / f"{name}.png")
        if self.wandb is not None:
            self.wandb.log_image(key=f"plots/{name}", images=[str(path)])
        log.info("plot: %s", path)
        return path

    # -- summary ---------------------------------------------------------------------------------

    def record(self, stage: str, metrics: dict[str, Any]) -> None:
        """Store a stage's final metrics in summary.json (rewritten atomically after each stage)."""
        self.summary.setdefault("stages", {})[stage] = metrics
        self.write_summary()

    def note_artifact(self, kind: str, path: Path) -> None:
        """Record an artifact folder (or ``pretrain.checkpoint``) the run used, by absolute path, in
        summary.json's ``artifacts`` (written with the next stage's metrics)."""
        self.summary.setdefault("artifacts", {})[kind] = str(Path(path).resolve())

    def write_summary(self, **fields: Any) -> None:
        self.summary.update(fields)
        if self.primary:
            write_json_atomic(self.out_dir / "summary.json", self.summary)

    def _resolved_precision(self) -> str | None:
        """What ``trainer.precision`` resolves to on this machine (``auto``: bf16 only where it is fast)."""
        trainer_cfg = self.cfg.get("trainer")
        return _resolved_precision_of(trainer_cfg) if trainer_cfg is not None else None

    def close(self) -> None:
        # after the stages: torch's threads and GPU are known by now
        self.write_summary(provenance={**provenance(), "precision": self._resolved_precision()})
        for logger in self.loggers:
            try:
                logger.finalize("success" if self.summary.get("status") == "ok" else "failed")
            except Exception as e:  # a logger failing to flush must not mask the run's result
                log.warning("logger %s failed to finalize: %s", type(logger).__name__, e)
        if self.wandb is not None:
            import wandb

            wandb.finish(exit_code=0 if self.summary.get("status") == "ok" else 1)


def _resolved_precision_of(trainer_cfg: Any) -> str:
    from iclx.training import resolve_precision

    return str(resolve_precision(trainer_cfg.get("precision", "auto"), str(trainer_cfg.get("accelerator", "auto"))))


def final_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """Flatten summary.json's per-stage metrics to ``stage/metric`` scalars (for tables)."""
    out: dict[str, Any] = {}
    for stage, metrics in (summary.get("stages") or {}).items():
        for k, v in (metrics or {}).items():
            if isinstance(v, (int, float, str, bool)) or v is None:
                out[f"{stage}/{k}"] = v
    return out


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
