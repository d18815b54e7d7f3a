"""register/build: names, parameters, types and the one-line errors users see."""

from __future__ import annotations

from typing import Literal

import pytest
from omegaconf import OmegaConf

from iclx import registry
from iclx.errors import ConfigError, did_you_mean
from iclx.registry import build, register


@register("widget", "gear")
class Gear:
    def __init__(self, teeth: int, ratio: float = 1.0, mode: Literal["spur", "helical"] = "spur",
                 sizes: tuple[int, ...] = (1,), label: str | None = None, parts: dict | None = None):
        self.teeth, self.ratio, self.mode, self.sizes, self.label, self.parts = teeth, ratio, mode, sizes, label, parts


@register("widget", "gearbox")
def gearbox(ratio: float, vocab_size: int):
    return ("gearbox", ratio, vocab_size)


def test_build_from_dictconfig_converts_values():
    gear = build("widget", OmegaConf.create({"name": "gear", "teeth": 12, "ratio": 2, "sizes": [1, 2], "parts": {"a": 1}}))
    assert (gear.teeth, gear.ratio, gear.sizes, gear.parts) == (12, 2.0, (1, 2), {"a": 1})
    assert isinstance(gear.ratio, float) and isinstance(gear.sizes, tuple)


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(ConfigError) as e:
        build("widget", {"name": "gera", "teeth": 1})
    assert str(e.value) == "unknown widget 'gera' (widget.name). Known: gear, gearbox (did you mean 'gear'?)"


def test_unknown_parameter_names_key_and_lists_parameters():
    with pytest.raises(ConfigError) as e:
        build("widget", {"name": "gear", "teeth": 3, "ratoi": 2.0}, key="model")
    assert str(e.value) == (
        "widget 'gear' has no parameter 'ratoi' (model.ratoi). "
        "Its parameters: teeth, ratio, mode, sizes, label, parts (did you mean 'ratio'?)"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"teeth": "twelve"}, "widget.teeth must be int, got str 'twelve'"),
        ({"teeth": True}, "widget.teeth must be int, got bool True"),
        ({"teeth": 1, "ratio": "fast"}, "widget.ratio must be float, got str 'fast'"),
        ({"teeth": 1, "mode": "bevel"}, "widget.mode must be one of 'spur', 'helical', got str 'bevel'"),
        ({"teeth": 1, "sizes": [1, "x"]}, "widget.sizes must be a list of int, got list [1, 'x']"),
        ({"teeth": 1, "label": 3}, "widget.label must be str or null, got int 3"),
    ],
)
def test_wrong_types_name_the_key(params, message):
    with pytest.raises(ConfigError) as e:
        build("widget", {"name": "gear", **params})
    assert str(e.value) == message


def test_missing_required_and_missing_name():
    with pytest.raises(ConfigError, match=r"^widget.teeth is required by widget 'gear' but is not set$"):
        build("widget", {"name": "gear"})
    with pytest.raises(ConfigError, match=r"^widget.name is missing: choose one of gear, gearbox$"):
        build("widget", {"teeth": 1})


def test_runtime_arguments_are_supplied_by_iclx_not_the_config():
    assert build("widget", {"name": "gearbox", "ratio": 0.5}, vocab_size=7) == ("gearbox", 0.5, 7)
    with pytest.raises(ConfigError, match="gets 'vocab_size' from iclx at run time"):
        build("widget", {"name": "gearbox", "ratio": 0.5, "vocab_size": 3}, vocab_size=7)


def test_exclude_drops_subsections():
    gear = build("widget", {"name": "gear", "teeth": 2, "order": {"name": "x"}}, exclude=("order",))
    assert gear.teeth == 2


def test_plugin_module_registers_components():
    registry.load_plugins(["iclx_test_plugin"])
    assert "test_only" in registry.known("selector")
    with pytest.raises(ConfigError, match=r"^plugins: cannot import module 'no_such_plugin_mod'"):
        registry.load_plugins(["no_such_plugin_mod"])


def test_entry_point_plugins_are_loaded(monkeypatch):
    loaded = []

    class FakeEntryPoint:
        name, value = "fake", "fake_module:register_all"

        def load(self):
            loaded.append(self.name)
            register("widget", "from_entry_point")(lambda: "ep")

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [FakeEntryPoint()] if group == "iclx.plugins" else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    registry.load_plugins()
    assert loaded == ["fake"] and build("widget", {"name": "from_entry_point"}) == "ep"


def test_same_name_twice_from_different_objects_is_an_error():
    with pytest.raises(ConfigError, match="registered twice"):
        register("widget", "gear")(gearbox)


def test_did_you_mean():
    assert did_you_mean("knm", ["knn", "mmr", "random"]) == " (did you mean 'knn'?)"
    assert did_you_mean("zzz", ["knn"]) == ""


def test_a_registered_class_is_named_by_its_registration():
    assert Gear.name == "gear"

    class Named:
        name = "other"

    with pytest.raises(ConfigError, match=r"says name = 'other' but is registered as 'named'$"):
        register("widget", "named")(Named)
