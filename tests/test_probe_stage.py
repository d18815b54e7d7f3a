"""The probe stage end to end, in-process: outputs, numbers, seeds, presets and error messages."""

from __future__ import annotations

import csv

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from iclx import registry
from iclx.cli import conf_dir, run_cli
from iclx.stages.probe import build_regression_model

from conftest import read_summary

# few held-out tasks and no progress bar in the test log, unless a test overrides them
SHORT = ["probe.tune_tasks=4096", "probe.eval_tasks=2048", "trainer.enable_progress_bar=false"]
PRESET_TASKS = ["probe.tune_tasks=65536", "probe.eval_tasks=8192"]  # the presets' own counts


def probe_run(tmp_path, name: str, *overrides: str) -> dict:
    assert run_cli([*SHORT, *overrides, f"hydra.run.dir={tmp_path}/{name}"]) == 0
    summary = read_summary(tmp_path / name)
    assert summary["status"] == "ok", summary.get("error")
    return summary["stages"]["probe"]


def test_short_training_beats_zero_and_approaches_gd_and_writes_outputs(in_tmp):
    metrics = probe_run(in_tmp, "run", "experiment=icl_gd", "probe.max_steps=300")
    # d = n = 10: the zero predictor's loss is E y^2 = d, one tuned GD step ~ d (1 - n/(n+d+1))
    assert metrics["zero_loss"] == pytest.approx(10, rel=0.1)
    assert metrics["gd_loss"] == pytest.approx(10 * (1 - 10 / 21), rel=0.1)
    assert metrics["loss"] < 0.6 * metrics["zero_loss"]
    assert metrics["loss_ratio"] < 1.03
    assert metrics["sensitivity_cos"] > 0.98 and metrics["pred_cos"] > 0.98
    assert metrics["learned_step1"] == pytest.approx(10 / 21, rel=0.05)
    assert metrics["theory_step"] == pytest.approx(10 / 21)
    assert metrics["readout_rel_err"] < 1e-5  # a one-layer sparse-P LSA is a preconditioned GD step
    assert metrics["constructed_gd_rel_err"] < 1e-5
    run = in_tmp / "run"
    for plot in ("loss_curve", "layer_alignment", "preconditioners"):
        assert (run / "plots" / f"{plot}.png").stat().st_size > 10_000
    with open(run / "probe_references.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert {"zero", "averaging", "gd", "precond_gd", "ridge", "ols", "model"} <= set(rows)
    assert float(rows["model"]["loss"]) == pytest.approx(metrics["loss"])
    with open(run / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert any(r.get("probe/train_loss") for r in logged)
    assert any(r.get("probe/loss_ratio") for r in logged)


def test_same_seed_gives_the_same_numbers(in_tmp):
    tiny = ["experiment=icl_gd", "probe.d=4", "probe.n=6", "probe.max_steps=30",
            "probe.tune_tasks=1024", "probe.eval_tasks=512"]
    first = probe_run(in_tmp, "a", *tiny, "seed=3")
    again = probe_run(in_tmp, "b", *tiny, "seed=3")
    other = probe_run(in_tmp, "c", *tiny, "seed=4")
    first.pop("seconds"), again.pop("seconds"), other.pop("seconds")
    assert first == again
    assert other["loss"] != first["loss"] and other["gd_loss"] != first["gd_loss"]


def test_layers_full_p_and_regression_gpt_run_through_the_probe(in_tmp):
    tiny = ["experiment=icl_gd_layers", "model.layers=2", "probe.d=3", "probe.n=8", "probe.max_steps=20",
            "probe.tune_tasks=1024", "probe.eval_tasks=256"]
    sparse = probe_run(in_tmp, "sparse", *tiny)
    assert sparse["layer1_gd_rel_err"] < 1e-5 and sparse["layer2_gd_rel_err"] < 1e-5
    assert {"gd_per_step_loss", "gdpp_loss", "precond_gd_loss", "learned_step2", "tuned_step2"} <= set(sparse)

    full = probe_run(in_tmp, "full", *tiny, "model.full_p=true")
    assert "readout_rel_err" not in full and "layer2_tuned_rel_err" in full
    assert not (in_tmp / "full" / "plots" / "preconditioners.png").exists()

    gpt = probe_run(in_tmp, "gpt", *tiny, "model=regression_gpt", "model.width=16", "probe.batch_size=16")
    assert "layer2_loss" in gpt and "layer3_loss" not in gpt and "readout_rel_err" not in gpt
    assert gpt["loss"] > 0 and (in_tmp / "gpt" / "plots" / "layer_alignment.png").is_file()


def test_every_probe_and_model_option_composes_and_builds():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for overrides in (
            ["experiment=icl_gd"], ["experiment=icl_gd_layers"], ["experiment=icl_gd_layers", "model.full_p=true"],
            ["experiment=icl_gd", "model=regression_gpt"], ["experiment=icl_gd_layers", "model=regression_gpt"],
        ):
            cfg = compose("config", overrides=overrides)
            task = registry.build("probe", cfg.probe, key="probe")
            model = build_regression_model(cfg.model, task.d)
            batch = task.sample(3, torch.Generator().manual_seed(0))
            assert model(batch).shape == (3,), overrides
    GlobalHydra.instance().clear()


class ToyLanguageModel(torch.nn.Module):
    def __init__(self, vocab_size: int = 10, **unused_lsa_keys):  # takes the icl_gd preset's model keys
        super().__init__()


def test_a_model_that_cannot_probe_stops_with_one_line(in_tmp, capsys, monkeypatch):
    registry.known("model")
    monkeypatch.setitem(registry._registry["model"], "toy_lm", ToyLanguageModel)
    assert run_cli(["experiment=icl_gd", "model.name=toy_lm", f"hydra.run.dir={in_tmp}/run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "iclx: model 'toy_lm' cannot run the probe: it does not read in-context regression examples (x_i, y_i). "
        "Choose one that does: model=lsa, model=regression_gpt"
    ]


@pytest.mark.parametrize(
    "override, message",
    [
        ("probe.x_dist=cauchy", "iclx: probe.x_dist must be one of 'gaussian', 'uniform', got str 'cauchy'"),
        ("probe.n=0", "iclx: probe.n must be >= 1, got 0"),
        ("+model.layer=2", "iclx: model 'lsa' has no parameter 'layer' (model.layer). "
                           "Its parameters: layers, shared, full_p, init_std (did you mean 'layers'?)"),
        ("model.full_p=yes", "iclx: model.full_p must be bool, got str 'yes'"),
    ],
)
def test_bad_probe_and_model_values_are_one_line(in_tmp, capsys, override, message):
    assert run_cli(["experiment=icl_gd", override, f"hydra.run.dir={in_tmp}/run"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [message]


@pytest.mark.slow
def test_icl_gd_preset_meets_the_issue_figures(in_tmp):
    metrics = probe_run(in_tmp, "icl_gd", "experiment=icl_gd", *PRESET_TASKS)
    assert metrics["loss_ratio"] <= 1.01
    assert metrics["sensitivity_cos"] >= 0.99 and metrics["pred_cos"] >= 0.99
    assert metrics["learned_over_theory"] == pytest.approx(1.0, abs=0.03)


@pytest.mark.slow
def test_icl_gd_layers_preset_meets_the_issue_figures(in_tmp):
    sparse = probe_run(in_tmp, "sparse", "experiment=icl_gd_layers", *PRESET_TASKS)
    assert sparse["readout_rel_err"] <= 1e-3
    for layer in (1, 2, 3):
        assert sparse[f"learned_step{layer}"] == pytest.approx(sparse[f"tuned_step{layer}"], rel=0.05)
    full = probe_run(in_tmp, "full", "experiment=icl_gd_layers", "model.full_p=true", *PRESET_TASKS)
    assert full["beats_every_gd"] == 1.0 and full["loss_vs_best_gd"] < 0.1
