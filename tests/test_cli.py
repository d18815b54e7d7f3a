"""The `iclx` command: help, composition of every option, run folders, errors, multirun summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from iclx.cli import conf_dir, group_options, run_cli

from conftest import read_summary
from wandb_records import run_contents

GROUPS = ["data", "data/order", "tokenizer", "model", "optimizer", "selector", "probe", "task", "trainer", "logger", "experiment"]


def test_help_lists_every_group_and_imports_no_torch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "iclx", "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for group in GROUPS:
        assert f"\n{group}: " in proc.stdout, f"group {group} missing from --help"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    heavy = {m for m in imported if m.split(".")[0] in {"torch", "lightning", "faiss", "wandb", "transformers"}}
    assert not heavy, f"--help imported {sorted(heavy)[:5]}"


def test_help_into_a_reader_that_stops_early_prints_no_traceback(tmp_path):
    """`iclx --help | head -3`: the reader is gone before the help is written out (here: before it starts)."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run([sys.executable, "-m", "iclx", "--help"], cwd=tmp_path, stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def _compose_each_option():
    """(group, option, resolved job config) for every option of every group."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for group, names in group_options().items():
            if group.startswith("hydra"):
                continue
            for option in names:
                cfg = compose("config", overrides=[f"{group}={option}"], return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)
                assert cfg.hydra.runtime.choices[group] == option
                job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                yield group, option, OmegaConf.to_container(job, resolve=True)


def test_every_option_of_every_group_composes():
    assert set(GROUPS) <= set(group_options()), f"missing groups: {set(GROUPS) - set(group_options())}"
    composed = list(_compose_each_option())
    assert all(job["stages"] for _, _, job in composed)
    assert len(composed) == sum(len(v) for g, v in group_options().items() if not g.startswith("hydra"))


def test_every_component_config_matches_its_constructor():
    """Each group's composed section names a registered component and only parameters it takes,
    with the right types (what the CLI checks before running any stage)."""
    import importlib.util

    from iclx.config_check import check_component_sections

    # a curation's steps are checked against datatrove's filters: without the curate extra, say so instead
    no_extra = importlib.util.find_spec("datatrove") is None
    checked = [check_component_sections(OmegaConf.create(job)) for _, _, job in _compose_each_option()
               if not (no_extra and job.get("curate", {}).get("name") not in (None, "none"))]
    assert min(checked) >= 7 and sum(checked) > 400


def test_a_wrong_component_parameter_stops_the_run_before_any_stage(in_tmp, capsys):
    code = run_cli(["plugins=[iclx_test_plugin]", "stages=[echo]", "selector=knn", "+selector.topk=3", f"hydra.run.dir={in_tmp}/run"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("iclx: selector 'knn' has no parameter 'topk' (selector.topk). Its parameters: embedder, index, nprobe")
    assert "stages" not in read_summary(in_tmp / "run")


def test_wrong_group_option_is_one_line_with_suggestion(in_tmp, capsys):
    assert run_cli(["trainer=cpuu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "iclx: unknown trainer 'cpuu'. Known: cpu, ddp, debug, fsdp, gpu (did you mean 'cpu'?)"
    assert not (in_tmp / "outputs").exists()


def test_unknown_stage_fails_before_running_anything(in_tmp, capsys):
    code = run_cli(["plugins=[iclx_test_plugin]", "stages=[echo,ecko]", f"hydra.run.dir={in_tmp}/run"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iclx: unknown stage 'ecko'. Known: ")
    assert err[0].endswith("(did you mean 'echo'?)")
    summary = read_summary(in_tmp / "run")
    assert summary["status"] == "failed" and "stages" not in summary


@pytest.mark.parametrize(("override", "message"), [
    ("sed=1", "iclx: 'sed' is not a key of the config (did you mean 'seed'?)"),
    ("pretrain.max_step=10", "iclx: 'pretrain.max_step' is not a key of the config (did you mean 'pretrain.max_steps'?)"),
    ("optimizer.lrr=1,2", "iclx: 'optimizer.lrr' is not a key of the config (did you mean 'optimizer.lr'?)"),
])
def test_unknown_key_is_one_line_before_anything_runs(in_tmp, capsys, override, message):
    args = ["-m", override] if "," in override else [override]
    assert run_cli(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert not (in_tmp / "outputs").exists() and not (in_tmp / "sweeps").exists()


def test_single_run_writes_the_run_folder(in_tmp):
    assert run_cli(["plugins=[iclx_test_plugin]", "stages=[echo,plot]", "seed=3"]) == 0
    (run_dir,) = (in_tmp / "outputs").glob("*/*")
    assert run_dir.parent.name == OmegaConf.load(run_dir / ".hydra/config.yaml").name
    for item in [".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.csv", "summary.json", "plots/curve.png", "plot_table.csv", "iclx.log"]:
        assert (run_dir / item).exists(), item
    summary = read_summary(run_dir)
    assert summary["status"] == "ok"
    assert summary["stages"]["echo"]["value"] == 7 and summary["stages"]["plot"]["y_last"] == 0.25
    assert summary["overrides"] == ["plugins=[iclx_test_plugin]", "stages=[echo,plot]", "seed=3"]
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert {r["echo/value"] for r in rows if r.get("echo/value")} == {"7.0"}
    assert {r["plot/y_last"] for r in rows if r.get("plot/y_last")} == {"0.25"}


def test_multirun_summary_keeps_every_job_and_marks_failures(in_tmp, capsys):
    code = run_cli(["-m", "plugins=[iclx_test_plugin]", "stages=[echo,fail_on_seed]", "+bad_seed=1", "seed=0,1,2",
                    "sweep_name=seeds", "report.metric=echo/value"])
    assert code == 1  # one job failed, so the sweep as a whole did
    (sweep_dir,) = (in_tmp / "sweeps" / "seeds").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [(r["job"], r["seed"], r["status"]) for r in rows] == [("0", "0", "ok"), ("1", "1", "failed"), ("2", "2", "ok")]
    assert [r["echo/value"] for r in rows] == ["1", "3", "5"]
    assert rows[1]["error"] == "seed 1 is the bad seed" and rows[1]["fail_on_seed/passed"] == ""
    assert (sweep_dir / "summary.png").stat().st_size > 5000
    out = capsys.readouterr()
    assert "iclx: seed 1 is the bad seed" in out.err and "sweep summary" in out.out


def test_wandb_offline_run_has_config_metrics_and_plots(in_tmp, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert run_cli(["plugins=[iclx_test_plugin]", "stages=[echo,plot]", "logger=wandb", f"hydra.run.dir={in_tmp}/run"]) == 0
    (wandb_run,) = (in_tmp / "run" / "wandb").glob("offline-run-*")
    log_file = next(wandb_run.glob("run-*.wandb"))
    for _ in range(60):  # W&B's service process may still be flushing the log after wandb.finish()
        contents = run_contents(log_file)
        if contents["run"] is not None and "plot/y_last" in contents["history"]:
            break
        time.sleep(0.5)
    run = contents["run"]
    assert run.project == "iclx" and run.run_group == "quickstart" and run.job_type == "echo+plot"
    assert "logger=wandb" in run.tags and "trainer=cpu" in run.tags
    assert contents["config"]["seed"] == 0 and contents["config"]["stages"] == ["echo", "plot"]
    assert contents["history"]["echo/value"] == [1] and contents["history"]["plot/y_last"] == [0.25]
    assert contents["history"]["plots/curve/_type"] == ["images/separated"]
    assert list((wandb_run / "files" / "media" / "images" / "plots").glob("curve*.png"))


def test_readme_lists_every_option_of_every_group():
    readme = (conf_dir().parent / "README.md").read_text()
    table = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in readme.splitlines()
             if line.startswith("| `")}
    for group, options in group_options().items():
        if group.startswith("hydra") or group == "experiment":  # experiments have their own table
            continue
        missing = [o for o in options if f"`{o}`" not in table.get(group, "")]
        assert not missing, f"README's config-group table lacks {group}: {missing}"
    assert all(f"experiment={name}" in readme for name in group_options()["experiment"] if name != "quickstart")


def test_readme_sweep_runs_as_written(in_tmp, capsys):
    """The README's first sweep, with no sweep_name or hydra.sweep.dir: the sweep folder is named by
    the experiment, resolved before any job exists (only size overrides are added)."""
    code = run_cli(["-m", "experiment=icl_gd", "seed=0,1", "probe.n=5,10", "probe.max_steps=3", "probe.batch_size=8"])
    assert code == 0, capsys.readouterr().err
    (sweep_dir,) = (in_tmp / "sweeps" / "icl_gd").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [(r["seed"], r["probe.n"], r["status"]) for r in rows] == [("0", "5", "ok"), ("0", "10", "ok"), ("1", "5", "ok"), ("1", "10", "ok")]
    assert all(float(r["probe/loss_ratio"]) > 0 for r in rows)
    assert (sweep_dir / "summary.png").stat().st_size > 5000
    assert "iclx: sweep summary" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "folder"),
    [
        ([], "sweeps/quickstart"),                      # the default experiment names the sweep
        (["~experiment"], "sweeps/default"),            # no experiment at all
        (["sweep_name=mine"], "sweeps/mine"),
        (["sweep=selectors"], "sweeps/selectors"),      # a sweep preset's own name
        (["hydra.sweep.dir=elsewhere"], "elsewhere"),
    ],
)
def test_sweep_folder_resolves_for_any_experiment(in_tmp, extra, folder):
    args = ["-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1", *extra]
    if "sweep=selectors" in extra:  # the preset sweeps selector x seed: the command line narrows it
        args += ["selector=random", "report.curve=null"]  # and its ICL curve is not what echo logs
    assert run_cli(args) == 0
    sweep_dir = in_tmp / folder
    if folder.startswith("sweeps/"):
        (sweep_dir,) = sweep_dir.iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [(r["seed"], r["status"], r["echo/value"]) for r in rows] == [("0", "ok", "1"), ("1", "ok", "3")]


@pytest.mark.parametrize(("extra", "folder"), [([], "outputs/quickstart"), (["experiment=null"], "outputs/default"),
                                               (["experiment=icl_gd"], "outputs/icl_gd")])
def test_run_folder_is_named_by_the_experiment(in_tmp, extra, folder):
    assert run_cli(["plugins=[iclx_test_plugin]", "stages=[echo]", *extra]) == 0
    (run_dir,) = (in_tmp / folder).iterdir()
    assert read_summary(run_dir)["name"] == folder.split("/")[1]


def test_a_failing_sweep_summary_is_a_failed_command(in_tmp, capsys, monkeypatch):
    import iclx.sweep_summary

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(iclx.sweep_summary, "summarize_sweep", broken)
    assert run_cli(["-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["iclx: the sweep summary failed: OSError: disk full"]
