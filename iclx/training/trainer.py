"""The ``trainer`` group mapped onto ``lightning.Trainer``, shared by every stage that trains.

Keys of the group are Trainer arguments, plus iclx's own: ``compile`` (torch.compile the model,
read by the LightningModules), ``progress_interval`` (seconds between progress lines when output
is not a terminal, see ``iclx.progress``) and ``precision: auto`` (bf16 mixed precision where the
hardware runs it fast, CPUs with AMX/AVX512-BF16 included, else fp32). ``max_steps: null`` lets
each stage use its own default; a number there (e.g. from ``trainer=debug``) wins. A selector
that trains (epr) takes the other settings but trains its own ``steps``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iclx.registry import _plain, check_arguments

log = logging.getLogger("iclx")

ICLX_TRAINER_KEYS = ("compile", "progress_interval")


def is_distributed_worker() -> bool:
    """Whether this process is a data-parallel worker other than rank 0 (set by Lightning's and
    torchrun's launchers, and by SLURM's srun): it trains along but leaves outputs to rank 0."""
    return any(int(os.environ.get(var, 0) or 0) > 0 for var in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: Any, accelerator: str) -> Any:
    """``auto`` becomes ``bf16-mixed`` where bf16 is fast, ``16-mixed`` on older GPUs, else ``32-true``."""
    if str(precision) != "auto":
        return precision
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def trainer_arguments(trainer_cfg: Mapping[str, Any], default_max_steps: int | None = None) -> dict[str, Any]:
    """The config section as checked ``lightning.Trainer`` keyword arguments."""
    import lightning

    kwargs = _plain(trainer_cfg)
    for key in ICLX_TRAINER_KEYS:
        kwargs.pop(key, None)
    if kwargs.get("max_steps") is None:
        kwargs["max_steps"] = default_max_steps if default_max_steps is not None else -1
    kwargs["precision"] = resolve_precision(kwargs.get("precision", "auto"), str(kwargs.get("accelerator", "auto")))
    return check_arguments("lightning.Trainer", lightning.Trainer, kwargs, key="trainer")


def build_trainer(
    run: Any,
    *,
    default_max_steps: int | None = None,
    callbacks: Sequence[Any] = (),
    trainer_cfg: Mapping[str, Any] | None = None,
    distributed: bool = False,
    progress_desc: str = "train",
    **overrides: Any,
) -> Any:
    """A Trainer that logs to the run's loggers (metrics.csv, W&B) and writes under the run folder.

    Only a ``distributed`` training (pre-training) uses the group's multi-device strategy. Its
    progress is Lightning's bar on a terminal, else a log line per interval headed ``progress_desc``."""
    import lightning

    from iclx.progress import on_terminal

    kwargs = trainer_arguments(trainer_cfg if trainer_cfg is not None else run.cfg.trainer, default_max_steps)
    if not distributed:
        # small trainings (probe, retriever) inside a job: one process; ddp/fsdp serve pre-training
        single = {"strategy": "auto", "devices": 1, "num_nodes": 1}
        changed = {k: kwargs.get(k) for k, v in single.items() if k in kwargs and str(kwargs[k]) != str(v)}
        if changed:
            log.info("trainer: this training runs on one device (%s apply to pre-training)",
                     ", ".join(f"trainer.{k}={v}" for k, v in changed.items()))
        kwargs.update(single)
    kwargs.update(overrides)
    kwargs.setdefault("logger", run.loggers or False)
    kwargs.setdefault("default_root_dir", str(run.out_dir))
    log.info(
        "trainer: accelerator=%s devices=%s strategy=%s precision=%s max_steps=%s",
        kwargs.get("accelerator", "auto"), kwargs.get("devices", "auto"), kwargs.get("strategy", "auto"),
        kwargs["precision"], kwargs["max_steps"],
    )
    callbacks = list(callbacks)
    if kwargs.get("enable_progress_bar", True) and not on_terminal():
        from iclx.training.progress import LogProgress

        callbacks.append(LogProgress(progress_desc))  # takes the place of Lightning's bar
    return lightning.Trainer(callbacks=callbacks, **kwargs)
