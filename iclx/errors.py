"""The one exception type iclx reports to users as a single line (see cli.py)."""

from __future__ import annotations

import difflib
from typing import Iterable


class IclxError(Exception):
    """A problem with the user's config, files or data: reported as one line, exit code 1."""


class ConfigError(IclxError):
    """A config key names something that does not exist or has the wrong type or value."""


class DataError(IclxError):
    """A file or record cannot be used (missing, empty, malformed)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
