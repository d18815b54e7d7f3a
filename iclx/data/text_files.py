"""``text_files``: local ``.txt``/``.md``/``.jsonl``/``.jsonl.gz`` files matched by globs.

How a text file splits into documents is config (``split``): ``file`` (one document per file),
``line`` (one per non-empty line), ``blank_line`` (paragraphs separated by empty lines) or
``regex``: a new document starts at every line matching ``boundary``, e.g. WikiText's article
titles `` = Title = ``. A JSONL record is one document, its text in ``text_field``.

Bytes that are not UTF-8 are replaced (U+FFFD) or the file/record is skipped (``encoding_errors``);
either way the log says how many and where. ``strict`` stops at the first one.
"""

from __future__ import annotations

import glob
import gzip
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from iclx.data.corpus import CorpusSource
from iclx.data.document import Document
from iclx.errors import ConfigError, DataError
from iclx.registry import register

log = logging.getLogger("iclx")

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
Split = Literal["file", "line", "blank_line", "regex"]
EncodingErrors = Literal["replace", "skip", "strict"]


@register("data", "text_files")
class TextFiles(CorpusSource):
    def __init__(
        self,
        paths: str | list[str],
        split: Split = "file",
        boundary: str | None = None,
        text_field: str = "text",
        encoding_errors: EncodingErrors = "replace",
    ):
        self.patterns = [paths] if isinstance(paths, str) else list(paths)
        if not self.patterns:
            raise ConfigError("data.paths is empty: give at least one file or glob")
        self.split = split
        self.boundary: re.Pattern[str] | None = None
        if split == "regex":
            if not boundary:
                raise ConfigError("data.boundary is required with data.split=regex (a regex matching a document's first line)")
            try:
                self.boundary = re.compile(boundary, re.MULTILINE)
            except re.error as e:
                raise ConfigError(f"data.boundary: invalid regex {boundary!r}: {e}") from e
        self.text_field = text_field
        self.encoding_errors = encoding_errors
        self.invalid_utf8: list[str] = []  # files or records with undecodable bytes, for the log

    def files(self) -> list[Path]:
        found: list[Path] = []
        for pattern in self.patterns:
            matches = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise DataError(f"data.paths: '{pattern}' matches no file")
            for p in matches:
                if not p.name.endswith(TEXT_SUFFIXES + JSONL_SUFFIXES):
                    raise DataError(f"data.paths: {p} is not a {'/'.join(TEXT_SUFFIXES + JSONL_SUFFIXES)} file")
            found += [p for p in matches if p not in found]
        return found

    def fingerprint(self) -> Any:
        return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files()]

    def describe(self) -> str:
        return ", ".join(self.patterns)

    def documents(self) -> Iterator[Document]:
        self.invalid_utf8 = []
        for path in self.files():
            if path.name.endswith(JSONL_SUFFIXES):
                yield from self._jsonl_documents(path)
            else:
                text = self._decode(path.read_bytes(), str(path))
                if text is not None:
                    for i, doc in enumerate(split_text(text, self.split, self.boundary)):
                        yield Document(text=doc, id=f"{path.name}:{i}", meta={"source": path.name})
        if self.invalid_utf8:
            action = {"replace": "undecodable bytes replaced by U+FFFD", "skip": "skipped"}[self.encoding_errors]
            shown = ", ".join(self.invalid_utf8[:5]) + (" ..." if len(self.invalid_utf8) > 5 else "")
            log.warning("data: %d file(s)/record(s) not valid UTF-8 (%s): %s", len(self.invalid_utf8), action, shown)

    def _decode(self, raw: bytes, where: str) -> str | None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if self.encoding_errors == "strict":
                raise DataError(f"{where}: not valid UTF-8 at byte {e.start} (set data.encoding_errors=replace or skip)") from e
            self.invalid_utf8.append(where)
            return raw.decode("utf-8", errors="replace") if self.encoding_errors == "replace" else None

    def _jsonl_documents(self, path: Path) -> Iterator[Document]:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                line = self._decode(raw, f"{path}:{lineno}")
                if line is None or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not a JSON object ({e.msg})") from e
                if not isinstance(record, dict) or not isinstance(record.get(self.text_field), str):
                    raise DataError(f"{path}:{lineno}: no string field '{self.text_field}' (set data.text_field)")
                meta = {k: v for k, v in record.items() if k != self.text_field and isinstance(v, (str, int, float, bool))}
                meta["source"] = path.name
                yield Document(text=record[self.text_field], id=f"{path.name}:{lineno}", meta=meta)


def split_text(text: str, split: Split, boundary: re.Pattern[str] | None = None) -> list[str]:
    """The documents of one text file (empty ones dropped)."""
    if split == "file":
        parts = [text]
    elif split == "line":
        parts = text.splitlines()
    elif split == "blank_line":
        parts = re.split(r"\n[ \t]*\n", text)
    else:
        assert boundary is not None
        starts = sorted({0, *(m.start() for m in boundary.finditer(text))})
        parts = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return [p.strip("\n") for p in parts if p.strip()]
