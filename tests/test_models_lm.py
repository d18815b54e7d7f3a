"""Language models: the interface (causal logits, hidden states, generation), learning, saving."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from iclx.errors import ConfigError, DataError
from iclx.models.bundle import load_model, save_model
from iclx.models.causal_lm import sample_next_token
from iclx.registry import build

VOCAB = 20
MODELS = {
    "gpt": {"name": "gpt", "max_seq_len": 32, "n_layer": 2, "n_head": 2, "d_model": 32},
    "gpt_rope": {"name": "gpt", "max_seq_len": 32, "n_layer": 2, "n_head": 2, "d_model": 32, "positional": "rope"},
    "lstm": {"name": "lstm", "d_model": 32, "n_layer": 1, "max_seq_len": 32},
}


def make(key: str, vocab: int = VOCAB):
    torch.manual_seed(0)
    return build("model", MODELS[key], vocab_size=vocab)


@pytest.mark.parametrize("key", MODELS)
def test_logits_are_causal(key):
    model = make(key).eval()
    idx = torch.randint(0, VOCAB, (2, 12))
    changed = idx.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % VOCAB
    a, b = model(idx), model(changed)
    assert a.shape == (2, 12, VOCAB)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-5)  # the past does not see the future
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_gpt_tiny_preset_has_the_issue_size_and_tied_head():
    model = build("model", {"name": "gpt", "max_seq_len": 512, "n_layer": 4, "n_head": 4, "d_model": 128}, vocab_size=54)
    assert model.lm_head.weight is model.wte.weight
    assert 0.85e6 < model.num_parameters() < 0.87e6  # the issue's 0.86M-parameter GPT
    # 6 FLOPs per matmul parameter + attention: 12 * layers * d_model * context
    assert model.flops_per_token(512) == 6 * (model.num_parameters() - 512 * 128) + 12 * 4 * 128 * 512


def test_bad_model_configs_name_the_key():
    with pytest.raises(ConfigError, match=r"model.d_model \(30\) must be divisible by model.n_head \(4\)"):
        build("model", {"name": "gpt", "d_model": 30, "n_head": 4}, vocab_size=10)
    with pytest.raises(ConfigError, match="model.positional=rope needs an even head size"):
        build("model", {"name": "gpt", "d_model": 12, "n_head": 4, "positional": "rope"}, vocab_size=10)
    with pytest.raises(ConfigError, match="model 'gpt' gets 'vocab_size' from iclx at run time"):
        build("model", {"name": "gpt", "vocab_size": 5}, vocab_size=10)
    with pytest.raises(ValueError, match="longer than the model's max_seq_len 32"):
        make("gpt")(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("key", ["gpt", "lstm"])
def test_both_architectures_learn_a_sequence(key):
    """A cycle of tokens is learned: the loss falls far below its start (log 20 = 3.0)."""
    model = make(key).train()
    pattern = torch.tensor([3, 1, 4, 0, 5, 9, 2, 6, 7, 8, 11, 13] * 3)
    batch = torch.stack([pattern[i : i + 17] for i in range(4)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(batch[:, :-1]).reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 2.5 and losses[-1] < 0.3 * losses[0]
    model.eval()
    continuation = model.generate(pattern[:12], 12, temperature=0)
    assert continuation[12:].tolist() == pattern[12:24].tolist()  # greedy decoding continues the pattern


def test_generation_options():
    model = make("gpt").eval()
    prompt = torch.tensor([1, 2, 3])
    greedy = model.generate(prompt, 6, temperature=0)
    assert greedy.shape == (9,) and greedy[:3].tolist() == [1, 2, 3]
    assert model.generate(prompt, 6, top_k=1).tolist() == greedy.tolist()  # top-1 sampling is greedy
    g = torch.Generator().manual_seed(5)
    a = model.generate(prompt, 6, temperature=1.0, generator=g)
    assert model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(5)).tolist() == a.tolist()
    batch = model.generate(torch.tensor([[1, 2], [3, 4]]), 40, temperature=0)
    assert batch.shape == (2, 42)  # the context is cropped to max_seq_len=32 while generating
    eos = int(greedy[3])
    stopped = model.generate(prompt, 6, temperature=0, eos_id=eos)
    assert stopped.tolist() == greedy[:4].tolist()  # stops right after EOS


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next_token(logits, top_p=0.7, generator=g).tolist()) == {0, 1}
    assert set(sample_next_token(logits, top_p=0.5, generator=g).tolist()) == {0}
    assert set(sample_next_token(logits, top_k=3, generator=g).tolist()) == {0, 1, 2}
    counts = torch.bincount(sample_next_token(logits, generator=g), minlength=4) / 2000
    assert torch.allclose(counts, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.04)


@pytest.mark.parametrize("key", MODELS)
def test_mean_hidden_states_ignore_right_padding(key):
    model = make(key).eval()
    short = torch.tensor([[4, 5, 6]])
    padded = torch.tensor([[4, 5, 6, 0, 0], [7, 7, 7, 7, 7]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    vectors = model.mean_hidden_states(padded, mask)
    assert vectors.shape == (2, 32)
    assert torch.allclose(vectors[0], model.mean_hidden_states(short)[0], atol=1e-5)
    assert torch.allclose(vectors[0], model.hidden_states(short)[0].mean(0), atol=1e-5)


@pytest.mark.parametrize("key", MODELS)
def test_saved_model_loads_with_weights_only_and_same_outputs(key, tmp_path):
    model = make(key).eval()
    tokenizer = build("tokenizer", {"name": "byte"})
    save_model(tmp_path, model, tokenizer, steps=3)
    loaded, loaded_tok = load_model(tmp_path)
    idx = torch.randint(0, VOCAB, (2, 10))
    assert torch.equal(loaded(idx), model(idx)) and not loaded.training
    assert loaded_tok.eos_id == 256
    assert torch.load(tmp_path / "model.pt", weights_only=True)["steps"] == 3


def test_unreadable_or_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such model file"):
        load_model(tmp_path / "missing")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pt: cannot be read as a model checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="other.pt: not an iclx model checkpoint"):
        load_model(tmp_path / "other.pt")
    torch.save({"model": ConfigError("pickled object")}, tmp_path / "code.pt")  # arbitrary objects: refused
    with pytest.raises(DataError, match="code.pt: cannot be read as a model checkpoint"):
        load_model(tmp_path / "code.pt")


def test_hf_adapter_built_from_a_config(tmp_path):
    pytest.importorskip("transformers")
    cfg = {"name": "hf", "architecture": "gpt2", "config": {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 24}}
    torch.manual_seed(0)
    model = build("model", cfg, vocab_size=VOCAB).eval()
    assert model.max_seq_len == 24 and model.vocab_size == VOCAB
    idx = torch.randint(0, VOCAB, (2, 7))
    assert model(idx).shape == (2, 7, VOCAB) and model.mean_hidden_states(idx).shape == (2, 16)
    assert model.generate(idx[0], 5, temperature=0).shape == (12,)
    save_model(tmp_path, model, build("tokenizer", {"name": "byte"}))
    loaded, _ = load_model(tmp_path)  # rebuilt from the saved config, no hub needed
    assert torch.allclose(loaded(idx), model(idx), atol=1e-6)
