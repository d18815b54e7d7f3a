"""Content-keyed cache of expensive stage outputs (tokenizers, shards, orderings, checkpoints).

An artifact is a folder ``<cache_dir>/<kind>/<key>`` where ``key`` hashes its material: exactly
the config it depends on, the keys of its inputs and its builder's code version (what each kind
depends on is declared in ``iclx.lineage``). It becomes visible only when complete: it is
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
        material: Mapping[str, Any] | None = None,
        resumable: bool = False,
    ) -> Path:
        """The folder of artifact ``kind/key``, built by ``builder(folder)`` if it is missing.

        ``material`` is what ``key`` hashes (see ``iclx.lineage``); it is the manifest's content, and
        a rebuild logs how it differs from the closest artifact of the same kind already here.
        ``resumable`` keeps a half-built folder from an earlier crash for the builder to continue;
        otherwise a leftover partial folder is discarded first.
        """
        final = self.path(kind, key)
        if self.reusable(kind, key):
            log.info("reusing %s artifact %s (%s)", kind, key, final)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(final, kind, key):
            if self.reusable(kind, key):  # another job built it while we waited for the lock
                log.info("reusing %s artifact %s built by another job (%s)", kind, key, final)
                return final
            partial = final.with_name(final.name + ".partial")
            if partial.exists() and not resumable:
                shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
            material = dict(material or {})
            log.info("building %s artifact %s (%s)", kind, key, self.rebuild_reason(kind, key, material))
            start = time.perf_counter()
            try:
                builder(partial)
            except BaseException:
                # a failed build leaves nothing, but what a resumable builder can continue from
                if not resumable or not any(partial.iterdir()):
                    shutil.rmtree(partial, ignore_errors=True)
                raise
            manifest = {
                "kind": kind,
                "key": key,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "build_seconds": round(time.perf_counter() - start, 3),
                "material": material,
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

    @contextlib.contextmanager
    def _lock(self, final: Path, kind: str, key: str) -> Iterator[None]:
        """The artifact's file lock; while another process holds it, a log line every 30 s names
        the artifact and the holder's pid (kept beside the lock)."""
        from filelock import FileLock, Timeout

        lock, owner = FileLock(str(final) + ".lock"), Path(str(final) + ".lock.pid")
        while True:
            try:
                lock.acquire(timeout=30)
                break
            except Timeout:
                holder = owner.read_text().strip() if owner.is_file() else "unknown"
                log.info("waiting for the %s artifact %s: process %s is building it", kind, key, holder)
        try:
            owner.write_text(str(os.getpid()))
            yield
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    def reusable(self, kind: str, key: str) -> bool:
        final = self.path(kind, key)
        if not (final / MANIFEST).is_file():
            return False
        return not self.force or final in self._rebuilt

    def rebuild_reason(self, kind: str, key: str, material: Mapping[str, Any]) -> str:
        """Why this artifact is built: what differs from the closest one of its kind in the store."""
        if self.force and (self.path(kind, key) / MANIFEST).is_file():
            return "force=true"
        closest: tuple[int, list[str]] | None = None
        for manifest_file in sorted((self.root / kind).glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                other = json.loads(manifest_file.read_text()).get("material")
            except (OSError, ValueError):
                continue
            if not isinstance(other, dict):
                continue
            changes = material_changes(other, material)
            if closest is None or len(changes) < closest[0]:
                closest = (len(changes), changes)
        if closest is None:
            return f"no {kind} artifact in the cache yet"
        return "; ".join(closest[1][:4]) + (f"; {len(closest[1]) - 4} more changes" if len(closest[1]) > 4 else "")


def material_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed from ``old`` to ``new`` material, in words: ``code version 1 -> 2``,
    ``config changed: model.d_model``, ``upstream tokenizer changed``."""
    changes = []
    if old.get("version") != new.get("version"):
        changes.append(f"code version {old.get('version')} -> {new.get('version')}")
    changed = _changed_paths(old.get("config"), new.get("config"), "")
    if changed:
        changes.append("config changed: " + ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else ""))
    for up in sorted(set(old.get("upstream") or {}) | set(new.get("upstream") or {})):
        if (old.get("upstream") or {}).get(up) != (new.get("upstream") or {}).get(up):
            changes.append(f"upstream {up} changed")
    return changes


def _changed_paths(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _changed_paths(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [prefix or "(all)"]


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
