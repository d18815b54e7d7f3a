"""Check a run's whole config before any stage runs: one line naming the key, or nothing.

A typo in ``selector.topk`` or ``evaluate.shot`` should stop the run at once, not after an hour of
pre-training when the evaluate stage first reads it. ``validate_config`` checks, in this order:
that no key is an import path (``_target_``, at any depth: iclx names components by ``name:``,
see ``iclx.registry``), the ``plugins`` list (and loads it), keys that were renamed (one line
naming the new key), the top-level keys and the stage sections (``iclx.sections``), then every
component section declared in ``registry.KINDS`` with its nested component configs
(``iclx.schema``). Arguments iclx supplies at run time are not required.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from iclx import registry
from iclx.errors import ConfigError

# Renamed keys, old config path -> new one: a config that still says the old name fails in one
# line naming the new one (add an entry when a rename ships; remove it a few releases later).
RENAMED_KEYS: dict[str, str] = {}


def validate_config(cfg: Any, overrides: Sequence[str] = ()) -> int:
    """Raise ConfigError on the first bad key of ``cfg``; return how many sections were checked.
    ``overrides`` are the command line's (what the user chose explicitly)."""
    from iclx import sections

    check_no_import_paths(cfg)  # before plugins= imports anything
    plugins = registry._plain(cfg.get("plugins") or [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"plugins must be a list of module names, e.g. plugins=[my_pkg.selectors], got {plugins!r}")
    registry.load_plugins(plugins)  # their components must be known
    check_renamed_keys(cfg)
    checked = sections.check_sections(cfg) + check_components(cfg)
    sections.check_choices(cfg, overrides)
    return checked


check_component_sections = validate_config  # the name the entrypoint calls before any stage runs


def check_components(cfg: Any) -> int:
    """Check each component section (``registry.KINDS[kind].section``) that names a component.
    Returns how many were checked."""
    checked = 0
    for kind, declared in registry.KINDS.items():
        node = section(cfg, declared.section) if declared.section else None
        if node is not None and registry._plain(node).get("name") is not None:
            registry.check(kind, node, key=declared.section)
            checked += 1
    return checked


IMPORT_PATH_KEY = "_target_"  # Hydra's key for "import and call this": iclx never reads it


def import_path_error(path: str) -> ConfigError:
    """The one line for a ``_target_`` key at ``path`` (a config's or a command line's)."""
    return ConfigError(f"{path}: iclx configs name components by 'name:', never by import path; for a "
                       f"component of your own, @register it and name its module in plugins=[...]")


def check_no_import_paths(cfg: Any) -> None:
    """Refuse a ``_target_`` key anywhere in ``cfg`` but Hydra's own ``hydra`` section: iclx would
    never read it, so the run would silently ignore what its author meant to run."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):  # unresolved: a bad interpolation is not this check's to report
        cfg = OmegaConf.to_container(cfg, resolve=False)
    for path in import_path_keys(cfg):
        if path.split(".")[0].split("[")[0] != "hydra":
            raise import_path_error(path)


def import_path_keys(node: Any, path: str = "") -> Iterator[str]:
    """The dotted paths of the ``_target_`` keys in a plain config (dicts and lists)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == IMPORT_PATH_KEY:
                yield where
            yield from import_path_keys(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from import_path_keys(value, f"{path}[{i}]")


def check_renamed_keys(cfg: Any) -> None:
    for old, new in RENAMED_KEYS.items():
        if section(cfg, old) is not None:
            raise ConfigError(f"{old} was renamed to {new}: write {new}={registry._plain(section(cfg, old))!r}")


def section(cfg: Any, path: str) -> Any:
    """The node at dotted ``path`` of ``cfg``, or None."""
    node = cfg
    for part in path.split("."):
        node = node.get(part) if hasattr(node, "get") else None
        if node is None:
            return None
    return node
