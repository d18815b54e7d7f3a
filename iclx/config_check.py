"""Check every component section of a run's config before any stage runs.

A typo in ``selector.topk`` should stop the run at once, not after an hour of pre-training when
the evaluate stage first builds the selector. Each section is checked against its registered
component's signature (names and types); arguments iclx supplies at run time are not required.
"""

from __future__ import annotations

from typing import Any

from iclx import registry

# config section -> (registry kind, keys of the section that are not constructor arguments)
COMPONENT_SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("data", ("order", "validation")),
    "data.order": ("data/order", ()),
    "tokenizer": ("tokenizer", ()),
    "model": ("model", ()),
    "optimizer": ("optimizer", ("schedule",)),
    "optimizer.schedule": ("schedule", ()),
    "selector": ("selector", ()),
    "task": ("task", ("template",)),
    "probe": ("probe", ()),
}


def section(cfg: Any, path: str) -> Any:
    node = cfg
    for part in path.split("."):
        node = node.get(part) if hasattr(node, "get") else None
        if node is None:
            return None
    return node


def check_component_sections(cfg: Any) -> int:
    """Raise ConfigError on the first section whose name or parameters its component rejects.
    Returns how many sections were checked."""
    checked = 0
    for path, (kind, not_arguments) in COMPONENT_SECTIONS.items():
        node = registry._plain(section(cfg, path))
        if not isinstance(node, dict) or node.get("name") is None:
            continue
        name = str(node["name"])
        target = registry.get(kind, name)
        params = {k: v for k, v in node.items() if k != "name" and k not in not_arguments and v != "???"}
        runtime = {p: None for p in registry.parameters(kind, name) if p not in params}
        registry.check_arguments(f"{kind} '{name}'", target, params, key=path, runtime=runtime)
        checked += 1
    return checked
