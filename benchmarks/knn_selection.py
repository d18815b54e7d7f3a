"""kNN selection for 1,000 queries over a 100,000-example pool: exact FAISS search vs approximate indexes.

Runs the real ``knn`` selector (fit = index the pool, select = embed queries, search, drop the
query itself, check the contract) with 384-dimensional vectors (MiniLM's size) drawn around 2,000
cluster centres, as sentence embeddings cluster by topic; a lookup-table embedder hands them over,
so the time is selection, not embedding. Exact ``Flat`` search is the baseline measured in the
same run; each approximate index reports its speed-up over it and its recall@k against it.

    python benchmarks/knn_selection.py [--pool 100000] [--queries 1000] [--k 8]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np

from iclx.embedders.base import Embedder, normalize
from iclx.registry import build, register
from iclx.selectors.base import SelectionContext
from iclx.tables import format_table
from iclx.tasks.example import Example

INDEXES = {"Flat": [0], "IVF256,Flat": [4, 16], "HNSW32": [32, 128]}  # factory -> search breadths tried


@register("embedder", "benchmark_table")
class TableEmbedder(Embedder):
    """Texts are row numbers of a precomputed table of unit vectors."""

    name = "benchmark_table"

    def __init__(self, table: np.ndarray | None = None, batch_size: int = 65536):
        super().__init__()
        self.table = table
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.table[[int(t) for t in texts]]


def clustered_vectors(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    around = centres[rng.integers(len(centres), size=n)]
    # noise as long as the centre: neighbours are mostly, not only, in the query's own cluster
    return normalize(around + rng.normal(scale=1.0 / np.sqrt(dim), size=(n, dim)).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centres = normalize(rng.normal(size=(2000, args.dim)).astype(np.float32))
    table = np.concatenate([clustered_vectors(args.pool, args.dim, centres, rng), clustered_vectors(args.queries, args.dim, centres, rng)])
    pool = [Example(id=f"p{i}", input=str(i), output="") for i in range(args.pool)]
    queries = [Example(id=f"q{i}", input=str(args.pool + i), output="") for i in range(args.queries)]
    context = SelectionContext(embedder_args={"table": table})
    print(f"pool {args.pool:,} x {args.dim}, {args.queries:,} queries, k={args.k}; load average {os.getloadavg()[0]:.2f}", flush=True)

    columns = ["index", "fit s", "select s", "speed-up", f"recall@{args.k}"]
    rows, exact, baseline = [], None, None
    for factory, breadths in INDEXES.items():
        cfg = {"name": "knn", "embedder": {"name": "benchmark_table"}, "index": factory}
        start = time.perf_counter()
        selector = build("selector", cfg).fit(pool, context)
        fit_seconds = time.perf_counter() - start
        for breadth in breadths:
            selector.index.set_search_breadth(nprobe=max(breadth, 1), ef_search=max(breadth, 1))
            start = time.perf_counter()
            chosen = np.asarray(selector.select(queries, args.k))
            seconds = time.perf_counter() - start
            if exact is None:
                exact, baseline = chosen, seconds
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(chosen, exact)])
            knob = {"Flat": "exact", "IVF256,Flat": f"nprobe {breadth}", "HNSW32": f"efSearch {breadth}"}[factory]
            rows.append([f"{factory} ({knob})", round(fit_seconds, 2), round(seconds, 3), round(baseline / seconds, 1), round(recall, 4)])
            print(format_table(columns, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(f"kNN selection, {args.queries:,} queries over {args.pool:,} examples (speed-up of select vs exact Flat in this run)")
    print(format_table(columns, rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
