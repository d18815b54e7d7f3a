"""The ``iclx`` entrypoint: compose the config with Hydra, run the named stages, summarize.

Only hydra and omegaconf are imported at module level, so ``iclx --help`` stays fast and free of
torch; stages import what they need when they run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from iclx import commands, registry, resolvers, sweep_summary  # noqa: F401 -- resolvers registers ${iclx.choice:...}
from iclx.config_folder import conf_dir, group_options, user_config_dirs
from iclx.errors import ConfigError, IclxError, did_you_mean, disk_full

# Idle OpenMP threads sleep instead of spinning: spinning threads starve the working ones when
# the CPU is shared (a tiny 2-thread training step went from 16 ms to 285 ms under load). Set
# before torch is imported (stages import it lazily).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger("iclx")


# Set to 1 when a job fails; main() exits with it after Hydra returns (a multirun keeps going).
_exit_code = 0


def check_group_overrides(args: list[str], groups: dict[str, list[str]]) -> None:
    """Fail early, in one line, on ``group=option`` overrides that name no option of the group.

    Hydra would fail too, but with a multi-line message and no suggestion.
    """
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra") or "@" in key or key not in groups:
            continue
        if any(c in value for c in "()[]{}$*"):  # sweep functions, globs: let Hydra handle them
            continue
        for option in (v.strip() for v in value.split(",")):
            if option in ("", "null") or option in groups[key]:
                continue
            known = groups[key]
            raise IclxError(
                f"unknown {key} '{option}'. Known: {', '.join(known)}{did_you_mean(option, known)}"
            )


def check_override_keys(args: list[str], groups: dict[str, list[str]], config_dirs: list[Path]) -> None:
    """Fail early, in one line with a did-you-mean, on ``key=value`` overrides of keys the config
    does not have (Hydra would say so in five lines and suggest ``+key``, which hides a typo).

    The config is composed with the command line's group choices (a swept group's first option).
    """
    overrides = parsed_overrides(args)
    if overrides is None:  # bad override syntax: Hydra reports it in its own words next
        return
    keys = [o for o in overrides if not o.is_add() and not o.is_delete() and o.key_or_group not in groups
            and not o.key_or_group.startswith("hydra") and "@" not in o.key_or_group]
    if not keys:
        return
    try:
        cfg = compose_group_choices(overrides, groups, config_dirs)
    except Exception:  # noqa: BLE001 -- a composition error: Hydra reports it in its own words next
        return
    for o in keys:
        missing = first_missing_key(cfg, o.key_or_group)
        if missing is None:
            continue
        parent, _, _ = missing.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        siblings = [f"{parent}.{k}" if parent else str(k) for k in node.keys()]
        hint = did_you_mean(missing, siblings) or (f". Keys of {parent or 'the config'}: {', '.join(siblings)}" if siblings else "")
        raise ConfigError(f"'{missing}' is not a key of the config{hint}")


def parsed_overrides(args: list[str]) -> list[Any] | None:
    """The command line's ``key=value``/``~key`` overrides as Hydra parses them; None when one does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]  # not flags' values
    try:
        return OverridesParser.create().parse_overrides(candidates)
    except Exception:  # noqa: BLE001 -- Hydra reports bad syntax itself
        return None


