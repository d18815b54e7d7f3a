"""``epr``: Efficient Prompt Retrieval (Rubin et al. 2022), a retriever trained on the LM's preferences.

KATE assumes that demonstrations similar to the query help; EPR asks the language model which
ones do, and learns that similarity:

1. sample up to ``train_queries`` pool examples as training queries (x, y);
2. shortlist ``candidates`` other pool examples for each (L in the paper), by ``bm25`` or ``knn``;
3. score each candidate e with the LM: S(e) = log p(y | e, x) (the scorer the evaluate stage
   injects, ``SelectionContext.scorer``);
4. the ``positives`` highest-scoring are positives, the ``hard_negatives`` lowest hard negatives;
5. train a dual encoder, a query tower over x and a candidate tower over (x_e, y_e), with InfoNCE:
   each query must pick its positive among every positive and hard negative of the batch.

To select, the candidate tower encodes the pool into a FAISS index and the query tower encodes each
query. The trained retriever (and the LM scores it learned from) is an artifact keyed by the pool,
the config, the scorer's LM (``SelectionContext.scorer_key``) and the seed, so a sweep trains once.

The paper fine-tunes two BERT encoders; on a CPU each tower here is the frozen embedder's vector
plus a trainable residual MLP whose output layer starts at zero, so training starts from plain
kNN over the embedder and moves only as far as the LM's preferences push it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iclx.embedders import build_embedder, cached_vectors
from iclx.embedders.base import texts_digest
from iclx.embedders.index import VectorIndex, selector_index_spec
from iclx.errors import ConfigError
from iclx.registry import register
from iclx.schema import EmbedderConfig, OptimizerConfig
from iclx.selectors.base import Selector, first_k
from iclx.selectors.bm25 import BM25Index
from iclx.tasks.example import Example
from iclx.training import build_trainer
from iclx.training.retriever import ContrastiveTraining

log = logging.getLogger("iclx")

DEFAULT_OPTIMIZER = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}


def candidate_text(example: Example) -> str:
    """What the candidate tower reads: a demonstration as the prompt shows it, input and output."""
    return f"{example.input} {example.output}"


class Tower(nn.Module):
    """x -> normalize(x + MLP(x)); the MLP's last layer starts at zero, so the tower starts as identity."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self.down(F.gelu(self.up(x))), dim=-1)


