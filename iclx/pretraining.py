"""Pre-training a language model on the packed windows through Lightning: the builder of the
``pretrain`` artifact (``iclx.lineage``), and the settings that shape it.

The artifact folder holds ``checkpoints/last.ckpt`` (every ``pretrain.checkpoint_every`` steps; a
killed run started again with the same command continues from there with the same windows), the
loss history, the model bundle (``iclx.models.bundle``), ``results.json`` and ``samples.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclx.data.packing import read_meta
from iclx.errors import ConfigError
from iclx.models.bundle import save_model
from iclx.registry import _plain
from iclx.training import is_distributed_worker

log = logging.getLogger("iclx")

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.json"
HISTORY_FILE = "history.csv"
WANDB_RUN_FILE = "wandb_run_id"  # the W&B run a resumed pre-training continues


def seq_len(cfg: Any) -> int:
    """Tokens a training window feeds the model: pretrain.seq_len, else the model's max_seq_len."""
    configured, model_max = cfg.pretrain.get("seq_len"), cfg.model.get("max_seq_len")
    length = configured if configured is not None else model_max
    if length is None:
        raise ConfigError(f"pretrain.seq_len must be set for model '{cfg.model.get('name')}' (its config has no max_seq_len)")
    if not isinstance(length, int) or length < 1:
        raise ConfigError(f"pretrain.seq_len must be a positive integer, got {length!r}")
    if model_max is not None and length > model_max:
        raise ConfigError(f"pretrain.seq_len={length} is above the model's maximum (model.max_seq_len={model_max})")
    return length


@dataclass
class Settings:
    """``cfg.pretrain`` and the trainer keys that change what is trained, checked."""

    seed: int
    seq_len: int
    batch_size: int
    max_steps: int
    accumulate: int
    world_size: int
    val_every: int
    val_windows: int | None
    checkpoint_every: int
    resume: str
    num_workers: int

    @classmethod
    def from_config(cls, cfg: Any) -> Settings:
        p, t = cfg.pretrain, cfg.trainer
        max_steps = t.get("max_steps") if t.get("max_steps") is not None else p.max_steps
        settings = cls(
            seed=int(p.seed), seq_len=seq_len(cfg), batch_size=p.batch_size, max_steps=max_steps,
            accumulate=int(t.get("accumulate_grad_batches") or 1), world_size=_world_size(t),
            val_every=p.val_every, val_windows=p.get("val_windows"), checkpoint_every=p.checkpoint_every,
            resume=str(p.get("resume", "auto")), num_workers=int(p.get("num_workers", 0)),
        )
        for key in ("batch_size", "max_steps", "val_every", "checkpoint_every"):
            value = getattr(settings, key)
            if not isinstance(value, int) or value < 1:
                where = "trainer.max_steps or pretrain.max_steps" if key == "max_steps" else f"pretrain.{key}"
                raise ConfigError(f"{where} must be a positive integer, got {value!r}")
        if settings.resume not in ("auto", "never"):
            raise ConfigError(f"pretrain.resume must be 'auto' or 'never', got '{settings.resume}'")
        return settings

    def shape(self, cfg: Any) -> dict[str, Any]:
        """What shapes the optimization besides the model and optimizer configs (part of the
        pre-training artifact's material)."""
        from iclx.training import resolve_precision

        precision = resolve_precision(cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "auto")))
        return {
            "seq_len": self.seq_len, "batch_size": self.batch_size, "max_steps": self.max_steps, "accumulate": self.accumulate,
            "world_size": self.world_size, "seed": self.seed, "gradient_clip_val": cfg.trainer.get("gradient_clip_val"),
            "precision": str(precision),
        }


def _world_size(trainer_cfg: Any) -> int:
    """Processes that train together (devices x nodes): the global batch depends on it."""
    devices = _plain(trainer_cfg.get("devices", 1))
    if isinstance(devices, list):
        per_node = len(devices)
    elif isinstance(devices, int) and devices > 0:
        per_node = devices
    else:  # "auto" or -1: every visible GPU, else one CPU process
        import torch

        per_node = max(1, torch.cuda.device_count()) if trainer_cfg.get("accelerator") != "cpu" else 1
    return per_node * int(trainer_cfg.get("num_nodes", 1) or 1)