def compose_group_choices(overrides: list[Any], groups: dict[str, list[str]], config_dirs: list[Path]) -> DictConfig:
    """The config composed with the command line's group choices (a swept group's first option)
    and config folders, without its key overrides. Raises what composing raises."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    choices = []
    for o in overrides:
        if o.key_or_group in groups or o.key_or_group.startswith("hydra.searchpath"):
            value = o.value()
            first = value.list[0] if o.is_sweep_override() and hasattr(value, "list") else value
            choices.append(o.input_line if not o.is_sweep_override() else f"{o.get_key_element()}={first}")
    if config_dirs and not any(c.startswith("hydra.searchpath") for c in choices):
        choices.append("hydra.searchpath=[" + ",".join(f"file://{d.resolve()}" for d in config_dirs) + "]")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose("config", overrides=choices)
    finally:
        GlobalHydra.instance().clear()


def check_config_files(args: list[str], groups: dict[str, list[str]], config_dirs: list[Path]) -> None:
    """Fail in one line naming the file, line and column when this run composes a malformed YAML
    file (Hydra prints a 90-line traceback). Parsing every config file takes milliseconds; only
    when one is malformed is the config composed, to learn whether this run uses it."""
    import yaml

    broken = []
    for root in (conf_dir(), *config_dirs):
        for path in sorted(Path(root).rglob("*.yaml")):
            try:
                yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError:
                broken.append(path)
            except (OSError, UnicodeDecodeError):
                continue  # unreadable: Hydra names it if the run needs it
    overrides = parsed_overrides(args)
    if not broken or overrides is None:
        return
    try:
        compose_group_choices(overrides, groups, config_dirs)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(yaml_error_line(e)) from None
    except Exception:  # noqa: BLE001 -- another composition error: Hydra reports it in its own words next
        return


def yaml_error_line(error: Any) -> str:
    """A YAML syntax error as one line: file, line, column, what the parser expected."""
    mark = error.problem_mark
    context = f" ({error.context} at line {error.context_mark.line + 1})" if error.context and error.context_mark else ""
    return f"{mark.name}: malformed YAML at line {mark.line + 1}, column {mark.column + 1}: {error.problem}{context}"


def check_import_path_overrides(args: list[str]) -> None:
    """Fail at once, in one line, on an override that sets a ``_target_`` key (``+selector._target_=
    os.system``, ``selector={_target_: ...}``): iclx names components by ``name:`` and never reads
    it. ``validate_config`` refuses one that a config file sets, as a failed job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from iclx.config_check import IMPORT_PATH_KEY, import_path_error, import_path_keys

    candidates = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # noqa: BLE001 -- bad override syntax: Hydra reports it in its own words next
        return
    for o in overrides:
        key = o.key_or_group
        if key.startswith("hydra.") or key.startswith("hydra/"):
            continue  # Hydra's own section names its launcher, sweeper and callbacks by _target_
        if IMPORT_PATH_KEY in key.split("."):
            raise import_path_error(key)
        value = o.value()
        for choice in getattr(value, "list", [value]):  # a sweep's choices, or the one value
            for path in import_path_keys(choice, key):
                raise import_path_error(path)


def first_missing_key(cfg: DictConfig, key: str) -> str | None:
    """The shortest prefix of the dotted ``key`` that ``cfg`` lacks; None when it has the key (or the
    path runs into a list or a value, which Hydra checks itself)."""
    node: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None
        if part not in node.keys():  # keys() also lists ??? (unset) values, which `in` does not
            return ".".join(parts[: i + 1])
        node = node._get_node(part)
    return None


def null_groups_as_deletions(args: list[str], groups: dict[str, list[str]]) -> list[str]:
    """``group=null`` as ``~group``: the same request (no option), which Hydra 1.3 refuses with a
    traceback when the group's default is not null (e.g. ``experiment=null``)."""
    return [f"~{arg.partition('=')[0]}" if arg.endswith("=null") and arg.partition("=")[0] in groups else arg
            for arg in args]


# Mappings that a command line sets whole: Hydra merges a mapping given for a key into the
# preset's (`+task.verbalizer={...}` on task=sst2 kept 0: negative and 1: positive beside the new
# labels), so each such override is preceded by one that clears the key. A single entry
# (`task.verbalizer.2=neutral`) still adds to the preset's mapping.
REPLACED_MAPPINGS = ("task.verbalizer",)


