"""One pre-training killed with SIGKILL at random moments and resumed each time by the same command,
against the same pre-training run straight through (the baseline, run first by this script).

Both runs are real ``python -m iclx`` processes with the same config, each with its own cache
(``ICLX_CACHE_DIR``), so every artifact is built in each. The kill moments are drawn (seeded) over
the baseline's pre-training, from its first step until its artifact is complete, so they land in
training steps, validations, checkpoint writes and the final phase (last validation, saving the
model, sampling) in proportion to the time each takes. Attempt ``i`` is killed where the baseline
was at moment ``i``: once it has finished the same step (read from the artifact's history.csv,
written every step here), as many seconds after it as the baseline was; so a slower or faster
machine moves the kills little. After the last kill the command runs to the end.

Printed per kill: the moment (seconds into the attempt's training, and on the baseline's clock),
the step the attempt resumed from, the step it reached, the checkpoint step left on disk (and
whether ``last.ckpt`` loads), what it was doing, and checkpoint writes cut short (Lightning writes
a checkpoint to a temporary file, then moves it into place; this script points the runs' TMPDIR
into its work folder so those files can be seen). At the end: the largest absolute difference
between the two final ``model.pt`` weights, and whether the final validation losses are equal.
Exit status 0 when the weights and losses are identical, 1 when they differ, 2 when a resumed
attempt failed (its error is printed as it came).

    python benchmarks/kill_resume.py [--kills 10] [--seed 0] [--max-steps 300] [--checkpoint-every 25]
                                     [--config quickstart|tiny] [--workdir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# quickstart: the default experiment's data, tokenizer, model and optimizer (GINC, gpt_micro),
# pre-training only. tiny: a 1-layer model on 40 short documents, for the slow test.
CONFIGS = {
    "quickstart": ["experiment=quickstart", "pretrain.val_every=50"],  # validations within 300 steps, for kills to land in
    "tiny": [
        "~experiment", "data.n_documents=40", "data.document_length=200", "data.validation.fraction=0.1",
        "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=64",
        "optimizer.lr=3e-3", "optimizer.schedule.warmup_steps=5", "pretrain.batch_size=4", "pretrain.val_every=10",
        "pretrain.val_windows=8", "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=4",
    ],
}
COMMON = [
    "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",  # history.csv gets a row every step: the step a kill reached, exactly
    "threads=1",  # both runs alike: one torch thread keeps the timing steady on a shared machine
]
TRAINING_STARTS = " steps of "  # iclx.pretraining logs "pretrain: <model> model, ..., N steps of T tokens" before fit


@dataclass
class Attempt:
    """One launch of the command: what it resumed from, when it was killed, what it left."""

    number: int
    resumed_from: int = 0
    target_s: float | None = None      # the kill moment on the baseline's clock (s after its training started)
    killed_after_s: float | None = None  # s after this attempt's training started
    reached_step: int | None = None    # the last step in history.csv (None: killed before training resumed)
    checkpoint_step: int | None = None  # global_step of last.ckpt after the kill (None: none or unreadable)
    checkpoint_error: str = ""
    doing: str = ""
    cut_writes: list[str] = field(default_factory=list)  # temporary files of writes the kill cut short
    exit_code: int | None = None
    error: str = ""


def command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "iclx", *CONFIGS[args.config], *COMMON, f"trainer.max_steps={args.max_steps}",
            f"pretrain.checkpoint_every={args.checkpoint_every}"]


def environment(cache: Path, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ICLX_CACHE_DIR=str(cache), TMPDIR=str(tmp), WANDB_MODE="disabled", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    return env


def launch(args: argparse.Namespace, work: Path, cache: Path, name: str) -> tuple[subprocess.Popen, Path]:
    run_dir, tmp = work / "runs" / name, work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    out = open(work / "runs" / f"{name}.out", "w")
    proc = subprocess.Popen([*command(args), f"hydra.run.dir={run_dir}"], cwd=work, env=environment(cache, tmp),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # its own group: killed whole
    out.close()
    return proc, run_dir


def wait_for_training(proc: subprocess.Popen, run_dir: Path, timeout: float) -> float | None:
    """The time this attempt's training starts (its log says so); None when the process ended first."""
    deadline = time.monotonic() + timeout
    log = run_dir / "iclx.log"
    while time.monotonic() < deadline:
        if log.is_file() and TRAINING_STARTS in log.read_text(errors="replace"):
            return time.monotonic()
        if proc.poll() is not None:
            return None
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise TimeoutError(f"no training started within {timeout:.0f} s (see {log})")


def history_text(folder: Path | None) -> str:
    history = folder / "history.csv" if folder else None
    return history.read_text(errors="replace") if history and history.is_file() else ""


