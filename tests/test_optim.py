"""Every optimizer and schedule builds from its config file and trains a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from iclx.cli import conf_dir
from iclx.errors import ConfigError
from iclx.optim import build_optimizer, build_scheduler, lightning_optimizers, param_groups

OPTIMIZERS = sorted(p.stem for p in (conf_dir() / "optimizer").glob("*.yaml"))


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(8, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 8)

    def forward(self, x):
        return self.head(self.norm(self.embed(x)))


def test_all_five_optimizers_have_configs():
    assert OPTIMIZERS == ["adafactor", "adagrad", "adam", "adamw", "sgd"]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_from_config_reduces_loss(name):
    torch.manual_seed(0)
    cfg = OmegaConf.load(conf_dir() / "optimizer" / f"{name}.yaml")
    cfg.schedule.warmup_steps = 5  # the presets warm up over 100 steps; this run is short
    model = TinyLM()
    opt = lightning_optimizers(model, cfg, total_steps=300)
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    assert opt["lr_scheduler"]["interval"] == "step"
    x = torch.randint(0, 8, (16,))
    y = (x + 1) % 8
    losses = []
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], (name, losses[0], losses[-1])


def test_weight_decay_only_on_matrices():
    model = TinyLM()
    decay, keep = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.head.weight)}
    assert {id(p) for p in keep["params"]} == {id(model.embed.weight), id(model.norm.weight), id(model.norm.bias), id(model.head.bias)}


def test_tied_weights_are_counted_once():
    model = TinyLM()
    model.head.weight = model.embed.weight  # tied: an embedding, so never decayed
    groups = param_groups(model, 0.1)
    params = [p for g in groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == 4
    assert all(g["weight_decay"] == 0.0 for g in groups)


def _lrs(schedule: dict, total: int = 100) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, schedule, total)
    out = []
    for _ in range(total):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_cosine_warmup_then_decay_to_min():
    lrs = _lrs({"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_linear_and_constant():
    lin = _lrs({"name": "linear", "warmup_steps": 0, "min_lr_ratio": 0.0})
    assert lin[0] == 1.0 and lin[50] == pytest.approx(0.5) and lin[99] == pytest.approx(0.01)
    const = _lrs({"name": "constant", "warmup_steps": 4})
    assert const[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0]) and set(const[4:]) == {1.0}


def test_bad_optimizer_config_names_the_key():
    model = TinyLM()
    with pytest.raises(ConfigError, match=r"^optimizer.lr must be float, got str 'fast'$"):
        build_optimizer(model, {"name": "adamw", "lr": "fast"})
    with pytest.raises(ConfigError, match=r"optimizer 'sgd' has no parameter 'betas' \(optimizer.betas\)"):
        build_optimizer(model, {"name": "sgd", "betas": [0.9, 0.9]})
    with pytest.raises(ConfigError, match=r"^unknown schedule 'cosin'.*\(did you mean 'cosine'\?\)$"):
        build_scheduler(torch.optim.SGD(model.parameters(), lr=1), {"name": "cosin"}, 10)