def train(run: Any, folder: Path) -> None:
    """Pre-train this config's model into ``folder`` (the artifact's unfinished folder): checkpoints,
    history, the model bundle, results and samples. Continues from ``checkpoints/last.ckpt``."""
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from iclx.sampling import sample_texts, validation_prompts
    from iclx.training import build_trainer, trainer_arguments
    from iclx.training.checkpoints import AtomicCheckpointIO, remove_damaged, resume_checkpoint
    from iclx.training.lm import LMTask, LossHistory, WindowDataModule
    from iclx.training.throughput import TokenThroughput, precision_dtype

    cfg = run.cfg
    settings = Settings.from_config(cfg)
    tokenizer, packed = run.lineage.get("tokenizer"), run.lineage.get("pack")
    if run.wandb is not None:
        (folder / WANDB_RUN_FILE).write_text(run.wandb.experiment.id)
    ckpt_dir, history = folder / "checkpoints", folder / HISTORY_FILE
    last = ckpt_dir / "last.ckpt"
    # rank 0 checks the checkpoints (setting damaged ones aside) before it starts the other ranks
    resume_from = resume_checkpoint(ckpt_dir, check=not is_distributed_worker()) if settings.resume == "auto" else None
    if resume_from is not None:
        log.info("pretrain: resuming from %s", resume_from)
    elif not is_distributed_worker():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        history.unlink(missing_ok=True)
    task = LMTask(_plain(cfg.model), tokenizer.vocab_size, _plain(cfg.optimizer), settings.max_steps,
                  compile=bool(cfg.trainer.get("compile", False)))
    model = task.model
    if settings.seq_len > model.max_seq_len:
        raise ConfigError(f"pretrain.seq_len={settings.seq_len} is above the model's maximum ({model.max_seq_len})")
    data = WindowDataModule(packed, settings.seq_len, settings.batch_size, settings.seed, settings.max_steps,
                            settings.accumulate, settings.val_windows, settings.num_workers)
    precision = trainer_arguments(cfg.trainer, settings.max_steps)["precision"]
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") != "cpu" else "cpu"
    peak = _matmul_peak(run, device, precision_dtype(precision))
    tokens_per_step = settings.batch_size * settings.seq_len * settings.accumulate * settings.world_size
    throughput = TokenThroughput(tokens_per_step, model.flops_per_token(settings.seq_len), peak)
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=settings.checkpoint_every,
                        save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False),
        throughput, LossHistory(history),
    ]
    has_val = data.val_set is not None
    if has_val:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                                         save_top_k=1, enable_version_counter=False))
    val_interval = cfg.trainer.get("val_check_interval") or settings.val_every * settings.accumulate
    trainer = build_trainer(
        run, default_max_steps=settings.max_steps, callbacks=callbacks, distributed=True, progress_desc="pretrain",
        val_check_interval=min(val_interval, settings.max_steps * settings.accumulate),
        check_val_every_n_epoch=None, num_sanity_val_steps=0, use_distributed_sampler=False,
        limit_val_batches=(cfg.trainer.get("limit_val_batches") or 1.0) if has_val else 0,
        plugins=[AtomicCheckpointIO()],
    )
    log.info("pretrain: %s model, %.3gM parameters, %d steps of %d tokens", model.name, model.num_parameters() / 1e6,
             settings.max_steps, tokens_per_step)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
        trainer.fit(task, datamodule=data, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
        final_val = _final_validation(trainer, task, data) if has_val else None
        trainer.save_checkpoint(last, weights_only=False)  # the final state, for continuing training later
    if trainer.global_rank != 0:
        return
    remove_damaged(ckpt_dir)
    results = {
        "steps": trainer.global_step, "tokens": trainer.global_step * tokens_per_step,
        "parameters": model.num_parameters(), "train_loss": _last_train_loss(trainer),
        **({"val_loss": final_val, "val_ppl": float(torch.tensor(final_val).exp())} if final_val is not None else {}),
        **throughput.mean(),
    }
    meta = read_meta(packed)
    if "unigram_val_loss" in meta:
        results["unigram_val_loss"] = meta["unigram_val_loss"]
    save_model(folder, model.cpu().eval(), tokenizer, steps=trainer.global_step)
    prompts = validation_prompts(packed, tokenizer, cfg.pretrain.samples)
    samples = sample_texts(model, tokenizer, prompts, cfg.pretrain.samples, seed=settings.seed)
    (folder / SAMPLES_FILE).write_text(json.dumps(samples, indent=1) + "\n")
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=1) + "\n")


def _final_validation(trainer: Any, task: Any, data: Any) -> float:
    """The validation loss of the final weights (reusing the last validation if it ran at the last step)."""
    if "val/loss" in trainer.callback_metrics and task.last_val_step == trainer.global_step:
        return float(trainer.callback_metrics["val/loss"])
    (result,) = trainer.validate(task, datamodule=data, verbose=False)
    return float(result["val/loss"])


def _last_train_loss(trainer: Any) -> float | None:
    value = trainer.callback_metrics.get("train/loss")
    return None if value is None else float(value)


def _matmul_peak(run: Any, device: str, dtype: Any) -> float:
    """This machine's measured matmul FLOP/s in ``dtype`` (an artifact: measured once per machine)."""
    import platform

    import torch

    from iclx.training.throughput import matmul_peak_flops

    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    machine = {"device": device, "name": name, "threads": torch.get_num_threads(), "dtype": str(dtype),
               "cpu": _cpu_model() if device == "cpu" else None}

    def measure(folder: Path) -> None:
        (folder / "peak.json").write_text(json.dumps({"flops": matmul_peak_flops(device, dtype)}))

    folder = run.lineage.folder("hardware", machine, measure)
    return float(json.loads((folder / "peak.json").read_text())["flops"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def interrupted_wandb_run(run: Any) -> str | None:
    """The W&B run id of this config's interrupted pre-training, when this run will resume it."""
    cfg = run.cfg
    if "pretrain" not in [str(s) for s in cfg.stages] or str(cfg.pretrain.get("resume", "auto")) != "auto":
        return None
    try:
        partial = run.lineage.path("pretrain").with_name(f"{run.lineage.key('pretrain')}.partial")
    except Exception:  # noqa: BLE001 -- a config the stage will refuse with its own message
        return None
    id_file = partial / WANDB_RUN_FILE
    if (partial / "checkpoints" / "last.ckpt").is_file() and id_file.is_file() and not run.store.force:
        return id_file.read_text().strip() or None
    return None