def last_step(text: str) -> int | None:
    """The step of history.csv's last whole row (a row being written, cut short, is skipped)."""
    for line in reversed(text.splitlines()[1:]):
        head = line.split(",", 1)[0]
        if head.isdigit() and line.count(",") == 2:
            return int(head)
    return None


def attempt_progress(before: str, now: str) -> int | None:
    """The last step this attempt recorded, None before its first. A resumed attempt first cuts
    history.csv back to the resume step (the rows after it are redone), so until this attempt
    writes a row of its own the file is a prefix of what the previous attempt left (``before``);
    a redone step's rows differ from the old ones in their measured speed."""
    return None if before.startswith(now) else last_step(now)


def partial_folder(cache: Path) -> Path | None:
    found = sorted((cache / "pretrain").glob("*.partial")) if (cache / "pretrain").is_dir() else []
    return found[0] if found else None


def finished_folder(cache: Path) -> Path | None:
    found = [p for p in (cache / "pretrain").iterdir() if p.is_dir() and not p.name.endswith(".partial")] \
        if (cache / "pretrain").is_dir() else []
    return found[0] if found else None


def checkpoint_step(folder: Path | None) -> tuple[int | None, str]:
    import torch

    last = folder / "checkpoints" / "last.ckpt" if folder else None
    if last is None or not last.is_file():
        return None, ""
    try:
        return int(torch.load(last, map_location="cpu", weights_only=True)["global_step"]), ""
    except Exception as e:  # noqa: BLE001 -- a damaged checkpoint is a finding, reported as it is
        return None, f"{type(e).__name__}: {e}"


@dataclass
class Clock:
    """The baseline's pre-training: when (s after its training started) it finished each step,
    and when its artifact was complete."""

    step_times: dict[int, float]
    done: float

    def moment(self, seconds: float) -> tuple[int, float]:
        """A moment of the baseline as (the last step finished by then, seconds after it)."""
        step = max((s for s, t in self.step_times.items() if t <= seconds), default=0)
        return step, seconds - self.step_times.get(step, 0.0)


def baseline(args: argparse.Namespace, work: Path) -> tuple[Path, Clock]:
    """Run straight through; return its artifact folder and its clock."""
    cache = work / "baseline-cache"
    proc, run_dir = launch(args, work, cache, "baseline")
    started = wait_for_training(proc, run_dir, timeout=args.timeout)
    if started is None:
        raise SystemExit(f"the baseline run ended before training (exit {proc.returncode}); see {run_dir}")
    step_times: dict[int, float] = {}
    done = None
    while proc.poll() is None and done is None:
        step = last_step(history_text(partial_folder(cache)))
        if step is not None and step not in step_times:
            step_times[step] = time.monotonic() - started
        if finished_folder(cache):
            done = time.monotonic() - started
        time.sleep(0.005)
    if proc.wait() != 0 or done is None:
        raise SystemExit(f"the baseline run failed (exit {proc.returncode}); see {run_dir}")
    return finished_folder(cache), Clock(step_times, done)


def killed_run(args: argparse.Namespace, work: Path, moments: list[float], clock: Clock) -> tuple[list[Attempt], Path | None]:
    """Attempt ``i`` is killed where the baseline was at ``moments[i]``: once it has finished the
    same step, as many seconds after it as the baseline was. The last attempt runs to the end."""
    cache = work / "killed-cache"
    attempts: list[Attempt] = []
    for number, moment in enumerate([*moments, None], start=1):
        attempt = Attempt(number, target_s=moment)
        attempts.append(attempt)
        folder = partial_folder(cache)
        attempt.resumed_from = checkpoint_step(folder)[0] or 0
        before = history_text(folder)
        leftovers = set((work / "tmp").iterdir()) if (work / "tmp").is_dir() else set()
        proc, run_dir = launch(args, work, cache, f"attempt-{number}")
        started = wait_for_training(proc, run_dir, timeout=args.timeout)
        if moment is not None and started is not None:
            step, after = clock.moment(moment)
            reached_at = started if step <= attempt.resumed_from else None  # restored past it: count from the start
            while proc.poll() is None:
                if reached_at is None and (attempt_progress(before, history_text(partial_folder(cache))) or 0) >= step:
                    reached_at = time.monotonic()
                if reached_at is not None and time.monotonic() >= reached_at + after:
                    os.killpg(proc.pid, signal.SIGKILL)
                    attempt.killed_after_s = time.monotonic() - started
                    break
                time.sleep(0.005)
        attempt.exit_code = proc.wait()
        if attempt.killed_after_s is None and attempt.exit_code != 0:
            attempt.error = failure(run_dir, work / "runs" / f"attempt-{number}.out")
            return attempts, None
        if attempt.killed_after_s is None:
            if moment is not None:
                attempt.doing = "finished before its kill moment"
            continue
        folder = partial_folder(cache)
        attempt.reached_step = attempt_progress(before, history_text(folder))
        attempt.checkpoint_step, attempt.checkpoint_error = checkpoint_step(folder)
        attempt.cut_writes = sorted(p.name for p in set((work / "tmp").iterdir()) - leftovers)
        attempt.doing = (
            "after the artifact was complete" if finished_folder(cache) else
            "restoring, before its first step" if attempt.reached_step is None else
            "after the last step (final validation, saving, sampling)" if attempt.reached_step >= args.max_steps else
            "training"
        )
    return attempts, finished_folder(cache)


