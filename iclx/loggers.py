"""The ``logger`` group: Lightning loggers for a run (metrics.csv always, W&B on request)."""

from __future__ import annotations

import logging
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from iclx.errors import ConfigError
from iclx.registry import _plain

log = logging.getLogger("iclx")

WANDB_MODES = ("auto", "online", "offline", "disabled")


def build_loggers(
    logger_cfg: DictConfig,
    out_dir: Path,
    *,
    run_name: str,
    group: str,
    job_type: str,
    tags: list[str],
    config: dict[str, Any],
    resume_id: str | None = None,
) -> list[Any]:
    """metrics.csv, and W&B when configured. ``resume_id`` continues that W&B run (a pre-training
    resumed after a kill logs on in the run it started)."""
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = []
    # the run folder already holds .hydra/ and the log: that is expected, not a stale experiment
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    if logger_cfg.get("csv", True):
        # name="" and version="" put metrics.csv straight into the run folder
        loggers.append(CSVLogger(save_dir=str(out_dir), name="", version=""))
    wandb_cfg = logger_cfg.get("wandb")
    if wandb_cfg:
        loggers.append(_wandb_logger(wandb_cfg, out_dir, run_name, group, job_type, tags, config, resume_id))
    return loggers


def wandb_credentials_configured() -> bool:
    """True when W&B can log in without prompting: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").split("//")[-1]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` means online where credentials exist, otherwise offline (never a login prompt).
    A WANDB_MODE set in the environment wins, so tests and clusters can force a mode."""
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode must be one of {', '.join(WANDB_MODES)}, got '{mode}'")
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode:
        return "disabled" if env_mode == "dryrun" else env_mode
    if mode == "auto":
        if wandb_credentials_configured():
            return "online"
        log.info("W&B: no credentials configured, logging offline (sync later with `wandb sync`)")
        return "offline"
    return mode


def _wandb_logger(
    cfg: DictConfig,
    out_dir: Path,
    run_name: str,
    group: str,
    job_type: str,
    tags: list[str],
    config: dict[str, Any],
    resume_id: str | None = None,
) -> Any:
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_wandb_mode(str(cfg.get("mode", "auto")))
    extra_tags = [str(t) for t in _plain(cfg.get("tags") or [])]
    # W&B rejects tags longer than 64 characters
    all_tags = [t[:64] for t in tags + extra_tags]
    wandb_logger = WandbLogger(
        name=run_name,
        project=cfg.get("project", "iclx"),
        entity=cfg.get("entity"),
        group=group,
        job_type=job_type,
        tags=all_tags,
        save_dir=str(out_dir),
        mode=mode,
        config=config,
        log_model=False,
        **({"id": resume_id, "resume": "allow"} if resume_id else {}),
    )
    if resume_id:
        log.info("W&B: continuing run %s of the interrupted pre-training", resume_id)
    wandb_logger.experiment  # start the W&B run now, so the config is recorded even if a stage fails
    return wandb_logger


def log_sweep_summary(logger_cfg: Any, sweep_dir: Path, group: str, csv_path: Path, plot_path: Path | None) -> None:
    """The sweep's table and plot as one more W&B run of its group (``job_type=summary``)."""
    import csv

    import wandb

    cfg = logger_cfg.get("wandb")
    mode = resolve_wandb_mode(str(cfg.get("mode", "auto")))
    if mode == "disabled":
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    run = wandb.init(project=cfg.get("project", "iclx"), entity=cfg.get("entity"), group=group, job_type="summary",
                     name=f"{group}/{sweep_dir.name}/summary", dir=str(sweep_dir), mode=mode, reinit="create_new")
    try:
        run.log({"sweep/summary": wandb.Table(columns=rows[0], data=rows[1:])})
        if plot_path is not None:
            run.log({"sweep/plot": wandb.Image(str(plot_path))})
    finally:
        run.finish()
