"""Typed config schemas, validated with pydantic: one line per error, naming the key path.

A component's schema is its signature: ``check_arguments`` turns the parameters' annotations into
a pydantic ``TypedDict`` (``extra="forbid"``; parameters without a default are required), so
annotations such as ``Literal[...]``, ``tuple[int, int]``, ``int | None`` or
``Annotated[int, Field(ge=1)]`` are checked without a line of iclx code per type. A parameter that
holds another component's config is annotated with a marker (``Annotated[dict[str, Any],
Component("embedder")]``) and is validated against that kind's registry, recursively, under its
own key path (``selector.embedder.dim``). Checks that span parameters (``d_model`` divisible by
``n_head``) are a component's classmethod ``check_config(values, key)``, run after the types.

Why pydantic v2 rather than dataclasses or OmegaConf structured configs: it is already installed
(wandb depends on it), it validates nested containers, unions and constraints recursively and
reports each error with its location and kind, which is what one line with a key path and a
did-you-mean needs; it builds a schema from an existing signature, so defaults stay written once,
in Python, where the code reads them. Structured configs would change how Hydra composes every
group (and Hydra's own errors are multi-line); dataclasses alone would mean writing the conformer
this module replaces. Scalars are strict (``True`` is no int, ``"3"`` no number: YAML already
typed them), containers lax (a YAML list is a fine tuple, a string a fine path).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import (
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import NotRequired, Required, TypedDict

from iclx.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Component:
    """Marks a parameter that holds the config of a component of ``kind`` (``{name: ..., ...}``)."""

    kind: str

    def check(self, value: Any, key: str, check_component: Callable[..., None]) -> None:
        check_component(self.kind, value, key=key)


@dataclass(frozen=True)
class Components:
    """Marks a parameter that holds several component configs of ``kind``, each checked under its
    own key: a list (``key[i]``) or a mapping from a label to a config (``key.label``), where the
    label is the component's name unless the config names another. A null entry is skipped (off)."""

    kind: str

    def check(self, value: Any, key: str, check_component: Callable[..., None]) -> None:
        for label, item in labelled(value):
            if item is not None:
                check_component(self.kind, item, key=f"{key}{label}")


def labelled(value: Any) -> list[tuple[str, Any]]:
    """(key suffix, config with its ``name``) for each entry of a :class:`Components` parameter."""
    if isinstance(value, Mapping):
        return [(f".{k}", None if v is None else {"name": k, **v}) for k, v in value.items()]
    return [(f"[{i}]", v) for i, v in enumerate(value or [])]


@dataclass(frozen=True)
class Fields:
    """Marks a mapping parameter whose keys are the keyword arguments of ``target`` (a dataclass)."""

    target: Callable[..., Any]
    label: str

    def check(self, value: Any, key: str, check_component: Callable[..., None]) -> None:
        check_arguments(self.label, self.target, dict(value), key=key, check_component=check_component)


# the annotations of parameters that hold another component's config
EmbedderConfig = Annotated[dict[str, Any], Component("embedder")]
OptimizerConfig = Annotated[dict[str, Any], Component("optimizer")]


def check_arguments(label: str, target: Callable[..., Any], params: dict[str, Any], *, key: str,
                    runtime: Sequence[str] = (), complete: bool = True,
                    check_component: Callable[..., None] | None = None) -> dict[str, Any]:
    """``params`` (the config at ``key``) checked against ``target``'s signature, values converted
    where a config cannot say them exactly (a list for a tuple). ``runtime`` names the parameters
    iclx supplies itself; a config may not set them. ``complete=False`` requires none (before a
    run, iclx may still supply some). ``label`` names ``target`` in messages. Nested component
    configs go to ``check_component(kind, cfg, key=...)`` (the registry's ``check``: passed in,
    so that this module does not import the registry that imports it)."""
    for name in params:
        if name in runtime:
            raise ConfigError(f"{key}.{name}: {label} gets '{name}' from iclx at run time; remove it from the config")
    schema, hints = _schema(target, frozenset(runtime), complete)
    try:
        values = schema.validate_python(params)
    except ValidationError as e:
        parameters = [p for p in signature(target) if p not in runtime]
        raise ConfigError(error_line(first_error(e), key, label, parameters, params, hints, noun="parameter")) from None
    for name, value in values.items():
        for marker in _markers(hints.get(name)):
            if value is not None and (check_component is not None or not isinstance(marker, (Component, Components))):
                marker.check(value, f"{key}.{name}", check_component)
    if hasattr(target, "check_config"):
        defaults = {p: q.default for p, q in signature(target).items() if q.default is not inspect.Parameter.empty}
        target.check_config({**defaults, **values}, key=key)
    return values