def failure(run_dir: Path, out: Path) -> str:
    lines = [line for line in out.read_text(errors="replace").splitlines() if line.startswith("iclx:")]
    trace = run_dir / "traceback.txt"
    return "\n".join(lines) + (f"\n{trace.read_text()}" if trace.is_file() else "")


def compare(a: Path, b: Path) -> dict[str, object]:
    import torch

    wa = torch.load(a / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    wb = torch.load(b / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    if wa.keys() != wb.keys():
        raise SystemExit(f"the two models have different parameters: {sorted(wa.keys() ^ wb.keys())}")
    diff = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (a, b))
    return {"max_abs_weight_diff": diff, "weights_identical": all(torch.equal(wa[k], wb[k]) for k in wa),
            "val_loss_baseline": ra.get("val_loss"), "val_loss_killed": rb.get("val_loss"),
            "val_loss_equal": ra.get("val_loss") == rb.get("val_loss"), "steps": (ra.get("steps"), rb.get("steps")),
            "same_artifact_key": a.name == b.name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--checkpoint-every", type=int, default=25)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="quickstart")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds an attempt may take to start training")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="iclx-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"command: {' '.join(command(args)[1:])}\nwork folder: {work}", flush=True)
    try:
        return report(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path) -> int:
    start = time.monotonic()
    reference, clock = baseline(args, work)
    first_step = min(clock.step_times.values())
    print(f"baseline: {max(clock.step_times)} steps; first step {first_step:.2f} s and artifact complete {clock.done:.2f} s "
          f"after its training started; total {time.monotonic() - start:.0f} s", flush=True)
    rng = random.Random(args.seed)  # the kill moments: uniform over the baseline's first step to its complete artifact
    moments = sorted(rng.uniform(first_step, clock.done) for _ in range(args.kills))
    attempts, resumed = killed_run(args, work, moments, clock)

    print(f"\n{'kill':>4}  {'moment (s)':>10}  {'baseline clock (s)':>18}  {'resumed from':>12}  {'step reached':>12}  "
          f"{'last.ckpt step':>14}  doing / cut-short writes")
    for a in attempts:
        if a.killed_after_s is None:
            continue
        ckpt = a.checkpoint_step if a.checkpoint_step is not None else f"UNREADABLE ({a.checkpoint_error})" if a.checkpoint_error else "none"
        cut = f"; cut short: {', '.join(a.cut_writes)}" if a.cut_writes else ""
        print(f"{a.number:>4}  {a.killed_after_s:>10.2f}  {a.target_s:>18.2f}  {a.resumed_from:>12}  "
              f"{a.reached_step if a.reached_step is not None else '-':>12}  {ckpt!s:>14}  {a.doing}{cut}")
    kills = sum(a.killed_after_s is not None for a in attempts)
    missed = [a.number for a in attempts if a.doing == "finished before its kill moment"]
    figures: dict[str, object] = {"kills": kills, "attempts": [asdict(a) for a in attempts], "baseline_seconds": clock.done}
    if missed:
        print(f"attempts {missed} finished before their kill moment")
    if resumed is None:
        failed = attempts[-1]
        print(f"\nattempt {failed.number} (resuming from step {failed.resumed_from}) FAILED with exit {failed.exit_code}:\n"
              f"{failed.error}")
        figures["failed_attempt"] = asdict(failed)
        code = 2
    else:
        figures.update(compare(reference, resumed))
        print(f"\n{kills} kills; final weights vs the uninterrupted run: max |difference| {figures['max_abs_weight_diff']:.3g} "
              f"({'bitwise identical' if figures['weights_identical'] else 'NOT identical'}); final validation loss "
              f"{figures['val_loss_killed']!r} vs {figures['val_loss_baseline']!r} "
              f"({'equal' if figures['val_loss_equal'] else 'NOT equal'}); steps {figures['steps']}")
        code = 0 if figures["weights_identical"] and figures["val_loss_equal"] else 1
    print(f"total {time.monotonic() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
