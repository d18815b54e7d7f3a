"""Named components: ``@register(kind, name)`` and ``build(kind, cfg)``.

A config names a component by ``name:`` and gives its parameters beside it; ``build`` finds the
registered class or function, checks the parameters against its signature (names, required
values, annotated types) and constructs it. Configs never carry import paths, so a config file
cannot make iclx import arbitrary code, and every error can list what exists.

Kinds are the config groups (``data``, ``data/order``, ``tokenizer``, ``model``, ``optimizer``,
``selector``, ``probe``, ``task``, ...) plus a few inner ones (``stage``, ``embedder``,
``schedule``). The built-in components of a kind are imported on first use, so importing this
module (and ``iclx --help``) stays free of torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from iclx.errors import ConfigError, did_you_mean

# Where the built-in components of each kind live; imported on first lookup of that kind.
BUILTIN_MODULES: dict[str, str] = {
    "stage": "iclx.stages",
    "data": "iclx.data",
    "data/order": "iclx.data.order",
    "tokenizer": "iclx.tokenizers",
    "model": "iclx.models",
    "optimizer": "iclx.optim",
    "schedule": "iclx.optim",
    "selector": "iclx.selectors",
    "embedder": "iclx.embedders",
    "task": "iclx.tasks",
    "probe": "iclx.probes",
}

PLUGIN_ENTRY_POINT_GROUP = "iclx.plugins"

_registry: dict[str, dict[str, Callable[..., Any]]] = {}
_loaded_kinds: set[str] = set()
_entry_points_loaded = False


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class or function decorator: make ``obj`` buildable as ``{name: <name>, ...}`` of ``kind``."""

    def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
        table = _registry.setdefault(kind, {})
        previous = table.get(name)
        if previous is not None and previous is not obj and _qualname(previous) != _qualname(obj):
            raise ConfigError(
                f"{kind} '{name}' is registered twice: by {_qualname(previous)} and {_qualname(obj)}"
            )
        table[name] = obj
        return obj

    return decorator


def known(kind: str) -> list[str]:
    """Sorted names registered under ``kind`` (built-ins and plugins)."""
    _ensure_loaded(kind)
    return sorted(_registry.get(kind, {}))


def get(kind: str, name: str) -> Callable[..., Any]:
    """The registered object, or a ConfigError that lists the known names."""
    _ensure_loaded(kind)
    table = _registry.get(kind, {})
    if name not in table:
        names = sorted(table)
        raise ConfigError(
            f"unknown {kind} '{name}'. Known: {', '.join(names) or '(none)'}{did_you_mean(name, names)}"
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
    params = _plain(cfg)
    if not isinstance(params, dict):
        raise ConfigError(f"{key} must be a mapping with a 'name', got {params!r}")
    name = params.pop("name", None)
    if name is None:
        names = known(kind)
        raise ConfigError(f"{key}.name is missing: choose one of {', '.join(names) or '(none)'}")
    target = get(kind, str(name))
    for k in exclude:
        params.pop(k, None)
    params = check_arguments(f"{kind} '{name}'", target, params, key=key, runtime=runtime)
    return target(**params, **runtime)


def parameters(kind: str, name: str) -> list[str]:
    """The configurable parameter names of a registered component."""
    return list(_signature_params(get(kind, name)))


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
            raise ConfigError(f"plugins: cannot import module '{module}': {e}") from e


# --- internals ---------------------------------------------------------------------------------


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _ensure_loaded(kind: str) -> None:
    if kind in _loaded_kinds:
        return
    _loaded_kinds.add(kind)
    load_plugins()
    module = BUILTIN_MODULES.get(kind)
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


def _signature_params(target: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    fn = target.__init__ if inspect.isclass(target) else target
    sig = inspect.signature(fn)
    out = {}
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if inspect.isclass(target) and i == 0:  # self
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        out[pname] = p
    return out


def _accepts_any_keyword(target: Callable[..., Any]) -> bool:
    fn = target.__init__ if inspect.isclass(target) else target
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) and not dataclasses.is_dataclass(target) else target
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: skip type checks rather than fail
        return {}


def check_arguments(
    label: str,
    target: Callable[..., Any],
    params: dict[str, Any],
    *,
    key: str,
    runtime: Mapping[str, Any] = {},
) -> dict[str, Any]:
    """Check config ``params`` (at ``key``) against ``target``'s signature; return them conformed.

    ``label`` names the target in messages, e.g. ``selector 'knn'`` or ``lightning.Trainer``.
    """
    signature = _signature_params(target)
    configurable = [p for p in signature if p not in runtime]
    for pname in params:
        if pname in runtime:
            raise ConfigError(f"{key}.{pname}: {label} gets '{pname}' from iclx at run time; remove it from the config")
        if pname not in signature and not _accepts_any_keyword(target):
            raise ConfigError(
                f"{label} has no parameter '{pname}' ({key}.{pname}). "
                f"Its parameters: {', '.join(configurable) or '(none)'}{did_you_mean(pname, configurable)}"
            )
    for pname, p in signature.items():
        if p.default is inspect.Parameter.empty and pname not in params and pname not in runtime:
            raise ConfigError(f"{key}.{pname} is required by {label} but is not set")
    hints = _type_hints(target)
    out = dict(params)
    for pname, value in params.items():
        annotation = hints.get(pname)
        if annotation is None:
            continue
        ok, converted = _conform(value, annotation)
        if not ok:
            raise ConfigError(f"{key}.{pname} must be {_describe(annotation)}, got {type(value).__name__} {value!r}")
        out[pname] = converted
    return out


def _conform(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits ``annotation``, and the value converted where a config cannot say it
    exactly (a YAML list for a tuple, an int for a float, a string for a Path)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True, value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = _conform(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if annotation is type(None):
        return value is None, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, bool):
            return False, value
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    if annotation is str:
        return isinstance(value, str), value
    if annotation is Path:
        return isinstance(value, (str, Path)), Path(value) if isinstance(value, (str, Path)) else value
    container = origin or annotation
    if container in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False, value
        # list[X], Sequence[X] and tuple[X, ...] check their items; other tuples only their kind
        homogeneous = container is not tuple or (len(args) == 2 and args[1] is Ellipsis)
        item_type = args[0] if args and homogeneous else Any
        items = []
        for item in value:
            ok, converted = _conform(item, item_type)
            if not ok:
                return False, value
            items.append(converted)
        return True, tuple(items) if container is tuple else items
    if container in (dict, Mapping):
        if not isinstance(value, dict):
            return False, value
        if len(args) == 2:
            out = {}
            for k, v in value.items():
                ok, converted = _conform(v, args[1])
                if not ok:
                    return False, value
                out[k] = converted
            return True, out
        return True, value
    if inspect.isclass(annotation):
        return isinstance(value, annotation), value
    return True, value


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if annotation is type(None):
        return "null"
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))
