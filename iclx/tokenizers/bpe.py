"""``bpe``: byte-level BPE (GPT-2 style) trained on the corpus with Hugging Face ``tokenizers``.

Byte-level means every string is representable (no UNK) and decoding is exact. The lecture's
~50k vocabulary is ``tokenizer=bpe_50k``; the quickstart uses a few thousand.
"""

from __future__ import annotations

from collections.abc import Iterable

from iclx.errors import ConfigError
from iclx.progress import bars_wanted
from iclx.registry import register
from iclx.tokenizers.base import BOS, EOS
from iclx.tokenizers.huggingface import HFTokenizer

MAX_VOCAB = 2**32  # packed shards store ids as uint32 at most


@register("tokenizer", "bpe")
class BPETokenizer(HFTokenizer):
    def __init__(self, vocab_size: int = 8192, min_frequency: int = 2):
        if not 258 <= vocab_size <= MAX_VOCAB:
            raise ConfigError(
                f"tokenizer.vocab_size must be between 258 (256 bytes + EOS + BOS) and 2^32, got {vocab_size}"
            )
        self.target_vocab_size = vocab_size
        self.min_frequency = min_frequency

    def train(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer as HFCore
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFCore(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.target_vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=[EOS, BOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
            show_progress=bars_wanted(),  # its bar (indicatif) on a terminal only, like every bar of iclx
        )
        tok.train_from_iterator(texts, trainer)
        self._tok = tok
        self.eos_id, self.bos_id = tok.token_to_id(EOS), tok.token_to_id(BOS)
