"""EPR: trained from a synthetic LM scorer, it learns a preference plain similarity cannot see.

The pool pairs each "query word" (apple, river, ...) with a "partner word" (copper, lantern, ...)
that shares no character n-gram with it. The scorer says a candidate helps a query exactly when it
carries the query's partner word, so kNN over the hashing embedder (which finds the examples that
repeat the query's own word) never finds them, and a trained EPR retriever must.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from iclx.artifacts import ArtifactStore
from iclx.errors import ConfigError
from iclx.registry import build
from iclx.run import Run
from iclx.selectors.base import SelectionContext
from iclx.tasks.example import Example

QUERY_WORDS = ["apple", "river", "candle", "orbit", "tiger", "violin"]
PARTNER_WORDS = ["copper", "lantern", "meadow", "pepper", "glacier", "harbor"]
FILLER = "one two three four five six seven eight nine ten red green blue black white north south east west".split()
EPR = {
    "name": "epr",
    "embedder": {"name": "hashing", "dim": 512},
    "shortlist": "knn",
    "candidates": 71,  # the whole pool but the query: every partner is scored
    "train_queries": 72,
    "hidden": 64,
    "steps": 120,
    "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0},
}


def paired_pool() -> list[Example]:
    rng = np.random.default_rng(0)
    pool = []
    for group in range(len(QUERY_WORDS)):
        for side, words in (("q", QUERY_WORDS), ("p", PARTNER_WORDS)):
            for j in range(6):
                text = " ".join([words[group], *rng.choice(FILLER, 4)])
                pool.append(Example(id=f"{side}{group}-{j}", input=text, output="ok", meta={"group": group, "side": side}))
    return pool


def helps(query: Example, candidate: Example) -> bool:
    return candidate.meta["group"] == query.meta["group"] and candidate.meta["side"] != query.meta["side"]


class PartnerScorer:
    """S(e): 0 for the query's partners, -5 for everything else; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, query: Example, candidates: list[Example]) -> np.ndarray:
        self.calls += 1
        return np.array([0.0 if helps(query, c) else -5.0 for c in candidates])


def make_run(tmp_path: Path) -> Run:
    trainer = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "trainer" / "cpu.yaml")
    trainer.enable_progress_bar = False
    cfg = OmegaConf.create({"trainer": trainer})
    return Run(cfg=cfg, out_dir=tmp_path / "run", store=ArtifactStore(tmp_path / "cache"), seed=0)


def top1_helps(selector, pool: list[Example]) -> float:
    return float(np.mean([helps(q, pool[ids[0]]) for q, ids in zip(pool, selector.select(pool, 1))]))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny towers gain nothing from two threads, and on a shared, busy machine every OpenMP region
    waits for a descheduled partner thread: one thread trains these 120 steps over 10x faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("epr")
    pool, scorer = paired_pool(), PartnerScorer()
    context = SelectionContext(run=make_run(tmp_path), seed=0, scorer=scorer, scorer_key="partner-scorer")
    selector = build("selector", EPR).fit(pool, context)
    return pool, scorer, context, selector


def test_epr_learns_what_the_scorer_prefers_and_its_loss_falls(trained):
    pool, scorer, context, selector = trained
    knn = build("selector", {"name": "knn", "embedder": EPR["embedder"]}).fit(pool, context)
    assert top1_helps(knn, pool) < 0.1  # similarity alone finds the query's own word, rarely its partner
    assert top1_helps(selector, pool) >= 0.95  # the planted positive ranks first after training
    stats = selector.training_stats
    assert stats["steps"] == 120 and stats["train_queries"] == 72
    assert stats["loss_last"] < 0.5 * stats["loss_first"]
    assert stats["score_positive_mean"] == 0.0 and stats["score_negative_mean"] == -5.0
    assert scorer.calls == 72  # one scorer call per training query, its whole shortlist at once


