"""Where a result came from: code version, library versions and machine, to tell two runs apart.

``provenance()`` is cheap and safe to call from anywhere, ``iclx --help`` included: it never imports
torch or lightning (their versions come from the installed package metadata unless they are
already imported), and it asks torch about GPUs and threads only when torch is already imported,
i.e. when the run used it.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Installed distribution -> its module, which is also its key in the record. An imported module's
# ``__version__`` wins over the distribution metadata: it is the code that ran.
LIBRARIES = {"torch": "torch", "lightning": "lightning", "hydra-core": "hydra", "omegaconf": "omegaconf", "numpy": "numpy"}


def provenance() -> dict[str, Any]:
    """iclx version, git commit (and dirty tree) of a source checkout, library versions, machine.

    Keys with no answer (no checkout, no GPU, a library not installed) are left out.
    """
    import iclx

    record: dict[str, Any] = {"iclx": iclx.__version__, **git_state(Path(iclx.__file__).resolve().parents[1])}
    record["python"] = platform.python_version()
    record.update(library_versions())
    record["platform"] = platform.platform(terse=True)
    record["cpu"] = cpu_model()
    record["cpus"] = usable_cpus()
    record.update(torch_devices())
    record["hostname"] = socket.gethostname()
    return {k: v for k, v in record.items() if v is not None}


def git_state(root: Path) -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` when ``root`` is a git checkout (iclx installed editable or
    run from source); empty when iclx is an installed wheel, which has no ``.git`` of its own (so a
    virtualenv inside some other repository does not report that repository's commit)."""
    if not (root / ".git").exists():
        return {}
    try:
        commit = _git(root, "rev-parse", "HEAD")
        # Tracked changes and untracked files both change what runs; ignored files (outputs) do not.
        dirty = bool(_git(root, "status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": dirty}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def library_versions() -> dict[str, str | None]:
    """The version of each library in LIBRARIES: the imported module's, else the installed one's."""
    versions = {}
    for dist, key in LIBRARIES.items():
        module = sys.modules.get(key)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = None
        versions[key] = str(version) if version is not None else None
    return versions


def cpu_model() -> str | None:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def usable_cpus() -> int | None:
    """Cores this process may run on (its affinity mask, which a scheduler or container narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def torch_devices() -> dict[str, Any]:
    """``torch_threads`` and the GPU (``gpu``, ``gpu_count``), only when torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_num_threads"):
        return {}
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_count"] = torch.cuda.device_count()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out["gpu"] = "mps"
    return out


def describe(record: dict[str, Any]) -> str:
    """One line for people: ``iclx 0.1.0 (git 1a2b3c4, dirty), python 3.12.3, torch 2.13.0, ...``."""
    parts = [f"iclx {record.get('iclx', '?')}"]
    if "git_commit" in record:
        parts[0] += f" (git {str(record['git_commit'])[:10]}{', dirty' if record.get('git_dirty') else ''})"
    for key in ("python", *LIBRARIES.values()):
        if key in record:
            parts.append(f"{key} {record[key]}")
    if "cpu" in record:
        parts.append(f"cpu {record['cpu']}" + (f" ({record['cpus']} cores usable)" if "cpus" in record else ""))
    if "gpu" in record:
        parts.append(f"gpu {record['gpu']}" + (f" x{record['gpu_count']}" if "gpu_count" in record else ""))
    if "torch_threads" in record:
        parts.append(f"{record['torch_threads']} torch threads")
    if "hostname" in record:
        parts.append(f"host {record['hostname']}")
    return ", ".join(parts)
