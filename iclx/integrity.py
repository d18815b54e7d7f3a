"""Checksums of an artifact's files, recorded at build time and checked before every use.

The common silent corruption is a file overwritten in place with the same size (a stray
``dd``, a bad copy, a disk error), so sizes alone are not enough. Every file gets its size and
SHA-256 at build time. Before a run uses an artifact, every size is compared, and every file up to
``FULL_HASH_LIMIT`` is hashed in full; bigger files (packed shards, large checkpoints) are hashed
by ``SAMPLED_BLOCKS`` blocks spread over the file, so checking a multi-GB artifact stays quick.
``iclx cache verify`` hashes everything in full.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

FULL_HASH_LIMIT = 64 << 20  # bytes: files up to this size are hashed in full on every use
SAMPLED_BLOCKS = 32
BLOCK = 1 << 20
CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sampled_sha256(path: Path, size: int) -> str:
    """The hash of ``SAMPLED_BLOCKS`` blocks of ``BLOCK`` bytes, first and last included, evenly spaced."""
    digest = hashlib.sha256()
    last = max(0, size - BLOCK)
    with open(path, "rb") as f:
        for i in range(SAMPLED_BLOCKS):
            f.seek(last * i // (SAMPLED_BLOCKS - 1))
            digest.update(f.read(BLOCK))
    return digest.hexdigest()


def file_records(folder: Path, exclude: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """``{relative path: {size, sha256[, sampled]}}`` of every file under ``folder``."""
    records = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name in exclude:
            continue
        size = path.stat().st_size
        record: dict[str, Any] = {"size": size, "sha256": sha256_file(path)}
        if size > FULL_HASH_LIMIT:
            record["sampled"] = sampled_sha256(path, size)
        records[name] = record
    return records


def damage(folder: Path, manifest_name: str, *, full: bool = False) -> str | None:
    """What is wrong with the artifact in ``folder`` compared with its manifest, in words, or None.

    ``full`` hashes every file in full (``iclx cache verify``); otherwise files over
    ``FULL_HASH_LIMIT`` are checked by sampled blocks.
    """
    try:
        manifest = json.loads((folder / manifest_name).read_text())
    except FileNotFoundError:
        return f"{manifest_name} is missing"
    except (OSError, ValueError) as e:
        return f"{manifest_name} cannot be read ({type(e).__name__})"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return f"{manifest_name} records no checksums (built by an older iclx)"
    for name, record in files.items():
        problem = file_damage(folder / name, record, full=full)
        if problem is not None:
            return f"{name} {problem}"
    return None


def file_damage(path: Path, record: dict[str, Any], *, full: bool = False) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if size != record.get("size"):
        return f"has {size:,} bytes, {record.get('size'):,} when built"
    if full or size <= FULL_HASH_LIMIT:
        same = sha256_file(path) == record.get("sha256")
    else:
        same = sampled_sha256(path, size) == record.get("sampled")
    return None if same else "was changed after the build (checksum differs)"
