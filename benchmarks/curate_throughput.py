"""Curation throughput: iclx's pipeline against the same datatrove steps run directly, 1 vs 2
workers, and MinHash's memory at 100k documents.

1. **iclx vs datatrove direct**, in one run, interleaved (direct, iclx, direct, iclx, ...): the real
   crawled pages of ``../shared/data/web/html`` (or, without it, the shipped sample's pages),
   ``--copies`` times over, through trafilatura extraction, datatrove's Gopher repetition/quality,
   C4 and FineWeb filters, exact dedup and MinHash dedup. "Direct" is a hand-written datatrove
   pipeline with the same blocks, executor (local, 1 task) and pass layout; iclx is
   ``curate=web curate.order=[extract,heuristics,exact_dedup,minhash_dedup]`` with what it adds
   (the audited blocks: counts, bytes, samples, near-threshold documents; the report). Each run is a
   fresh process; the time is the pipeline's (iclx: the curate artifact's build, from its log),
   not Python's start. Bar: iclx's documents/s >= 0.9 x direct's.
2. **workers**: the same iclx pipeline with 2 tasks on 1 worker vs 2 workers (datatrove's default
   ``forkserver`` processes, which import everything again for every pass, and ``fork``).
3. **MinHash memory**: ``--minhash-docs`` synthetic documents (word salad over WikiText's
   vocabulary, 150-300 words, 10% near copies), each MinHash stage in its own process: peak RSS
   above a process that only imported datatrove, signature bytes on disk, duplicates found.

    python benchmarks/curate_throughput.py                       # ~15 minutes on 2 cores
    python benchmarks/curate_throughput.py --rounds 3 --copies 2 --minhash-docs 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "web" / "html"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: its own, unlike ru_maxrss, which a child starts
    with its parent's peak at the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the input: pages as JSONL records (datatrove has no reader of HTML files) ----------------------


def write_pages(out: Path, copies: int) -> tuple[int, float]:
    from trafilatura.utils import decode_file

    pages = sorted(SHARED.glob("*.html")) if SHARED.is_dir() else sorted((ROOT / "iclx" / "resources" / "curate_sample" / "pages").glob("*.html"))
    n, size = 0, 0
    with open(out, "w", encoding="utf-8") as f:
        for c in range(copies):
            for p in pages:
                html = decode_file(p.read_bytes())
                f.write(json.dumps({"id": f"{p.stem}/{c}", "text": html, "format": "html"}) + "\n")
                n, size = n + 1, size + len(html.encode())
    return n, size / 1e6


# --- the cases, each in a fresh process ------------------------------------------------------------


def case_direct(args: dict) -> dict:
    """The same blocks, hand-wired with datatrove: extraction + heuristics, exact dedup, MinHash."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature, ExactFindDedups
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    from iclx.curate.blocks import quiet_datatrove
    from iclx.curate.steps.dedup import normalized_text

    quiet_datatrove()
    work, data = Path(args["work"]), Path(args["input"])
    hashes = HashConfig(precision=64, hash_fc="sha1")
    exact = ExactDedupConfig(content_getter=normalized_text, hash_config=hashes)
    minhash = MinhashConfig(hash_config=hashes)
    stages = [
        ([JsonlReader(str(data.parent), glob_pattern=data.name), Trafilatura(favour_precision=True, timeout=5.0),
          GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(),
          JsonlWriter(str(work / "s1")), ExactDedupSignature(str(work / "exact_sigs"), config=exact)], 1),
        ([ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), config=exact)], 1),
        ([JsonlReader(str(work / "s1")), ExactDedupFilter(str(work / "exact_dups"), config=exact), JsonlWriter(str(work / "s2")),
          MinhashDedupSignature(str(work / "mh_sigs"), config=minhash)], 1),
        ([MinhashDedupBuckets(str(work / "mh_sigs"), str(work / "mh_buckets"), config=minhash)], minhash.num_buckets),
        ([MinhashDedupCluster(str(work / "mh_buckets"), str(work / "mh_remove"), config=minhash)], 1),
        ([JsonlReader(str(work / "s2")), MinhashDedupFilter(str(work / "mh_remove")), JsonlWriter(str(work / "out"))], 1),
    ]
    start = time.perf_counter()
    for i, (blocks, tasks) in enumerate(stages):
        LocalPipelineExecutor(blocks, tasks=tasks, workers=1, logging_dir=str(work / "logs" / str(i))).run()
    seconds = time.perf_counter() - start
    import gzip

    kept = sum(1 for p in (work / "out").glob("*.jsonl.gz") for _ in gzip.open(p, "rt"))
    return {"seconds": seconds, "kept": kept}


