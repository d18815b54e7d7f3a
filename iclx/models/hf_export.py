"""An iclx model as a Hugging Face ``transformers`` model (``iclx export --format hf``).

iclx's ``gpt`` is a pre-LN GPT-2 block stack (LayerNorm, exact-erf GELU MLP, tied output head),
so each of its option sets is one transformers architecture with the same arithmetic:

=====================================  =================================================================
iclx ``model``                         transformers
=====================================  =================================================================
``gpt``, ``positional: learned``       ``GPT2LMHeadModel`` (``gpt2``, ``activation_function: gelu``)
``gpt``, ``positional: rope``          ``GPTNeoXForCausalLM`` (``gpt_neox``, sequential residual,
                                       rotary on every channel; iclx rotates interleaved channel
                                       pairs, NeoX the two halves: the query/key rows are permuted
                                       per head, which leaves every attention score unchanged)
``gpt``, ``bias: false``               either of the above with zero biases
``gpt``: any ``d_ff``, ``dropout``     ``n_inner`` / ``intermediate_size``; the dropout rates
``hf``                                 its own architecture, as it is
``lstm``, ``lsa``, ``regression_gpt``  refused: no transformers architecture computes them
=====================================  =================================================================

An option this table does not list (a value of ``positional`` other than these, or an option a
later iclx adds) is refused by name rather than exported approximately.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from iclx.errors import ConfigError

# gpt's options and the values iclx export can write; every other option or value is refused
GPT_OPTIONS: dict[str, tuple[Any, ...] | None] = {  # None: any value maps
    "max_seq_len": None, "n_layer": None, "n_head": None, "d_model": None, "d_ff": None, "dropout": None,
    "bias": (True, False), "positional": ("learned", "rope"), "rope_base": None,
}
ARCHITECTURES = {"learned": "gpt2", "rope": "gpt_neox"}
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which iclx's gpt uses


class UnsupportedModel(ConfigError):
    """A model, or one of its options, with no transformers equivalent."""


def architecture(model: Any) -> str:
    """The transformers ``model_type`` ``model`` exports to, or UnsupportedModel naming why not."""
    name = getattr(model, "name", type(model).__name__)
    if name == "hf":
        return str(model.model.config.model_type)
    if name != "gpt":
        raise UnsupportedModel(f"model '{name}' has no Hugging Face equivalent: iclx export writes model=gpt (and model=hf)")
    for option, value in model.config.items():
        if option not in GPT_OPTIONS:
            raise UnsupportedModel(
                f"model.{option}={value} has no Hugging Face equivalent in iclx export (it maps: {', '.join(GPT_OPTIONS)})"
            )
        allowed = GPT_OPTIONS[option]
        if allowed is not None and value not in allowed:
            raise UnsupportedModel(
                f"model.{option}={value} has no Hugging Face equivalent (iclx export maps {option}: {', '.join(map(str, allowed))})"
            )
    return ARCHITECTURES[model.config["positional"]]


def to_hf(model: Any, bos_id: int | None = None, eos_id: int | None = None) -> Any:
    """A transformers causal LM (eval mode, float32, on the CPU) computing ``model``'s logits."""
    kind = architecture(model)
    if model.name == "hf":
        return model.model.float().cpu().eval()
    import transformers

    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    c = model.config
    ids = dict(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id, tie_word_embeddings=True)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=model.vocab_size, n_positions=c["max_seq_len"], n_embd=c["d_model"], n_layer=c["n_layer"],
            n_head=c["n_head"], n_inner=c["d_ff"], activation_function="gelu", resid_pdrop=c["dropout"],
            embd_pdrop=c["dropout"], attn_pdrop=c["dropout"], layer_norm_epsilon=LAYER_NORM_EPS, **ids,
        )
        weights = _gpt2_weights(state, c)
    else:
        config = transformers.GPTNeoXConfig(
            vocab_size=model.vocab_size, max_position_embeddings=c["max_seq_len"], hidden_size=c["d_model"],
            num_hidden_layers=c["n_layer"], num_attention_heads=c["n_head"], intermediate_size=c["d_ff"],
            hidden_act="gelu", attention_dropout=c["dropout"], hidden_dropout=c["dropout"], layer_norm_eps=LAYER_NORM_EPS,
            use_parallel_residual=False, attention_bias=bool(c["bias"]),
            rope_parameters={"rope_type": "default", "rope_theta": float(c["rope_base"]), "partial_rotary_factor": 1.0}, **ids,
        )
        weights = _neox_weights(state, c)
    hf = transformers.AutoModelForCausalLM.from_config(config)
    hf.load_state_dict(weights, strict=True)
    return hf.eval()


def _bias(state: dict[str, torch.Tensor], name: str, size: int) -> torch.Tensor:
    """iclx's ``bias: false`` leaves biases out; GPT-2 and the NeoX MLP always have them: zeros."""
    return state[name] if name in state else torch.zeros(size)


