"""The curation's input (``curate.input``): HTML, WARC or JSONL files, or the run's ``data`` source.

``paths`` are files, folders or globs; a file's format is its suffix (``.html``/``.htm``,
``.warc``/``.warc.gz``, ``.jsonl``/``.jsonl.gz``), a folder stands for the files of those formats
in it (recursively). ``paths: null`` curates whatever ``data`` names (``data=bundled``,
``data=text_files ...``). Every path is checked before anything runs: a missing one, a glob that
matches nothing or a file of another format is one line naming it.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclx.errors import DataError

FORMATS = {".html": "html", ".htm": "html", ".warc": "warc", ".warc.gz": "warc", ".jsonl": "jsonl", ".jsonl.gz": "jsonl"}


@dataclass(frozen=True)
class InputSpec:
    """The keys of ``curate.input``."""

    paths: str | list[str] | None = None  # files, folders, globs; null: the `data` source
    text_field: str = "text"  # JSONL: the field holding a document's text


@dataclass(frozen=True)
class InputFile:
    path: str
    name: str  # the path shown in reports and document ids (relative to its folder or glob root)
    format: str


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    return None


def input_files(spec: InputSpec) -> list[InputFile]:
    """Every input file, in a stable order; a DataError names the path that fails."""
    patterns = [spec.paths] if isinstance(spec.paths, str) else list(spec.paths or [])
    if not patterns:
        raise DataError("curate.input.paths is empty: give files, folders or globs (or null to curate the data source)")
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and file_format(p))
            if not matches:
                raise DataError(f"curate.input.paths: the folder {path} holds no {'/'.join(FORMATS)} file")
            root = path
        elif any(c in pattern for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(f"curate.input.paths: '{pattern}' matches no file")
            root = _static_root(pattern)
        elif path.is_file():
            matches, root = [path], path.parent
        else:
            raise DataError(f"curate.input.paths: {path} does not exist")
        for p in matches:
            fmt = file_format(p)
            if fmt is None:
                raise DataError(f"curate.input.paths: {p} is not an HTML, WARC or JSONL file ({', '.join(FORMATS)})")
            key = str(p.resolve())
            if key not in found:
                try:
                    name = str(p.relative_to(root))
                except ValueError:
                    name = p.name
                found[key] = InputFile(path=key, name=name, format=fmt)
    return list(found.values())


def _static_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(pattern).expanduser().parts
    root: list[str] = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def fingerprint(files: list[InputFile]) -> list[Any]:
    """What identifies the input beyond the config: each file's path, size and modification time."""
    out = []
    for f in files:
        stat = Path(f.path).stat()
        out.append([f.path, stat.st_size, stat.st_mtime_ns])
    return out
