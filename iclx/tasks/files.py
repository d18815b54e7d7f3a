"""Tasks read from local files, configured per dataset rather than coded: ``jsonl``, ``csv``
(``tsv`` is ``csv`` with a tab delimiter) and ``label_text`` (``<label> <text>`` lines, SST-2's
format, or any label-and-text lines with ``label_pattern``).

Each names a ``pool`` file (demonstrations) and a ``queries`` file; they may be the same file, and
then an example is never its own demonstration. Ids are ``<file as the config names it>:<line>``:
``pool/data.txt:3`` and ``queries/data.txt:3`` differ, and a file named as both splits (even
spelled differently) gives each line one id. Which fields are the input and the label, templates
over fields, label patterns, verbalizers and multiple choice: see ``records.py``.
``open_ended: true`` makes the outputs free answers, scored by greedy
generation and exact match instead of over a label set. Files are read in ``encoding`` (UTF-8 by
default); a byte that does not decode, or a CSV row with more or fewer fields than the header,
stops the run naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from iclx.errors import ConfigError, DataError
from iclx.registry import register
from iclx.tasks.base import Task, resolve_path, subsample
from iclx.tasks.records import Record, RecordFormat, UnmappedLabels, compile_pattern, pattern_label
from iclx.tasks.template import Template


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



def read_jsonl(path: Path, source: str, encoding: str = "utf-8") -> Iterator[Record]:
    for number, line in enumerate(io.StringIO(read_text(path, encoding), newline=None), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield Record(source, number, record, f"{path}:{number}")


def read_csv(path: Path, source: str, delimiter: str, encoding: str = "utf-8") -> Iterator[Record]:
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
        yield Record(source, reader.line_num, dict(zip(header, row)), f"{path}:{reader.line_num}")


def read_label_text(path: Path, source: str, encoding: str = "utf-8", pattern: re.Pattern[str] | None = None) -> Iterator[Record]:
    """``<label> <text>`` lines as ``{label, text, line}``. With ``pattern`` (``task.label_pattern``)
    the label is its group and the rest of the line, without the match, is the text."""
    lines = [(n, line.strip()) for n, line in enumerate(io.StringIO(read_text(path, encoding), newline=None), 1)]
    lines = [(n, line) for n, line in lines if line]
    if pattern is not None:
        unmatched = [(n, line) for n, line in lines if pattern.search(line) is None]
        if unmatched and len(unmatched) == len(lines):
            n, line = unmatched[0]
            raise DataError(f"task.label_pattern '{pattern.pattern}' matches no line of {path} (line {n}: {line[:60]!r})")
        if unmatched:
            n, line = unmatched[0]
            raise DataError(f"{path}:{n}: task.label_pattern '{pattern.pattern}' does not match {line[:60]!r} "
                            f"({len(unmatched)} of {len(lines)} lines do not match)")
    for number, line in lines:
        where = f"{path}:{number}"
        if pattern is None:
            label, _, text = line.partition(" ")
            if not text.strip():
                raise DataError(f"{where}: expected '<label> <text>', got {line[:60]!r}")
        else:
            match = pattern.search(line)
            label, text = pattern_label(match), line[: match.start()] + " " + line[match.end() :]
            if not text.strip():
                raise DataError(f"{where}: no text besides the label task.label_pattern '{pattern.pattern}' takes: {line[:60]!r}")
        yield Record(source, number, {"label": label, "text": text.strip(), "line": line}, where)


def file_task(
    name: str,
    read: Callable[[Path, str, str], Iterator[Record]],
    pool: str,
    queries: str,
    form: RecordFormat,
    max_pool: int | None,
    max_queries: int | None,
    seed: int,
    encoding: str,
) -> Task:
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"task.encoding: unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    paths = {"pool": resolve_path(pool, key="task.pool"), "queries": resolve_path(queries, key="task.queries")}
    # ids name the file as the config does; one file read as both splits keeps one name (one id per line)
    same = paths["pool"].resolve() == paths["queries"].resolve()
    sources = {"pool": str(pool), "queries": str(pool) if same else str(queries)}
    drafts = {}
    for split in ("pool", "queries"):
        drafts[split] = form.drafts(read(paths[split], sources[split], encoding))
        if not drafts[split]:
            raise DataError(f"task.{split}: {paths[split]} has no examples")
    examples, labels = form.examples(drafts)
    for split in ("pool", "queries"):
        if not examples[split]:
            raise DataError(f"task.{split}: no examples left in {paths[split]}: task.unmapped_labels=warn dropped every "
                            "record, as none has a label the task maps")
    limits = {"pool": max_pool, "queries": max_queries}
    splits = {split: subsample(examples[split], limits[split], seed) for split in ("pool", "queries")}
    return Task(name=name, pool=splits["pool"], queries=splits["queries"], labels=labels, template=Template())


@register("task", "jsonl")
def jsonl(
    pool: str,
    queries: str,
    input_field: str = "text",
    label_field: str = "label",
    doc_to_text: str | None = None,
    doc_to_target: str | None = None,
    doc_to_choice: str | list[str] | None = None,
    label_pattern: str | None = None,
    verbalizer: dict[str, str] | None = None,
    unmapped_labels: UnmappedLabels = "error",
    open_ended: bool = False,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """One JSON object per line, e.g. ``{"text": "...", "label": 1}``."""
    form = RecordFormat(input_field, label_field, doc_to_text, doc_to_target, doc_to_choice, label_pattern, verbalizer,
                        unmapped_labels, open_ended)
    return file_task("jsonl", read_jsonl, pool, queries, form, max_pool, max_queries, seed, encoding)


@register("task", "csv")
def csv_task(
    pool: str,
    queries: str,
    input_field: str = "text",
    label_field: str = "label",
    doc_to_text: str | None = None,
    doc_to_target: str | None = None,
    doc_to_choice: str | list[str] | None = None,
    label_pattern: str | None = None,
    delimiter: str = ",",
    verbalizer: dict[str, str] | None = None,
    unmapped_labels: UnmappedLabels = "error",
    open_ended: bool = False,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """A CSV or TSV file with a header row naming its columns."""
    if len(delimiter) != 1:
        raise ConfigError(f"task.delimiter must be one character, got {delimiter!r}")
    form = RecordFormat(input_field, label_field, doc_to_text, doc_to_target, doc_to_choice, label_pattern, verbalizer,
                        unmapped_labels, open_ended)
    return file_task("csv", lambda path, source, encoding: read_csv(path, source, delimiter, encoding), pool, queries, form,
                     max_pool, max_queries, seed, encoding)


@register("task", "label_text")
def label_text(
    pool: str,
    queries: str,
    label_pattern: str | None = None,
    doc_to_text: str | None = None,
    verbalizer: dict[str, str] | None = None,
    unmapped_labels: UnmappedLabels = "error",
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """``<label> <text>`` lines, as SST-2 is distributed (``1 a gorgeous film .``); ``label_pattern``
    takes the label from each line instead (``^(\\w+):\\S*`` takes ``DESC`` of ``DESC:manner How
    did ...``), the rest of the line is the text."""
    pattern = compile_pattern(label_pattern) if label_pattern is not None else None
    form = RecordFormat(doc_to_text=doc_to_text, verbalizer=verbalizer, unmapped_labels=unmapped_labels)
    return file_task("label_text", lambda path, source, encoding: read_label_text(path, source, encoding, pattern), pool, queries,
                     form, max_pool, max_queries, seed, encoding)
