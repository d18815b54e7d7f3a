"""Generate the small crawl shipped in ``iclx/resources/curate_sample`` (``experiment=curate_quickstart``).

Nothing in it was crawled: the pages are WikiText-2 articles and Shakespeare turns from the bundled
corpus (so CC BY-SA 3.0, like them) wrapped in made-up site boilerplate (navigation, a cookie
banner, a sidebar, comments, a footer); the logs come from templates; the rest is what a crawl is
full of, made here: the same page crawled twice, near copies, base64 blobs, tables of numbers and
keyword spam. ``truth.jsonl`` records what each document is. Regenerate with
``python -m iclx.curate.sample`` (the output is the same for the same seed).
"""

from __future__ import annotations

import html
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

from iclx.curate.known_mix import base64_blob, keyword_spam, near_duplicate, number_table, shakespeare_chunks, wiki_articles

OUT = Path(__file__).resolve().parent.parent / "resources" / "curate_sample"
SITES = ["news.example.org", "blog.example.net", "wiki.example.com", "stage.example.org", "archive.example.net"]
NAV = ["Home", "News", "Sport", "Culture", "Science", "About us", "Contact", "Subscribe", "Log in", "Newsletter"]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} | {site}</title>
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
<style>body {{ font-family: sans-serif; }} .nav a {{ margin: 0 4px; }}</style></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. By continuing to browse
you accept our <a href="/privacy">cookie policy</a>. <button>Accept all</button> <button>Settings</button></div>
<header><nav class="nav">{nav}</nav><form class="search"><input name="q" placeholder="Search {site}"></form></header>
<main><article>
<h1>{title}</h1>
<p class="byline">By {author} &middot; {date}</p>
{body}
</article>
<aside class="sidebar"><h3>Most read</h3><ul>{most_read}</ul><h3>Follow us</h3>
<p><a href="#">Facebook</a> <a href="#">Twitter</a> <a href="#">RSS</a></p></aside>
<section class="comments"><h3>{n_comments} comments</h3>{comments}</section>
</main>
<footer><p>&copy; 2024 {site}. All rights reserved. <a href="/imprint">Imprint</a> <a href="/privacy">Privacy</a>
<a href="/terms">Terms of use</a></p></footer>
</body></html>
"""
COMMENTS = ["Great article, thanks!", "First!", "I disagree with the second point.", "Where can I read more about this?",
            "This site is the best, I read it every day.", "lol"]
AUTHORS = ["A. Writer", "J. Smith", "M. Rossi", "K. Tanaka", "L. Dubois"]

JAVA_TRACE = """{ts} ERROR [{thread}] com.example.{pkg}.{cls}: Request {rid} failed
java.lang.IllegalStateException: Connection pool exhausted (active={a}, idle=0, max={m})
\tat com.example.{pkg}.Pool.borrow(Pool.java:{l1})
\tat com.example.{pkg}.{cls}.handle({cls}.java:{l2})
\tat org.eclipse.jetty.server.Server.handle(Server.java:516)
\t... {more} more"""
TEMPLATES = [
    "{ts} INFO  [main] com.example.{pkg}.{cls}: Started {cls} in {ms} ms (pid={pid})",
    "{ts} DEBUG [worker-{n}] com.example.{pkg}.Cache: hit ratio={r:.3f} size={size} evictions={ev}",
    "{ts} WARN  [worker-{n}] com.example.{pkg}.Client: retry {n}/5 for host=10.0.{n}.{pid} port=8443 timeout={ms}ms",
    '{ip} - - [{day}/Mar/2024:{hms} +0000] "GET /api/v2/items/{rid} HTTP/1.1" {status} {size} "-" "Mozilla/5.0"',
    "Mar {day} {hms} host{n} kernel: [{up:.6f}] eth0: link up, 1000Mbps, full-duplex, lpa 0x{hexid}",
    "Mar {day} {hms} host{n} sshd[{pid}]: Failed password for invalid user admin from {ip} port {port} ssh2",
]


def _fill(rng: random.Random, template: str, t: int) -> str:
    return template.format(
        ts=f"2024-03-{1 + t // 3600 % 28:02d} {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d},{rng.randint(0, 999):03d}",
        thread=f"http-nio-8080-exec-{rng.randint(1, 20)}", pkg=rng.choice(["billing", "search", "auth"]),
        cls=rng.choice(["OrderService", "IndexWorker", "TokenFilter"]), rid=f"{rng.getrandbits(64):016x}",
        a=rng.randint(20, 50), m=50, l1=rng.randint(40, 300), l2=rng.randint(40, 300), more=rng.randint(10, 60),
        ms=rng.randint(3, 9000), pid=rng.randint(100, 65000), n=rng.randint(1, 9), r=rng.random(),
        size=rng.randint(100, 90000), ev=rng.randint(0, 500), ip=f"203.0.113.{rng.randint(1, 254)}",
        day=rng.randint(10, 28), hms=f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        status=rng.choice([200, 200, 200, 304, 404, 500]), up=rng.uniform(1, 9e5), hexid=f"{rng.getrandbits(16):04x}",
        port=rng.randint(1024, 65535),
    )


def detokenize(text: str) -> str:
    """WikiText's tokenized text as a page would show it: ``@-@`` joins, no space before punctuation."""
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" 's", "'s"), (" n't", "n't"), ("( ", "("), (" )", ")")):
        text = text.replace(a, b)
    text = re.sub(r" ([,.;:!?])", r"\1", text)
    return re.sub(r"<unk>\s?", "", text)


