"""Tasks read from local files, configured per dataset rather than coded: ``jsonl``, ``csv``
(``tsv`` is ``csv`` with a tab delimiter) and ``label_text`` (``<label> <text>`` lines, SST-2's
format).

Each names a ``pool`` file (demonstrations) and a ``queries`` file; they may be the same file, and
then an example is never its own demonstration (ids are ``<file name>:<line>``, equal in both).
Labels map to words through ``verbalizer`` (``{0: negative, 1: positive}``); without one the
label text is the output. ``open_ended: true`` makes the outputs free answers, scored by greedy
generation and exact match instead of over a label set. Files are read in ``encoding`` (UTF-8 by
default); a byte that does not decode, or a CSV row with more or fewer fields than the header,
stops the run naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from iclx.errors import ConfigError, DataError
from iclx.registry import register
from iclx.tasks.base import Task, label_set, resolve_path, subsample, verbalize
from iclx.tasks.example import Example
from iclx.tasks.template import Template

Record = tuple[str, int, dict[str, Any]]  # (file name, line number, fields)


def read_text(path: Path, encoding: str) -> str:
    """The whole file decoded; bytes that do not decode stop the run with the line, the byte and the key."""
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
        raise DataError(
            f"{path}:{line}: not valid {encoding} at byte {column} of the line (0x{raw[e.start]:02x}); "
            "if the file is in another encoding, set task.encoding (e.g. task.encoding=latin-1)"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark (spreadsheet exports) is not part of the first field


def read_jsonl(path: Path, encoding: str = "utf-8") -> Iterator[Record]:
    for number, line in enumerate(io.StringIO(read_text(path, encoding), newline=None), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield path.name, number, record


def read_csv(path: Path, delimiter: str, encoding: str = "utf-8") -> Iterator[Record]:
    """Rows as ``{column: value}``; a row whose field count differs from the header's stops the run
    (csv.DictReader would pad it with None or hide the extra fields under a None key)."""
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    row_number = 0  # data rows, blank lines not counted; line numbers count the header as line 1
    for row in reader:
        if not row:
            continue  # a blank line
        row_number += 1
        if len(row) != len(header):
            hint = f"; quote fields that contain {delimiter!r}" if len(row) > len(header) else ""
            raise DataError(
                f"{path}:{reader.line_num}: row {row_number} has {len(row)} field{'s' * (len(row) != 1)}, the header has {len(header)} "
                f"({', '.join(header)}){hint}"
            )
        yield path.name, reader.line_num, dict(zip(header, row))


def read_label_text(path: Path, encoding: str = "utf-8") -> Iterator[Record]:
    for number, line in enumerate(io.StringIO(read_text(path, encoding), newline=None), 1):
        line = line.strip()
        if not line:
            continue
        label, _, text = line.partition(" ")
        if not text.strip():
            raise DataError(f"{path}:{number}: expected '<label> <text>', got {line[:60]!r}")
        yield path.name, number, {"label": label, "text": text.strip()}


def to_examples(
    records: Iterator[Record],
    *,
    input_field: str,
    label_field: str,
    verbalizer: Mapping[str, str] | None,
    open_ended: bool,
    path: Path,
    key: str,
) -> list[Example]:
    examples = []
    for name, number, record in records:
        where = f"{path}:{number}"
        for field_key, column in (("input_field", input_field), ("label_field", label_field)):
            if column not in record or record[column] is None:
                known = ", ".join(k for k in record if k is not None)
                raise DataError(f"{where}: no field '{column}' (task.{field_key}); the record has: {known}")
        label = record[label_field]
        output = str(label) if open_ended else verbalize(label, verbalizer, where=where, key="task")
        examples.append(
            Example(
                id=f"{name}:{number}",
                input=str(record[input_field]).strip(),
                output=output,
                label=None if open_ended else output,
                meta={"source": name, "line": number},
            )
        )
    if not examples:
        raise DataError(f"{key}: {path} has no examples")
    return examples


def file_task(
    name: str,
    read: Any,
    pool: str,
    queries: str,
    input_field: str,
    label_field: str,
    verbalizer: Mapping[str, str] | None,
    open_ended: bool,
    max_pool: int | None,
    max_queries: int | None,
    seed: int,
    encoding: str,
) -> Task:
    verbalizer = {str(k): str(v) for k, v in verbalizer.items()} if verbalizer is not None else None
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"task.encoding: unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    splits = {}
    for split, file, limit in (("pool", pool, max_pool), ("queries", queries, max_queries)):
        path = resolve_path(file, key=f"task.{split}")
        examples = to_examples(
            read(path, encoding), input_field=input_field, label_field=label_field, verbalizer=verbalizer,
            open_ended=open_ended, path=path, key=f"task.{split}",
        )
        splits[split] = subsample(examples, limit, seed)
    labels = None if open_ended else label_set(splits["pool"] + splits["queries"], verbalizer)
    return Task(name=name, pool=splits["pool"], queries=splits["queries"], labels=labels, template=Template())


@register("task", "jsonl")
def jsonl(
    pool: str,
    queries: str,
    input_field: str = "text",
    label_field: str = "label",
    verbalizer: dict[str, str] | None = None,
    open_ended: bool = False,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """One JSON object per line, e.g. ``{"text": "...", "label": 1}``."""
    return file_task(
        "jsonl", read_jsonl, pool, queries, input_field, label_field, verbalizer, open_ended, max_pool, max_queries, seed, encoding,
    )


@register("task", "csv")
def csv_task(
    pool: str,
    queries: str,
    input_field: str = "text",
    label_field: str = "label",
    delimiter: str = ",",
    verbalizer: dict[str, str] | None = None,
    open_ended: bool = False,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """A CSV or TSV file with a header row naming its columns."""
    if len(delimiter) != 1:
        raise ConfigError(f"task.delimiter must be one character, got {delimiter!r}")
    return file_task(
        "csv", lambda path, encoding: read_csv(path, delimiter, encoding), pool, queries, input_field, label_field, verbalizer,
        open_ended, max_pool, max_queries, seed, encoding,
    )


@register("task", "label_text")
def label_text(
    pool: str,
    queries: str,
    verbalizer: dict[str, str] | None = None,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """``<label> <text>`` lines, as SST-2 is distributed (``1 a gorgeous film .``)."""
    return file_task(
        "label_text", read_label_text, pool, queries, "text", "label", verbalizer, False, max_pool, max_queries, seed, encoding,
    )
