"""Each multirun gets its own sweep folder, even when two start in the same second.

The default ``hydra.sweep.dir`` is named by the start time (``sweeps/<name>/<date>_<time>``), so
two sweeps started in the same second would share it (interleaved job folders, one summary.csv).
Single runs avoid that with ``${iclx.fresh_folder:...}`` in ``hydra.run.dir``, but a resolver
cannot claim a sweep's folder: launchers build every job's config again from the sweep's overrides
(joblib in its workers, submitit in each job's process), so a folder-claiming resolver there would
run once per job and scatter the jobs over several folders.

So the claim happens once, in the process that starts the multirun, before the sweeper exists
(this Hydra callback, ``hydra.callbacks.sweep_folder``): the timestamped folder, or ``<time>-2``,
``-3``... when another sweep took it, is created (creating it is what claims it) and then pinned
as a literal ``hydra.sweep.dir=<claimed>`` override. Every later resolution of the sweep folder
(the sweeper, the launcher, each job) reads that literal string, so all jobs land in it.

A sweep folder that is not named by the time (``hydra.sweep.dir=sweeps/mine``) is left as it is:
a fixed folder is reused on purpose, e.g. to complete an interrupted sweep in place.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from iclx.resolvers import fresh_folder


def names_folder_by_start_time(config: DictConfig) -> bool:
    """Whether the configured (unresolved) ``hydra.sweep.dir`` contains ``${now:...}``."""
    configured = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir")
    return "${now:" in str(configured)


def override_value(text: str) -> str:
    """``text`` as a quoted Hydra override value that parses back to exactly ``text`` (a path may
    hold ``,`` or ``=``, which unquoted would make a sweep or a syntax error). In Hydra's quoted
    strings only a quote and the backslashes right before a quote or at the end need escaping."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def pin_sweep_folder(config: DictConfig, folder: str) -> None:
    """Set ``hydra.sweep.dir`` to ``folder`` in ``config`` (read by the sweeper and launcher of this
    process) and in its hydra overrides (from which every job's config is composed again)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = f"hydra.sweep.dir={override_value(folder)}"
    parsed = OverridesParser.create().parse_override(override).value()
    if parsed != folder:  # a path Hydra's grammar cannot carry: stop rather than run jobs elsewhere
        raise ValueError(f"the sweep folder {folder!r} cannot be written as a Hydra override (it reads back as {parsed!r})")
    with read_write(config), open_dict(config):
        config.hydra.sweep.dir = folder
        config.hydra.overrides.hydra.append(override)


class ClaimSweepFolder(Callback):
    """Hydra callback (``hydra.callbacks.sweep_folder``): claims and pins the sweep's folder when a
    multirun starts. Listed before ``sweep_summary``, which creates the folder for Optuna's study."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not names_folder_by_start_time(config):
            return
        try:
            claimed = fresh_folder(str(config.hydra.sweep.dir))
            pin_sweep_folder(config, claimed)
        except Exception as e:  # Hydra turns an Exception here into a warning: SystemExit stops the sweep
            print(f"iclx: could not claim a sweep folder: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from e
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():  # code that asks HydraConfig in this process sees the same folder
            HydraConfig.instance().set_config(config)