def log_dump(rng: random.Random) -> str:
    lines, t = [], rng.randint(0, 10**6)
    for _ in range(rng.randint(20, 60)):
        t += rng.randint(0, 30)
        template = JAVA_TRACE if rng.random() < 0.08 else rng.choice(TEMPLATES)
        lines.append(_fill(rng, template, t))
    return "\n".join(lines)


def page(rng: random.Random, title: str, paragraphs: list[str], site: str) -> str:
    nav = " ".join(f'<a href="/{w.lower().replace(" ", "-")}">{w}</a>' for w in NAV)
    most_read = "".join(f'<li><a href="/story/{rng.randint(1000, 9999)}">{html.escape(t)}</a></li>'
                        for t in rng.sample(["Ten things you missed this week", "The quiz of the year",
                                             "Weather: storms expected", "Prices rise again", "A new museum opens"], 3))
    n = rng.randint(0, 4)
    comments = "".join(f'<div class="comment"><b>user{rng.randint(1, 999)}</b>: {c}</div>' for c in rng.sample(COMMENTS, n))
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return PAGE.format(title=html.escape(title), site=site, nav=nav, author=rng.choice(AUTHORS),
                       date=f"{rng.randint(1, 28)} March 2024", body=body, most_read=most_read, n_comments=n, comments=comments)


