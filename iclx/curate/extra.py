"""The ``curate`` extra: whether it is installed, and the one line that says how to install it."""

from __future__ import annotations

import importlib.util

from iclx.errors import ConfigError

# modules the curation cannot run without (datatrove, its trafilatura extractor, its writers)
EXTRA_MODULES = ("datatrove", "trafilatura", "orjson")
INSTALL = 'pip install "iclx[curate]"'


def require_extra(*more: str) -> None:
    """A ConfigError naming the install command when the ``curate`` extra (or ``more``) is missing."""
    missing = [m for m in (*EXTRA_MODULES, *more) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"curate needs the optional extra ({', '.join(missing)} not installed): {INSTALL}")
