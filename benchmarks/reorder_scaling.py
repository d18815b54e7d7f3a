"""How In-Context Pretraining ordering (``data/order=iclm``) scales: time and peak memory for
10k, 100k and 1M synthetic 384-d document embeddings, exact vs approximate kNN index, and the
approximate index's recall@10 against exact search.

Each case runs in a fresh process (its peak RSS is its own) on the same embeddings: a mixture of
topics, ~1,000 documents each, within-topic cosine ~0.5, like sentence embeddings of a corpus of
many subjects. Exact search at 1M (N^2 d = 4e14 flops) is not run: its time is extrapolated from
searching a sample of queries, and labelled so. Recall@10 is measured on a fixed sample of query
documents against brute force over all N.

    python benchmarks/reorder_scaling.py                      # 10k, 100k, 1M (about 10 minutes)
    python benchmarks/reorder_scaling.py --sizes 10000 100000 --threads 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import os
import resource
import time

import numpy as np

DOCS_PER_TOPIC = 1000


def synthetic_embeddings(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit rows: topic centre + isotropic noise of the same scale, built in chunks (float32)."""
    from iclx.embedders.base import normalize

    rng = np.random.default_rng(seed)
    n_topics = max(10, n // DOCS_PER_TOPIC)
    centres = rng.standard_normal((n_topics, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        topics = rng.integers(n_topics, size=stop - start)
        out[start:stop] = normalize(centres[topics] + rng.standard_normal((stop - start, dim), dtype=np.float32))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_case(n: int, dim: int, mode: str, k: int, sample: int, threads: int) -> dict:
    """One ordering in this (fresh) process: times of its phases, peak memory, recall@k."""
    import faiss

    from iclx.data.order.iclm import greedy_path, near_duplicates
    from iclx.data.order.neighbors import SEARCH_BATCH, IndexSpec, build_index, knn_graph

    faiss.omp_set_num_threads(threads)
    embeddings = synthetic_embeddings(n, dim)
    rss_data = peak_rss_mb()
    spec = IndexSpec(exact_below=n + 1) if mode == "exact" else IndexSpec(exact_below=0)
    queries = np.random.default_rng(1).choice(n, size=min(sample, n), replace=False)
    result = {"N": n, "index": mode}

    if mode == "exact-estimate":  # too slow to run: time the search of `queries` and scale up
        start = time.perf_counter()
        index = build_index(embeddings, IndexSpec(exact_below=n + 1))
        index.search(embeddings[queries], k + 1, batch_size=SEARCH_BATCH)
        seconds = (time.perf_counter() - start) * n / len(queries)
        return result | {"knn_s": seconds, "total_s": seconds, "estimated": True}

    start = time.perf_counter()
    sims, ids = knn_graph(embeddings, k, spec, progress=None)
    graph_done = time.perf_counter()
    dropped = near_duplicates(sims, ids, 0.9)
    path, _ = greedy_path(sims, ids, exclude=dropped)
    finished = time.perf_counter()
    assert len(path) + dropped.sum() == n
    result |= {
        "knn_s": graph_done - start,
        "traverse_s": finished - graph_done,
        "total_s": finished - start,
        "peak_rss_mb": peak_rss_mb(),
        "above_data_mb": peak_rss_mb() - rss_data,
        "estimated": False,
    }
    # recall@k of this graph against brute force, on the sampled query documents
    _, truth = faiss.knn(embeddings[queries], embeddings, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    hits = [len(set(ids[q]) & (set(row.tolist()) - {q})) / k for q, row in zip(queries, truth)]
    result["recall_at_k"] = float(np.mean(hits))
    return result


def in_fresh_process(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_case, *args).result()


def growth_exponent(rows: list[dict], mode: str) -> str:
    """Slope of log(time) against log(N) between consecutive sizes: 1 = linear, 2 = quadratic."""
    points = [(r["N"], r["total_s"]) for r in rows if r["index"] == mode and not r["estimated"]]
    slopes = [
        f"{math.log(t2 / t1) / math.log(n2 / n1):.2f} ({n1:,}->{n2:,})"
        for (n1, t1), (n2, t2) in zip(points, points[1:])
    ]
    return ", ".join(slopes) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sample", type=int, default=2000, help="query documents for recall / the exact estimate")
    parser.add_argument("--exact-up-to", type=int, default=100_000, help="above this, estimate exact search")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from iclx.tables import format_table

    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}, threads: {args.threads}", flush=True)
    rows = []
    for n in args.sizes:
        for mode in ("exact", "approximate"):
            if mode == "exact" and n > args.exact_up_to:
                mode = "exact-estimate"
            row = in_fresh_process(n, args.dim, mode, args.k, args.sample, args.threads)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(format_table(list(row), [list(row.values())]), flush=True)

    columns = ["N", "index", "total_s", "knn_s", "traverse_s", "peak_rss_mb", "above_data_mb", "recall_at_k",
               "speedup", "load"]
    exact_time = {r["N"]: r["total_s"] for r in rows if r["index"].startswith("exact")}
    table = []
    for r in rows:
        speedup = exact_time[r["N"]] / r["total_s"]  # baseline: exact search on the same N, same run
        name = r["index"] + (" (extrapolated)" if r["estimated"] else "")
        table.append([r["N"], name, *(r.get(c, "") for c in columns[2:8]), speedup, r["load"]])
    print()
    print(format_table(columns, table))
    print(f"time growth exponent, exact: {growth_exponent(rows, 'exact')}")
    print(f"time growth exponent, approximate: {growth_exponent(rows, 'approximate')}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
