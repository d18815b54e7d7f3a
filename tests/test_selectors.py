"""Selectors: the shared contract, kNN = brute force, MMR/DPP diversity, BM25, configs, SST-2 quality."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from iclx import registry
from iclx.errors import ConfigError, DataError
from iclx.registry import build
from iclx.selectors.base import SelectionContext, Selector
from iclx.selectors.dpp import greedy_map
from iclx.selectors.mmr import mmr_order
from iclx.selectors.quality import label_agreement
from iclx.tasks.example import Example

WORDS = "film movie plot actor scene story script music camera light dark funny sad slow quick warm cold long short".split()
SMALL_EMBEDDER = {"name": "hashing", "dim": 512}
FAST_SETTINGS = {"embedder": SMALL_EMBEDDER, "fetch_k": 8}  # applied to the selectors that take them
LEARNS_FROM_THE_LM = {"epr"}  # needs a run and an LM scorer: tests/test_selectors_epr.py gives it both

registry.load_plugins(["iclx_test_plugin"])  # its selector 'in_order' keeps the contract like the built-ins


def contract_config(name: str) -> dict:
    parameters = registry.parameters("selector", name)
    return {"name": name, **{k: v for k, v in FAST_SETTINGS.items() if k in parameters}}


# every registered Selector (built-in or plugin), with its fast settings
CONFIGS = {
    name: contract_config(name)
    for name in registry.known("selector")
    if issubclass(registry.get("selector", name), Selector) and name not in LEARNS_FROM_THE_LM
}


def make_pool(n: int = 40, seed: int = 0, prefix: str = "p") -> list[Example]:
    rng = np.random.default_rng(seed)
    return [
        Example(id=f"{prefix}{i}", input=" ".join(rng.choice(WORDS, 6)), output=("yes", "no")[i % 2], label=i % 2)
        for i in range(n)
    ]


def fitted(name: str, pool: list[Example], seed: int = 0):
    return build("selector", CONFIGS[name]).fit(pool, SelectionContext(seed=seed))


# --- the contract, for every selector ------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_k_distinct_items_never_the_query_itself(name):
    pool = make_pool()
    chosen = fitted(name, pool).select(pool, 6)  # queries are the pool itself
    assert len(chosen) == len(pool)
    for i, ids in enumerate(chosen):
        assert len(ids) == 6 and len(set(ids)) == 6
        assert all(0 <= j < len(pool) for j in ids)
        assert i not in ids


@pytest.mark.parametrize("name", CONFIGS)
def test_same_seed_same_choices(name):
    pool, queries = make_pool(), make_pool(10, seed=1, prefix="q")
    assert fitted(name, pool).select(queries, 5) == fitted(name, pool).select(queries, 5)


@pytest.mark.parametrize("name", CONFIGS)
def test_k_larger_than_the_pool_is_one_clear_error(name):
    pool = make_pool(5)
    selector = fitted(name, pool)
    with pytest.raises(ConfigError, match=rf"^selector '{name}': cannot choose k=6 demonstrations from a pool of 5 examples$"):
        selector.select(make_pool(2, prefix="q"), 6)
    message = rf"^selector '{name}': cannot choose k=5 demonstrations from a pool of 5 examples, one of which is the query 'p0' itself$"
    with pytest.raises(ConfigError, match=message):
        selector.select(pool, 5)
    assert len(selector.select(pool, 4)[0]) == 4  # the whole pool but the query: fine
    assert selector.select(pool, 0) == [[] for _ in pool]


@pytest.mark.parametrize("name", CONFIGS)
def test_empty_pool_and_duplicate_ids_are_data_errors(name):
    with pytest.raises(DataError, match=r"^selector: the demonstration pool is empty$"):
        build("selector", CONFIGS[name]).fit([])
    pool = make_pool(4) + [Example(id="p1", input="again", output="yes")]
    with pytest.raises(DataError, match=r"^selector: pool example id 'p1' occurs twice"):
        build("selector", CONFIGS[name]).fit(pool)


def test_random_is_per_query_and_changes_with_the_seed():
    pool, queries = make_pool(), make_pool(8, seed=1, prefix="q")
    selector = fitted("random", pool, seed=3)
    together = selector.select(queries, 4)
    alone = [selector.select([q], 4)[0] for q in reversed(queries)][::-1]
    assert together == alone  # a query's draw does not depend on the other queries
    assert fitted("random", pool, seed=4).select(queries, 4) != together
    counts = np.bincount(np.concatenate(fitted("random", pool).select(pool, 10)), minlength=len(pool))
    assert counts.min() > 0  # every pool item gets drawn somewhere: uniform, not a fixed subset


def test_random_draws_are_nested_across_k_and_do_not_depend_on_the_shots_list():
    """Issue 12: the k=4 prompt came from a max(shots) draw, so adding k=8 changed every k=4 set."""
    pool, queries = make_pool(40), make_pool(30, seed=1, prefix="q")
    selector = fitted("random", pool, seed=0)
    four, eight, sixteen = selector.select(queries, 4), selector.select(queries, 8), selector.select(queries, 16)
    assert all(a == b[:4] == c[:4] for a, b, c in zip(four, eight, sixteen))
    assert all(b == c[:8] for b, c in zip(eight, sixteen))
    everything = selector.select(pool[:3], len(pool) - 1)  # the whole pool but the query itself
    assert all(sorted(d) == [i for i in range(len(pool)) if i != j] for j, d in enumerate(everything))


# --- knn equals brute force ----------------------------------------------------------------------


def test_knn_equals_brute_force_cosine():
    pool, queries = make_pool(60), make_pool(15, seed=2, prefix="q")
    selector = fitted("knn", pool)
    query_vectors = selector.embedder.embed([q.input for q in queries])
    sims = query_vectors @ selector.pool_vectors.T
    for q, ids in enumerate(selector.select(queries, 7)):
        best = np.sort(sims[q])[::-1][:7]
        np.testing.assert_allclose(sims[q, ids], best, rtol=1e-5, atol=1e-6)  # the same set, up to ties


def test_knn_with_an_approximate_index_matches_exact_when_probing_every_cell():
    pool, queries = make_pool(300), make_pool(20, seed=2, prefix="q")
    exact = fitted("knn", pool).select(queries, 5)
    approx_cfg = {"name": "knn", "embedder": SMALL_EMBEDDER, "index": "IVF4,Flat", "nprobe": 4}
    assert build("selector", approx_cfg).fit(pool).select(queries, 5) == exact


# --- diversity: MMR and DPP on a constructed case ----------------------------------------------


def test_mmr_and_dpp_skip_near_duplicates_that_knn_takes():
    # the query is the first axis; three copies of one very relevant item, then two less relevant
    # items that differ from it (and from each other) along their own axes
    copy = [0.98, 0.199, 0.0, 0.0]
    vectors = np.array([copy, copy, copy, [0.8, 0.0, 0.6, 0.0], [0.8, 0.0, 0.0, 0.6], [0.5, 0.0, 0.866, 0.0]])
    relevance = vectors[:, 0]
    knn = list(np.argsort(-relevance, kind="stable")[:3])
    assert knn == [0, 1, 2]
    assert list(mmr_order(relevance, vectors, 3, lambda_mult=0.5)) == [0, 3, 4]
    quality = np.exp(2.0 * relevance)
    assert list(greedy_map(quality[:, None] * (vectors @ vectors.T) * quality[None, :], 3)) == [0, 3, 4]
    assert list(mmr_order(relevance, vectors, 3, lambda_mult=1.0)) == knn  # pure relevance: kNN


def test_dpp_greedy_map_maximizes_log_det_on_small_cases():
    from itertools import combinations

    rng = np.random.default_rng(0)
    for _ in range(5):
        features = rng.normal(size=(7, 4))
        kernel = features @ features.T + 0.1 * np.eye(7)
        chosen = greedy_map(kernel, 3)
        greedy = np.linalg.slogdet(kernel[np.ix_(chosen, chosen)])[1]
        best = max(np.linalg.slogdet(kernel[np.ix_(s, s)])[1] for s in map(list, combinations(range(7), 3)))
        assert greedy >= best - 0.5  # greedy MAP is near-optimal (exact on most draws)
        first = int(np.argmax(np.diag(kernel)))
        assert chosen[0] == first


def test_mmr_and_dpp_selectors_diversify_duplicated_texts():
    near = ["the cat sat on the mat"] * 4
    others = ["a cat sat on a rug", "the cat sat by the door", "my cat sleeps on the mat", "the dog ran in the park"]
    pool = [Example(id=f"p{i}", input=t, output="x") for i, t in enumerate(near + others)]
    query = [Example(id="q", input="the cat sat on the mat today", output="x")]
    knn = build("selector", {"name": "knn", "embedder": SMALL_EMBEDDER}).fit(pool).select(query, 3)[0]
    assert set(knn) <= {0, 1, 2, 3}  # three copies of the same sentence
    for cfg in ({"name": "mmr", "embedder": SMALL_EMBEDDER}, {"name": "dpp", "embedder": SMALL_EMBEDDER}):
        chosen = build("selector", cfg).fit(pool).select(query, 3)[0]
        assert chosen[0] in {0, 1, 2, 3} and len(set(chosen) & {0, 1, 2, 3}) == 1, (cfg["name"], chosen)


def test_first_j_choices_are_the_choice_for_j_shots():
    pool, queries = make_pool(), make_pool(6, seed=1, prefix="q")
    for name in CONFIGS:
        selector = fitted(name, pool)
        eight, three = selector.select(queries, 8), selector.select(queries, 3)
        if name != "random":  # random draws k fresh; the ranked selectors nest
            assert [c[:3] for c in eight] == three, name


# --- bm25 ----------------------------------------------------------------------------------------


def test_bm25_ranks_by_shared_rare_words():
    pool = [
        Example(id="a", input="the plot is thin and the acting wooden", output="no"),
        Example(id="b", input="a luminous , heartfelt performance", output="yes"),
        Example(id="c", input="the plot twists keep coming", output="yes"),
        Example(id="d", input="the the the the", output="no"),
    ]
    chosen = build("selector", {"name": "bm25"}).fit(pool).select([Example(id="q", input="wooden acting , thin plot", output="")], 2)
    assert chosen == [[0, 2]]


def test_bm25_without_bm25s_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(ConfigError, match=r"^BM25 needs the optional package bm25s: pip install 'iclx\[bm25\]'$"):
        build("selector", {"name": "bm25"})


# --- configs -------------------------------------------------------------------------------------


def test_every_selector_config_composes_and_builds():
    from hydra import compose, initialize_config_dir

    from iclx.cli import conf_dir

    options = sorted(p.stem for p in (conf_dir() / "selector").glob("*.yaml"))
    assert {"random", "knn", "mmr", "dpp", "bm25", "epr"} <= set(options)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for option in options:
            cfg = compose("config", overrides=[f"selector={option}"])
            selector = build("selector", cfg.selector, key="selector")
            assert selector.name == option
        cfg = compose("config", overrides=["selector=knn", "selector.embedder.name=minilm", "+selector.embedder.batch_size=8"])
        assert dict(cfg.selector.embedder) == {"name": "minilm", "batch_size": 8}


def test_selector_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"selector 'knn' has no parameter 'topk'.*Its parameters: embedder, index, nprobe"):
        build("selector", {"name": "knn", "topk": 3})
    with pytest.raises(ConfigError, match=r"^selector\.lambda_mult must be in \[0, 1\], got 1\.5$"):
        build("selector", {"name": "mmr", "lambda_mult": 1.5})
    bogus = r"^selector\.index: FAISS cannot build 'Bogus' \(could not parse index string Bogus\)$"
    with pytest.raises(ConfigError, match=bogus):
        build("selector", {"name": "knn", "index": "Bogus"}).fit(make_pool(5))


# --- model-free selection quality ----------------------------------------------------------------


def test_label_agreement_counts_matching_labels():
    pool = [Example(id=str(i), input="", output="", label=label) for i, label in enumerate([0, 0, 1, 1, None])]
    queries = [Example(id="q0", input="", output="", label=0), Example(id="q1", input="", output="", label=1)]
    assert label_agreement(pool, queries, [[0, 2], [2, 3]]) == pytest.approx(3 / 4)
    assert label_agreement(pool, queries, [[0, 4], []]) == 1.0  # unlabelled demonstrations are not counted
    assert label_agreement(pool, [Example(id="q", input="", output="")], [[0]]) is None


def read_sst2_lines(path: Path, split: str, limit: int) -> list[Example]:
    examples = []
    for i, line in enumerate(path.joinpath(f"stsa.binary.{split}").read_text().splitlines()[:limit]):
        label, text = line.split(" ", 1)
        examples.append(Example(id=f"{split}-{i}", input=text, output=("negative", "positive")[int(label)], label=int(label)))
    return examples


def test_on_sst2_similar_demonstrations_share_the_query_label_more_often(shared_data):
    pool = read_sst2_lines(shared_data / "sst2", "train", 2000)
    queries = read_sst2_lines(shared_data / "sst2", "dev", 300)
    agreement = {
        name: label_agreement(pool, queries, build("selector", cfg).fit(pool).select(queries, 4))
        for name, cfg in {"random": {"name": "random"}, "knn": {"name": "knn"}, "bm25": {"name": "bm25"}}.items()
    }
    assert 0.44 < agreement["random"] < 0.58
    assert agreement["knn"] > agreement["random"] + 0.07
    assert agreement["bm25"] > agreement["random"] + 0.05


# --- extension: a plugin selector is one module + one YAML ------------------------------------


def test_a_plugin_selector_composes_validates_and_keeps_the_contract():
    from iclx.config_check import validate_config

    from conftest import PLUGINS, compose_config

    found = [f"hydra.searchpath=[file://{PLUGINS / 'conf'}]", "plugins=[iclx_test_plugin]", "selector=in_order"]
    cfg = compose_config(found)
    assert dict(cfg.selector) == {"name": "in_order", "offset": 3}  # tests/plugins/conf/selector/in_order.yaml
    assert validate_config(cfg) >= 7
    assert "in_order" in CONFIGS  # so every contract test above runs on it too
    assert build("selector", cfg.selector).fit(make_pool(6)).select(make_pool(2, prefix="q"), 3) == [[3, 4, 5]] * 2
    with pytest.raises(ConfigError, match=r"^selector 'in_order' has no parameter 'ofset' \(selector\.ofset\)\. "
                                          r"Its parameters: offset \(did you mean 'offset'\?\)$"):
        validate_config(compose_config([*found, "+selector.ofset=1"]))
