"""W&B for sweeps: the summary is one more run of the sweep's group (job_type=summary), and a
pre-training resumed after a kill continues the W&B run it started (its id kept with the checkpoint)."""

from __future__ import annotations

import shutil
import time

from iclx.cli import run_cli
from iclx.pretraining import WANDB_RUN_FILE

from conftest import read_summary, run_iclx
from wandb_records import run_contents

TINY_PRETRAIN = [
    "~experiment", "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false",
    "data.n_documents=40", "data.document_length=100", "data.validation.fraction=0.1",
    "model.n_layer=1", "model.d_model=16", "model.n_head=2", "model.max_seq_len=32",
    "pretrain.batch_size=2", "trainer.max_steps=3", "pretrain.val_every=3", "pretrain.checkpoint_every=3",
    "pretrain.val_windows=2", "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=2", "logger=wandb",
]


def offline_run(folder):
    (wandb_run,) = (folder / "wandb").glob("offline-run-*")
    for _ in range(60):  # W&B's service process may still be writing the log after wandb.finish()
        log_file = next(wandb_run.glob("run-*.wandb"), None)
        contents = run_contents(log_file) if log_file else {"run": None}
        if contents["run"] is not None:
            return wandb_run, contents
        time.sleep(0.5)
    raise AssertionError(f"no run record in {wandb_run}")


def offline_w_and_b(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_a_sweep_summary_is_one_more_run_of_the_group(tmp_path):
    # a process of its own, as a sweep runs: W&B's in-process state from earlier tests stays out of it
    proc = run_iclx(tmp_path, "-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1", "logger=wandb",
                    "sweep_name=seeds", WANDB_MODE="offline", WANDB_SILENT="true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sweep_dir,) = (tmp_path / "sweeps" / "seeds").iterdir()
    jobs = [offline_run(sweep_dir / job)[1]["run"] for job in ("0", "1")]
    assert [(r.run_group, r.job_type) for r in jobs] == [("seeds", "echo"), ("seeds", "echo")]
    summary_dir, summary = offline_run(sweep_dir)
    assert (summary["run"].run_group, summary["run"].job_type) == ("seeds", "summary")
    assert list((summary_dir / "files" / "media").rglob("*.png")), "the sweep's plot was not logged"
    assert list((summary_dir / "files" / "media").rglob("*.table.json")), "the sweep's table was not logged"


def test_a_resumed_pretraining_continues_its_w_and_b_run(in_tmp, monkeypatch):
    offline_w_and_b(monkeypatch)
    assert run_cli([*TINY_PRETRAIN, "hydra.run.dir=first"]) == 0
    _, first = offline_run(in_tmp / "first")
    (artifact,) = [p for p in (in_tmp / "cache" / "pretrain").iterdir() if p.is_dir()]
    assert (artifact / WANDB_RUN_FILE).read_text() == first["run"].run_id
    # as if killed before finishing: the unfinished folder holds the checkpoint and the run id
    shutil.move(artifact, artifact.with_name(artifact.name + ".partial"))
    (artifact.with_name(artifact.name + ".partial") / "artifact.json").unlink()
    assert run_cli([*TINY_PRETRAIN, "hydra.run.dir=second"]) == 0
    _, second = offline_run(in_tmp / "second")
    assert second["run"].run_id == first["run"].run_id
    assert f"W&B: continuing run {first['run'].run_id}" in (in_tmp / "second" / "iclx.log").read_text()
    assert read_summary(in_tmp / "second")["stages"]["pretrain"]["reused"] == 0
