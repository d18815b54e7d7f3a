"""Packing (exact token counts, EOS between documents, no padding, shards, orderings) and windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iclx.data.document import Document
from iclx.data.packing import TokenStream, pack, read_meta, token_dtype, unigram_cross_entropy
from iclx.data.windows import EvalSampler, WindowDataset, WindowSampler
from iclx.errors import DataError
from iclx.registry import build
from iclx.tokenizers.base import encode_documents

TEXTS = ["first document", "ü", "a somewhat longer third document\nwith a newline", "4th", "fifth one here"]


@pytest.fixture
def byte_tok():
    return build("tokenizer", {"name": "byte"})


def do_pack(folder, tok, train, val=(), order=None, shard_tokens=1 << 28):
    encode = lambda docs, label: encode_documents(tok, [d.text for d in docs], batch_size=2)  # noqa: E731
    order = order or (lambda counts: np.arange(len(counts)))
    return pack(folder, [Document(t) for t in train], [Document(t) for t in val], encode, order,
                vocab_size=tok.vocab_size, eos_id=tok.eos_id, bos_id=tok.bos_id, shard_tokens=shard_tokens)


def test_stream_is_documents_with_eos_and_nothing_else(tmp_path, byte_tok):
    meta = do_pack(tmp_path, byte_tok, TEXTS, val=["held out"])
    expected = []
    for text in TEXTS:
        expected += list(text.encode()) + [byte_tok.eos_id]
    stream = TokenStream(tmp_path, "train")
    assert len(stream) == len(expected) == sum(len(t.encode()) + 1 for t in TEXTS)
    assert stream.read(0, len(stream)).tolist() == expected  # no padding anywhere
    offsets = stream.offsets
    assert offsets.tolist() == [0, *np.cumsum([len(t.encode()) + 1 for t in TEXTS])]
    assert (stream.read(0, len(stream))[offsets[1:] - 1] == byte_tok.eos_id).all()
    assert meta["dtype"] == "uint16" and meta["eos_id"] == 256
    assert meta["splits"]["train"]["documents"] == 5 and meta["splits"]["val"]["tokens"] == len("held out") + 1
    assert read_meta(tmp_path) == json.loads((tmp_path / "meta.json").read_text())
    assert TokenStream(tmp_path, "val").read(0, 9).tolist() == [*b"held out", 256]


def test_shards_split_the_stream_and_reads_cross_them(tmp_path, byte_tok):
    do_pack(tmp_path, byte_tok, TEXTS, shard_tokens=7)
    stream = TokenStream(tmp_path, "train")
    files = sorted(p.name for p in tmp_path.glob("train-*.bin"))
    assert len(files) == -(-len(stream) // 7) and files[0] == "train-00000.bin"
    whole = np.concatenate([np.fromfile(tmp_path / f, dtype=np.uint16) for f in files])
    assert stream.read(0, len(stream)).tolist() == whole.tolist()
    assert stream.read(5, 23).tolist() == whole[5:23].tolist()  # spans three shards
    with pytest.raises(IndexError):
        stream.read(0, len(stream) + 1)


def test_ordering_decides_the_packed_order(tmp_path, byte_tok):
    seen = {}

    def reverse(counts):
        seen["counts"] = counts.tolist()
        return np.arange(len(counts))[::-1]

    do_pack(tmp_path, byte_tok, TEXTS, order=reverse)
    assert seen["counts"] == [len(t.encode()) + 1 for t in TEXTS]  # orderings see counts with EOS
    stream = TokenStream(tmp_path, "train")
    assert byte_tok.decode(stream.read(0, len(stream)).tolist()) == "".join(reversed(TEXTS))
    assert stream.documents.tolist() == [4, 3, 2, 1, 0]
    assert not list(tmp_path.glob("corpus*"))  # the corpus-order copy is gone


def test_orderings_may_repeat_documents_but_not_invent_them(tmp_path, byte_tok):
    do_pack(tmp_path / "a", byte_tok, TEXTS, order=lambda c: np.array([0, 0, 3]))
    stream = TokenStream(tmp_path / "a", "train")
    assert byte_tok.decode(stream.read(0, len(stream)).tolist()) == TEXTS[0] * 2 + TEXTS[3]
    with pytest.raises(DataError, match="outside 0..4"):
        do_pack(tmp_path / "b", byte_tok, TEXTS, order=lambda c: np.array([0, 5]))


def test_token_dtype_and_the_vocabulary_limit():
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32 and token_dtype(2**32) == np.uint32
    with pytest.raises(DataError, match=r"tokenizer vocabulary of 4,294,967,297 ids is over 2\^32"):
        token_dtype(2**32 + 1)


def test_large_vocabularies_pack_as_uint32(tmp_path):
    encode = lambda docs, label: (np.array([66_000, 5]) for _ in docs)  # noqa: E731
    meta = pack(tmp_path, [Document("x")], [], encode, lambda c: np.arange(len(c)), vocab_size=70_000, eos_id=69_999)
    assert meta["dtype"] == "uint32" and "val" not in meta["splits"]
    assert TokenStream(tmp_path, "train").read(0, 3).tolist() == [66_000, 5, 69_999]


def test_unigram_baseline_is_the_smoothed_unigram_cross_entropy(tmp_path, byte_tok):
    do_pack(tmp_path, byte_tok, ["aab"], val=["ab"])
    # train ids: a a b EOS (4 tokens); add-one over 258 ids; val ids: a b EOS
    p = lambda n: (n + 1) / (4 + 258)  # noqa: E731
    expected = -(np.log(p(2)) + np.log(p(1)) + np.log(p(1))) / 3
    got = unigram_cross_entropy(TokenStream(tmp_path, "train"), TokenStream(tmp_path, "val"), 258)
    assert got == pytest.approx(expected)


def test_windows_are_contiguous_with_one_shared_token(tmp_path, byte_tok):
    do_pack(tmp_path, byte_tok, ["x" * 100, "y" * 50])  # 152 tokens
    stream = TokenStream(tmp_path, "train")
    data = WindowDataset(stream, seq_len=16)
    assert len(data) == (152 - 1) // 16 == 9
    tokens = stream.read(0, len(stream))
    for i in (0, 5, 8):
        assert data[i].dtype == torch.int64 and data[i].tolist() == tokens[i * 16 : i * 16 + 17].tolist()
    assert data[0][-1] == data[1][0]
    with pytest.raises(DataError, match="has 152 tokens, fewer than one window of 201"):
        WindowDataset(stream, seq_len=200)


def test_sampler_is_a_seeded_permutation_per_pass_and_resumes_exactly():
    full = list(WindowSampler(10, seed=1, total=35))
    for epoch in range(3):
        assert sorted(full[epoch * 10 : epoch * 10 + 10]) == list(range(10))  # every window once per pass
    assert full[:10] != full[10:20]  # reshuffled each pass
    assert full == list(WindowSampler(10, seed=1, total=35)) and full != list(WindowSampler(10, seed=2, total=35))
    resumed = WindowSampler(10, seed=1, total=35, start=12)
    assert list(resumed) == full[12:] and len(resumed) == 35


def test_ranks_split_each_global_batch():
    single = list(WindowSampler(50, seed=0, total=40))  # one process, batch 4
    rank0 = list(WindowSampler(50, seed=0, total=20, rank=0, world_size=2))  # two processes, batch 2 each
    rank1 = list(WindowSampler(50, seed=0, total=20, rank=1, world_size=2))
    for step in range(10):
        assert sorted(single[step * 4 : step * 4 + 4]) == sorted(rank0[step * 2 : step * 2 + 2] + rank1[step * 2 : step * 2 + 2])
    assert list(EvalSampler(7, limit=5, rank=1, world_size=2)) == [1, 3]
