"""iclx: config-driven experiments on pre-training and in-context learning of language models."""

import os
import sys


def _started_as_python_m_iclx() -> bool:
    """Whether this import is Python locating the module of ``python -m iclx[.sub]``: while it
    does, ``sys.argv[0]`` is ``-m`` (the module name is only in ``sys.orig_argv``)."""
    if sys.argv[:1] != ["-m"]:
        return False
    args = iter(getattr(sys, "orig_argv", [])[1:])
    for arg in args:
        if arg == "-m":
            module = next(args, "")
        elif arg.startswith("-m"):
            module = arg[2:]
        else:
            continue
        return module.split(".")[0] == "iclx"
    return False


# `python -m iclx` puts the current folder first on the import path, so a stray file there
# (`typing.py`, `hydra.py`, a module named like a plugin) would be imported in place of the real
# one, silently. Drop it before anything else is imported: modules come from the installed
# packages and PYTHONPATH only, as they do for the `iclx` command (see iclx.registry). Kept in two
# cases: `python -P` (PYTHONSAFEPATH) never adds the folder, so sys.path[0] is then the user's own
# PYTHONPATH entry; and in an uninstalled source checkout the folder is where iclx itself comes
# from, for this process and for the launchers' worker processes, which inherit sys.path.
_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if (_started_as_python_m_iclx() and not sys.flags.safe_path and sys.path[:1] in ([""], [os.getcwd()])
        and _here != os.getcwd()):
    del sys.path[0]

from iclx.registry import build, register  # noqa: E402 -- after the import path is fixed

__all__ = ["build", "register"]
__version__ = "0.1.0"
