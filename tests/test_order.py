"""The data/order group: every ordering's contract, the ICLM traversal, near-duplicates, kNN search,
the ordering artifact, and the headline effect on GINC-like documents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iclx.data.document import Document
from iclx.data.ginc import ginc_documents
from iclx.data.order.base import OrderContext
from iclx.data.order.iclm import greedy_path, near_duplicates
from iclx.data.order.knn_concat import neighbour_groups
from iclx.data.order.neighbors import IndexSpec, knn_graph
from iclx.data.order.stats import window_statistics
from iclx.embedders import embed_cached
from iclx.embedders.base import normalize
from iclx.errors import ConfigError
from iclx.ginc import GincLanguage
from iclx.registry import build

# GINC documents of 63 words + EOS = 64 tokens; windows of 513 tokens read 512: 8 documents each.
# 5 concepts: a window of 8 random documents is all one concept with probability 5^-7.
WINDOW = 513
# A GINC concept is a property-transition matrix, so word bigrams are what tell concepts apart
GINC_EMBEDDER = {"name": "hashing", "word_ngrams": [2, 2], "char_ngrams": [0, 0]}


@pytest.fixture(scope="module")
def ginc() -> tuple[list[Document], np.ndarray, np.ndarray]:
    docs = ginc_documents(GincLanguage(seed=0), 1200, 63)
    token_counts = np.full(len(docs), 64)
    return docs, embed_cached(None, GINC_EMBEDDER, [d.text for d in docs]), token_counts


def build_order(cfg: dict, embeddings: np.ndarray | None = None):
    """The configured ordering; given ``embeddings``, it uses them instead of its embedder."""
    ordering = build("data/order", cfg, key="data.order")
    if embeddings is not None:
        ordering.embed = lambda docs, ctx: embeddings
    return ordering


ORDERS = {
    "none": {"name": "none"},
    "random": {"name": "random", "embedder": GINC_EMBEDDER},
    "cluster": {"name": "cluster", "embedder": GINC_EMBEDDER, "n_clusters": 20},
    "iclm": {"name": "iclm", "embedder": GINC_EMBEDDER, "k": 10},
    "knn_concat": {"name": "knn_concat", "embedder": GINC_EMBEDDER, "k": 16},
}


@pytest.fixture(scope="module")
def orderings(ginc) -> dict:
    docs, embeddings, counts = ginc
    ctx = OrderContext(seed=0, token_counts=counts, window_tokens=WINDOW)
    return {name: build_order(cfg, embeddings).order(docs, ctx) for name, cfg in ORDERS.items()}


# --- contracts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["none", "random", "cluster", "iclm"])
def test_every_ordering_is_a_permutation(orderings, ginc, name):
    ordering = orderings[name]
    assert sorted(ordering.sequence.tolist()) == list(range(len(ginc[0])))
    assert ordering.stats["repeats"] == 0 and ordering.stats["near_duplicates_dropped"] == 0


def test_knn_concat_repeats_documents_and_reports_it(orderings, ginc):
    ordering, n = orderings["knn_concat"], len(ginc[0])
    sequence = ordering.sequence
    assert ordering.stats["repeats"] == len(sequence) - len(np.unique(sequence)) > 0
    assert ordering.stats["coverage"] == 1.0  # every document is an anchor once
    # 64-token documents, 512-token windows: anchor + 7 neighbours each
    assert len(sequence) == 8 * n and ordering.stats["tokens_ratio"] == pytest.approx(8.0)


@pytest.mark.parametrize("name", ["random", "cluster", "iclm", "knn_concat"])
def test_same_seed_same_ordering(ginc, orderings, name):
    docs, embeddings, counts = ginc
    again = build_order(ORDERS[name], embeddings).order(docs, OrderContext(0, counts, WINDOW))
    np.testing.assert_array_equal(again.sequence, orderings[name].sequence)
    if name != "iclm":  # the traversal has no random choice; the others are seeded
        other = build_order(ORDERS[name], embeddings).order(docs, OrderContext(1, counts, WINDOW))
        assert not np.array_equal(other.sequence, orderings[name].sequence)


# --- the effect on GINC-like documents -----------------------------------------------------------


def test_similarity_orderings_make_windows_of_one_concept(orderings):
    share = {name: orderings[name].stats["window_concept_share"] for name in ORDERS}
    similarity = {name: orderings[name].stats["adjacent_similarity"] for name in ORDERS if name != "none"}
    print("window_concept_share", share, "adjacent_similarity", similarity)
    # 5 concepts, 8 documents a window: a random window is all one concept with probability 5^-7
    assert share["random"] < 0.01
    assert share["iclm"] > 0.6 and share["cluster"] > 0.6 and share["knn_concat"] > 0.6
    assert min(similarity["iclm"], similarity["cluster"]) > 2 * similarity["random"]


def test_orderings_embed_documents_through_the_configured_embedder(ginc, orderings):
    docs, _, counts = ginc
    ordering = build("data/order", ORDERS["iclm"], key="data.order").order(docs, OrderContext(0, counts, WINDOW))
    np.testing.assert_array_equal(ordering.sequence, orderings["iclm"].sequence)
    assert ordering.stats["embed_seconds"] > 0


# --- window statistics on a case worked by hand --------------------------------------------------


def test_window_statistics_on_a_constructed_stream():
    # tokens 3,5,4,2,6; windows of 9 tokens read 8: stream [0,3) [3,8) | [8,12) [12,14) [14,16) | [16,20)
    # windows: {0,1}, {2,3,4}, {4}; adjacent pairs inside a window: (0,1), (2,3), (3,4); not (1,2)
    angles = np.array([0.0, 0.5, 2.0, 2.3, 2.9])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    stats = window_statistics(
        np.arange(5), np.array([3, 5, 4, 2, 6]), 9, embeddings=embeddings, concepts=["a", "a", "b", "b", "c"]
    )
    # the partial last window (tokens 16..19) is left out, as training leaves it out
    assert stats["windows"] == 2 and stats["docs_per_window"] == pytest.approx(2.5)
    assert stats["adjacent_similarity"] == pytest.approx(np.mean(np.cos([0.5, 0.3, 0.6])))
    assert stats["window_concept_share"] == 0.5  # {a,a} yes, {b,b,c} no
    assert stats["window_concept_purity"] == pytest.approx((1 + 2 / 3) / 2)
    # reordered 4,0,1,2,3 (6,3,5,4,2 tokens): windows {4,0} and {0,1,2} (0 spans both); concepts
    # 0:x 1:x 2:none 3:y 4:y. Unlabelled documents are left out: {4,0} mixes y and x, {0,1} is all x
    concepts = ["x", "x", None, "y", "y"]
    stats = window_statistics(np.array([4, 0, 1, 2, 3]), np.array([3, 5, 4, 2, 6]), 9, concepts=concepts)
    assert stats["windows"] == 2 and stats["docs_per_window"] == pytest.approx(2.5)
    assert "adjacent_similarity" not in stats  # no embeddings given
    assert stats["window_concept_share"] == 0.5
    assert stats["window_concept_purity"] == pytest.approx((0.5 + 1) / 2)


# --- the ICLM traversal on a graph built by hand -------------------------------------------------


def test_iclm_path_on_a_constructed_graph():
    # kNN lists (k=2; -1 = fewer neighbours found). Undirected degrees: 0:2 1:3 2:4 3:3 4:2 5:2 6:1 7:1
    ids = np.array([[1, 2], [0, 3], [1, 3], [1, 2], [5, 3], [4, 2], [7, -1], [6, -1]])
    sims = np.array(
        [[0.9, 0.5], [0.9, 0.85], [0.8, 0.7], [0.85, 0.7], [0.6, 0.1], [0.6, 0.05], [0.3, -np.inf], [0.3, -np.inf]]
    )
    # start at 6 (degree 1, lowest index), stuck after 7; restart at 0 (degree 2); then always the
    # most similar unvisited neighbour: 0->1 (.9), 1->3 (.85, over 2's .8), 3->2 (.7), 2->5 (.05,
    # an edge only 5 listed), 5->4 (.6)
    path, n_paths = greedy_path(sims, ids)
    assert path.tolist() == [6, 7, 0, 1, 3, 2, 5, 4] and n_paths == 2
    # excluded documents (dropped near-duplicates) are neither visited nor counted in degrees: without
    # 3 and 7, 6 has degree 0 and 4 degree 1, so 6 alone, then 4->5 (.6), 5->2 (.05), 2->1 (.8), 1->0
    path, n_paths = greedy_path(sims, ids, exclude=np.isin(np.arange(8), [3, 7]))
    assert path.tolist() == [6, 4, 5, 2, 1, 0] and n_paths == 2


def test_near_duplicates_keep_the_first_copy_of_each_group():
    # 0~1 and 1~2 are copies (> 0.9), 0 and 2 are not: 1 goes, 2 stays (its only twin was dropped)
    ids = np.array([[1, 2], [0, 2], [1, 0], [0, 1]])
    sims = np.array([[0.95, 0.8], [0.95, 0.93], [0.93, 0.8], [0.2, 0.1]])
    assert near_duplicates(sims, ids, 0.9).tolist() == [False, True, False, False]
    assert not near_duplicates(sims, ids, None).any()


def test_iclm_drops_near_duplicates_and_covers_the_rest(ginc):
    docs, embeddings, counts = ginc
    rng = np.random.default_rng(1)
    originals = rng.choice(len(docs), 30, replace=False)
    copies = normalize(embeddings[originals] + 0.001 * rng.normal(size=(30, embeddings.shape[1])))
    all_embeddings = np.concatenate([embeddings, copies])
    all_docs = docs + [docs[i] for i in originals]
    all_counts = np.concatenate([counts, counts[originals]])
    cfg = {**ORDERS["iclm"], "near_duplicate": 0.98}  # the test corpus's own closest pairs are below
    ordering = build_order(cfg, all_embeddings).order(all_docs, OrderContext(0, all_counts, WINDOW))
    assert sorted(ordering.dropped.tolist()) == list(range(len(docs), len(docs) + 30))  # the later copies
    assert ordering.stats["near_duplicates_dropped"] == 30
    assert not np.isin(ordering.dropped, ordering.sequence).any()
    assert sorted(np.concatenate([ordering.sequence, ordering.dropped]).tolist()) == list(range(len(all_docs)))


# --- knn_concat groups ---------------------------------------------------------------------------


def test_knn_concat_fills_each_window_with_the_nearest_neighbours():
    n = 12
    ids = np.array([[(i + j) % n for j in range(1, 5)] for i in range(n)])
    sims = np.tile([0.99, 0.8, 0.7, 0.6], (n, 1))
    counts = np.full(n, 3)
    # 3-token documents, 8-token windows: the anchor and two neighbours (3 + 3 < 8, 3 + 6 >= 8)
    groups = neighbour_groups(sims, ids, counts, 8, seed=0).reshape(n, 3)
    assert sorted(groups[:, 0].tolist()) == list(range(n))
    np.testing.assert_array_equal(groups[:, 1:], ids[groups[:, 0], :2])
    # a neighbour above the near-duplicate threshold is passed over
    groups = neighbour_groups(sims, ids, counts, 8, seed=0, near_duplicate=0.9).reshape(n, 3)
    np.testing.assert_array_equal(groups[:, 1:], ids[groups[:, 0], 1:3])


# --- FAISS neighbours ----------------------------------------------------------------------------


def test_knn_graph_exact_matches_brute_force_and_never_returns_self():
    rng = np.random.default_rng(0)
    x = normalize(rng.normal(size=(300, 16)))
    x[7] = x[3]  # an exact duplicate must not displace the document itself wrongly
    sims, ids = knn_graph(x, 5, IndexSpec())
    brute = x @ x.T
    np.fill_diagonal(brute, -np.inf)
    assert not (ids == np.arange(300)[:, None]).any()
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :5], atol=1e-5)
    assert ids[3, 0] == 7 and ids[7, 0] == 3


def test_approximate_index_recalls_the_exact_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    x = normalize(centres[rng.integers(40, size=4000)] + 0.5 * rng.normal(size=(4000, 32)))
    _, exact = knn_graph(x, 10, IndexSpec())
    _, approx = knn_graph(x, 10, IndexSpec(exact_below=1000, nprobe=8))
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall > 0.9
    # nprobe above the number of lists probes every list (not padding): exact, whatever the layout
    _, every_list = knn_graph(np.asfortranarray(x), 10, IndexSpec(exact_below=1000, nprobe=10_000))
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, every_list)]) > 0.999


def test_bad_index_and_embedder_config_say_which_key():
    with pytest.raises(ConfigError, match=r"kNN index has no parameter 'nprob' \(data\.order\.index\.nprob\)"):
        build("data/order", {"name": "iclm", "embedder": {"name": "hashing"}, "index": {"nprob": 4}}, key="data.order")
    with pytest.raises(ConfigError, match=r"data\.order\.embedder is required by data/order 'iclm'"):
        build("data/order", {"name": "iclm"}, key="data.order")
    x = normalize(np.random.default_rng(0).normal(size=(100, 8)))
    message = r"^data\.order\.index\.factory: FAISS cannot build 'IVFX,Flat' \(could not parse index string IVFX,Flat\)$"
    with pytest.raises(ConfigError, match=message):
        knn_graph(x, 3, IndexSpec(exact_below=10, factory="IVFX,Flat"), key="data.order.index")


# --- through the pack stage: the ordered stream is an artifact -----------------------------------


def test_pack_stage_orders_once_and_reuses_the_ordering(in_tmp):
    from iclx.cli import run_cli

    tmp_path = in_tmp
    args = ["stages=[pack]", "data.n_documents=400", "data.document_length=63", "data/order=iclm",
            "+data.order.embedder.word_ngrams=[2,2]", "+data.order.embedder.char_ngrams=[0,0]"]
    summaries, logs = [], []
    for run in ("first", "second"):
        assert run_cli([*args, f"hydra.run.dir={tmp_path}/{run}"]) == 0
        summaries.append(json.loads((tmp_path / run / "summary.json").read_text())["stages"]["pack"])
        logs.append((tmp_path / run / "iclx.log").read_text())
    assert "building embeddings artifact" in logs[0] and "building pack artifact" in logs[0]
    assert "reusing pack artifact" in logs[1] and "embeddings" not in logs[1]  # nothing re-embedded
    first, second = summaries
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items() if k != "seconds"}
    assert first["order/documents"] == first["train_documents"] and first["order/repeats"] == 0
    assert first["order/window_concept_share"] > 0.5
