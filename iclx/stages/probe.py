"""The ``probe`` stage: do transformers learn in context by gradient descent?

It trains the ``model`` (an in-context regressor: ``lsa`` or ``regression_gpt``) through Lightning
on fresh in-context linear regression tasks from the ``probe`` group, tunes the GD references
(iclx.probes.references) on held-out tasks, and compares them on other held-out tasks
(iclx.probes.metrics). Outputs: the metrics (summary.json, metrics.csv, W&B), the tables
``probe_references.csv`` and ``probe_layers.csv`` (also in the log), and the plots ``loss_curve``,
``layer_alignment`` and, for an LSA with sparse P, ``preconditioners``.

The problems are tiny (d x d matrices), so the stage runs torch on one thread: a second thread
only adds synchronisation and doubles the time on a busy machine.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from iclx import registry
from iclx.errors import ConfigError
from iclx.probes import plots
from iclx.probes.metrics import ModelReadout, compare, gd_reference, read_model
from iclx.probes.references import Reference, Statistics, tuned_references
from iclx.probes.tasks import LinearRegressionProbe, TaskBatch, is_in_context_regressor, stream_generator
from iclx.tables import format_table
from iclx.training import build_trainer, resolve_precision
from iclx.training.probe import ProbeTraining

log = logging.getLogger("iclx")


class TaskStream(IterableDataset):
    """Fresh tasks for every training step, from the run's ``train`` random stream."""

    def __init__(self, task: LinearRegressionProbe, seed: int):
        self.task = task
        self.seed = seed

    def __iter__(self) -> Iterator[TaskBatch]:
        generator = stream_generator(self.seed, "train")
        while True:
            yield self.task.sample(self.task.batch_size, generator)


def build_regression_model(model_cfg: Any, d: int) -> torch.nn.Module:
    """The ``model`` section built for inputs of dimension ``d``; one clear line if it cannot probe."""
    name = str(model_cfg.get("name"))
    if not is_in_context_regressor(registry.get("model", name)):
        capable = [m for m in registry.known("model") if is_in_context_regressor(registry.get("model", m))]
        raise ConfigError(
            f"model '{name}' cannot run the probe: it does not read in-context regression examples "
            f"(x_i, y_i). Choose one that does: {', '.join(f'model={m}' for m in capable)}"
        )
    return registry.build("model", model_cfg, key="model", d=d)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train(run: Any, model: torch.nn.Module, task: LinearRegressionProbe) -> torch.Tensor:
    """Train ``model`` with the optimizer and trainer groups; returns the query loss of every step."""
    trainer_cfg = run.cfg.trainer
    precision = resolve_precision(trainer_cfg.get("precision", "auto"), str(trainer_cfg.get("accelerator", "auto")))
    if str(precision) not in ("32-true", "32", "64-true", "64"):
        log.warning("probe: trainer.precision=%s; agreement with GD to 1e-3 needs trainer.precision=32-true", precision)
    # tasks are generated in the loop's own process: there is nothing for workers to overlap
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # seconds of training on generated data: nothing to resume, so no checkpoint files
    trainer = build_trainer(run, default_max_steps=task.max_steps, enable_checkpointing=False, progress_desc="probe")
    compile_model = bool(trainer_cfg.get("compile", False))
    module = ProbeTraining(model, run.cfg.optimizer, trainer.max_steps, compile=compile_model)
    trainer.fit(module, DataLoader(TaskStream(task, run.seed), batch_size=None))
    run.advance_step(trainer.global_step)
    model.cpu().eval()
    return torch.stack(module.query_losses).cpu() if module.query_losses else torch.zeros(0)


def tables(
    metrics: dict[str, float], references: list[Reference], readout: ModelReadout, layers: int
) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The references table (every method on the eval tasks) and the layer-by-layer table."""
    final = readout.layer_predictions[:, -1]
    gd_loss = metrics["gd_loss"]
    rows: list[list[Any]] = []
    for r in references:
        difference = float((r.predictions[:, -1] - final).abs().mean())
        rows.append([r.name, r.steps, r.loss, r.loss / gd_loss, difference, r.describe()])
    for k in range(1, layers + 1):
        loss = metrics[f"layer{k}_loss"]
        difference = float((readout.layer_predictions[:, k - 1] - final).abs().mean())
        rows.append(["model" if k == layers else f"model layer {k}", k, loss, loss / gd_loss, difference, ""])
    references_table = (["method", "steps", "loss", "loss/gd", "mean|y-y_model|", "tuned"], rows)

    gd_losses = {r.steps: r.loss for r in references if r.name == "gd"}
    columns = ["layer", "model_loss", "gd_k_loss", "rel_err_vs_tuned_gd"]
    own = "layer1_gd_rel_err" in metrics  # the model's layers are preconditioned GD steps
    if own:
        columns += ["rel_err_vs_own_gd", "learned_step", "tuned_step", "anisotropy"]
    layer_rows = []
    for k in range(1, layers + 1):
        row: list[Any] = [k, metrics[f"layer{k}_loss"], gd_losses[k], metrics[f"layer{k}_tuned_rel_err"]]
        if own:
            row += [metrics[f"layer{k}_gd_rel_err"], metrics[f"learned_step{k}"],
                    metrics[f"tuned_step{k}"], metrics[f"anisotropy{k}"]]
        layer_rows.append(row)
    return {"probe/references": references_table, "probe/layers": (columns, layer_rows)}


@registry.register("stage", "probe")
def probe(run: Any) -> dict[str, float]:
    cfg = run.cfg
    task: LinearRegressionProbe = registry.build("probe", cfg.probe, key="probe")
    model = build_regression_model(cfg.model, task.d)
    with one_thread():
        train_losses = train(run, model, task)
        log.info("probe: tuning the GD references on %d held-out tasks", task.tune_tasks)
        evaluation = task.sample(task.eval_tasks, stream_generator(run.seed, "eval"), torch.float64)
        readout = read_model(model, evaluation)
        layers = readout.layer_predictions.shape[1]
        tune = Statistics.of(task.sample(task.tune_tasks, stream_generator(run.seed, "tune"), torch.float64))
        references = tuned_references(tune, Statistics.of(evaluation), steps=layers)
        metrics = compare(model, readout, evaluation, references, task.optimal_one_step())

    run.log_metrics({f"probe/{k}": v for k, v in metrics.items()})
    for key, (columns, rows) in tables(metrics, references, readout, layers).items():
        run.log_table(key, columns, rows)
        log.info("%s\n%s", key, format_table(columns, rows))
    title = (f"{cfg.model.name} ({layers} layer{'s' * (layers > 1)}), d={task.d}, n={task.n}, "
             f"{task.x_dist} x, seed {run.seed}")
    reference = gd_reference(references, layers)
    run.save_figure(plots.loss_curve(train_losses, references, metrics["loss"], layers, title), "loss_curve")
    run.save_figure(plots.layer_alignment(metrics, references, reference, layers, title), "layer_alignment")
    preconditioners = getattr(model, "preconditioners", lambda: None)()
    if preconditioners is not None:
        run.save_figure(plots.preconditioners(preconditioners.detach().double(), title), "preconditioners")
    headline = ["loss", "gd_loss", "loss_ratio", "loss_vs_best_gd", "sensitivity_cos", "pred_cos", "readout_rel_err"]
    headline += ["learned_step1", "theory_step"] if layers == 1 else []
    log.info("probe: %s", ", ".join(f"{k}={metrics[k]:.4g}" for k in headline if k in metrics))
    return metrics
