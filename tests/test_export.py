"""``iclx export --format hf``: a trained model and tokenizer that transformers loads and that
computes iclx's logits (to 1e-4) and ids; what cannot be exported is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iclx.commands import dispatch
from iclx.models.bundle import load_model, save_model
from iclx.registry import build

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
CORPUS = [
    "the cat sat on the mat .", "a dog ran to the park and back", "Input: good movie\nOutput: positive",
    "Input: bad film\nOutput: negative", "naïve café — 東京 🙂 tabs\tand  spaces\n\nend",
]
TEXTS = ["the cat sat on the mat .", "a dog ran\tto the café 🙂", "Input: good film\nOutput: positive", "  two  spaces\n"]
GPT = {"name": "gpt", "max_seq_len": 24, "n_layer": 2, "n_head": 2, "d_model": 16}
# every option set of model=gpt that maps, each with another tokenizer
OPTION_SETS = {
    "learned": ({}, {"name": "word"}, "gpt2"),
    "rope": ({"positional": "rope"}, {"name": "byte"}, "gpt_neox"),
    "learned_nobias": ({"bias": False, "d_ff": 24}, {"name": "char"}, "gpt2"),
    "rope_nobias": ({"positional": "rope", "bias": False, "d_ff": 40, "rope_base": 500.0, "n_head": 4}, {"name": "bpe", "vocab_size": 300}, "gpt_neox"),
}


def make_bundle(folder: Path, model_cfg: dict, tokenizer_cfg: dict) -> Path:
    """A model bundle whose every weight is away from its initial value (biases not zero, norms not 1)."""
    tokenizer = build("tokenizer", tokenizer_cfg)
    tokenizer.train(CORPUS)
    torch.manual_seed(0)
    model = build("model", model_cfg, vocab_size=tokenizer.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    save_model(folder, model.eval(), tokenizer)
    return folder


def export(capsys, *args: str) -> tuple[int, str, str]:
    code = dispatch(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("key", OPTION_SETS)
def test_transformers_loads_the_export_with_iclx_logits_and_ids(tmp_path, capsys, key):
    options, tokenizer_cfg, model_type = OPTION_SETS[key]
    source = make_bundle(tmp_path / "model", {**GPT, **options}, tokenizer_cfg)
    out = tmp_path / "hf"
    code, stdout, err = export(capsys, source, out, "--format", "hf")
    assert code == 0, err
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".hf.*")), "the staging folder is left behind"
    assert f" as {model_type} to {out}" in stdout and "max |logit difference| from iclx" in stdout

    ours, tokenizer = load_model(source)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf.config.model_type == model_type
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert hf_tok(text)["input_ids"] == ids, (key, text)
        assert hf_tok.decode(ids, skip_special_tokens=True) == tokenizer.decode(ids)
    assert (hf_tok.eos_token_id, hf_tok.bos_token_id) == (tokenizer.eos_id, tokenizer.bos_id)

    batch = torch.tensor([([tokenizer.eos_id] + tokenizer.encode(t) * 8)[: GPT["max_seq_len"]] for t in TEXTS[:2]])
    with torch.no_grad():
        diff = float((ours(batch) - hf(input_ids=batch).logits).abs().max())
    print(f"{key}: max |logit difference| {diff:.3g}")
    assert diff <= TOLERANCE
    # the same greedy continuation through transformers' generate (its KV cache) and iclx's
    prompt = batch[:1, :8]
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert theirs.tolist() == ours.generate(prompt, 6, temperature=0).tolist()


@pytest.mark.parametrize("name", ["byte", "char", "word", "bpe"])
def test_exported_tokenizers_give_iclx_ids_and_text(tmp_path, name):
    from tokenizers import Tokenizer

    from iclx.tokenizers.hf_export import save_hf_tokenizer

    tokenizer = build("tokenizer", {"name": name, **({"vocab_size": 300} if name == "bpe" else {})})
    tokenizer.train(CORPUS)
    save_hf_tokenizer(tokenizer, tmp_path, max_length=64)
    raw = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    texts = [*TEXTS, *CORPUS, "unseen: ζ ж e\u0301 \r\n x", ""]
    for text in texts:
        ids = tokenizer.encode(text)
        assert raw.encode(text, add_special_tokens=False).ids == ids, (name, text)
        assert hf_tok.encode(text) == ids, (name, text)
        with_specials = [tokenizer.bos_id, *ids, tokenizer.eos_id]
        assert hf_tok.decode(with_specials, skip_special_tokens=True) == tokenizer.decode(with_specials), (name, text)
    assert hf_tok.model_max_length == 64 and hf_tok.pad_token_id == tokenizer.eos_id
    assert len(hf_tok) == tokenizer.vocab_size


def test_model_hf_is_written_as_it_is(tmp_path, capsys):
    cfg = {"name": "hf", "architecture": "gpt2", "config": {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 24}}
    source = make_bundle(tmp_path / "model", cfg, {"name": "word"})
    code, stdout, err = export(capsys, source, tmp_path / "hf")
    assert code == 0, err
    ours, tokenizer = load_model(source)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    batch = torch.tensor([[tokenizer.eos_id, *tokenizer.encode(CORPUS[0])]])
    with torch.no_grad():
        assert float((ours(batch) - hf(input_ids=batch).logits).abs().max()) <= TOLERANCE


def test_a_run_folder_exports_the_model_its_summary_names(tmp_path, capsys):
    source = make_bundle(tmp_path / "cache" / "pretrain" / "abc", GPT, {"name": "word"})
    run = tmp_path / "outputs" / "quickstart" / "2025-01-01_00-00-00"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "ok", "artifacts": {"pretrain": str(source)}}))
    code, stdout, err = export(capsys, run, tmp_path / "hf")
    assert code == 0, err
    assert stdout.startswith(f"exported {source} (gpt, positional=learned, bias=True) as gpt2")
    shutil.rmtree(source)
    code, _, err = export(capsys, run, tmp_path / "hf2")
    assert code == 1 and err.strip() == f"iclx: {run}: its model {source} (pretrain) is gone (removed by iclx cache gc, or moved)"


def test_refused_models_and_options_are_one_line(tmp_path, capsys):
    from iclx.models.hf_export import UnsupportedModel, architecture

    source = make_bundle(tmp_path / "lstm", {"name": "lstm", "d_model": 16, "n_layer": 1, "max_seq_len": 24}, {"name": "word"})
    code, out, err = export(capsys, source, tmp_path / "hf")
    assert (code, out) == (1, "")
    assert err.splitlines() == ["iclx: model 'lstm' has no Hugging Face equivalent: iclx export writes model=gpt (and model=hf)"]
    assert not (tmp_path / "hf").exists()

    model = build("model", GPT, vocab_size=10)
    model.config["positional"] = "alibi"  # a value, and an option, that no transformers architecture computes
    with pytest.raises(UnsupportedModel, match=r"^model.positional=alibi has no Hugging Face equivalent \(iclx export maps positional: learned, rope\)$"):
        architecture(model)
    model.config.update(positional="learned", norm="rms")
    with pytest.raises(UnsupportedModel, match=r"^model.norm=rms has no Hugging Face equivalent in iclx export"):
        architecture(model)


def test_bad_input_is_one_line_with_an_exit_code(tmp_path, capsys):
    model = make_bundle(tmp_path / "model", GPT, {"name": "byte"})
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    cases = [
        ([tmp_path / "none", tmp_path / "out"], 1, f"iclx: {tmp_path / 'none'}: no such file or folder"),
        ([tmp_path / "empty", tmp_path / "out"], 1,
         f"iclx: {tmp_path / 'empty'}: no model here (expected a run folder, a model folder with model.pt, a model.pt or a .ckpt)"),
        ([tmp_path / "broken", tmp_path / "out"], 1, None),
        ([model, tmp_path / "out", "--format", "onnx"], 2,
         "iclx: export: unknown --format 'onnx'. Known: hf"),
        ([model, tmp_path / "taken"], 2, f"iclx: export: {tmp_path / 'taken'} exists and is not empty (--overwrite replaces it)"),
        ([model], 2, "iclx: export: the following arguments are required: OUT_DIR (see iclx export --help)"),
    ]
    for args, code, line in cases:
        got, out, err = export(capsys, *args)
        assert (got, out) == (code, ""), (args, err)
        assert len(err.splitlines()) == 1, err
        if line is not None:
            assert err.strip() == line
    assert "cannot be read as a model checkpoint" in export(capsys, tmp_path / "broken", tmp_path / "out")[2]
    assert not (tmp_path / "out").exists() and (tmp_path / "taken" / "x").read_text() == "mine"
    code, _, err = export(capsys, model, tmp_path / "taken", "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "taken" / "x").exists() and (tmp_path / "taken" / "config.json").is_file()


def test_a_model_pt_and_a_lightning_ckpt_export_too(tmp_path, capsys):
    source = make_bundle(tmp_path / "artifact", {**GPT, "positional": "rope"}, {"name": "word"})
    payload = torch.load(source / "model.pt", weights_only=True)
    (source / "checkpoints").mkdir()
    torch.save({"hyper_parameters": {"model_spec": payload["model"], "vocab_size": payload["vocab_size"]},
                "state_dict": {f"model.{k}": v for k, v in payload["state_dict"].items()}}, source / "checkpoints" / "last.ckpt")
    for name, path in (("pt", source / "model.pt"), ("ckpt", source / "checkpoints" / "last.ckpt")):
        code, stdout, err = export(capsys, path, tmp_path / name)
        assert code == 0, err
        assert stdout.startswith(f"exported {path} (gpt, positional=rope, bias=True) as gpt_neox")
    a, b = (transformers.AutoModelForCausalLM.from_pretrained(tmp_path / n, local_files_only=True) for n in ("pt", "ckpt"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    capsys.readouterr()  # transformers' loading bars
    (source / "model.pt").unlink()  # an unfinished pre-training: its checkpoints, no model.pt
    code, _, err = export(capsys, source, tmp_path / "unfinished")
    assert code == 1
    assert err.strip() == f"iclx: {source}: holds no model.pt (an unfinished pre-training?); name a checkpoint instead: {source / 'checkpoints' / 'last.ckpt'}"
