"""``iclx cache ls|verify|gc``: what the artifact cache holds, whether it is whole, and cleaning it."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclx.commands import UsageError, command_parser
from iclx.errors import DataError
from iclx.registry import register

DEFAULT_CACHE = ".cache/iclx"  # as paths.cache_dir in conf/config.yaml, without ICLX_CACHE_DIR
AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@register("command", "cache")
def cache(argv: list[str]) -> int:
    """List, verify or clean the artifact cache (tokenizers, packed shards, models, retrievers...).

    iclx cache ls                      every artifact: kind, key, size, last use, state, key material
    iclx cache verify [ARTIFACT ...]   hash every file in full against the checksums of its build
    iclx cache gc --broken             remove damaged artifacts and leftovers of killed builds
    iclx cache gc --older-than 30d     also remove artifacts not used for 30 days (s, m, h, d, w)

    The cache is paths.cache_dir: $ICLX_CACHE_DIR, else .cache/iclx under the current folder
    (--cache-dir DIR for another). An ARTIFACT is KIND/KEY, a KIND, or an artifact folder. gc never
    removes what a running job holds the lock of (an artifact being built); --dry-run lists what it
    would remove. Exit status 1 when verify finds a damaged artifact.
    """
    parser = command_parser("cache", cache.__doc__)
    parser.add_argument("action", choices=["ls", "verify", "gc"])
    parser.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help="KIND/KEY, KIND or a folder (verify, ls)")
    parser.add_argument("--cache-dir", type=Path, help="the cache folder (default: $ICLX_CACHE_DIR, else .cache/iclx)")
    parser.add_argument("--older-than", type=_age, metavar="AGE", help="gc: remove artifacts last used longer ago, e.g. 30d")
    parser.add_argument("--broken", action="store_true", help="gc: remove damaged artifacts and leftover .partial folders")
    parser.add_argument("--dry-run", action="store_true", help="gc: list what would be removed, remove nothing")
    parser.add_argument("--long", action="store_true", help="ls: print each artifact's key material in full")
    args = parser.parse_intermixed_args(argv)

    from iclx.artifacts import ArtifactStore

    store = ArtifactStore(_cache_dir(args.cache_dir))
    if args.action == "gc":
        if args.artifacts:
            raise UsageError("cache: gc takes no ARTIFACT; it chooses by --broken and --older-than")
        if not args.broken and args.older_than is None:
            raise UsageError("cache: gc needs --broken, --older-than AGE or both (see iclx cache --help)")
        return _gc(store, args.broken, args.older_than, args.dry_run)
    if args.older_than is not None or args.broken or args.dry_run:
        raise UsageError(f"cache: --older-than, --broken and --dry-run are options of gc, not of {args.action}")
    entries = _select(store, args.artifacts)
    return _verify(store, entries) if args.action == "verify" else _list(store, entries, args.long)


@dataclass
class Entry:
    kind: str
    key: str
    folder: Path
    partial: bool  # a build that has not finished (or was killed)

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.folder.name}"


def entries_of(store: Any) -> list[Entry]:
    """Every artifact folder in the store, finished or partial."""
    found = []
    for kind_dir in sorted(p for p in store.root.iterdir() if p.is_dir()) if store.root.is_dir() else []:
        for folder in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            key, dot, rest = folder.name.partition(".")
            if rest.startswith("stale-"):  # left by a replace that was killed: never an artifact
                found.append(Entry(kind_dir.name, key, folder, partial=True))
            elif not dot or rest == "partial":
                found.append(Entry(kind_dir.name, key, folder, partial=rest == "partial"))
    return found


def _select(store: Any, names: list[str]) -> list[Entry]:
    entries = entries_of(store)
    if not names:
        return entries
    chosen: list[Entry] = []
    for name in names:
        path = Path(name)
        match = [e for e in entries if e.folder.resolve() == path.resolve()] if path.is_dir() else []
        match = match or [e for e in entries if name in (e.kind, e.name, f"{e.kind}/{e.key}")]
        if not match:
            kinds = sorted({e.kind for e in entries})
            raise DataError(f"cache: no artifact '{name}' in {store.root} (kinds there: {', '.join(kinds) or 'none'})")
        chosen += [e for e in match if e not in chosen]
    return chosen


def _list(store: Any, entries: list[Entry], long: bool) -> int:
    from iclx.tables import format_table

    if not entries:
        print(f"{store.root}: no artifacts")
        return 0
    rows, total = [], 0
    for e in entries:
        size = folder_size(e.folder)
        total += size
        manifest = _manifest(e.folder)
        material = manifest.get("material") if isinstance(manifest, dict) else None
        rows.append([e.kind, e.folder.name, human_size(size), _when(last_use(e)), _state(store, e),
                     json.dumps(material) if long else short_material(material)])
    print(format_table(["kind", "key", "size", "last used", "state", "material"], rows))
    print(f"{len(entries)} artifacts, {human_size(total)} in {store.root}")
    return 0


def _verify(store: Any, entries: list[Entry]) -> int:
    from iclx.artifacts import MANIFEST
    from iclx.integrity import damage

    damaged = 0
    for e in entries:
        if e.partial:
            print(f"{e.name}: unfinished build, not checked")
            continue
        problem = damage(e.folder, MANIFEST, full=True)
        damaged += problem is not None
        print(f"{e.name}: {'ok' if problem is None else 'DAMAGED: ' + problem}")
    print(f"{len(entries)} artifacts checked, {damaged} damaged" + (" (iclx cache gc --broken removes them)" if damaged else ""))
    return 1 if damaged else 0


def _gc(store: Any, broken: bool, older_than: float | None, dry_run: bool) -> int:
    now, removed, freed = time.time(), 0, 0
    for e in entries_of(store):
        reason = _gc_reason(e, broken, older_than, now)
        if reason is None:
            continue
        with store.unless_locked(e.kind, e.key) as free:
            if not free:
                print(f"kept {e.name}: a running job holds its lock ({reason})")
                continue
            size = folder_size(e.folder)
            print(f"{'would remove' if dry_run else 'removed'} {e.name} ({human_size(size)}; {reason})")
            if not dry_run:
                shutil.rmtree(e.folder)
            removed, freed = removed + 1, freed + size
    verb = "would free" if dry_run else "freed"
    print(f"{removed} artifacts, {human_size(freed)} {verb} in {store.root}")
    return 0


def _gc_reason(e: Entry, broken: bool, older_than: float | None, now: float) -> str | None:
    """Why gc removes this artifact, or None to keep it."""
    from iclx.artifacts import MANIFEST
    from iclx.integrity import damage

    if older_than is not None and now - last_use(e) > older_than:
        return f"last used {_when(last_use(e))}"
    if not broken:
        return None
    if e.partial and resumable(e.folder):
        print(f"kept {e.name}: a killed pre-training that the same command resumes (--older-than removes it)")
        return None
    if e.partial:
        return "unfinished build"
    problem = damage(e.folder, MANIFEST)
    return None if problem is None else f"damaged: {problem}"


def last_use(e: Entry) -> float:
    """A finished artifact's folder is touched when a run uses it; an unfinished one was last used
    when its newest file was written."""
    if not e.partial:
        return e.folder.stat().st_mtime
    return max([e.folder.stat().st_mtime, *(p.stat().st_mtime for p in e.folder.rglob("*"))])


def _state(store: Any, e: Entry) -> str:
    holder = store.lock_holder(e.kind, e.key)
    if holder is not None:
        return f"building (pid {holder})"
    if e.partial:
        return "unfinished, resumable" if resumable(e.folder) else "unfinished"
    return "ok" if (e.folder / "artifact.json").is_file() else "no manifest"


def resumable(folder: Path) -> bool:
    """An unfinished build that holds a checkpoint to continue from (pre-training), or a curation
    with finished datatrove tasks (its next build skips them)."""
    return any(folder.glob("checkpoints/*.ckpt")) or any(folder.glob("work/logs/*/completions/*"))


def short_material(material: Any, width: int = 60) -> str:
    """The key material's config as ``a.b=1 c=x ...``, cut to ``width`` characters."""
    if not isinstance(material, dict):
        return ""
    parts = [f"{k}={v}" for k, v in _flat(material.get("config"), "")]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."


def _flat(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, value)] if prefix else []


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _manifest(folder: Path) -> Any:
    try:
        return json.loads((folder / "artifact.json").read_text())
    except (OSError, ValueError):
        return None


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _age(text: str) -> float:
    match = AGE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"cache: --older-than takes an age such as 30d, 12h or 2w, got '{text}'")
    return float(match.group(1)) * SECONDS[match.group(2)]


def _cache_dir(given: Path | None) -> Path:
    import os

    folder = given or Path(os.environ.get("ICLX_CACHE_DIR") or DEFAULT_CACHE)
    if not folder.is_dir():
        raise DataError(f"cache: no cache folder at {folder} (set --cache-dir or ICLX_CACHE_DIR)")
    return folder
