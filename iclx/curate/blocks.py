"""iclx's datatrove blocks: readers, shard files, and the audited wrappers around every step.

Imported only when a curation runs (it needs datatrove, the ``curate`` extra). Every document that
enters a step and every one it drops is counted here, with its bytes and the reason, and a seeded
sample of each is kept; each task writes that as ``audit/<step>/<rank>.json``, which
``iclx.curate.report`` merges into the table, the funnel plot and the ``dropped/`` samples.

Shards: a pass writes its documents as ``<folder>/<rank>.jsonl.gz``, one file per task (empty ones
too), and the next pass reads exactly its own rank's file, so a document keeps its place: the
dedup filters find documents by their index in the signature pass.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import json
import logging
import os
import random
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from iclx.curate.inputs import InputFile
from iclx.curate.steps.base import DocStep, StepContext

log = logging.getLogger("iclx")

SAMPLE_CHARS = 3000  # characters of a document kept in a sample


# --- datatrove's console output: into its task log files, warnings through iclx's log -------------


def quiet_datatrove() -> None:
    """Route datatrove's loguru output: nothing on the console but warnings (the task logs in the
    artifact's ``work/logs/`` keep everything), and no progress bars of its dedup stages. Called in
    the main process and in every task."""
    import datatrove.executor.base as executor_base
    import datatrove.pipeline.dedup.exact_dedup as exact_dedup
    import datatrove.pipeline.dedup.minhash as minhash
    import datatrove.utils.logging as dt_logging
    from loguru import logger

    if getattr(dt_logging, "_iclx_quiet", False):
        return

    def warnings_only() -> None:
        logger.remove()
        logger.add(_to_iclx_log, level="WARNING", format="{message}")

    def add_task_logger(logging_dir: Any, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(logfile, level="DEBUG", colorize=False,
                   format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}")
        logger.add(_to_iclx_log, level="WARNING", format="{message}")
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def silent_tqdm(*args: Any, **kwargs: Any) -> Any:
        from tqdm import tqdm

        return tqdm(*args, **{**kwargs, "disable": True})

    dt_logging.setup_default_logger = warnings_only
    dt_logging.add_task_logger = add_task_logger
    executor_base.add_task_logger = add_task_logger
    exact_dedup.tqdm = minhash.tqdm = silent_tqdm
    dt_logging._iclx_quiet = True
    warnings_only()


def _to_iclx_log(message: Any) -> None:
    """A datatrove warning or error as one line of iclx's log (tracebacks stay in the task logs)."""
    record = getattr(message, "record", None)
    text = record["message"] if record else str(message)
    lines = str(text).strip().splitlines()
    logging.getLogger("iclx.datatrove").warning("datatrove: %s", lines[0] if lines else "")


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, its console output quiet in every task process too."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
        quiet_datatrove()
        return super()._run_for_rank(rank, local_rank, node_rank)


# --- the audit of one step in one task -------------------------------------------------------------


