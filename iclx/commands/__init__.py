"""Subcommands beside the Hydra entrypoint: ``iclx report``, ``cache``, ``export``, and later ``rescore``.

``iclx ARGS`` runs a registered command when ``ARGS[0]`` names one, and composes a Hydra run
otherwise (``iclx.cli.run_cli`` asks ``dispatch`` first). A command is one module in this package,
found because it exists (``import_submodules``), with one registered function::

    @register("command", "cache")
    def cache(argv: list[str]) -> int:
        \"\"\"List or clear the artifact cache.   <- its first line is its entry in ``iclx --help``\"\"\"
        args = command_parser("cache", cache.__doc__).parse_args(argv)   # ``iclx cache --help``
        ...
        return 0

Commands are components like the others (``iclx.registry``), so a plugin registers one the same
way. A command raises ``IclxError`` for bad input: ``dispatch`` prints it as one ``iclx: ...`` line
and exits 1 (2 for a malformed command line). It imports heavy libraries inside the function, so
``iclx --help`` stays free of torch. Planned: ``rescore`` (re-evaluate a trained model): like the
others, ``iclx/commands/<name>.py`` and no other edit.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from typing import NoReturn

from iclx import registry
from iclx.errors import IclxError, did_you_mean

KIND = "command"

# A first argument that could be a command's name: Hydra arguments contain '=' or start with '-', '+', '~'.
_BARE_WORD = re.compile(r"[a-z][a-z0-9_-]*")


class UsageError(IclxError):
    """A malformed command line (unknown option, missing argument): exit code 2, as argparse's."""


class CommandParser(argparse.ArgumentParser):
    """argparse with errors as one ``iclx: NAME: ...`` line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        name = self.prog.removeprefix("iclx ")
        raise UsageError(f"{name}: {message} (see iclx {name} --help)")


def command_parser(name: str, doc: str | None) -> CommandParser:
    """The parser of ``iclx NAME``: its help text is the command's docstring."""
    return CommandParser(prog=f"iclx {name}", description=inspect.cleandoc(doc or ""),
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def dispatch(argv: list[str]) -> int | None:
    """Run ``iclx ARGV`` as a command and return its exit code; None when ARGV is for Hydra."""
    if not argv or not _BARE_WORD.fullmatch(argv[0]):
        return None  # overrides and flags: a Hydra run, decided without importing any command
    try:
        names = registry.known(KIND)
        if argv[0] not in names:
            hint = did_you_mean(argv[0], names)
            if not hint:
                return None  # Hydra explains what is wrong with a bare word
            raise UsageError(f"unknown command '{argv[0]}'. Known: {', '.join(names)}{hint}")
        return int(registry.get(KIND, argv[0])(argv[1:]) or 0)
    except SystemExit as e:  # argparse after --help; a command's own sys.exit
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    except UsageError as e:
        print(f"iclx: {e}", file=sys.stderr, flush=True)
        return 2
    except IclxError as e:
        print(f"iclx: {e}", file=sys.stderr, flush=True)
        return 1


def asks_help(argv: list[str]) -> bool:
    return "--help" in argv or "-h" in argv


def overview() -> str:
    """The commands section of ``iclx --help``: each name with its docstring's first line."""
    lines = ["== Commands (iclx COMMAND --help for its options) =="]
    for name in registry.known(KIND):
        summary = (inspect.getdoc(registry.get(KIND, name)) or "").partition("\n")[0]
        lines.append(f"iclx {name:<10} {summary}")
    return "\n".join(lines)


# Last: command modules import command_parser from here.
registry.import_submodules(__name__)
