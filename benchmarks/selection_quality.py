"""Model-free selection quality on SST-2: how often the chosen demonstrations share the query's label.

Pool = SST-2 train (6,920 sentences), queries = dev (872); every selector at k = 4 and 8 with the
hashing and MiniLM embedders (random and bm25 use none). Random choice scores about the label's
share of the pool (~50%); a selector that finds demonstrations like the query scores higher
(Liu et al. 2021's premise for KATE). Beside it, the redundancy of each k=8 set: the mean cosine
between its members under each embedder (MMR and DPP exist to lower it).

EPR learns from a language model's scores, and the small models iclx pre-trains on this machine show
no ICL on SST-2, so their scores would teach it noise. Its row uses a *label scorer* instead,
S(e) = 0 if e's label is the query's, else -1: the preference of an idealized LM that copies the
labels of its demonstrations. Trained on 512 train queries, it is measured on the unseen dev
queries, so the row shows how much of that preference the dual encoder learns and generalizes;
it is an upper reference for EPR, not a result with a real LM (``--selectors`` without epr skips it).

    python benchmarks/selection_quality.py [--data ../shared/data/sst2] [--embedders hashing,minilm]
"""

from __future__ import annotations

import argparse
import sys
import time
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from iclx.artifacts import ArtifactStore
from iclx.embedders import build_embedder, cached_vectors
from iclx.registry import build
from iclx.run import Run
from iclx.selectors.base import SelectionContext
from iclx.selectors.quality import label_agreement
from iclx.tables import format_table
from iclx.tasks.example import Example

VERBALIZER = {0: "negative", 1: "positive"}
EMBEDDING_SELECTORS = ("knn", "mmr", "dpp", "epr")
TRAINER = Path(__file__).resolve().parent.parent / "conf" / "trainer" / "cpu.yaml"


def read_sst2(path: Path, split: str) -> list[Example]:
    """``<0|1> <sentence>`` lines of ``stsa.binary.<split>`` as examples with ids ``<split>-<line>``."""
    examples = []
    for i, line in enumerate((path / f"stsa.binary.{split}").read_text().splitlines()):
        label, text = line.split(" ", 1)
        examples.append(Example(id=f"{split}-{i}", input=text, output=VERBALIZER[int(label)], label=int(label)))
    return examples


def label_scorer(query: Example, candidates: list[Example]) -> np.ndarray:
    """EPR's teacher here: an idealized LM that prefers demonstrations labelled like the query."""
    return np.array([0.0 if c.label == query.label else -1.0 for c in candidates])


def redundancy(vectors: np.ndarray, chosen: list[list[int]]) -> float:
    """Mean cosine between the members of each chosen set (pairs of distinct members), over queries."""
    total = 0.0
    for ids in chosen:
        members = vectors[ids]
        k = len(ids)
        total += (float((members @ members.T).sum()) - k) / (k * (k - 1))
    return total / len(chosen)


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=here.parent.parent / "shared" / "data" / "sst2")
    parser.add_argument("--embedders", default="hashing,minilm")
    parser.add_argument("--selectors", default="random,bm25,knn,mmr,dpp,epr")
    parser.add_argument("--shots", default="4,8")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/iclx"), help="pool embeddings are cached here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=Path("outputs/benchmarks/selection_quality.png"))
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"selection_quality: no SST-2 data at {args.data} (pass --data)")

    pool, queries = read_sst2(args.data, "train"), read_sst2(args.data, "dev")
    shots = [int(k) for k in args.shots.split(",")]
    trainer = OmegaConf.load(TRAINER)
    trainer.enable_progress_bar = False
    run = Run(OmegaConf.create({"trainer": trainer}), Path(tempfile.mkdtemp(prefix="selection-quality-")), ArtifactStore(args.cache_dir), args.seed)
    context = SelectionContext(run=run, seed=args.seed, scorer=label_scorer, scorer_key="sst2-label-scorer")
    positive_share = sum(e.label for e in pool) / len(pool)
    print(f"pool {len(pool)} (positive {positive_share:.1%}), queries {len(queries)}, seed {args.seed}", flush=True)

    embedders = args.embedders.split(",")
    inputs = [e.input for e in pool]
    yardsticks = {e: cached_vectors(run, build_embedder({"name": e}).fit(inputs), inputs) for e in embedders}
    columns = ["selector", "embedder", *(f"k={k}" for k in shots), *(f"cos@{max(shots)} {e}" for e in embedders), "seconds"]
    rows = []
    for name in args.selectors.split(","):
        for embedder in embedders if name in EMBEDDING_SELECTORS else ["-"]:
            cfg = {"name": name} | ({"embedder": {"name": embedder}} if embedder != "-" else {})
            start = time.perf_counter()
            selector = build("selector", cfg).fit(pool, context)
            chosen = selector.select(queries, max(shots))
            agreement = [label_agreement(pool, queries, [c[:k] for c in chosen]) for k in shots]
            similarity = [redundancy(yardsticks[e], chosen) for e in embedders]
            label = f"{name} (label scorer)" if name == "epr" else name
            rows.append([label, embedder, *agreement, *similarity, round(time.perf_counter() - start, 1)])
            print(format_table(columns, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print("share of chosen demonstrations whose label equals the query's (SST-2 train -> dev), and the")
    print(f"mean cosine between the {max(shots)} demonstrations of a query under each embedder")
    print(format_table(columns, rows))
    plot(rows, shots, positive_share, args.plot)
    print(f"plot: {args.plot}")


def plot(rows: list[list], shots: list[int], positive_share: float, path: Path) -> None:
    """Grouped bars: label agreement per selector and embedder, one bar per k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [name.replace(" (", "\n(") + ("" if embedder == "-" else f"\n{embedder}") for name, embedder, *_ in rows]
    width = 0.8 / len(shots)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(rows), 4.0))
    for j, k in enumerate(shots):
        xs = np.arange(len(rows)) + (j - (len(shots) - 1) / 2) * width
        ax.bar(xs, [row[2 + j] for row in rows], width, label=f"k={k}")
    chance = positive_share**2 + (1 - positive_share) ** 2  # two labels drawn independently agree
    ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label=f"random expectation {chance:.3f}")
    ax.set_xticks(np.arange(len(rows)), labels, fontsize=8)
    ax.set_ylim(0.4, max(0.8, max(max(row[2 : 2 + len(shots)]) for row in rows) + 0.03))
    ax.set_ylabel("demonstrations with the query's label")
    ax.set_title("SST-2 selection quality (pool: train, queries: dev)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
