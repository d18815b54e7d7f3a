"""Named components: ``@register(kind, name)`` and ``build(kind, cfg)``.

A config names a component by ``name:`` and gives its parameters beside it; ``build`` finds the
registered class or function, checks the parameters against its signature (names, required
values, annotated types) and constructs it. Configs never carry import paths: a ``_target_`` key
anywhere in the run config (Hydra's own ``hydra`` section aside) is refused before anything runs
(``iclx.config_check``), names stay stable when code moves, and every error can list what exists.

What a run imports, and so what a config can make it import:

- iclx's own modules (the built-ins of each kind, ``KINDS``);
- the ``iclx.plugins`` entry points of installed distributions, on every run (installing a
  package is the choice to run its code);
- the modules a config names in ``plugins: [...]``, imported by name from the import path:
  installed packages and ``PYTHONPATH``. Any importable module can be named, so ``plugins=`` runs
  code as ``python -c 'import X'`` would: a config from someone else deserves the same reading as
  their code. The current folder is not on that path, for ``python -m iclx`` too (``iclx/__init__``
  drops it, unless it is the uninstalled source folder iclx itself comes from), so a stray file
  there is never imported; ``PYTHONPATH=. iclx plugins=[my_module]`` opts in;
- Hydra's own section (``hydra.launcher``, ``hydra.sweeper``, ``hydra.callbacks``), which Hydra
  instantiates by ``_target_`` before iclx sees the config: iclx's configs there name Hydra's
  launchers and sweepers and ``iclx.sweep_summary``; a config folder added with ``--config-dir`` or
  ``hydra.searchpath`` can set them too, so such a folder is code as much as a plugin is.

Kinds are the config groups (``data``, ``data/order``, ``tokenizer``, ``model``, ``optimizer``,
``selector``, ``probe``, ``task``, ...) plus a few inner ones (``stage``, ``embedder``,
``schedule``). The built-in components of a kind are imported on first use, so importing this
module (and ``iclx --help``) stays free of torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iclx.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Kind:
    """A kind of component, declared once: adding a kind is one entry in KINDS."""

    module: str  # where its built-ins live, imported on first lookup of the kind
    section: str | None = None  # the run config's section that names one, checked before any stage runs
    subsections: Mapping[str, str | None] = field(default_factory=dict)
    # ^ keys of a config of this kind that are not constructor arguments: the kind they hold
    #   (checked with it), or None for settings read by the code around the component
    runtime: tuple[str, ...] = ()  # parameters iclx passes itself when it builds one: never in a config


KINDS: dict[str, Kind] = {
    "stage": Kind("iclx.stages", runtime=("run",)),
    "data": Kind("iclx.data", "data", {"order": "data/order", "validation": None}),
    "data/order": Kind("iclx.data.order"),
    "tokenizer": Kind("iclx.tokenizers", "tokenizer"),
    "model": Kind("iclx.models", "model", runtime=("vocab_size", "d")),
    "optimizer": Kind("iclx.optim", "optimizer", {"schedule": "schedule"}, runtime=("params",)),
    "schedule": Kind("iclx.optim"),
    "selector": Kind("iclx.selectors", "selector"),
    "embedder": Kind("iclx.embedders", runtime=("model", "tokenizer", "model_key")),
    "task": Kind("iclx.tasks", "task", {"template": None}, runtime=("data",)),
    "probe": Kind("iclx.probes", "probe"),
    "curate": Kind("iclx.curate", "curate", {"executor": "curate_executor"}),
    "curate_step": Kind("iclx.curate.steps"),
    "curate_executor": Kind("iclx.curate.executors"),
}

PLUGIN_ENTRY_POINT_GROUP = "iclx.plugins"
MISSING = "???"  # Hydra's mandatory-value marker, as a plain config holds it

_registry: dict[str, dict[str, Callable[..., Any]]] = {}
_loaded_kinds: set[str] = set()
_entry_points_loaded = False


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class or function decorator: make ``obj`` buildable as ``{name: <name>, ...}`` of ``kind``.

    A registered class gets ``name`` as its class attribute (what its messages and saved files
    call it), so the name is written once, here."""

    def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
        table = _registry.setdefault(kind, {})
        previous = table.get(name)
        if previous is not None and previous is not obj and _qualname(previous) != _qualname(obj):
            raise ConfigError(
                f"{kind} '{name}' is registered twice: by {_qualname(previous)} and {_qualname(obj)}"
            )
        if isinstance(obj, type):
            if vars(obj).get("name", name) != name:
                raise ConfigError(f"{_qualname(obj)} says name = {vars(obj)['name']!r} but is registered as '{name}'")
            obj.name = name
        table[name] = obj
        return obj

    return decorator


def known(kind: str) -> list[str]:
    """Sorted names registered under ``kind`` (built-ins and plugins)."""
    _ensure_loaded(kind)
    return sorted(_registry.get(kind, {}))


def get(kind: str, name: str, *, key: str | None = None) -> Callable[..., Any]:
    """The registered object, or a ConfigError that lists the known names (and names ``key``,
    where the config says ``name``)."""
    _ensure_loaded(kind)
    table = _registry.get(kind, {})
    if name not in table:
        names = sorted(table)
        where = f" ({key})" if key else ""
        raise ConfigError(
            f"unknown {kind} '{name}'{where}. Known: {', '.join(names) or '(none)'}{did_you_mean(name, names)}"
        )
    return table[name]


