"""Content-keyed cache of expensive stage outputs (tokenizers, shards, orderings, checkpoints).

An artifact is a folder ``<cache_dir>/<kind>/<key>`` where ``key`` hashes exactly the config
sections it depends on (and the keys of its inputs). It becomes visible only when complete: it is
built in ``<key>.partial`` under a file lock and renamed into place, so a crashed build never looks
finished and two jobs of one sweep never build the same artifact at once. A resumable builder
(pre-training) finds its own half-done ``.partial`` folder again after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("iclx")

MANIFEST = "artifact.json"


def config_key(*parts: Any) -> str:
    """A short stable hash of config sections (plain data or OmegaConf nodes) and input keys."""
    from iclx.registry import _plain

    blob = json.dumps([_plain(p) for p in parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ArtifactStore:
    def __init__(self, root: str | Path, force: bool = False):
        self.root = Path(root)
        self.force = force
        self._rebuilt: set[Path] = set()  # with force=true, rebuild each artifact once per run

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / MANIFEST).is_file()

    def get_or_build(
        self,
        kind: str,
        key: str,
        builder: Callable[[Path], None],
        *,
        describe: Mapping[str, Any] | None = None,
        resumable: bool = False,
    ) -> Path:
        """The folder of artifact ``kind/key``, built by ``builder(folder)`` if it is missing.

        ``describe`` (the config sections behind the key) is stored beside it for humans.
        ``resumable`` keeps a half-built folder from an earlier crash for the builder to continue;
        otherwise a leftover partial folder is discarded first.
        """
        from filelock import FileLock

        final = self.path(kind, key)
        if self._reusable(final):
            log.info("reusing %s artifact %s (%s)", kind, key, final)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if self._reusable(final):  # another job built it while we waited for the lock
                log.info("reusing %s artifact %s built by another job (%s)", kind, key, final)
                return final
            partial = final.with_name(final.name + ".partial")
            if partial.exists() and not resumable:
                shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
            log.info("building %s artifact %s", kind, key)
            start = time.perf_counter()
            builder(partial)
            manifest = {
                "kind": kind,
                "key": key,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "build_seconds": round(time.perf_counter() - start, 3),
                "config": describe or {},
            }
            write_json_atomic(partial / MANIFEST, manifest)
            if final.exists():  # force=true: replace the old one only now that the new one is whole
                stale = final.with_name(f"{final.name}.stale-{os.getpid()}")
                final.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            partial.rename(final)
            self._rebuilt.add(final)
            log.info("built %s artifact %s in %.1fs (%s)", kind, key, manifest["build_seconds"], final)
            return final

    def _reusable(self, final: Path) -> bool:
        if not (final / MANIFEST).is_file():
            return False
        return not self.force or final in self._rebuilt


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """A file that appears at ``path`` only when the block ends without an error: readers see
    the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    with atomic_open(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
