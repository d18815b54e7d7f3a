"""Content-keyed cache of expensive stage outputs (tokenizers, shards, orderings, checkpoints).

An artifact is a folder ``<cache_dir>/<kind>/<key>`` where ``key`` hashes its material: exactly
the config it depends on, the keys of its inputs and its builder's code version (what each kind
depends on is declared in ``iclx.lineage``). It becomes visible only when complete: it is
built in ``<key>.partial`` under a file lock and renamed into place, so a crashed build never looks
finished and two jobs of one sweep never build the same artifact at once. A resumable builder
(pre-training) finds its own half-done ``.partial`` folder again after a crash.

The manifest records every file's size and SHA-256 (``iclx.integrity``); a run that uses an
artifact checks them first, so a file truncated, deleted or overwritten since the build is named in
one warning and the artifact is rebuilt, never used. The folder's modification time is its last use
(``iclx cache ls``, ``iclx cache gc --older-than``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from iclx.errors import DiskFull
from iclx.integrity import damage, file_records

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
        self._checked: dict[Path, str | None] = {}  # artifact folder -> its damage (None: whole), once per run
        self._reported: dict[Path, str] = {}  # the damage already warned about

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
            return self._touch(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(final, kind, key):
            self._checked.pop(final, None)  # look again: another job may have built or rebuilt it
            if self.reusable(kind, key):  # another job built it while we waited for the lock
                log.info("reusing %s artifact %s built by another job (%s)", kind, key, final)
                return self._touch(final)
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
                "files": file_records(partial, exclude={MANIFEST}),
            }
            write_json_atomic(partial / MANIFEST, manifest)
            if final.exists():  # force=true or damaged: replace the old one only now that the new one is whole
                stale = final.with_name(f"{final.name}.stale-{os.getpid()}")
                final.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            partial.rename(final)
            self._rebuilt.add(final)
            self._checked[final] = None
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

    def lock_holder(self, kind: str, key: str) -> str | None:
        """The pid of the process building this artifact now, or None when no process holds its lock."""
        with self.unless_locked(kind, key) as free:
            if free:
                return None
        owner = Path(f"{self.path(kind, key)}.lock.pid")
        return (owner.read_text().strip() if owner.is_file() else "") or "unknown"

    @contextlib.contextmanager
    def unless_locked(self, kind: str, key: str) -> Iterator[bool]:
        """Hold the artifact's lock for the block (True), or False at once when a running job holds it."""
        from filelock import FileLock, Timeout

        lock_file = Path(f"{self.path(kind, key)}.lock")
        if not lock_file.parent.is_dir():
            yield True
            return
        lock = FileLock(str(lock_file))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def reusable(self, kind: str, key: str) -> bool:
        """Built, whole (its files match the manifest's checksums) and not to be rebuilt (force)."""
        final = self.path(kind, key)
        if not (final / MANIFEST).is_file():
            return False
        if self.force and final not in self._rebuilt:
            return False
        return self.damage(kind, key) is None

    def damage(self, kind: str, key: str) -> str | None:
        """What is wrong with a built artifact (a file missing, truncated or changed since its build),
        or None; checked once per run, with a warning naming the artifact the first time."""
        final = self.path(kind, key)
        if final not in self._checked:
            problem = damage(final, MANIFEST)
            self._checked[final] = problem
            if problem is not None and self._reported.get(final) != problem:
                self._reported[final] = problem
                log.warning("%s artifact %s is damaged (%s): it will not be used; it is rebuilt when a stage "
                            "needs it (%s)", kind, key, problem, final)
        return self._checked[final]

    @staticmethod
    def _touch(final: Path) -> Path:
        """Record a use: the folder's modification time is the artifact's last use (``iclx cache``)."""
        with contextlib.suppress(OSError):
            os.utime(final)
        return final

    def rebuild_reason(self, kind: str, key: str, material: Mapping[str, Any]) -> str:
        """Why this artifact is built: what differs from the closest one of its kind in the store."""
        final = self.path(kind, key)
        if self.force and (final / MANIFEST).is_file() and final not in self._rebuilt:
            return "force=true"
        if self._checked.get(final):
            return f"the cached one is damaged: {self._checked[final]}"
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
def atomic_open(path: str | Path, mode: str = "w", *, sync: bool = False, **kwargs: Any) -> Iterator[Any]:
    """A file that appears at ``path`` only when the block ends without an error: readers see
    the old file or the new one, never half of one (``sync``: not even after a power cut). A full
    disk is one ``DiskFull`` error naming the file; the old file stays as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFull(f"the disk is full while writing {path}: the previous version is kept; free space and run again") from e
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    with atomic_open(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
