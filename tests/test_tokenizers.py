"""Tokenizers: round trips, special tokens, saving/loading, batched encoding, bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iclx.errors import ConfigError, DataError
from iclx.registry import build
from iclx.tokenizers.base import encode_documents, load_tokenizer

RESOURCES = Path(__file__).resolve().parents[1] / "iclx" / "resources" / "corpus"
TRICKY = ["Hello wörld!\n\n  two  spaces\tand a tab  ", "日本語 and emoji 🙂🙂", "line\r\nwindows ending", " leading space"]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    text = (RESOURCES / "shakespeare_sample.txt").read_text()[:60_000]
    return text.split("\n\n") + TRICKY


def trained(cfg: dict, texts: list[str]):
    tok = build("tokenizer", cfg)
    tok.train(iter(texts))
    return tok


@pytest.mark.parametrize("cfg", [{"name": "byte"}, {"name": "bpe", "vocab_size": 400}])
def test_byte_level_round_trip_is_exact(cfg, corpus):
    tok = trained(cfg, corpus)
    for text in TRICKY + corpus[:20] + ["never seen: ∮ Ω ✓ \x00 control"]:
        assert tok.decode(tok.encode(text)) == text


def test_bpe_learns_merges_and_compresses(corpus):
    tok = trained({"name": "bpe", "vocab_size": 600}, corpus)
    text = "\n\n".join(corpus[:50])
    assert 258 < tok.vocab_size <= 600
    assert len(tok.encode(text)) < 0.6 * len(text.encode())  # merges: well under one token per byte


def test_char_round_trip_and_unknown_characters(corpus):
    tok = trained({"name": "char"}, corpus)
    assert tok.decode(tok.encode(corpus[3])) == corpus[3]
    ids = tok.encode("a∮b")
    assert ids[1] == tok.unk_id and tok.decode(ids) == "ab"  # UNK is special: not decoded
    limited = trained({"name": "char", "max_chars": 10}, corpus)
    assert limited.vocab_size == 13


def test_word_tokenizer_joins_words_with_single_spaces():
    tok = trained({"name": "word"}, ["a b / c", "b c a"])
    assert tok.vocab_size == 3 + 4  # EOS, BOS, UNK + a b c /
    assert tok.decode(tok.encode("a  b\n/ c")) == "a b / c"
    assert tok.encode("a zz")[1] == tok.token_id("<unk>")
    assert trained({"name": "word", "vocab_size": 5}, ["a a a b b c"]).vocab_size == 5


@pytest.mark.parametrize("cfg", [{"name": "byte"}, {"name": "char"}, {"name": "bpe", "vocab_size": 300}, {"name": "word"}])
def test_special_tokens_are_distinct_ids_and_never_decoded(cfg, corpus):
    tok = trained(cfg, corpus)
    assert tok.eos_id != tok.bos_id and {tok.eos_id, tok.bos_id} <= set(range(tok.vocab_size))
    ids = tok.encode("the king")
    assert tok.eos_id not in ids and tok.bos_id not in ids
    assert tok.decode([tok.bos_id, *ids, tok.eos_id]) == tok.decode(ids)


@pytest.mark.parametrize("cfg", [{"name": "byte"}, {"name": "char"}, {"name": "bpe", "vocab_size": 300}, {"name": "word"}])
def test_save_and_load_give_the_same_ids(cfg, corpus, tmp_path):
    tok = trained(cfg, corpus)
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok)
    assert (loaded.vocab_size, loaded.eos_id, loaded.bos_id) == (tok.vocab_size, tok.eos_id, tok.bos_id)
    for text in corpus[:10]:
        assert loaded.encode(text) == tok.encode(text)


def test_batched_multithreaded_encoding_keeps_order_and_ids(corpus):
    tok = trained({"name": "bpe", "vocab_size": 300}, corpus)
    texts = corpus[:200]
    encoded = list(encode_documents(tok, texts, workers=2, batch_size=7))
    assert len(encoded) == len(texts)
    for text, ids in zip(texts, encoded):
        assert ids.tolist() == tok.encode(text)


def test_pretrained_loads_a_tokenizer_json_and_finds_its_eos(corpus, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    hf = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "hello": 1, "world": 2, "[UNK]": 3}, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = build("tokenizer", {"name": "pretrained", "path": str(tmp_path)})
    assert tok.eos_id == 0 and tok.bos_id == 0  # GPT-2 style: one token for both roles
    assert tok.encode("hello world") == [1, 2]
    # a vocabulary without any EOS gets one added
    hf2 = Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    hf2.save(str(tmp_path / "plain.json"))
    tok2 = build("tokenizer", {"name": "pretrained", "path": str(tmp_path / "plain.json")})
    assert tok2.vocab_size == 3 and tok2.eos_id == 2
    tok2.save(tmp_path / "saved")
    assert load_tokenizer(tmp_path / "saved").eos_id == 2


def test_pretrained_reads_a_trained_bpe(corpus, tmp_path):
    bpe = trained({"name": "bpe", "vocab_size": 300}, corpus)
    bpe.save(tmp_path)
    tok = build("tokenizer", {"name": "pretrained", "path": str(tmp_path / "tokenizer.json")})
    assert tok.eos_id == bpe.eos_id and tok.encode(corpus[5]) == bpe.encode(corpus[5])


def test_bad_tokenizer_configs_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"tokenizer.vocab_size must be between 258 .* and 2\^32, got 100"):
        build("tokenizer", {"name": "bpe", "vocab_size": 100})
    with pytest.raises(ConfigError, match=r"tokenizer.vocab_size must be between 258 .* got 4294967297"):
        build("tokenizer", {"name": "bpe", "vocab_size": 2**32 + 1})
    with pytest.raises(DataError, match="tokenizer.path: folder .* has no tokenizer.json"):
        build("tokenizer", {"name": "pretrained", "path": str(tmp_path)})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"tokenizer.path: .*bad.json is not a valid tokenizer.json"):
        build("tokenizer", {"name": "pretrained", "path": str(tmp_path / "bad.json")})
    with pytest.raises(DataError, match="holds no iclx tokenizer"):
        load_tokenizer(tmp_path)


def test_saved_metadata_names_the_option(corpus, tmp_path):
    trained({"name": "char"}, corpus).save(tmp_path)
    meta = json.loads((tmp_path / "iclx_tokenizer.json").read_text())
    assert meta["name"] == "char" and meta["eos_id"] == 0 and isinstance(meta["chars"], str)
    assert np.all(np.diff([ord(c) for c in meta["chars"]]) > 0)  # sorted, no duplicates
