"""Progress of long work: a bar on a terminal, one log line per interval in a log.

A bar redraws itself with carriage returns: on a terminal that is one line that moves; in a
redirected log (``iclx ... > run.log``, a Slurm job's output) tqdm's bar is hundreds of KB of
overwritten lines, and rich's (Lightning's default where rich is installed) prints nothing until
the end. So when stdout or stderr is not a terminal, every long loop of iclx (training, reading
and tokenizing a corpus, embedding, kNN search, evaluating) writes one ``iclx`` log line every
``trainer.progress_interval`` seconds instead (``tokenize train: 5120/7840 doc (65%), 780 doc/s,
ETA 3s``), and a last one when it ends, if it wrote any; a loop shorter than the interval writes
none. ``trainer.enable_progress_bar=false`` silences both.

Loops get their bar or their lines from ``progress(...)``; Lightning's trainings from
``iclx.training.progress.LogProgress``, which writes the same lines through ``ProgressLines``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iclx.errors import ConfigError

log = logging.getLogger("iclx")

DEFAULT_INTERVAL_S = 10.0

Figures = Sequence[str] | Callable[[], Sequence[str]]  # a caller's own numbers for a line: "loss 2.41"


@dataclass
class ProgressSettings:
    interval_s: float = DEFAULT_INTERVAL_S  # seconds between two lines of one loop
    enabled: bool = True  # trainer.enable_progress_bar: false means no bars and no lines


settings = ProgressSettings()


def configure(trainer_cfg: Mapping[str, Any] | None) -> None:
    """Take the run's ``trainer.progress_interval`` and ``trainer.enable_progress_bar`` (checked:
    a ConfigError naming the key). The entrypoint calls this before any stage runs."""
    from iclx.registry import _plain

    trainer = _plain(trainer_cfg) if trainer_cfg is not None else {}
    interval = trainer.get("progress_interval", DEFAULT_INTERVAL_S)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
        raise ConfigError(f"trainer.progress_interval must be a number of seconds > 0, got {interval!r}")
    enabled = trainer.get("enable_progress_bar", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"trainer.enable_progress_bar must be bool, got {type(enabled).__name__} {enabled!r}")
    settings.interval_s, settings.enabled = float(interval), enabled


def on_terminal() -> bool:
    """Whether bars can be drawn: stdout and stderr both on a terminal (tqdm draws on stderr,
    rich on stdout), or a Jupyter kernel (tqdm.auto draws widgets there)."""
    if "ipykernel" in sys.modules:
        return True
    return all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))


def bars_wanted() -> bool:
    """Whether a library's own progress bar should be shown (on a terminal, progress enabled)."""
    return settings.enabled and on_terminal()


def progress(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
             disable: bool = False, leave: bool = True) -> Any:
    """A progress bar over ``iterable`` (or updated with ``.update(n)``): tqdm's on a terminal,
    else a ``ProgressLines``. Both iterate, ``update``, ``set_postfix_str``, ``close`` and work as
    context managers."""
    from tqdm.auto import tqdm

    if disable or not settings.enabled:
        return tqdm(iterable, total=total, disable=True)
    if on_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, mininterval=0.5)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return ProgressLines(desc, total=total, unit=unit, iterable=iterable)


class ProgressLines:
    """One log line every ``interval_s`` seconds (default: ``trainer.progress_interval``) about a
    loop of ``total`` units: how far, how fast, and when it will end.

    The rate counts from the first update on, so the first unit's warm-up (compiling, loading a
    model) does not stretch the ETA; ``figures`` add the caller's own numbers (a loss, tokens/s),
    and ``show_rate=False`` leaves out the units per second where a figure says it better.
    ``unit_first`` writes ``step 120/2200`` rather than ``5120/7840 doc``.
    """

    def __init__(self, desc: str, *, total: int | None = None, unit: str = "it", interval_s: float | None = None,
                 iterable: Iterable[Any] | None = None, show_rate: bool = True, unit_first: bool = False):
        self.desc, self.total, self.unit, self.iterable, self.show_rate = desc, total, unit, iterable, show_rate
        self.unit_first = unit_first
        self.postfix = ""  # what the loop is on now (tqdm's set_postfix_str), e.g. "knn k=4"
        self.interval_s = settings.interval_s if interval_s is None else interval_s
        self.n = 0
        self.lines = 0
        self._started = self._last_line = time.monotonic()
        self._first: tuple[float, int] | None = None  # (time, n) of the first update

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix_str(self, postfix: str) -> None:
        self.postfix = postfix

    def update(self, n: int = 1, figures: Figures = ()) -> None:
        self.advance_to(self.n + n, figures)

    def advance_to(self, n: int, figures: Figures = ()) -> None:
        """The loop is at unit ``n`` now; write a line if the interval has passed since the last.
        ``figures`` may be a function, called only for a line (a training step is milliseconds)."""
        now = time.monotonic()
        if self._first is None:
            self._first = (now, n)
        self.n = n
        if now - self._last_line >= self.interval_s:
            log.info("%s", self.line(now, figures() if callable(figures) else figures))
            self._last_line, self.lines = now, self.lines + 1

    def close(self, figures: Sequence[str] = ()) -> None:
        """A last line with the time it took, when the loop wrote any (a short loop stays silent)."""
        if self.lines:
            took = time.monotonic() - self._started
            log.info("%s: %s done in %s", self.desc, self.position(), ", ".join([duration(took), *figures]))
            self.lines = 0

    def rate(self, now: float) -> float | None:
        """Units per second since the first update (None until there is a measurement)."""
        if self._first is None:
            return None
        t0, n0 = self._first
        if self.n > n0 and now > t0:
            return (self.n - n0) / (now - t0)
        return None

    def position(self) -> str:
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        return f"{self.unit} {count}" if self.unit_first else f"{count} {self.unit}"

    def line(self, now: float, figures: Sequence[str] = ()) -> str:
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        parts = [self.position() + percent, *([self.postfix] if self.postfix else []), *figures]
        rate = self.rate(now)
        if rate and self.show_rate:
            parts.append(f"{number(rate)} {self.unit}/s")
        if rate and self.total:
            parts.append(f"ETA {duration(max(0, self.total - self.n) / rate)}")
        return f"{self.desc}: {', '.join(parts)}"


def number(x: float) -> str:
    """A rate as a person reads it: 3 significant digits, k and M for the large ones."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