def generate(out: Path = OUT, seed: int = 0, n_pages: int = 40) -> None:
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "pages").mkdir(parents=True)
    sources: list[tuple[str, list[str]]] = []
    for article in wiki_articles():
        lines = [line.strip() for line in article.split("\n") if line.strip()]
        title = detokenize(lines[0].strip(" ="))
        paragraphs = [detokenize(line) for line in lines[1:] if not line.startswith("=") and len(line) > 200][:6]
        if len(paragraphs) >= 3:
            sources.append((title, paragraphs))
    for chunk in shakespeare_chunks(12)[:30]:
        turns = [t.replace("\n", " ") for t in chunk.split("\n\n")]
        sources.append((turns[0].split(":")[0].title() + " speaks", turns))
    rng.shuffle(sources)
    truth, records, texts = [], [], []
    for i, (title, paragraphs) in enumerate(sources[:n_pages]):
        name = f"page{i:03d}.html"
        (out / "pages" / name).write_text(page(rng, title, paragraphs, rng.choice(SITES)), encoding="utf-8")
        truth.append({"id": name, "kind": "page", "relation": "original", "group": name})
        texts.append((name, "\n".join(paragraphs)))
    for i in rng.sample(range(min(n_pages, len(sources))), 6):  # the same page crawled twice
        name = f"page{i:03d}.mirror.html"
        shutil.copy(out / "pages" / f"page{i:03d}.html", out / "pages" / name)
        truth.append({"id": name, "kind": "page", "relation": "exact_copy", "group": f"page{i:03d}.html"})
    for k, (origin, text) in enumerate(rng.sample(texts, 8)):  # the text syndicated with small edits
        records.append({"id": f"near/{k}", "text": near_duplicate(text, rng.uniform(0.01, 0.03), rng)})
        truth.append({"id": f"near/{k}", "kind": "page", "relation": "near_dup", "group": origin})
    for kind, make, n in (("log", log_dump, 12), ("base64", base64_blob, 4), ("numbers", number_table, 4), ("spam", keyword_spam, 4)):
        for k in range(n):
            records.append({"id": f"{kind}/{k}", "text": make(rng)})
            truth.append({"id": f"{kind}/{k}", "kind": kind, "relation": "original", "group": f"{kind}/{k}"})
    rng.shuffle(records)
    with open(out / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(out / "truth.jsonl", "w", encoding="utf-8") as f:
        for t in truth:
            f.write(json.dumps(t) + "\n")
    (out / "README.md").write_text(__doc__.replace("``python -m iclx.curate.sample``", "`python -m iclx.curate.sample`"), encoding="utf-8")


if __name__ == "__main__":
    generate()


def crawl(seed: int = 0, paragraphs_per_page: int = 6, heldout: tuple[int, ...] = (), contaminated: int = 0,
          copies: int = 15, near_copies: int = 15, logs: int = 40, junk: int = 10) -> list[dict[str, Any]]:
    """A bigger generated crawl, in memory (the ``web_sample`` data source): every paragraph of the
    bundled WikiText-2 articles (but the ``heldout`` ones) and Shakespeare, as pages in boilerplate;
    ``contaminated`` pages quoting the held-out articles; copies, near copies, log dumps and junk.
    Records: ``{"id", "text", "format", "kind", "relation"}``."""
    rng = random.Random(seed)
    articles = wiki_articles()
    sources: list[tuple[str, list[str]]] = []
    for index, article in enumerate(articles):
        lines = [line.strip() for line in article.split("\n") if line.strip()]
        body = [detokenize(line) for line in lines[1:] if not line.startswith("=") and len(line) > 100]
        chunks = [body[i:i + paragraphs_per_page] for i in range(0, len(body), paragraphs_per_page)]
        if index in heldout:
            for chunk in rng.sample(chunks, min(contaminated, len(chunks))):  # the test set, crawled
                sources.append((detokenize(lines[0].strip(" =")), chunk))
        else:
            sources += [(detokenize(lines[0].strip(" =")), chunk) for chunk in chunks]
    for chunk in shakespeare_chunks(12):
        turns = [t.replace("\n", " ") for t in chunk.split("\n\n")]
        sources.append((turns[0].split(":")[0].title() + " speaks", turns))
    records: list[dict[str, Any]] = []
    for i, (title, paragraphs) in enumerate(sources):
        records.append({"id": f"page/{i}", "text": page(rng, title, paragraphs, rng.choice(SITES)), "format": "html",
                        "kind": "page", "relation": "original", "plain": "\n".join(paragraphs)})
    pages = list(records)
    for k, r in enumerate(rng.sample(pages, min(copies, len(pages)))):
        records.append({**r, "id": f"copy/{k}", "relation": "exact_copy"})
    for k, r in enumerate(rng.sample(pages, min(near_copies, len(pages)))):
        records.append({"id": f"near/{k}", "text": near_duplicate(r["plain"], rng.uniform(0.01, 0.03), rng), "format": "text",
                        "kind": "page", "relation": "near_dup"})
    for kind, make, n in (("log", log_dump, logs), ("base64", base64_blob, junk), ("numbers", number_table, junk),
                          ("spam", keyword_spam, junk)):
        records += [{"id": f"{kind}/{k}", "text": make(rng), "format": "text", "kind": kind, "relation": "original"} for k in range(n)]
    rng.shuffle(records)
    return [{k: v for k, v in r.items() if k != "plain"} for r in records]
