"""OmegaConf resolvers iclx's configs use; registered once, on import (the entrypoint imports this).

``${iclx.gpus_per_node:ACCELERATOR,DEVICES}`` is what ``launcher=slurm`` asks for, from the trainer.
``${iclx.fresh_folder:PATH}`` claims a run folder no other run has (sweeps: iclx/sweep_folder.py).
``${iclx.resource:PATH}`` is a path inside the installed package's ``resources/``.

``${iclx.choice:GROUP,FALLBACK}`` is the option chosen for a config group (e.g. the experiment), or
FALLBACK where the group has none. Hydra's own ``${hydra:runtime.choices.GROUP}`` only resolves
inside a job: a sweeper resolves ``hydra.sweep.dir`` and the multirun callbacks read the config
before any job exists, so a run or sweep name built on it would fail there. This reads the
choices from the config being resolved when it still holds its ``hydra`` section (sweepers,
launchers, callbacks) and from the job's HydraConfig otherwise (a job's config has no ``hydra``).
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def chosen_option(group: str, fallback: Any = None, *, _root_: Any) -> Any:
    hydra_section = _root_.get("hydra") if hasattr(_root_, "get") else None
    if hydra_section is not None:
        choices = hydra_section.runtime.choices
    else:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return fallback
        choices = HydraConfig.get().runtime.choices
    value = choices.get(group)
    return fallback if value is None else value


def gpus_per_node(accelerator: str, devices: Any) -> int:
    """``${iclx.gpus_per_node:${trainer.accelerator},${trainer.devices}}``: the GPUs a Slurm job asks
    for, from the trainer: none on the CPU, else one per device."""
    if accelerator == "cpu":
        return 0
    if not isinstance(devices, int) or devices < 1:
        raise ValueError(f"launcher=slurm needs trainer.devices as a number of GPUs, got {devices!r}")
    return devices


def fresh_folder(path: str) -> str:
    """``${iclx.fresh_folder:outputs/.../<date>_<time>}``: ``path``, created now, or ``path-2``,
    ``path-3``, ... when another run took it first (two runs started in the same second). Creating
    the folder is what claims it, so two processes never get the same one. Cached per config, so
    the run resolves it once. Only for ``hydra.run.dir``: launchers compose every job's config again,
    which would claim a new folder per job; a sweep's folder is claimed once by iclx/sweep_folder.py."""
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    candidate, number = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = f"{path}-{number}"


def resource(path: str) -> str:
    """``${iclx.resource:curate_sample}``: the absolute path of a file or folder shipped in
    ``iclx/resources`` (wherever the package is installed)."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "resources" / path)


def register() -> None:
    if not OmegaConf.has_resolver("iclx.choice"):
        OmegaConf.register_new_resolver("iclx.choice", chosen_option)
    if not OmegaConf.has_resolver("iclx.fresh_folder"):
        OmegaConf.register_new_resolver("iclx.fresh_folder", fresh_folder, use_cache=True)
    if not OmegaConf.has_resolver("iclx.resource"):
        OmegaConf.register_new_resolver("iclx.resource", resource)
    if not OmegaConf.has_resolver("iclx.gpus_per_node"):
        OmegaConf.register_new_resolver("iclx.gpus_per_node", gpus_per_node)


register()
