"""``word``: one token per whitespace-separated word, vocabulary from the corpus.

For synthetic corpora whose symbols are words (GINC: ``a b / c ...``); decoding joins words
with single spaces, so round trip is exact for text that is single-space separated.
"""

from __future__ import annotations

from collections.abc import Iterable

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.tokenizers.base import BOS, EOS, UNK
from iclx.tokenizers.huggingface import HFTokenizer


@register("tokenizer", "word")
class WordTokenizer(HFTokenizer):
    def __init__(self, vocab_size: int | None = None, min_frequency: int = 1):
        """``vocab_size``: keep the most frequent words only (null: every word seen)."""
        if vocab_size is not None and vocab_size < 4:
            raise ConfigError(f"tokenizer.vocab_size must be at least 4 (3 special tokens + 1 word), got {vocab_size}")
        self.max_vocab = vocab_size
        self.min_frequency = min_frequency

    def train(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer as HFCore
        from tokenizers import models, pre_tokenizers, trainers

        tok = HFCore(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=self.max_vocab or 2**31 - 1,
            min_frequency=self.min_frequency,
            special_tokens=[EOS, BOS, UNK],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        self._tok = tok
        self.eos_id, self.bos_id = tok.token_to_id(EOS), tok.token_to_id(BOS)
