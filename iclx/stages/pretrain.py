"""Stage ``pretrain``: train the configured LM on the packed windows through Lightning.

The trained model is an artifact (a model bundle, see ``iclx.models.bundle``) keyed by the packed
data's key, the model and optimizer configs, and what shapes the optimization (window length,
batch size, steps, accumulation, clipping, precision, number of processes, ``pretrain.seed``):
a second run with the same config loads it in seconds, and a selector sweep that fixes
``pretrain.seed`` pre-trains once. The artifact is resumable: its unfinished folder keeps
``checkpoints/last.ckpt`` (every ``pretrain.checkpoint_every`` steps), and with ``resume: auto`` a
killed run started again with the same command continues from there with the same windows.

Later stages get the model with :func:`trained_model`.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclx.artifacts import config_key
from iclx.data.packing import TokenStream, read_meta
from iclx.errors import ConfigError
from iclx.models.bundle import build_model, load_model, save_model
from iclx.models.causal_lm import CausalLM
from iclx.registry import _plain, register
from iclx.stages.generate import sample_texts, samples_table, validation_prompts
from iclx.stages.pack import ensure_packed, pack_key, seq_len
from iclx.stages.tokenize import ensure_tokenizer
from iclx.sweep_summary import format_table
from iclx.tokenizers.base import Tokenizer
from iclx.training import is_distributed_worker

log = logging.getLogger("iclx")

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.json"
HISTORY_FILE = "history.csv"


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


def pretrain_key(cfg: Any) -> str:
    from iclx.training import resolve_precision

    s = Settings.from_config(cfg)
    shape = {
        "seq_len": s.seq_len, "batch_size": s.batch_size, "max_steps": s.max_steps, "accumulate": s.accumulate,
        "world_size": s.world_size, "seed": s.seed, "gradient_clip_val": cfg.trainer.get("gradient_clip_val"),
        "precision": str(resolve_precision(cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "auto")))),
    }
    return config_key(pack_key(cfg), cfg.model, cfg.optimizer, shape)


def trained_model(run: Any, checkpoint: str | Path | None = None) -> tuple[CausalLM, Tokenizer]:
    """(model in eval mode on the CPU, tokenizer) for the stages after pre-training.

    In order: ``checkpoint`` (or ``pretrain.checkpoint``: a bundle folder, ``model.pt`` or ``.ckpt``);
    the model this run just trained; the pre-training artifact of this config; a pre-trained
    ``model=hf`` with a ``path`` (with ``tokenizer=pretrained`` on the same path). Otherwise a
    ConfigError says how to get one.
    """
    cfg = run.cfg
    checkpoint = checkpoint or cfg.get("pretrain", {}).get("checkpoint")
    if checkpoint:
        return load_model(checkpoint)
    if "model" in run.state:
        return run.state["model"], run.state["tokenizer"]
    if cfg.model.get("name") == "hf" and cfg.model.get("path"):
        from iclx.tokenizers.huggingface import PretrainedTokenizer

        tokenizer = PretrainedTokenizer(str(cfg.model.path))
        return build_model(_plain(cfg.model), tokenizer.vocab_size).eval(), tokenizer
    key = pretrain_key(cfg)
    if run.store.exists("pretrain", key):
        return load_model(run.store.path("pretrain", key))
    raise ConfigError(
        f"no pre-trained model for this config: artifact pretrain/{key} is not in {run.store.root} "
        "(add pretrain to stages, e.g. stages=[tokenize,pack,pretrain,evaluate], or set pretrain.checkpoint=<model folder>)"
    )


@register("stage", "pretrain")
def pretrain(run: Any) -> dict[str, Any]:
    cfg = run.cfg
    settings = Settings.from_config(cfg)
    tokenizer = ensure_tokenizer(run)
    packed = ensure_packed(run)
    key = pretrain_key(cfg)
    if is_distributed_worker():  # rank 0 holds the artifact's lock and finishes the artifact
        _train(run, run.store.path("pretrain", key).with_name(f"{key}.partial"), settings, tokenizer, packed)
        return {"ddp_worker": 1}
    reused = run.store.exists("pretrain", key) and not run.store.force
    describe = {"pack_key": pack_key(cfg), "model": _plain(cfg.model), "optimizer": _plain(cfg.optimizer),
                "settings": settings.__dict__}
    folder = run.store.get_or_build(
        "pretrain", key, lambda f: _train(run, f, settings, tokenizer, packed), describe=describe, resumable=True
    )
    model, tokenizer = load_model(folder)
    run.state.update(model=model, tokenizer=tokenizer, pretrain_dir=folder)
    results = json.loads((folder / RESULTS_FILE).read_text())
    samples = json.loads((folder / SAMPLES_FILE).read_text())
    run.log_table("pretrain/samples", ["prompt", "continuation"], [[s["prompt"], s["continuation"]] for s in samples])
    log.info("samples of the pre-trained model:\n%s", format_table(["prompt", "continuation"], samples_table(samples)))
    _plot_history(run, folder / HISTORY_FILE, results.get("unigram_val_loss"))
    if not reused:
        run.advance_step(int(results["steps"]))
    log.info("pretrain: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items()))
    return {**results, "reused": int(reused)}


def _train(run: Any, folder: Path, settings: Settings, tokenizer: Tokenizer, packed: Path) -> None:
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from iclx.lm import LMTask, LossHistory, WindowDataModule
    from iclx.throughput import ThroughputMonitor, precision_dtype
    from iclx.training import build_trainer, trainer_arguments

    cfg = run.cfg
    ckpt_dir, history = folder / "checkpoints", folder / HISTORY_FILE
    last = ckpt_dir / "last.ckpt"
    resume = settings.resume == "auto" and last.is_file()
    if resume:
        log.info("pretrain: resuming from %s", last)
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
    throughput = ThroughputMonitor(tokens_per_step, model.flops_per_token(settings.seq_len), peak)
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
        run, default_max_steps=settings.max_steps, callbacks=callbacks, distributed=True,
        val_check_interval=min(val_interval, settings.max_steps * settings.accumulate),
        check_val_every_n_epoch=None, num_sanity_val_steps=0, use_distributed_sampler=False,
        limit_val_batches=(cfg.trainer.get("limit_val_batches") or 1.0) if has_val else 0,
    )
    log.info("pretrain: %s model, %.3gM parameters, %d steps of %d tokens", model.name, model.num_parameters() / 1e6,
             settings.max_steps, tokens_per_step)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
        trainer.fit(task, datamodule=data, ckpt_path=str(last) if resume else None, weights_only=True)
        final_val = _final_validation(trainer, task, data) if has_val else None
        trainer.save_checkpoint(last, weights_only=False)  # the final state, for continuing training later
    if trainer.global_rank != 0:
        return
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

    from iclx.throughput import matmul_peak_flops

    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    key = config_key({"device": device, "name": name, "threads": torch.get_num_threads(), "dtype": str(dtype),
                      "cpu": _cpu_model() if device == "cpu" else None})

    def measure(folder: Path) -> None:
        (folder / "peak.json").write_text(json.dumps({"flops": matmul_peak_flops(device, dtype)}))

    folder = run.store.get_or_build("hardware", key, measure, describe={"device": device, "name": name, "dtype": str(dtype)})
    return float(json.loads((folder / "peak.json").read_text())["flops"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _plot_history(run: Any, history: Path, unigram: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iclx.lm import read_history

    rows = read_history(history) if history.is_file() else []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for metric, style in (("train/loss", "-"), ("val/loss", "o-")):
        points = sorted((r["step"], r["value"]) for r in rows if r["metric"] == metric)
        if points:
            ax.plot(*zip(*points), style, label=metric, markersize=4)
    if unigram is not None:
        ax.axhline(unigram, color="gray", linestyle="--", label="unigram baseline (val)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(f"pre-training: {run.cfg.model.get('name')} on {run.cfg.data.get('name')}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    run.save_figure(fig, "pretrain_loss")
