"""The one exception type iclx reports to users as a single line (see cli.py)."""

from __future__ import annotations

import difflib
import errno
from typing import Iterable


class IclxError(Exception):
    """A problem with the user's config, files or data: reported as one line, exit code 1."""


class ConfigError(IclxError):
    """A config key names something that does not exist or has the wrong type or value."""


class DataError(IclxError):
    """A file or record cannot be used (missing, empty, malformed)."""


class DiskFull(IclxError):
    """No space left on a device while writing: what was whole before (the previous checkpoint, the
    cached artifacts) is kept."""


def disk_full(e: BaseException) -> DiskFull | None:
    """``e`` as a DiskFull when it (or an exception it came from) is 'no space left on device'."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, DiskFull):
            return seen
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            where = f" while writing {seen.filename}" if seen.filename else ""
            return DiskFull(f"the disk is full{where} (no space left on device): what was complete before is kept; "
                            "free space and run the same command again")
        seen = seen.__cause__ or seen.__context__
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
