"""Where a curation runs (``curate/executor``): datatrove's local, Slurm and Ray executors.

Every pass of the pipeline (``iclx.curate.pipeline``) is one datatrove executor over ``tasks``
shards (a few passes, such as MinHash clustering, over one); each pass waits for the one before.
Its logs, per-task statistics and completion markers go to ``work/logs/<pass>/`` inside the
artifact being built, so a build that is killed continues where it stopped: finished tasks are
skipped (datatrove's ``skip_completed``). ``local`` runs here (``workers`` processes at a time);
``slurm`` submits every pass at once, chained by job dependencies, and waits for the last one;
``ray`` runs each pass on the Ray cluster of this process. For Slurm and Ray the cache folder
(``paths.cache_dir``) must be on a file system the nodes share.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from iclx.errors import ConfigError, DataError
from iclx.registry import register

log = logging.getLogger("iclx")

Tasks = Annotated[int, Field(ge=1)]


class CurateExecutor:
    name = ""
    tasks = 1

    def run(self, stages: list[Any], work: Path) -> None:
        raise NotImplementedError

    @staticmethod
    def logging_dir(work: Path, index: int, stage: Any) -> str:
        return str(work / "logs" / f"{index:02d}_{stage.name}")


@register("curate_executor", "local")
class LocalExecutor(CurateExecutor):
    """This machine: ``tasks`` shards, ``workers`` processes at a time (1: in this process). Each
    pass starts its own pool: with ``forkserver`` (datatrove's default) its processes import
    datatrove, trafilatura and spaCy again, seconds per pass; ``fork`` reuses this process's."""

    def __init__(self, tasks: Tasks = 1, workers: Tasks = 1, start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"):
        self.tasks, self.workers, self.start_method = tasks, workers, start_method

    def executors(self, stages: list[Any], work: Path) -> list[Any]:
        from iclx.curate.blocks import QuietLocalExecutor

        out = []
        for i, stage in enumerate(stages):
            tasks = stage.tasks or self.tasks
            out.append(QuietLocalExecutor(stage.blocks, tasks=tasks, workers=min(self.workers, tasks),
                                          logging_dir=self.logging_dir(work, i, stage), start_method=self.start_method))
        return out

    def run(self, stages: list[Any], work: Path) -> None:
        from iclx.curate.blocks import quiet_datatrove

        quiet_datatrove()
        for i, (stage, executor) in enumerate(zip(stages, self.executors(stages, work))):
            start = time.perf_counter()
            executor.run()
            log.info("curate: pass %d/%d (%s) done in %.1fs", i + 1, len(stages), stage.name, time.perf_counter() - start)


@register("curate_executor", "slurm")
class SlurmExecutor(CurateExecutor):
    """A Slurm cluster: each pass an array job of ``tasks`` tasks, chained by dependencies."""

    def __init__(
        self,
        partition: str,
        tasks: Tasks = 64,
        workers: int = -1,  # array tasks running at once (-1: no limit)
        time: str = "24:00:00",
        cpus_per_task: Tasks = 1,
        mem_per_cpu_gb: Annotated[float, Field(gt=0)] = 2.0,
        qos: str = "normal",
        job_name: str = "iclx_curate",
        env_command: str | None = None,  # e.g. "source ~/venv/bin/activate"
        venv_path: str | None = None,
        sbatch_args: dict[str, Any] | None = None,
        poll_seconds: Annotated[float, Field(gt=0)] = 60.0,
    ):
        if partition in ("???", ""):  # Hydra's mandatory marker, left unset
            raise ConfigError("curate.executor.partition is required by the slurm executor: set it, e.g. curate.executor.partition=cpu")
        self.partition, self.tasks, self.workers, self.time = partition, tasks, workers, time
        self.cpus_per_task, self.mem_per_cpu_gb, self.qos, self.job_name = cpus_per_task, mem_per_cpu_gb, qos, job_name
        self.env_command, self.venv_path, self.sbatch_args, self.poll_seconds = env_command, venv_path, sbatch_args, poll_seconds

    def executors(self, stages: list[Any], work: Path) -> list[Any]:
        from datatrove.executor import SlurmPipelineExecutor

        out: list[Any] = []
        for i, stage in enumerate(stages):
            out.append(SlurmPipelineExecutor(
                stage.blocks, tasks=stage.tasks or self.tasks, time=self.time, partition=self.partition,
                cpus_per_task=self.cpus_per_task, mem_per_cpu_gb=self.mem_per_cpu_gb, workers=self.workers,
                job_name=f"{self.job_name}_{i:02d}_{stage.name}", qos=self.qos, env_command=self.env_command,
                venv_path=self.venv_path, sbatch_args=self.sbatch_args, logging_dir=self.logging_dir(work, i, stage),
                slurm_logs_folder=str(work / "logs" / "slurm"), depends=out[-1] if out else None))
        return out

    def run(self, stages: list[Any], work: Path) -> None:
        executors = self.executors(stages, work)
        executors[-1].run()  # submits the passes before it first (their job ids become its dependencies)
        ids = [str(e.job_id) for e in executors if e.job_id not in (None, -1)]
        log.info("curate: submitted %d Slurm jobs (%s); waiting for the last one", len(ids), ",".join(ids))
        last = executors[-1]
        while last.get_incomplete_ranks(skip_completed=True):
            time.sleep(self.poll_seconds)
            queued = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True, text=True).stdout.strip()
            if not queued and last.get_incomplete_ranks(skip_completed=True):
                raise DataError(f"curate: the Slurm jobs {','.join(ids)} ended before the last pass completed; "
                                f"see their logs in {work / 'logs'}")


@register("curate_executor", "ray")
class RayExecutor(CurateExecutor):
    """The Ray cluster this process is connected to (``ray.init`` finds it, or starts a local one)."""

    def __init__(self, tasks: Tasks = 64, workers: int = -1, cpus_per_task: Tasks = 1,
                 mem_per_cpu_gb: Annotated[float, Field(gt=0)] = 2.0, time: int | None = None):
        self.tasks, self.workers, self.cpus_per_task, self.mem_per_cpu_gb, self.time = tasks, workers, cpus_per_task, mem_per_cpu_gb, time

    def executors(self, stages: list[Any], work: Path) -> list[Any]:
        from datatrove.executor.ray import RayPipelineExecutor

        out: list[Any] = []
        for i, stage in enumerate(stages):
            out.append(RayPipelineExecutor(
                stage.blocks, tasks=stage.tasks or self.tasks, workers=self.workers, cpus_per_task=self.cpus_per_task,
                mem_per_cpu_gb=self.mem_per_cpu_gb, time=self.time, logging_dir=self.logging_dir(work, i, stage),
                depends=out[-1] if out else None))
        return out

    def run(self, stages: list[Any], work: Path) -> None:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise DataError("curate.executor=ray needs ray: pip install 'ray[default]'")
        for stage, executor in zip(stages, self.executors(stages, work)):
            executor.run()
            log.info("curate: pass %s done", stage.name)