class DualEncoder(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.query = Tower(dim, hidden)
        self.candidate = Tower(dim, hidden)


@register("selector", "epr")
class EPRSelector(Selector):
    def __init__(
        self,
        embedder: EmbedderConfig | None = None,
        shortlist: Literal["bm25", "knn"] = "bm25",
        candidates: int = 32,
        train_queries: int = 512,
        positives: int = 4,
        hard_negatives: int = 4,
        hidden: int = 256,
        temperature: float = 0.05,
        batch_size: int = 32,
        steps: int = 300,
        optimizer: OptimizerConfig | None = None,
        index: str = "Flat",
        nprobe: int = 16,
    ):
        for key, value in (("candidates", candidates), ("train_queries", train_queries), ("positives", positives),
                           ("hard_negatives", hard_negatives), ("batch_size", batch_size), ("steps", steps)):
            if value < 1:
                raise ConfigError(f"selector.{key} must be >= 1, got {value}")
        if candidates < positives + hard_negatives:
            raise ConfigError(
                f"selector.candidates ({candidates}) must be at least positives + hard_negatives ({positives + hard_negatives})"
            )
        self.embedder_cfg = dict(embedder or {"name": "hashing"})
        self.train_cfg = dict(
            shortlist=shortlist, candidates=candidates, train_queries=train_queries, positives=positives,
            hard_negatives=hard_negatives, hidden=hidden, temperature=temperature, batch_size=batch_size,
            steps=steps, optimizer=dict(optimizer or DEFAULT_OPTIMIZER),
        )
        self.index_spec = selector_index_spec(index, nprobe)
        self.training_stats: dict[str, float] = {}

    # --- fit: embed, score, train (or load), index -------------------------------------------------

    def _fit(self) -> None:
        ctx = self.context
        if ctx.run is None:
            raise ConfigError("selector 'epr' trains a retriever, an artifact of the run, and has no run here: a task "
                              "that splits its pool into groups (ginc with pool=matched) fits each group without "
                              "it; use a shared pool, e.g. task.pool=mixed")
        if ctx.scorer is None:
            raise ConfigError("selector 'epr' learns from a language model's scores and none was given: use it in the evaluate stage")
        self.embedder = build_embedder(self.embedder_cfg, key="selector.embedder", **ctx.embedder_args)
        inputs = [example.input for example in self.pool]
        self.embedder.fit(inputs)
        self.input_vectors = cached_vectors(ctx.run, self.embedder, inputs, desc="embedding the pool")
        self.candidate_vectors = cached_vectors(
            ctx.run, self.embedder, [candidate_text(e) for e in self.pool], desc="embedding pool candidates"
        )
        # the retriever trains its own ``steps``, whatever the trainer group's max_steps (e.g.
        # trainer=debug) says for pre-training; ``steps`` is in the key twice, as it always was,
        # so that retrievers cached before stay valid
        steps = self.train_cfg["steps"]
        key_parts = dict(
            train=self.train_cfg, steps=steps, embedder=self.embedder.cache_config(), embedder_fit=self.embedder.fingerprint(),
            seed=ctx.seed, scorer=ctx.scorer_key,
            pool=texts_digest([f"{e.id}\0{candidate_text(e)}" for e in self.pool]),
        )
        if ctx.scorer_key:
            folder = ctx.run.lineage.folder("retriever", key_parts, lambda f: self._train(f, steps))
            self._load(folder)
        else:  # without a name for the LM, a cached retriever could come from another model: train afresh
            log.warning("selector 'epr': no scorer_key, so the trained retriever is not cached")
            with tempfile.TemporaryDirectory(prefix="iclx-epr-") as folder:
                self._train(Path(folder), steps)
                self._load(Path(folder))
        pool_codes = self._encode(self.encoder.candidate, self.candidate_vectors)
        self.index = VectorIndex(pool_codes, self.index_spec, seed=ctx.seed, key="selector.index")

    def _load(self, folder: Path) -> None:
        self.encoder = DualEncoder(self.input_vectors.shape[1], self.train_cfg["hidden"])
        self.encoder.load_state_dict(torch.load(folder / "retriever.pt", weights_only=True))
        self.encoder.eval()
        self.training_stats = json.loads((folder / "training.json").read_text())

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        base = cached_vectors(self.context.run, self.embedder, [q.input for q in queries], desc="embedding queries")
        _, ranked = self.index.search(self._encode(self.encoder.query, base), k + 1)
        return [first_k(r, k, self.own_index(q)).tolist() for q, r in zip(queries, ranked)]

    @staticmethod
    @torch.no_grad()
    def _encode(tower: Tower, vectors: np.ndarray) -> np.ndarray:
        return tower(torch.from_numpy(np.ascontiguousarray(vectors))).numpy().astype(np.float32)

    # --- training --------------------------------------------------------------------------------

    def _shortlists(self, query_ids: np.ndarray) -> np.ndarray:
        """For each training query, ``candidates`` other pool indices (BM25 or cosine of inputs)."""
        size = min(self.train_cfg["candidates"], len(self.pool) - 1)
        if size < self.train_cfg["positives"] + self.train_cfg["hard_negatives"]:
            raise ConfigError(
                f"selector 'epr': a pool of {len(self.pool)} examples leaves shortlists of {size}, fewer than "
                f"positives + hard_negatives ({self.train_cfg['positives'] + self.train_cfg['hard_negatives']})"
            )
        texts = [self.pool[i].input for i in query_ids]
        if self.train_cfg["shortlist"] == "bm25":
            _, ranked = BM25Index([e.input for e in self.pool]).search(texts, size + 1)
        else:
            _, ranked = VectorIndex(self.input_vectors).search(self.input_vectors[query_ids], size + 1)
        return np.stack([first_k(r, size, q) for q, r in zip(query_ids, ranked)])

    def _score(self, query_ids: np.ndarray, shortlists: np.ndarray) -> np.ndarray:
        from iclx.progress import progress

        scores = np.zeros(shortlists.shape, dtype=np.float64)
        pairs = list(zip(query_ids, shortlists))
        for row, (q, ids) in enumerate(progress(pairs, desc="epr: scoring candidates with the LM", unit="query")):
            s = np.asarray(self.context.scorer(self.pool[q], [self.pool[i] for i in ids]), dtype=np.float64)
            if s.shape != (len(ids),) or not np.all(np.isfinite(s)):
                raise ValueError(f"epr scorer returned {s.shape} / non-finite scores for {len(ids)} candidates of '{self.pool[q].id}'")
            scores[row] = s
        return scores

    def _train(self, folder: Path, steps: int) -> None:
        cfg, run = self.train_cfg, self.context.run
        rng = np.random.default_rng(self.context.seed)
        query_ids = np.sort(rng.choice(len(self.pool), size=min(cfg["train_queries"], len(self.pool)), replace=False))
        shortlists = self._shortlists(query_ids)
        scores = self._score(query_ids, shortlists)
        order = np.argsort(-scores, axis=1, kind="stable")
        positives = np.take_along_axis(shortlists, order[:, : cfg["positives"]], axis=1)
        negatives = np.take_along_axis(shortlists, order[:, -cfg["hard_negatives"] :], axis=1)
        np.savez(folder / "scores.npz", query_ids=query_ids, shortlists=shortlists, scores=scores)

        # one training example per (query, positive), paired with one of its hard negatives
        pairs_q = np.repeat(query_ids, cfg["positives"])
        pairs_pos = positives.reshape(-1)
        pairs_neg = negatives[:, np.arange(cfg["positives"]) % cfg["hard_negatives"]].reshape(-1)
        dataset = torch.utils.data.TensorDataset(
            torch.from_numpy(self.input_vectors[pairs_q]),
            torch.from_numpy(self.candidate_vectors[pairs_pos]),
            torch.from_numpy(self.candidate_vectors[pairs_neg]),
            *(torch.from_numpy(a.astype(np.int64)) for a in (pairs_q, pairs_pos, pairs_neg)),
        )
        generator = torch.Generator().manual_seed(self.context.seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=min(cfg["batch_size"], len(dataset)), shuffle=True, drop_last=True, generator=generator
        )
        torch.manual_seed(self.context.seed)
        encoder = DualEncoder(self.input_vectors.shape[1], cfg["hidden"])
        module = ContrastiveTraining(encoder, cfg["temperature"], cfg["optimizer"], steps)
        trainer = build_trainer(run, trainer_cfg=self.context.trainer, max_steps=steps, enable_checkpointing=False,
                                progress_desc="epr: training the retriever")
        trainer.fit(module, loader)
        run.advance_step(trainer.global_step)

        torch.save(encoder.state_dict(), folder / "retriever.pt")
        window = max(1, len(module.losses) // 10)
        stats = {
            "train_queries": len(query_ids),
            "steps": len(module.losses),
            "loss_first": float(np.mean(module.losses[:window])),
            "loss_last": float(np.mean(module.losses[-window:])),
            "score_positive_mean": float(np.take_along_axis(scores, order[:, : cfg["positives"]], axis=1).mean()),
            "score_negative_mean": float(np.take_along_axis(scores, order[:, -cfg["hard_negatives"] :], axis=1).mean()),
        }
        (folder / "training.json").write_text(json.dumps(stats, indent=2) + "\n")
        log.info("epr: trained on %d queries, loss %.3f -> %.3f", len(query_ids), stats["loss_first"], stats["loss_last"])