def test_epr_keeps_the_selector_contract(trained):
    pool, _, _, selector = trained
    chosen = selector.select(pool, 5)
    assert all(len(set(ids)) == 5 and i not in ids for i, ids in enumerate(chosen))
    assert [ids[:2] for ids in chosen] == selector.select(pool, 2)
    with pytest.raises(ConfigError, match=r"^selector 'epr': cannot choose k=72 demonstrations from a pool of 72"):
        selector.select(pool, 72)


def test_the_trained_retriever_is_an_artifact_reused_without_scoring_again(trained, tmp_path):
    pool, _, context, selector = trained
    assert len(list(context.run.store.root.joinpath("retriever").glob("*/retriever.pt"))) == 1
    fresh = PartnerScorer()
    again = build("selector", EPR).fit(pool, SelectionContext(run=context.run, seed=0, scorer=fresh, scorer_key="partner-scorer"))
    assert fresh.calls == 0
    assert again.select(pool, 3) == selector.select(pool, 3)


def test_epr_shortlists_by_bm25_too(tmp_path):
    # BM25 finds candidates sharing filler words; with L = 10 only some partners are shortlisted,
    # so the check is the mechanics: each training query's shortlist excludes it and is scored once
    pool, scorer = paired_pool(), PartnerScorer()
    cfg = EPR | {"shortlist": "bm25", "candidates": 10, "train_queries": 20, "steps": 5}
    context = SelectionContext(run=make_run(tmp_path), seed=0, scorer=scorer, scorer_key="s")
    selector = build("selector", cfg).fit(pool, context)
    scores = np.load(next(context.run.store.root.joinpath("retriever").glob("*/scores.npz")))
    assert scores["shortlists"].shape == (20, 10) and scorer.calls == 20
    assert not (scores["shortlists"] == scores["query_ids"][:, None]).any()
    assert selector.training_stats["steps"] == 5


def test_epr_trains_its_own_steps_with_the_trainer_settings_passed_in(tmp_path):
    """trainer.max_steps (e.g. trainer=debug's 20) is pre-training's: it must not shorten the retriever."""
    pool, run = paired_pool(), make_run(tmp_path)
    run.cfg.trainer.max_steps = 2  # what the retriever must not follow
    settings = OmegaConf.merge(run.cfg.trainer, {"max_steps": 3, "log_every_n_steps": 1})
    cfg = EPR | {"shortlist": "bm25", "candidates": 10, "train_queries": 20, "steps": 7}
    context = SelectionContext(run=run, seed=0, scorer=PartnerScorer(), scorer_key="s", trainer=settings)
    assert build("selector", cfg).fit(pool, context).training_stats["steps"] == 7
    without = SelectionContext(run=make_run(tmp_path / "b"), seed=0, scorer=PartnerScorer(), scorer_key="s")
    without.run.cfg.trainer.max_steps = 2
    assert build("selector", cfg).fit(pool, without).training_stats["steps"] == 7


def test_epr_without_a_scorer_or_with_too_short_shortlists_fails_clearly(tmp_path):
    pool = paired_pool()
    with pytest.raises(ConfigError, match=r"^selector 'epr' learns from a language model's scores and none was given"):
        build("selector", EPR).fit(pool, SelectionContext(run=make_run(tmp_path)))
    with pytest.raises(ConfigError, match=r"^selector 'epr' trains a retriever, an artifact of the run, and has no run here.*task\.pool=mixed$"):
        build("selector", EPR).fit(pool, SelectionContext(scorer=PartnerScorer(), scorer_key="s"))
    with pytest.raises(ConfigError, match=r"^selector\.candidates \(6\) must be at least positives \+ hard_negatives \(8\)$"):
        build("selector", EPR | {"candidates": 6})
    context = SelectionContext(run=make_run(tmp_path), scorer=PartnerScorer(), scorer_key="s")
    with pytest.raises(ConfigError, match=r"^selector 'epr': a pool of 5 examples leaves shortlists of 4, fewer than"):
        build("selector", EPR).fit(pool[:5], context)
