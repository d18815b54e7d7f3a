"""OmegaConf resolvers iclx's configs use; registered once, on import (the entrypoint imports this).

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


def register() -> None:
    if not OmegaConf.has_resolver("iclx.choice"):
        OmegaConf.register_new_resolver("iclx.choice", chosen_option)


register()