def _gpt2_weights(state: dict[str, torch.Tensor], c: dict[str, Any]) -> dict[str, torch.Tensor]:
    d, f = c["d_model"], c["d_ff"]
    out = {"transformer.wte.weight": state["wte.weight"], "transformer.wpe.weight": state["wpe.weight"],
           "transformer.ln_f.weight": state["ln_f.weight"], "transformer.ln_f.bias": _bias(state, "ln_f.bias", d),
           "lm_head.weight": state["wte.weight"]}
    for i in range(c["n_layer"]):
        src, dst = f"blocks.{i}.", f"transformer.h.{i}."
        # GPT-2's Conv1D keeps its weight as (in, out): nn.Linear's transposed
        for ours, theirs, size in (("attn.qkv", "attn.c_attn", 3 * d), ("attn.proj", "attn.c_proj", d),
                                   ("mlp.0", "mlp.c_fc", f), ("mlp.2", "mlp.c_proj", d)):
            out[f"{dst}{theirs}.weight"] = state[f"{src}{ours}.weight"].t().contiguous()
            out[f"{dst}{theirs}.bias"] = _bias(state, f"{src}{ours}.bias", size)
        for ln in ("ln_1", "ln_2"):
            out[f"{dst}{ln}.weight"] = state[f"{src}{ln}.weight"]
            out[f"{dst}{ln}.bias"] = _bias(state, f"{src}{ln}.bias", d)
    return out


def _neox_weights(state: dict[str, torch.Tensor], c: dict[str, Any]) -> dict[str, torch.Tensor]:
    d, f, heads = c["d_model"], c["d_ff"], c["n_head"]
    head = d // heads
    # iclx rotates channel pairs (2j, 2j+1) of a head; NeoX rotates (j, j + head/2): new channel j is old perm[j]
    perm = torch.cat([torch.arange(0, head, 2), torch.arange(1, head, 2)])
    out = {"gpt_neox.embed_in.weight": state["wte.weight"], "lm_head.weight": state["wte.weight"],
           "gpt_neox.final_layer_norm.weight": state["ln_f.weight"],
           "gpt_neox.final_layer_norm.bias": _bias(state, "ln_f.bias", d)}
    for i in range(c["n_layer"]):
        src, dst = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        out[f"{dst}attention.query_key_value.weight"] = _neox_qkv(state[f"{src}attn.qkv.weight"], heads, perm)
        if c["bias"]:
            out[f"{dst}attention.query_key_value.bias"] = _neox_qkv(state[f"{src}attn.qkv.bias"], heads, perm)
            out[f"{dst}attention.dense.bias"] = state[f"{src}attn.proj.bias"]
        out[f"{dst}attention.dense.weight"] = state[f"{src}attn.proj.weight"]
        for ours, theirs, size in (("mlp.0", "mlp.dense_h_to_4h", f), ("mlp.2", "mlp.dense_4h_to_h", d)):
            out[f"{dst}{theirs}.weight"] = state[f"{src}{ours}.weight"]
            out[f"{dst}{theirs}.bias"] = _bias(state, f"{src}{ours}.bias", size)
        for ours, theirs in (("ln_1", "input_layernorm"), ("ln_2", "post_attention_layernorm")):
            out[f"{dst}{theirs}.weight"] = state[f"{src}{ours}.weight"]
            out[f"{dst}{theirs}.bias"] = _bias(state, f"{src}{ours}.bias", d)
    return out


def _neox_qkv(w: torch.Tensor, heads: int, perm: torch.Tensor) -> torch.Tensor:
    """iclx's fused rows [Q | K | V] (each head after head) as NeoX's [q_h, k_h, v_h] per head h,
    with the query and key rows of each head permuted from interleaved to half-split rotary pairs."""
    q, k, v = (part.reshape(heads, -1, *w.shape[1:]) for part in w.chunk(3, dim=0))  # (heads, head, [d])
    fused = torch.stack([q[:, perm], k[:, perm], v], dim=1)  # (heads, 3, head, [d])
    return fused.reshape(w.shape).contiguous()


@dataclass
class Check:
    """The exported folder loaded back with transformers, against iclx, on one batch of token ids."""

    max_abs_diff: float
    shape: tuple[int, ...]


@torch.no_grad()
def compare_logits(model: Any, hf_model: Any, batch: int = 2, length: int = 128, seed: int = 0) -> Check:
    """Max |iclx logits - transformers logits| on a seeded random batch of ids (float32, CPU)."""
    length = min(length, int(model.max_seq_len))
    ids = torch.randint(0, int(model.vocab_size), (batch, length), generator=torch.Generator().manual_seed(seed))
    ours = model.float().cpu().eval()(ids)
    theirs = hf_model(input_ids=ids).logits
    return Check(float((ours - theirs).abs().max()), tuple(ids.shape))


def save_hf(model: Any, tokenizer: Any, folder: Path) -> Check:
    """Write ``model`` and ``tokenizer`` as a transformers model folder (``config.json``,
    ``model.safetensors``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``),
    load it back with ``AutoModelForCausalLM`` and compare its logits with iclx's."""
    import transformers
    from transformers.utils import logging as hf_logging

    from iclx.tokenizers.hf_export import save_hf_tokenizer

    eos, bos = getattr(tokenizer, "eos_id", None), getattr(tokenizer, "bos_id", None)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one bar per file of a tiny model: noise
    try:
        hf = to_hf(model, bos_id=bos, eos_id=eos)
        hf.save_pretrained(folder, safe_serialization=True)
        save_hf_tokenizer(tokenizer, folder, max_length=int(model.max_seq_len))
        loaded = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return compare_logits(model, loaded)
