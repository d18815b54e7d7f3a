"""``text_files``: local ``.txt``/``.md``/``.jsonl``/``.jsonl.gz`` files matched by globs.

How a text file splits into documents is config (``split``): ``file`` (one document per file),
``line`` (one per non-empty line), ``blank_line`` (paragraphs separated by empty lines) or
``regex``: a new document starts at every line matching ``boundary``, e.g. WikiText's article
titles `` = Title = ``. A JSONL record is one document, its text in ``text_field``.

Files are read in ``encoding`` (UTF-8 by default). Bytes that do not decode are replaced (U+FFFD)
or the file/record is skipped (``encoding_errors``); either way the log says how many and where.
``strict`` stops at the first one, naming its line and byte.

A file that is not text at all (NUL bytes, or more than ``NON_TEXT_SHARE`` of it undecodable: a
binary that a glob caught) is skipped with a warning naming it, or stops the run (``non_text``).
"""

from __future__ import annotations

import codecs
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
NonText = Literal["skip", "error"]
# Text in the wrong encoding has a few undecodable bytes (accents); a binary has them everywhere
# (a quarter of /bin/ls, about half of random bytes). A share above this is not text.
NON_TEXT_SHARE = 0.2


@register("data", "text_files")
class TextFiles(CorpusSource):
    def __init__(
        self,
        paths: str | list[str],
        split: Split = "file",
        boundary: str | None = None,
        text_field: str = "text",
        encoding_errors: EncodingErrors = "replace",
        encoding: str = "utf-8",
        non_text: NonText = "skip",
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
        try:
            self.encoding = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigError(f"data.encoding: unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
        self.encoding_errors = encoding_errors
        self.non_text = non_text
        self.undecodable: list[str] = []  # files or records with undecodable bytes, for the log
        self.not_text: list[str] = []  # files skipped as not text, for the log

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
        self.undecodable, self.not_text = [], []
        for path in self.files():
            if path.name.endswith(JSONL_SUFFIXES):
                yield from self._jsonl_documents(path)
            else:
                raw = path.read_bytes()
                text = None if self._skip_non_text(raw, path) else self._decode(raw, path)
                if text is not None:
                    for i, doc in enumerate(split_text(text, self.split, self.boundary)):
                        yield Document(text=doc, id=f"{path.name}:{i}", meta={"source": path.name})
        if self.not_text:
            log.warning(
                "data: %d file(s) are not text (NUL bytes, or over %d%% not valid %s: set data.encoding if that is text), "
                "skipped (data.non_text=error stops instead): %s",
                len(self.not_text),
                round(NON_TEXT_SHARE * 100),
                self.encoding,
                ", ".join(self.not_text),
            )
        if self.undecodable:
            action = {"replace": "undecodable bytes replaced by U+FFFD", "skip": "skipped"}[self.encoding_errors]
            shown = ", ".join(self.undecodable[:5]) + (" ..." if len(self.undecodable) > 5 else "")
            log.warning("data: %d file(s)/record(s) not valid %s (%s): %s", len(self.undecodable), self.encoding, action, shown)

    def _skip_non_text(self, raw: bytes, path: Path) -> bool:
        """Whether ``raw`` (a whole file) is not text and is skipped; with ``non_text=error`` it stops the run."""
        text = raw.decode(self.encoding, errors="replace")
        undecodable = text.count("\ufffd")  # roughly one U+FFFD per undecodable byte
        if "\x00" in text:
            reason = "it holds NUL bytes"
        elif undecodable > NON_TEXT_SHARE * max(1, len(raw)):
            # text in a legacy encoding of a non-Latin script looks like this too: say how to read it
            reason = f"{undecodable / len(raw):.0%} of its bytes are not valid {self.encoding}; if it is text, set data.encoding"
        else:
            return False
        if self.non_text == "error":
            raise DataError(f"{path}: not a text file ({reason}); remove it from data.paths, or set data.non_text=skip")
        self.not_text.append(str(path))
        return True

    def _decode(self, raw: bytes, path: Path, lineno: int | None = None) -> str | None:
        """``raw`` decoded: a whole file, or its line ``lineno`` (a JSONL record)."""
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as e:
            if self.encoding_errors == "strict":
                line = lineno if lineno is not None else raw.count(b"\n", 0, e.start) + 1
                column = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
                raise DataError(
                    f"{path}:{line}: not valid {self.encoding} at byte {column} of the line (0x{raw[e.start]:02x}); "
                    "if the file is in another encoding, set data.encoding (e.g. data.encoding=latin-1), "
                    "else data.encoding_errors=replace or skip"
                ) from e
            self.undecodable.append(str(path) if lineno is None else f"{path}:{lineno}")
            return raw.decode(self.encoding, errors="replace") if self.encoding_errors == "replace" else None

    def _jsonl_documents(self, path: Path) -> Iterator[Document]:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                line = self._decode(raw, path, lineno)
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