def mappings_replaced(args: list[str]) -> list[str]:
    """``task.verbalizer=V``, ``+task.verbalizer=V`` and ``++task.verbalizer=V`` as
    ``++task.verbalizer=null task.verbalizer=V``: the command line's mapping replaces the preset's."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        bare = key.lstrip("+")
        if eq and not arg.startswith("-") and bare in REPLACED_MAPPINGS:
            out += [f"++{bare}=null", f"{bare}={value}"]
        else:
            out.append(arg)
    return out


class JobSummary(dict):
    """What a job returns to Hydra: its summary, and as a float (``float(summary)``) the objective
    ``report.metric``, which Optuna's sweeper reads. A job without that metric (failed, or a typo)
    is not float-castable, which the sweeper records as a failed trial."""

    def __init__(self, summary: dict[str, Any], objective: str | None):
        super().__init__(summary)
        self.objective = objective

    def __float__(self) -> float:
        from iclx.run import final_metrics

        if self.get("status") != "ok":
            raise ValueError(f"the job {self.get('status')}: {self.get('error', '')}")
        value = final_metrics(self).get(self.objective) if self.objective else None
        if not isinstance(value, (int, float)):
            raise ValueError(f"the job has no metric report.metric={self.objective!r}")
        return float(value)

    def __reduce__(self) -> Any:  # launchers pickle it back from other processes
        return (JobSummary, (dict(self), self.objective))


def _run_job(cfg: DictConfig) -> JobSummary:
    """Run the stages of one job; return its summary. Errors become one line and a 'failed' status."""
    global _exit_code
    from iclx import progress
    from iclx.artifacts import ArtifactStore, write_json_atomic
    from iclx.config_check import validate_config
    from iclx.run import Run
    from iclx.training import is_distributed_worker

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    out_dir = Path(hydra_cfg.runtime.output_dir)
    objective = (cfg.get("report") or {}).get("metric")
    choices = {
        k: str(v) for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/") and v is not None
    }
    header = dict(name=cfg.get("name"), overrides=list(hydra_cfg.overrides.task), choices=choices, multirun=multirun)
    try:  # every check before anything runs (components, sections, top-level keys such as seed)
        validate_config(cfg, overrides=list(hydra_cfg.overrides.task))
        seed = int(cfg.seed)
        progress.configure(cfg.get("trainer"))  # bars on a terminal, lines in a log: for every loop of the job
    except IclxError as e:  # before a Run exists: the summary and the one line, written here
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "summary.json", {"status": "failed", **header, "error": str(e)})
        print(f"iclx: {e}", file=sys.stderr, flush=True)
        _exit_code = 1
        return JobSummary({"status": "failed", "error": str(e)}, objective)
    run = Run(
        cfg=cfg,
        out_dir=out_dir,
        store=ArtifactStore(cfg.paths.cache_dir, force=bool(cfg.get("force", False))),
        seed=seed,
        choices=choices,
        multirun=multirun,
        primary=not is_distributed_worker(),
    )
    header["config_hash"] = job_config_hash(cfg)
    done = _finished_job(cfg, hydra_cfg, header["config_hash"]) if multirun and header["config_hash"] else None
    if done is not None:
        return JobSummary(_skip_job(run, header, done), objective)
    run.write_summary(status="running", started_at=time.strftime("%Y-%m-%dT%H:%M:%S"), **header)
    start = time.perf_counter()
    try:
        _run_stages(run, hydra_cfg)
        run.write_summary(status="ok", seconds=round(time.perf_counter() - start, 2))
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (see main)
        run.write_summary(status="interrupted", seconds=round(time.perf_counter() - start, 2))
        print(f"iclx: interrupted ({e or 'SIGINT'}); {out_dir / 'summary.json'} says so", file=sys.stderr, flush=True)
        raise
    except Exception as e:  # noqa: BLE001 -- every failure is reported, then the job ends
        e = disk_full(e) or e
        message = str(e) if isinstance(e, IclxError) else f"{type(e).__name__}: {e}"
        trace = out_dir / "traceback.txt"
        with contextlib.suppress(OSError):  # on a full disk the one line below still gets out
            trace.write_text(traceback.format_exc())
            if not isinstance(e, IclxError):
                message += f" (traceback in {trace})"
            run.write_summary(status="failed", error=message, seconds=round(time.perf_counter() - start, 2))
        print(f"iclx: {message}", file=sys.stderr, flush=True)
        if os.environ.get("ICLX_DEBUG") or hydra_cfg.verbose:
            traceback.print_exc()
        _exit_code = 1
    finally:
        run.close()
    return JobSummary(run.summary, objective)


def job_config_hash(cfg: DictConfig) -> str | None:
    """A hash of the job's resolved config (but the ``sweep`` section) and of the code that ran it
    (iclx version and git commit): equal hashes, equal jobs, so a rerun after a code change runs
    again instead of reusing old results. None when the config does not resolve (the stages say why)."""
    from iclx.artifacts import config_key
    from iclx.provenance import provenance
    from iclx.run import resolved_config

    code = {k: v for k, v in provenance().items() if k in ("iclx", "git_commit")}
    try:
        return config_key({k: v for k, v in resolved_config(cfg).items() if k != "sweep"}, code)
    except Exception:  # noqa: BLE001 -- e.g. an interpolation error, reported by the stage that reads it
        return None


def threads_per_parallel_job(hydra_cfg: Any) -> int | None:
    """Torch threads for a job that shares the machine with other jobs of its sweep, so that
    jobs x threads <= cores: joblib's ``n_jobs``, submitit's ``cpus_per_task``. None otherwise."""
    launcher = hydra_cfg.get("launcher") or {}
    target = str(launcher.get("_target_", ""))
    cores = os.cpu_count() or 1
    threads = None
    if "joblib" in target:
        n_jobs = int(launcher.get("n_jobs") or 1)
        threads = 1 if n_jobs < 0 else max(1, cores // n_jobs)
    elif "submitit" in target and launcher.get("cpus_per_task"):
        threads = int(launcher.cpus_per_task)
    if threads is not None:
        log.info("threads: %d per job (%s launcher, %d cores)", threads, target.rsplit(".", 1)[-1], cores)
    return threads


def _finished_job(cfg: DictConfig, hydra_cfg: Any, config_hash: str) -> Path | None:
    """A job folder of this sweep or an earlier run of it (``sweeps/<sweep_name>/*/*``, or a fixed
    ``hydra.sweep.dir``) that finished ok with this resolved config; None with ``sweep.skip_done=false``."""
    import json

    if not (cfg.get("sweep") or {}).get("skip_done", True):
        return None
    sweep_root = Path(hydra_cfg.sweep.dir)
    for summary_file in sorted([*sweep_root.glob("*/summary.json"), *sweep_root.parent.glob("*/*/summary.json")]):
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("multirun") and summary.get("status") == "ok" and summary.get("config_hash") == config_hash:
            return summary_file.parent
    return None


def _skip_job(run: Any, header: dict[str, Any], done: Path) -> dict[str, Any]:
    import json

    if done.resolve() == run.out_dir.resolve():
        log.info("job already finished ok in %s: skipped (sweep.skip_done=false reruns it)", done)
        return json.loads((done / "summary.json").read_text())
    earlier = json.loads((done / "summary.json").read_text())
    log.info("job already finished ok in %s with the same config: skipped (sweep.skip_done=false reruns it)", done)
    run.write_summary(**{**earlier, **header, "status": "ok", "skipped": f"done in {done}"})
    return run.summary


def _run_stages(run: Any, hydra_cfg: Any) -> None:
    from iclx.loggers import build_loggers
    from iclx.pretraining import interrupted_wandb_run
    from iclx.run import resolved_config, seed_everything, set_threads

    cfg = run.cfg
    stages = [str(s) for s in cfg.stages]
    if not stages:
        raise IclxError("stages is empty: name at least one stage, e.g. stages=[probe]")
    for stage in stages:
        registry.get("stage", stage)  # unknown names fail before anything runs
    if {"tokenize", "pack", "pretrain"} & set(stages):
        precheck_corpus_files(cfg)  # in pipeline order: the corpus's files before the task's
    if "evaluate" in stages and cfg.get("task") is not None:
        precheck_task(cfg)
    seed_everything(run.seed)
    set_threads(cfg.get("threads") or threads_per_parallel_job(hydra_cfg))
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # "could not load AVX512" is not news
    group = cfg.get("sweep_name") if run.multirun else cfg.get("name")
    run.loggers = [] if not run.primary else build_loggers(
        cfg.logger,
        run.out_dir,
        run_name=f"{cfg.get('name')}/{run.out_dir.name}",
        group=str(group),
        job_type="+".join(stages),
        tags=[f"{k}={v}" for k, v in sorted(run.choices.items())],
        config=resolved_config(cfg),
        resume_id=interrupted_wandb_run(run) if (cfg.logger or {}).get("wandb") else None,
    )
    for stage in stages:
        log.info("stage %s: start", stage)
        start = time.perf_counter()
        metrics = registry.get("stage", stage)(run) or {}
        metrics = dict(metrics)
        metrics.setdefault("seconds", round(time.perf_counter() - start, 2))
        run.record(stage, metrics)
        log.info("stage %s: done in %.1fs", stage, metrics["seconds"])
        if not run.primary and stage == "pretrain":
            break  # a data-parallel worker's part ends with the training; rank 0 runs the later stages


def precheck_corpus_files(cfg: DictConfig) -> None:
    """A file-based corpus (``data=text_files``) whose paths match nothing stops the run before any
    stage (and before the task, which a changed ``data`` may no longer fit). Curated runs read their
    own inputs (the curate stage checks those)."""
    from iclx.data.corpus import build_source

    curate = cfg.get("curate")
    if cfg.get("data") is None or (curate is not None and str(curate.get("name", "none")) != "none"):
        return
    files = getattr(build_source(cfg.data), "files", None)
    if callable(files):
        files()


def precheck_task(cfg: DictConfig) -> None:
    """The evaluate stage's task, read before any stage runs: a missing file or field, a bad
    template or label, a pool smaller than the largest k stop the run before pre-training or
    loading a model (the evaluate stage then gets the task read here)."""
    from iclx.sections import EvaluateSection
    from iclx.tasks import base
    from iclx.tasks.icl import check_pool_size

    task = base.precheck_task(cfg.task, data=cfg.get("data"))
    k = max(EvaluateSection.from_config(cfg).sorted_shots, default=0)
    if task.group_key is None and k:  # grouped pools (GINC's) are checked per group by the stage
        check_pool_size(task, list(range(len(task.pool))), task.queries, k, None)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def hydra_main(cfg: DictConfig) -> dict[str, Any]:
    return _run_job(cfg)


def run_cli(argv: list[str]) -> int:
    """Run ``iclx ARGV`` in this process and return its exit code (the tests use this directly)."""
    global _exit_code
    code = commands.dispatch(argv)  # `iclx report ...`: a registered subcommand, not a Hydra run
    if code is not None:
        return code
    _exit_code = 0
    try:
        config_dirs = user_config_dirs(argv)
        groups = group_options(conf_dir(), *config_dirs)
        check_group_overrides(argv, groups)
        check_import_path_overrides(argv)
        if not any(a in ("--help", "-h", "--hydra-help", "--info") for a in argv):
            check_config_files(null_groups_as_deletions(argv, groups), groups, config_dirs)
            check_override_keys(null_groups_as_deletions(argv, groups), groups, config_dirs)
    except IclxError as e:
        print(f"iclx: {e}", file=sys.stderr)
        return 2
    saved_argv = sys.argv
    sys.argv = ["iclx", *mappings_replaced(null_groups_as_deletions(argv, groups))]
    sweep_summary.outcome = sweep_summary.SweepOutcome()
    try:
        hydra_main()
    except SystemExit as e:  # Hydra exits on its own errors (bad override syntax, missing keys) and after --help
        if commands.asks_help(argv):
            print(commands.overview())
        return e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = saved_argv
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
    if sweep_summary.outcome.started:
        return _sweep_exit_code(sweep_summary.outcome)
    return _exit_code


def _sweep_exit_code(outcome: Any) -> int:
    """A multirun fails when its summary could not be written or any job did not end ok."""
    if not outcome.summarized:
        print(f"iclx: the sweep summary failed: {outcome.error or 'the summary callback never ran'}",
              file=sys.stderr, flush=True)
        return 1
    return 1 if outcome.failed_jobs else 0


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(run_cli(sys.argv[1:]))
    except KeyboardInterrupt:  # the job recorded it and said so
        sys.exit(130)
    except BrokenPipeError:  # `iclx --help | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (a scheduler's kill, `kill PID`) ends the run like Ctrl-C: recorded, locks released."""
    raise KeyboardInterrupt("SIGTERM")


if __name__ == "__main__":
    main()
