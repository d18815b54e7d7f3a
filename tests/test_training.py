"""The trainer group -> lightning.Trainer arguments."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from iclx.cli import conf_dir
from iclx.errors import ConfigError
from iclx.training import trainer as training


@pytest.mark.parametrize("preset", ["cpu", "debug"])
def test_cpu_presets_map_onto_trainer_arguments(preset):
    cfg = OmegaConf.load(conf_dir() / "trainer" / f"{preset}.yaml")
    cfg.pop("defaults", None)
    if preset == "debug":
        base = OmegaConf.load(conf_dir() / "trainer" / "cpu.yaml")
        cfg = OmegaConf.merge(base, cfg)
    args = training.trainer_arguments(cfg, default_max_steps=500)
    assert "compile" not in args
    assert args["max_steps"] == (500 if preset == "cpu" else 20)
    assert args["precision"] in ("bf16-mixed", "32-true")


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    assert training.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    assert training.resolve_precision("auto", "cpu") == "32-true"
    assert training.resolve_precision("32-true", "cpu") == "32-true"


def test_unknown_trainer_key_is_named():
    with pytest.raises(ConfigError, match=r"lightning.Trainer has no parameter 'max_step' \(trainer.max_step\).*did you mean 'max_steps'"):
        training.trainer_arguments({"accelerator": "cpu", "max_step": 3})
