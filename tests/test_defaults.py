"""Defaults are written once: a group option named after its component restates only its defaults.

``conf/selector/epr.yaml`` lists every parameter of ``selectors/epr.py`` so that the command line
can override each without ``+`` and a reader sees them in one place; its values must be the
signature's, or the YAML and a Python caller would silently get different components. Options
with another name (``model=gpt_tiny``, ``task=tsv``) are presets and differ on purpose.
"""

from __future__ import annotations

import inspect

import pytest
from omegaconf import OmegaConf

from iclx import registry
from iclx.cli import conf_dir
from iclx.schema import signature


def base_options() -> list[tuple[str, str]]:
    """(kind, option) for every group option whose file is named after the component it configures."""
    out = []
    for kind, declared in registry.KINDS.items():
        for path in sorted((conf_dir() / kind).glob("*.yaml")) if declared.section else []:
            if OmegaConf.load(path).get("name") == path.stem:
                out.append((kind, path.stem))
    return out


@pytest.mark.parametrize(("kind", "option"), base_options(), ids=lambda v: v)
def test_a_component_option_restates_only_its_signature_defaults(kind, option):
    yaml = OmegaConf.to_container(OmegaConf.load(conf_dir() / kind / f"{option}.yaml"))
    parameters = signature(registry.get(kind, option))
    restated = {k: v for k, v in yaml.items() if k != "name" and k not in registry.KINDS[kind].subsections}
    assert set(restated) <= set(parameters), f"{kind}/{option}.yaml sets keys its component does not take"
    differs = {}
    for key, value in restated.items():
        default = parameters[key].default
        if default is None and isinstance(value, dict) and "name" in value:
            continue  # a nested component (embedder, optimizer): its code-side default is a constant, not the signature's
        default = list(default) if isinstance(default, tuple) else default
        if default is inspect.Parameter.empty and value == "???":
            continue  # required: the YAML marks it for the user to set (data.paths=...)
        if default is inspect.Parameter.empty or value != default:
            differs[key] = (value, default)
    assert not differs, f"conf/{kind}/{option}.yaml (yaml, signature): {differs}"


def test_every_component_kind_has_base_options():
    checked = {kind for kind, _ in base_options()}
    assert {"data", "tokenizer", "model", "optimizer", "selector", "task", "probe"} <= checked
    assert len(base_options()) >= 25