def case_iclx(args: dict) -> dict:
    """iclx's curate=web with the same steps, through its command line (in this process)."""
    from iclx.cli import run_cli

    os.chdir(args["work"])
    os.environ["ICLX_CACHE_DIR"] = str(Path(args["work"]) / "cache")
    os.environ["WANDB_MODE"] = "disabled"
    code = run_cli(["curate=web", f"curate.input.paths={args['input']}", "curate.order=[extract,heuristics,exact_dedup,minhash_dedup]",
                    f"curate.executor.tasks={args['tasks']}", f"curate.executor.workers={args['workers']}",
                    f"curate.executor.start_method={args.get('start_method', 'forkserver')}", "stages=[curate]",
                    "hydra.run.dir=run", "hydra/job_logging=disabled"])
    assert code == 0, code
    log = next(Path("cache").glob("curate/*/report.json"))
    report = json.loads(log.read_text())
    return {"seconds": report["seconds"], "kept": report["documents"]}


def case_minhash_stage(args: dict) -> dict:
    """One MinHash stage over the synthetic corpus (its peak RSS is this process's)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.hashing import HashConfig

    from iclx.curate.blocks import quiet_datatrove

    quiet_datatrove()
    work, stage = Path(args["work"]), args["stage"]
    config = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="sha1"))
    baseline = rss_mb()
    if stage == "signature":
        blocks, tasks = [JsonlReader(str(work), glob_pattern="docs.jsonl"), MinhashDedupSignature(str(work / "sigs"), config=config)], 1
    elif stage == "buckets":
        blocks, tasks = [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], config.num_buckets
    elif stage == "clusters":
        blocks, tasks = [MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)], 1
    else:
        blocks, tasks = [JsonlReader(str(work), glob_pattern="docs.jsonl"), MinhashDedupFilter(str(work / "remove"))], 1
    start = time.perf_counter()
    LocalPipelineExecutor(blocks, tasks=tasks, workers=1, logging_dir=str(work / "logs" / stage)).run()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline}


def run_case(name: str, args: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--case", name, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def case_corpus(args: dict) -> dict:
    synthetic_corpus(Path(args["path"]), args["n"])
    return {}


def synthetic_corpus(path: Path, n: int, seed: int = 0) -> None:
    from iclx.curate.known_mix import near_duplicate, wiki_articles

    rng = random.Random(seed)
    vocab = sorted({w for a in wiki_articles() for w in re.findall(r"[A-Za-z]+", a) if len(w) > 2})
    docs: list[str] = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if docs and rng.random() < 0.1:
                text = near_duplicate(rng.choice(docs[-1000:]), 0.02, rng)
            else:
                text = " ".join(rng.choice(vocab) for _ in range(rng.randint(150, 300)))
                docs.append(text)
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")


def compare(tmp: Path, rounds: int, copies: int) -> None:
    data = tmp / "pages.jsonl"
    n_docs, mb = write_pages(data, copies)
    print(f"input: {n_docs} pages ({'../shared/data/web/html' if SHARED.is_dir() else 'the shipped sample'} x{copies}), "
          f"{mb:.1f} MB of HTML; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    times: dict[str, list[float]] = {"direct": [], "iclx": []}
    kept: dict[str, int] = {}
    for r in range(rounds):
        for name in ("direct", "iclx"):
            work = tmp / f"{name}{r}"
            work.mkdir()
            out = run_case(name, {"work": str(work), "input": str(data), "tasks": 1, "workers": 1})
            times[name].append(out["seconds"])
            kept[name] = out["kept"]
            shutil.rmtree(work)
            print(f"  round {r + 1} {name:6s}: {out['seconds']:.1f}s, {n_docs / out['seconds']:.1f} docs/s, "
                  f"{mb / out['seconds']:.2f} MB/s, kept {out['kept']}")
    direct, ours = statistics.median(times["direct"]), statistics.median(times["iclx"])
    print(f"iclx vs datatrove direct: {n_docs / ours:.1f} vs {n_docs / direct:.1f} docs/s, {mb / ours:.2f} vs {mb / direct:.2f} MB/s: "
          f"ratio {direct / ours:.3f} (bar >= 0.9); kept {kept['iclx']} vs {kept['direct']}")

    variants = {"1 worker": (1, "forkserver"), "2 workers (forkserver)": (2, "forkserver"), "2 workers (fork)": (2, "fork")}
    workers: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        for label, (w, method) in variants.items():
            work = tmp / f"w{w}{method}_{r}"
            work.mkdir()
            out = run_case("iclx", {"work": str(work), "input": str(data), "tasks": 2, "workers": w, "start_method": method})
            workers[label].append(out["seconds"])
            shutil.rmtree(work)
            print(f"  round {r + 1} 2 tasks, {label}: {out['seconds']:.1f}s, {n_docs / out['seconds']:.1f} docs/s")
    one = statistics.median(workers["1 worker"])
    for label in list(variants)[1:]:
        two = statistics.median(workers[label])
        print(f"{label} vs 1 worker (2 tasks): {n_docs / two:.1f} vs {n_docs / one:.1f} docs/s: speed-up {one / two:.2f}x "
              f"(load {os.getloadavg()[0]:.2f})")


def minhash_memory(tmp: Path, n: int) -> None:
    corpus = tmp / "minhash"
    corpus.mkdir()
    run_case("corpus", {"path": str(corpus / "docs.jsonl"), "n": n})  # made in another process: its memory is not counted
    size = (corpus / "docs.jsonl").stat().st_size / 1e6
    print(f"MinHash (5-grams, 14 buckets x 8 hashes, 64-bit) on {n:,} documents ({size:.0f} MB); load {os.getloadavg()[0]:.2f}:")
    for stage in ("signature", "buckets", "clusters", "filter"):
        out = run_case("minhash_stage", {"work": str(corpus), "stage": stage})
        print(f"  {stage:9s}: {out['seconds']:6.1f}s, peak RSS {out['peak_rss_mb']:.0f} MB "
              f"({out['peak_rss_mb'] - out['baseline_rss_mb']:+.0f} MB over the {out['baseline_rss_mb']:.0f} MB of the process "
              f"with datatrove imported)")
    sig_bytes = sum(p.stat().st_size for p in (corpus / "sigs").rglob("*.sig"))
    dup_bytes = sum(p.stat().st_size for p in (corpus / "buckets").glob("*.dups"))
    removed = sum(p.stat().st_size for p in (corpus / "remove").glob("*.remove")) // 4
    print(f"  on disk: signatures {sig_bytes / 1e6:.1f} MB ({sig_bytes / n:.0f} bytes/document), duplicate pairs "
          f"{dup_bytes / 1e6:.2f} MB; {removed:,} documents to remove (10% were made near copies)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2, help="times the pages are repeated in the input")
    parser.add_argument("--minhash-docs", type=int, default=100_000, help="0: skip the MinHash measurement")
    parser.add_argument("--only-minhash", action="store_true", help="skip the throughput comparisons")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        name, case_args = args.case
        print(json.dumps(globals()[f"case_{name}"](json.loads(case_args))))
        return
    tmp = Path(tempfile.mkdtemp(prefix="curate_bench_"))
    try:
        if not args.only_minhash:
            compare(tmp, args.rounds, args.copies)
        if args.minhash_docs:
            minhash_memory(tmp, args.minhash_docs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