class Audit:
    """Counts, bytes and samples of one step in one task, written as ``audit/<label>/<rank>.json``."""

    def __init__(self, label: str, folder: Path, rank: int, seed: int, samples: int, near: int, ledger: bool = False):
        self.label, self.folder, self.rank = label, folder, rank
        self.ledger: list[tuple[str, str | None]] | None = [] if ledger else None
        self.samples, self.near = samples, near
        self.rng = random.Random(seed * 1_000_003 + rank * 7919 + zlib.crc32(label.encode()))
        self.docs_in = self.bytes_in = self.kept = self.bytes_kept = 0
        self.dropped: dict[str, list[int]] = {}  # reason -> [documents, bytes]
        self.removed: dict[str, list[int]] = {}  # parts of kept documents removed (lines): reason -> [count, bytes]
        self.drop_samples: dict[str, list[dict[str, Any]]] = {}
        self.seen: dict[str, int] = {}  # reason -> documents offered to its sample (reservoir sampling)
        self.near_heap: list[tuple[float, int, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.seconds = 0.0

    def entered(self, doc: Document) -> int:
        size = len(doc.text.encode("utf-8", "replace"))
        self.docs_in += 1
        self.bytes_in += size
        return size

    def keep(self, doc: Document, margin: float | None = None) -> None:
        if self.ledger is not None:
            self.ledger.append((doc.id, None))
        self.kept += 1
        self.bytes_kept += len(doc.text.encode("utf-8", "replace"))
        if margin is not None and self.near > 0:
            item = (-float(margin), self.kept, _record(doc, margin=round(float(margin), 6)))
            if len(self.near_heap) < self.near:
                heapq.heappush(self.near_heap, item)
            elif item[0] > self.near_heap[0][0]:
                heapq.heapreplace(self.near_heap, item)

    def drop(self, doc: Document, reason: str, size: int, text: str | None = None) -> None:
        if self.ledger is not None:
            self.ledger.append((doc.id, reason))
        counts = self.dropped.setdefault(reason, [0, 0])
        counts[0] += 1
        counts[1] += size
        self._sample(reason, doc, text)

    def removed_part(self, doc: Document, reason: str, text: str) -> None:
        counts = self.removed.setdefault(reason, [0, 0])
        counts[0] += 1
        counts[1] += len(text.encode("utf-8", "replace"))
        self._sample(f"part:{reason}", doc, text)

    def error(self, doc: Document, e: BaseException) -> None:
        if len(self.errors) < 5:
            self.errors.append(f"{doc.id}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def _sample(self, reason: str, doc: Document, text: str | None) -> None:
        if self.samples <= 0:
            return
        n = self.seen[reason] = self.seen.get(reason, 0) + 1
        bucket = self.drop_samples.setdefault(reason, [])
        if len(bucket) < self.samples:
            bucket.append(_record(doc, reason=reason, text=text))
        else:
            j = self.rng.randrange(n)
            if j < self.samples:
                bucket[j] = _record(doc, reason=reason, text=text)

    def write(self) -> None:
        out = {
            "label": self.label, "rank": self.rank, "docs_in": self.docs_in, "bytes_in": self.bytes_in,
            "kept": self.kept, "bytes_kept": self.bytes_kept, "dropped": self.dropped, "removed": self.removed,
            "seen": self.seen, "samples": self.drop_samples,
            "near": [item[2] for item in sorted(self.near_heap, key=lambda t: (-t[0], t[1]))],
            "errors": self.errors, "seconds": round(self.seconds, 3),
        }
        folder = self.folder / "audit" / self.label
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{self.rank:05d}.json.tmp"
        tmp.write_text(json.dumps(out, ensure_ascii=False))
        os.replace(tmp, folder / f"{self.rank:05d}.json")
        if self.ledger is not None:
            tmp = folder / f".{self.rank:05d}.ledger.tmp"
            tmp.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in self.ledger))
            os.replace(tmp, folder / f"{self.rank:05d}.ledger.jsonl")


def _record(doc: Document, text: str | None = None, **extra: Any) -> dict[str, Any]:
    body = doc.text if text is None else text
    return {"id": doc.id, **extra, "bytes": len(body.encode("utf-8", "replace")),
            "text": body[:SAMPLE_CHARS] + (" [...]" if len(body) > SAMPLE_CHARS else ""),
            "source": doc.metadata.get("source")}


class AuditSettings:
    """What every audited block needs to write its audit (picklable)."""

    def __init__(self, folder: Path, seed: int, samples: int, near: int, ledger: bool = False):
        self.folder, self.seed, self.samples, self.near, self.ledger = folder, seed, samples, near, ledger

    def audit(self, label: str, rank: int) -> Audit:
        return Audit(label, self.folder, rank, self.seed, self.samples, self.near, self.ledger)


# --- steps as blocks --------------------------------------------------------------------------------


class StepBlock(PipelineStep):
    """A :class:`DocStep` as a datatrove block: ``judge`` per document, a failure counted as
    dropped with reason ``error`` (the first ones named in the audit), never fatal."""

    type = "iclx"

    def __init__(self, label: str, step: DocStep, context: StepContext, settings: AuditSettings):
        super().__init__()
        self.label, self.step, self.context, self.settings = label, step, context, settings
        self.name = f"{label} ({step.name})"

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        audit = self.settings.audit(self.label, rank)
        start = time.perf_counter()
        self.context.extra["rank"] = rank
        self.step.setup(self.context)
        audit.seconds += time.perf_counter() - start
        try:
            for doc in data or ():
                size = audit.entered(doc)
                self.stat_update("total")
                start = time.perf_counter()
                original = doc.text
                try:
                    reason = self.step.judge(doc)
                except Exception as e:  # noqa: BLE001 -- one document's failure drops that document
                    audit.error(doc, e)
                    reason = "error"
                audit.seconds += time.perf_counter() - start
                removed = doc.metadata.pop("iclx_removed", None)
                if reason is None and not doc.text.strip():
                    reason = "empty"
                if reason is not None:
                    self.stat_update("dropped", f"dropped_{reason}")
                    audit.drop(doc, reason, size, text=original)
                    continue
                if removed:
                    audit.removed_part(doc, removed["reason"], removed["text"])
                self.stat_update("forwarded")
                audit.keep(doc, self.step.margin(doc))
                yield doc
        finally:
            self.step.close()
            audit.write()


class TapBlock(PipelineStep):
    """A datatrove block that drops documents (a dedup filter), audited: what went in and did not
    come out was dropped with reason ``reason``. The block must keep the documents' order."""

    type = "iclx"

    def __init__(self, label: str, block: PipelineStep, reason: str, settings: AuditSettings):
        super().__init__()
        self.label, self.block, self.reason, self.settings = label, block, reason, settings
        self.name = f"{label} ({block.name})"

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        audit = self.settings.audit(self.label, rank)
        pending: deque[tuple[Document, int]] = deque()

        def feed() -> Iterator[Document]:
            for doc in data or ():
                pending.append((doc, audit.entered(doc)))
                yield doc

        start = time.perf_counter()
        try:
            for out in self.block.run(feed(), rank, world_size):
                while pending and pending[0][0] is not out:
                    doc, size = pending.popleft()
                    audit.drop(doc, self.reason, size)
                if pending:
                    pending.popleft()
                audit.keep(out)
                yield out
            while pending:
                doc, size = pending.popleft()
                audit.drop(doc, self.reason, size)
        finally:
            audit.seconds = time.perf_counter() - start
            audit.write()
            self.stats = self.block.stats


# --- readers and writers ----------------------------------------------------------------------------


def shard_path(folder: Path, rank: int) -> Path:
    return Path(folder) / f"{rank:05d}.jsonl.gz"


class ShardWriter(PipelineStep):
    """Writes this task's documents to ``<folder>/<rank>.jsonl.gz`` (complete or absent: written
    under a temporary name), passing them on."""

    type = "iclx"
    name = "shard writer"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        import orjson

        self.folder.mkdir(parents=True, exist_ok=True)
        final = shard_path(self.folder, rank)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        with gzip.open(tmp, "wb", compresslevel=1) as f:
            for doc in data or ():
                f.write(orjson.dumps({"id": doc.id, "text": doc.text, "metadata": doc.metadata}, default=str) + b"\n")
                self.stat_update("written")
                yield doc
        os.replace(tmp, final)


def read_shard(path: Path) -> Iterator[Document]:
    import orjson

    if not path.is_file():
        return
    with gzip.open(path, "rb") as f:
        for line in f:
            record = orjson.loads(line)
            yield Document(text=record["text"], id=record["id"], metadata=record.get("metadata") or {})


class ShardReader(PipelineStep):
    """Reads this task's shard of a previous pass (``<folder>/<rank>.jsonl.gz``)."""

    type = "iclx"
    name = "shard reader"

    def __init__(self, folder: Path, progress: str | None = None):
        super().__init__()
        self.folder, self.progress = Path(folder), progress

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        docs = read_shard(shard_path(self.folder, rank))
        yield from _progress(docs, self.progress if rank == 0 else None)


def _progress(docs: Iterator[Document], desc: str | None) -> Iterator[Document]:
    if desc is None:
        yield from docs
        return
    from tqdm import tqdm

    yield from tqdm(docs, desc=desc, unit="doc", mininterval=2.0, leave=False)


class InputReader(PipelineStep):
    """The curation's input: HTML files (one document each), WARC responses, JSONL records, shared
    out by file when there are at least as many files as tasks, else by document. Audited as the
    step ``read``: a record that cannot be read (bad JSON, no text field) is dropped as ``error``
    with its file and line, the rest are read."""

    type = "iclx"
    name = "input"

    def __init__(self, files: list[InputFile], text_field: str, settings: AuditSettings, progress: str | None = None):
        super().__init__()
        self.files, self.text_field, self.settings, self.progress = files, text_field, settings, progress

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        audit = self.settings.audit("read", rank)
        by_file = len(self.files) >= world_size
        mine = self.files[rank::world_size] if by_file else self.files
        index = 0
        try:
            for doc in _progress(self._documents(mine, audit), self.progress if rank == 0 else None):
                index += 1
                if not by_file and (index - 1) % world_size != rank:
                    continue
                size = audit.entered(doc)
                if not doc.text.strip():
                    audit.drop(doc, "empty", size)
                    continue
                audit.keep(doc)
                self.stat_update("documents")
                yield doc
        finally:
            audit.write()

    def _documents(self, files: list[InputFile], audit: Audit) -> Iterator[Document]:
        for f in files:
            if f.format == "html":
                yield _html_document(f)
            elif f.format == "warc":
                yield from _warc_documents(f, audit)
            else:
                yield from _jsonl_documents(f, self.text_field, audit)


def _html_document(f: InputFile) -> Document:
    from trafilatura.utils import decode_file

    raw = Path(f.path).read_bytes()
    return Document(text=decode_file(raw), id=f.name, metadata={"source": f.name, "format": "html"})


def _jsonl_documents(f: InputFile, text_field: str, audit: Audit) -> Iterator[Document]:
    opener = gzip.open if f.path.endswith(".gz") else open
    with opener(f.path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8", errors="replace"))
                text = record[text_field] if isinstance(record, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"no string field '{text_field}'")
            except (ValueError, KeyError) as e:
                bad = Document(text=raw.decode("utf-8", errors="replace"), id=f"{f.name}:{lineno}", metadata={"source": f.name})
                audit.entered(bad)
                audit.error(bad, e)
                audit.drop(bad, "error", len(raw))
                continue
            meta = {k: v for k, v in record.items() if k not in (text_field, "id") and isinstance(v, (str, int, float, bool))}
            meta.update(source=f.name, format=meta.get("format", "text"))
            yield Document(text=text, id=str(record.get("id", f"{f.name}:{lineno}")), metadata=meta)


def _warc_documents(f: InputFile, audit: Audit) -> Iterator[Document]:
    """HTML responses of a WARC file (the others are skipped), decoded like HTML files."""
    from trafilatura.utils import decode_file
    from warcio.archiveiterator import ArchiveIterator

    with open(f.path, "rb") as fh:
        for i, record in enumerate(ArchiveIterator(fh)):
            if record.rec_type not in ("response", "conversion"):
                continue
            content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else None) or "text/html"
            if "html" not in content_type and record.rec_type != "conversion":
                continue
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            rid = record.rec_headers.get_header("WARC-Record-ID") or f"{f.name}:{i}"
            with contextlib.suppress(Exception):
                raw = record.content_stream().read()
                fmt = "html" if record.rec_type == "response" else "text"
                yield Document(text=decode_file(raw), id=rid, metadata={"source": f.name, "url": url, "format": fmt})


class SourceReader(PipelineStep):
    """The documents of an iclx ``data`` source (``curate.input.paths: null``), shared out by index."""

    type = "iclx"
    name = "data source"

    def __init__(self, data_cfg: dict[str, Any], settings: AuditSettings, progress: str | None = None):
        super().__init__()
        self.data_cfg, self.settings, self.progress = data_cfg, settings, progress

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        from iclx.data.corpus import build_source

        audit = self.settings.audit("read", rank)
        source = build_source(self.data_cfg)
        try:
            docs = (d for i, d in enumerate(source.documents()) if i % world_size == rank)
            for i, d in enumerate(_progress(docs, self.progress if rank == 0 else None)):
                meta = {k: v for k, v in d.meta.items() if isinstance(v, (str, int, float, bool))}
                doc = Document(text=d.text, id=d.id or f"{rank}:{i}", metadata={**meta, "format": meta.get("format", "text")})
                size = audit.entered(doc)
                if not doc.text.strip():
                    audit.drop(doc, "empty", size)
                    continue
                audit.keep(doc)
                yield doc
        finally:
            audit.write()


# --- generic blocks for steps that need every document (steps stay free of datatrove imports) -------


class ConsumeBlock(PipelineStep):
    """Feeds every document of the task to ``consumer`` (``start(rank, world_size)``, ``add(state, doc)``,
    ``finish(state, rank)``): counts, samples. Documents pass on unchanged."""

    type = "iclx"

    def __init__(self, name: str, consumer: Any):
        super().__init__()
        self.name, self.consumer = name, consumer

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        state = self.consumer.start(rank, world_size)
        for doc in data or ():
            self.consumer.add(state, doc)
            self.stat_update("total")
            yield doc
        self.consumer.finish(state, rank)


class TaskBlock(PipelineStep):
    """Runs ``action(rank, world_size)`` once per task: merges, training, thresholds."""

    type = "iclx"

    def __init__(self, name: str, action: Any):
        super().__init__()
        self.name, self.action = name, action

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        with self.track_time():
            self.action(rank, world_size)
        yield from ()
