"""An iclx tokenizer as Hugging Face files: ``tokenizer.json`` + ``tokenizer_config.json``.

``bpe``, ``word`` and ``pretrained`` already are a ``tokenizers.Tokenizer``: written as they are.
``byte`` and ``char`` are rebuilt as one, with the same ids:

- ``byte``: a byte-level BPE without merges whose vocabulary is the 256 bytes in GPT-2's byte-to-
  character alphabet, id = byte value, then ``<eos>`` (256) and ``<bos>`` (257);
- ``char``: a word-level vocabulary of the characters (``<eos>`` 0, ``<bos>`` 1, ``<unk>`` 2, then
  the characters in iclx's order) over a pre-tokenizer that isolates every code point, decoded by
  concatenation; characters the corpus lacked become ``<unk>`` as in iclx.

Both give iclx's ids and decoded text, except on text that contains a special token's spelling
(``<eos>``): Hugging Face reads it as that token, iclx as its bytes or characters (iclx's own
``bpe`` and ``word`` read it as the token too). The files load with ``AutoTokenizer`` (as a
``PreTrainedTokenizerFast``) and with ``tokenizers.Tokenizer.from_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iclx.errors import ConfigError

CONFIG_FILE = "tokenizer_config.json"


def hf_tokenizer(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` that gives ``tokenizer``'s ids (a copy: safe to change)."""
    from tokenizers import Tokenizer

    from iclx.tokenizers.byte import ByteTokenizer
    from iclx.tokenizers.char import CharTokenizer
    from iclx.tokenizers.huggingface import HFTokenizer

    if isinstance(tokenizer, HFTokenizer):
        return Tokenizer.from_str(tokenizer.hf.to_str())
    if isinstance(tokenizer, ByteTokenizer):
        return _byte_tokenizer(tokenizer)
    if isinstance(tokenizer, CharTokenizer):
        return _char_tokenizer(tokenizer)
    name = getattr(tokenizer, "name", type(tokenizer).__name__)
    raise ConfigError(f"tokenizer '{name}' has no Hugging Face form: iclx export writes bpe, word, pretrained, byte and char")


def _byte_tokenizer(tokenizer: Any) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    from iclx.tokenizers.base import BOS, EOS

    alphabet = _bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={alphabet[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOS, special=True), AddedToken(BOS, special=True)])
    _check_ids(tok, {EOS: tokenizer.eos_id, BOS: tokenizer.bos_id})
    return tok


def _char_tokenizer(tokenizer: Any) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    from iclx.tokenizers.char import SPECIALS, UNK

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({c: i + len(SPECIALS) for i, c in enumerate(tokenizer.chars)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per code point
    tok.decoder = decoders.Fuse()  # concatenated, no spaces between
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIALS])
    _check_ids(tok, {t: i for i, t in enumerate(SPECIALS)})
    return tok


def _check_ids(tok: Any, expected: dict[str, int]) -> None:
    got = {t: tok.token_to_id(t) for t in expected}
    if got != expected:  # a construction bug, never the user's input
        raise RuntimeError(f"Hugging Face tokenizer ids {got} differ from iclx's {expected}")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte (what ``ByteLevel`` pre-tokenizers produce)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def save_hf_tokenizer(tokenizer: Any, folder: Path, max_length: int) -> None:
    """``tokenizer.json`` and ``tokenizer_config.json`` (EOS, BOS, UNK; padding with EOS) in ``folder``."""
    tok = hf_tokenizer(tokenizer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # read by transformers 4 and 5 alike
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,  # decode as iclx does: no space clean-up
    }
    for role, token_id in (("eos_token", tokenizer.eos_id), ("bos_token", tokenizer.bos_id)):
        config[role] = tok.id_to_token(int(token_id))
    config["pad_token"] = config["eos_token"]  # no padding token of its own: batches pad with EOS (masked)
    unk = getattr(tokenizer, "unk_id", None)
    if unk is None:
        unk_token = next((t for t in ("<unk>", "[UNK]") if tok.token_to_id(t) is not None), None)
    else:
        unk_token = tok.id_to_token(int(unk))
    if unk_token is not None:
        config["unk_token"] = unk_token
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
