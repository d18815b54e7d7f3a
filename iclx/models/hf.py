"""``hf``: a Hugging Face causal LM behind iclx's model interface (optional extra ``iclx[hf]``).

``path``: a local folder or hub name of a pre-trained model (``gpt2``, ...), used with
``tokenizer=pretrained`` on the same path. Without ``path`` the model is built untrained from
``architecture`` and ``config`` (e.g. ``{n_layer: 2, n_embd: 64, n_head: 2, n_positions: 256}``
for ``gpt2``), which is how the tests build one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from iclx.errors import ConfigError
from iclx.models.causal_lm import CausalLM
from iclx.registry import register

# config entries that describe a saved config rather than the model
_CONFIG_BOOKKEEPING = ("architectures", "model_type", "transformers_version", "_name_or_path", "vocab_size", "torch_dtype", "dtype")


@register("model", "hf")
class HFCausalLM(CausalLM):
    def __init__(self, vocab_size: int, path: str | None = None, architecture: str = "gpt2",
                 config: Mapping[str, Any] = MappingProxyType({})):  # read-only: a shared default never changes
        super().__init__()
        try:
            import transformers
        except ImportError as e:
            raise ConfigError("model 'hf' needs the optional extra: pip install 'iclx[hf]'") from e
        if path is not None:
            try:
                self.model = transformers.AutoModelForCausalLM.from_pretrained(path)
            except Exception as e:  # transformers' errors are many lines; keep the first
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"model.path: cannot load Hugging Face model '{path}': {first}") from e
            if vocab_size > self.model.config.vocab_size:  # the tokenizer added tokens (e.g. an EOS)
                self.model.resize_token_embeddings(vocab_size)
        else:
            try:
                # iclx's tokenizers number their own special tokens; the architecture's defaults (GPT-2's
                # 50256) would point outside a small vocabulary
                settings = {"bos_token_id": None, "eos_token_id": None, **(config or {})}
                hf_config = transformers.AutoConfig.for_model(architecture, vocab_size=vocab_size, **settings)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"model.architecture/config: {e}") from e
            self.model = transformers.AutoModelForCausalLM.from_config(hf_config)
        cfg = self.model.config
        self.vocab_size = cfg.vocab_size
        self.max_seq_len = int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024)
        # what rebuilds this model without the hub: its architecture and full config
        self.config = {
            "architecture": cfg.model_type,
            "config": {k: v for k, v in cfg.to_dict().items() if k not in _CONFIG_BOOKKEEPING},
        }

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx, output_hidden_states=True).hidden_states[-1]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx).logits
