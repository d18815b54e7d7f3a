"""What every iclx figure shares: matplotlib on the Agg backend, the shots axis, saving a PNG.

Figures are only ever written to files (runs on servers and in sweeps have no display), and
matplotlib is imported on first use so that ``iclx --help`` stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DPI = 120


@functools.cache
def pyplot() -> Any:
    """``matplotlib.pyplot``, with the Agg (file-only) backend chosen before its first import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log2_shots_axis(ax: Any, values: Iterable[float]) -> bool:
    """For numbers of shots (0, 1, 2, 4, 8, ...): once they reach 8, an x axis spaced in powers of
    two (symlog, so that 0 keeps its place), ticked at each value. Returns whether it applied."""
    ticks = sorted(set(values))
    if not ticks or min(ticks) < 0 or max(ticks) < 8:
        return False
    ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    return True


def save_png(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (trimmed to its content) and free it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return Path(path)
