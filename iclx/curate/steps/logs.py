"""``logs``: non-informative machine output (log lines, stack traces, error dumps), iclx's own filter.

A line is machine output when it carries enough of these marks: a timestamp (``2015-10-18
18:01:47,978``, ``Jun 14 15:16:01``, ``081109 203615``, epoch seconds), a log level (``INFO``,
``[error]``, Android's `` D Tag:``), hex or numbered ids (``0x1f``, ``blk_-69...``,
``appattempt_1445144423722_0020``), a run of ``key=value`` pairs, machine tokens (IP addresses,
paths, dotted package names, ``[pid]``); a stack-trace line (``at a.b.C(File.java:12)``,
``Traceback (most recent call last)``, ``File "x.py", line 3``) is one on its own. The Llama 3
recipe's duplicated n-gram coverage adds the lines whose n-grams, with digits and hex masked,
mostly repeat elsewhere in the document (a log's templates) when they carry at least one mark.

``mode: document`` drops a document whose machine lines hold at least ``max_share`` of its
characters (reason ``log_lines``); ``mode: line`` removes those lines from every document and drops
what is left only when it is empty (an error dump pasted in a page goes, the page stays).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field

from iclx.curate.steps.base import DocStep
from iclx.registry import register

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
TIMESTAMP = re.compile(
    r"\d{4}[-/.]\d{2}[-/.]\d{2}[ T_-]?\d{2}[:.]\d{2}(?:[:.]\d{2})?"  # 2015-10-18 18:01:47, 2005-06-03-15.42.50
    r"|\b\d{2}[-/]\d{2}[ T]\d{2}:\d{2}:\d{2}"  # 03-17 16:13:38
    rf"|\b(?:{MONTHS})\s+\d{{1,2}}\s+\d{{2}}:\d{{2}}:\d{{2}}"  # Jun 14 15:16:01, Sun Dec 04 04:47:44 2005
    r"|^\s*\d{6}\s\d{6}\b"  # HDFS: 081109 203615
    r"|\b1[0-9]{9}(?:\.\d+)?\b"  # epoch seconds
    r"|\b\d{1,2}:\d{2}:\d{2}[.,]\d{2,6}\b"  # 16:13:38.811
)
LEVEL = re.compile(
    r"\b(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|CRITICAL|FATAL|PANIC)\b"
    r"|\[(?:trace|debug|info|notice|warn|warning|error|crit|alert|emerg)\]"
    r"|\s[VDIWEF]\s+[\w.$/-]+\s*:\s"  # Android logcat: ' D WindowManager: '
)
IDS = re.compile(
    r"\b0x[0-9a-fA-F]+\b|\bblk_-?\d+|\b[a-z]+_\d{6,}|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"
)
KEY_VALUE = re.compile(r"\b[\w.-]+=[^\s,;]*")
MACHINE = re.compile(
    r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"  # IP[:port]
    r"|(?<![\w<])/(?:[\w.-]+/)+[\w.-]*"  # /a/b/c paths
    r"|\b[a-z]\w*(?:\.[a-z]\w*){2,}\b"  # org.apache.hadoop
    r"|\[\d+\]|\b(?:pid|uid|tid|port)[=: ]\d+"  # [1234], pid=12
    r"|\w+\$\w+|\w+\(\)"  # inner classes, calls()
)
STACK = re.compile(
    r"^\s*at [\w$.<>/]+\(.*\)\s*$|Traceback \(most recent call last\)|^\s*File \".+\", line \d+"
    r"|^\s*\.\.\. \d+ more\s*$|^\s*(?:Caused by: )?[\w.$]+(?:Exception|Error)(?::|\s*$)"
)
MASK = re.compile(r"\b(?:0x)?[0-9a-fA-F]*\d[0-9a-fA-F]*\b")
WORD = re.compile(r"\S+")


def marks(line: str) -> int:
    """How many kinds of machine marks ``line`` carries (a stack-trace line: 5)."""
    if STACK.search(line):
        return 5
    found = [bool(TIMESTAMP.search(line)), bool(LEVEL.search(line)), bool(IDS.search(line)),
             len(KEY_VALUE.findall(line)) >= 3, len(MACHINE.findall(line)) >= 1]
    return sum(found) + (1 if found[3] else 0)  # a key=value run weighs two


def machine_lines(text: str, ngram: int = 4, dup_coverage: float = 0.6) -> list[bool]:
    """For each line of ``text``: is it machine output (see the module docstring)?"""
    lines = text.split("\n")
    scores = [marks(line) for line in lines]
    masked = [WORD.findall(MASK.sub("0", line.lower())) for line in lines]
    grams = [[" ".join(w[i:i + ngram]) for i in range(len(w) - ngram + 1)] for w in masked]
    counts = Counter(g for gs in grams for g in set(gs))
    out = []
    for score, gs in zip(scores, grams):
        repeated = bool(gs) and sum(counts[g] > 1 for g in gs) / len(gs) >= dup_coverage
        out.append(score >= 2 or (repeated and score >= 1))
    return out


@register("curate_step", "logs")
class Logs(DocStep):
    def __init__(
        self,
        mode: Literal["document", "line"] = "document",
        max_share: Annotated[float, Field(gt=0, le=1)] = 0.3,  # document mode: drop at this share of machine characters
        ngram: Annotated[int, Field(ge=1)] = 4,  # the duplicated n-gram coverage's n (words, digits masked)
        dup_coverage: Annotated[float, Field(gt=0, le=1)] = 0.6,  # a line's share of repeated n-grams that marks a template
    ):
        self.mode, self.max_share, self.ngram, self.dup_coverage = mode, max_share, ngram, dup_coverage

    def judge(self, doc: Any) -> str | None:
        lines = doc.text.split("\n")
        flags = machine_lines(doc.text, self.ngram, self.dup_coverage)
        total = sum(len(line.strip()) for line in lines) or 1
        machine = sum(len(line.strip()) for line, f in zip(lines, flags) if f)
        share = machine / total
        doc.metadata["log_share"] = round(share, 4)
        if self.mode == "document":
            return "log_lines" if share >= self.max_share else None
        if machine:
            kept = [line for line, f in zip(lines, flags) if not f]
            doc.metadata["iclx_removed"] = {"reason": "log_lines", "text": "\n".join(line for line, f in zip(lines, flags) if f)}
            doc.text = "\n".join(kept).strip("\n")
            if not doc.text.strip():
                return "log_lines"
        return None

    def margin(self, doc: Any) -> float | None:
        share = doc.metadata.get("log_share")
        return None if share is None or self.mode != "document" else self.max_share - share
