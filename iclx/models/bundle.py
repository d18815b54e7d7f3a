"""A trained model on disk, loadable without the run that made it.

A bundle folder holds ``model.pt`` (the registry name and keyword arguments that rebuild the
model, its vocabulary size, and its ``state_dict``: tensors and plain values only, so it loads
with ``torch.load(weights_only=True)``) and ``tokenizer/`` (the tokenizer it was trained with).
The pre-training artifact is a bundle; :func:`load_model` also reads a Lightning ``.ckpt`` from a
bundle's ``checkpoints/`` folder (e.g. ``best.ckpt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from iclx.errors import DataError
from iclx.models.causal_lm import CausalLM
from iclx.registry import build
from iclx.tokenizers.base import Tokenizer, load_tokenizer

FORMAT = 1
MODEL_FILE = "model.pt"
TOKENIZER_DIR = "tokenizer"


def model_spec(model: CausalLM) -> dict[str, Any]:
    """The config that rebuilds ``model`` (registry name + keyword arguments, no vocab_size)."""
    return {"name": model.name, **model.config}


def build_model(spec: dict[str, Any], vocab_size: int) -> CausalLM:
    return build("model", spec, key="model", vocab_size=vocab_size)


def save_model(folder: str | Path, model: CausalLM, tokenizer: Tokenizer, **extra: Any) -> Path:
    """Write ``model.pt`` and ``tokenizer/`` into ``folder``; ``extra`` holds plain values (metrics, steps)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_spec(model),
        "vocab_size": model.vocab_size,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    tmp = folder / f".{MODEL_FILE}.tmp"
    torch.save(payload, tmp)
    tmp.replace(folder / MODEL_FILE)
    tokenizer.save(folder / TOKENIZER_DIR)
    return folder / MODEL_FILE


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[CausalLM, Tokenizer]:
    """(model in eval mode, tokenizer) from a bundle folder, its ``model.pt``, or a ``.ckpt`` in it."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such model file (expected a folder with {MODEL_FILE}, a {MODEL_FILE} or a .ckpt)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated or not a torch file; weights_only also refuses pickled code
        raise DataError(f"{path}: cannot be read as a model checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if path.suffix == ".ckpt":  # Lightning: hyper_parameters from LMTask, weights under "model."
        hparams = payload.get("hyper_parameters", {})
        spec, vocab_size = hparams.get("model_spec"), hparams.get("vocab_size")
        state = {k[len("model."):]: v for k, v in payload["state_dict"].items() if k.startswith("model.")}
        tokenizer_dir = path.parent.parent / TOKENIZER_DIR  # <bundle>/checkpoints/x.ckpt
    else:
        spec, vocab_size, state = payload.get("model"), payload.get("vocab_size"), payload.get("state_dict")
        tokenizer_dir = path.parent / TOKENIZER_DIR
    if spec is None or vocab_size is None or state is None:
        raise DataError(f"{path}: not an iclx model checkpoint (no model config or weights in it)")
    model = build_model(dict(spec), int(vocab_size))
    model.load_state_dict(state)
    return model.eval(), load_tokenizer(tokenizer_dir)