def signature(target: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The named parameters of a function or a class's constructor (a class without its own
    ``__init__`` has none: ``object.__init__`` takes no configuration)."""
    params = inspect.signature(target).parameters.values()
    return {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def first_error(error: ValidationError) -> dict[str, Any]:
    """The error to report: an unknown name first, then a missing one, then a wrong value."""
    return min(error.errors(), key=lambda e: (e["type"] != "extra_forbidden", e["type"] != "missing"))


def error_line(first: Mapping[str, Any], key: str, label: str, names: list[str], values: Mapping[str, Any],
               hints: Mapping[str, Any], *, noun: str) -> str:
    """One of pydantic's errors, of the config ``values`` at ``key``, as one iclx line. ``names``
    are the keys it may have, ``hints`` their types, ``label`` what it configures."""
    if not first["loc"]:
        return f"{key}: {first['msg'].removeprefix('Value error, ')}"
    name, kind = str(first["loc"][0]), first["type"]
    path = f"{key}.{name}" if key else name
    if kind == "extra_forbidden":
        return f"{label} has no {noun} '{name}' ({path}). Its {noun}s: {', '.join(names) or '(none)'}{did_you_mean(name, names)}"
    if kind == "missing":
        return f"{path} is required by {label} but is not set"
    where = path + "".join(f"[{i}]" for i in first["loc"][1:] if isinstance(i, int))  # list items; not union tags
    bound = next(((op, first["ctx"][c]) for c, op in _BOUNDS.items() if c in first.get("ctx", {})), None)
    if bound:
        return f"{where} must be {bound[0]} {bound[1]}, got {first['input']!r}"
    if kind == "too_short":
        return f"{where} must list at least {first['ctx']['min_length']} item(s), got {first['input']!r}"
    if kind in ("value_error", "assertion_error", "too_long"):
        return f"{where}: {first['msg'].removeprefix('Value error, ')}, got {first['input']!r}"
    value = values.get(name)
    return f"{path} must be {describe(hints.get(name, Any))}, got {type(value).__name__} {value!r}"


def describe(annotation: Any) -> str:
    """``int``, ``one of 'a', 'b'``, ``a list of int``, ``str or null``: a type as a message says it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return describe(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple, Sequence):
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "a mapping"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


# --- internals ---------------------------------------------------------------------------------

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_STRICT = {int: StrictInt, float: StrictFloat, bool: StrictBool, str: StrictStr}
_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


@functools.cache
def _schema(target: Callable[..., Any], runtime: frozenset[str], complete: bool) -> tuple[TypeAdapter, dict[str, Any]]:
    params = {n: p for n, p in signature(target).items() if n not in runtime}
    hints = _type_hints(target)
    fields = {n: (Required if complete and p.default is p.empty else NotRequired)[_field(hints.get(n, Any))]
              for n, p in params.items()}
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())
    config = ConfigDict(_CONFIG, extra="allow" if takes_any_keyword else "forbid")
    return TypeAdapter(pydantic.with_config(config)(TypedDict(getattr(target, "__name__", "config"), fields))), hints


def _field(annotation: Any) -> Any:
    """``annotation`` with strict scalars; ``Any`` where pydantic cannot check it (then neither can a config)."""
    strict = _strict(annotation)
    try:
        TypeAdapter(strict, config=_CONFIG)
    except Exception:  # noqa: BLE001 -- e.g. a Protocol: a config value could never be one anyway
        return Any
    return strict


def _strict(annotation: Any) -> Any:
    if annotation in _STRICT:
        return _STRICT[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return Annotated[(_strict(args[0]), *annotation.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_strict(a) for a in args)]  # noqa: UP007 -- built from a tuple
    if origin in (dict, Mapping) and args:  # keys as YAML wrote them (a verbalizer's 0: negative)
        return origin[Any, _strict(args[1])]
    if origin in (list, tuple, Sequence) and args:
        return origin[tuple(a if a is Ellipsis else _strict(a) for a in args)]
    return annotation


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) and "__dataclass_fields__" not in vars(target) else target
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 -- unresolvable forward references: check names only
        return {}


def _markers(annotation: Any) -> list[Any]:
    """The Component/Components/Fields markers in ``annotation`` (also inside ``X | None``)."""
    if typing.get_origin(annotation) is Annotated:
        return [m for m in annotation.__metadata__ if isinstance(m, (Component, Components, Fields))]
    return [m for a in typing.get_args(annotation) for m in _markers(a)]