def build(
    kind: str,
    cfg: Mapping[str, Any] | Any,
    *,
    key: str | None = None,
    exclude: Sequence[str] = (),
    **runtime: Any,
) -> Any:
    """Construct the component ``cfg.name`` of ``kind`` with the other keys of ``cfg`` as arguments.

    ``key`` is where ``cfg`` sits in the run config (for error messages; defaults to ``kind``).
    ``exclude`` lists keys of ``cfg`` that are not constructor arguments (e.g. sub-groups).
    ``runtime`` are arguments iclx supplies itself (a vocabulary size, a model); a config may not
    set them too.
    """
    key = key or kind.replace("/", ".")
    name, target, params = _named(kind, cfg, key)
    for k in exclude:
        params.pop(k, None)
    for k, value in params.items():
        if value == MISSING:  # a preset's key the user must fill in (task.pool of task=csv), left unset
            raise ConfigError(f"{key}.{k} is required by {kind} '{name}': set it, e.g. {key}.{k}=...")
    params = check_arguments(f"{kind} '{name}'", target, params, key=key, runtime=list(runtime))
    return target(**params, **runtime)


def check(kind: str, cfg: Mapping[str, Any] | Any, *, key: str | None = None) -> None:
    """Validate ``cfg`` as a config of ``kind`` without constructing it: its name, its parameters
    (nested component configs included) and its sub-sections (``KINDS[kind].subsections``).
    Parameters it leaves unset are not required here: iclx may supply them at run time."""
    key = key or kind.replace("/", ".")
    name, target, params = _named(kind, cfg, key)
    declared = KINDS.get(kind, Kind(""))
    for sub, sub_kind in declared.subsections.items():
        node = params.pop(sub, None)
        if sub_kind is not None and isinstance(node, dict) and node.get("name") is not None:
            check(sub_kind, node, key=f"{key}.{sub}")
    params = {k: v for k, v in params.items() if v != MISSING}  # unset yet: build() says so if the run needs it
    runtime = [p for p in declared.runtime if p in parameters(kind, name)]
    check_arguments(f"{kind} '{name}'", target, params, key=key, runtime=runtime, complete=False)


def parameters(kind: str, name: str) -> list[str]:
    """The configurable parameter names of a registered component."""
    from iclx.schema import signature

    return list(signature(get(kind, name)))


def import_submodules(package: str) -> None:
    """Import every module of ``package`` so that their ``@register`` decorators run.

    Packages of components call this from their ``__init__``; a new module registers itself just
    by existing. Modules import optional heavy dependencies inside functions, not at the top.
    """
    import pkgutil

    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def load_plugins(modules: Sequence[str] = ()) -> None:
    """Import third-party components: the ``iclx.plugins`` entry points, then ``modules``."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # a broken plugin must not hide which one it is
                raise ConfigError(f"plugin entry point '{ep.name}' ({ep.value}) failed to load: {e}") from e
    for module in modules or ():
        try:
            importlib.import_module(str(module))
        except ImportError as e:
            raise ConfigError(f"plugins: cannot import module '{module}': {e}{_in_current_folder_hint(str(module))}") from e


# --- internals ---------------------------------------------------------------------------------


def _in_current_folder_hint(module: str) -> str:
    """Why a module that sits in the current folder was not found (the folder is not on the import
    path, see the module docstring), and how to load it; "" for any other module."""
    import os
    from pathlib import Path

    top = module.split(".")[0]
    here = Path.cwd()
    if not ((here / f"{top}.py").is_file() or (here / top / "__init__.py").is_file()):
        return ""
    if any(Path(p or ".").resolve() == here for p in sys.path):
        return ""
    return (f" ({top} is in the current folder, which iclx does not import from: "
            f"PYTHONPATH={os.curdir} iclx ... loads it, or install it)")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _ensure_loaded(kind: str) -> None:
    if kind in _loaded_kinds:
        return
    _loaded_kinds.add(kind)
    load_plugins()
    module = KINDS[kind].module if kind in KINDS else None
    if module is not None:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a missing dependency, not a missing built-in package
                _loaded_kinds.discard(kind)
                raise


def _plain(cfg: Any) -> Any:
    """A resolved plain-Python copy of an OmegaConf node (or of a mapping)."""
    if "omegaconf" in sys.modules:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return {k: _plain(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [_plain(v) for v in cfg]
    return cfg


def _named(kind: str, cfg: Any, key: str) -> tuple[str, Callable[..., Any], dict[str, Any]]:
    """``cfg.name``, the registered target it names, and the other keys of ``cfg``."""
    params = _plain(cfg)
    if not isinstance(params, dict):
        raise ConfigError(f"{key} must be a mapping with a 'name', got {params!r}")
    name = params.pop("name", None)
    if name is None:
        names = known(kind)
        raise ConfigError(f"{key}.name is missing: choose one of {', '.join(names) or '(none)'}")
    return str(name), get(kind, str(name), key=f"{key}.name"), params


def check_arguments(label: str, target: Callable[..., Any], params: dict[str, Any], *, key: str,
                    runtime: Sequence[str] | Mapping[str, Any] = (), complete: bool = True) -> dict[str, Any]:
    """``params`` checked against ``target``'s signature, converted (see ``iclx.schema``); imported
    lazily so that importing the registry (and ``iclx --help``) does not import pydantic."""
    import iclx.schema as schema

    return schema.check_arguments(label, target, params, key=key, runtime=list(runtime), complete=complete,
                                  check_component=check)
