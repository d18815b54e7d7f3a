"""``data=ginc``: the GINC synthetic corpus of Xie et al. 2021, documents of a mixture of HMMs.

The language itself (HMMs, vocabulary, sampling) is :mod:`iclx.ginc`, shared with the ICL task
``task=ginc``. Its parameters are this source's config keys, named and defaulted as
:class:`~iclx.ginc.GincLanguage` names them (tests/test_data_ginc.py checks that they agree); each
document follows one in-distribution concept, its id in ``Document.meta["concept"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from iclx.data.corpus import CorpusSource
from iclx.data.document import Document
from iclx.errors import ConfigError
from iclx.ginc import GincLanguage
from iclx.registry import register


@register("data", "ginc")
class GincCorpus(CorpusSource):
    """``n_documents`` documents of ``document_length`` words from a :class:`GincLanguage`."""

    def __init__(
        self,
        n_documents: int = 2000,
        document_length: int = 1024,
        vocab_size: int = 50,
        n_entities: int = 10,
        n_properties: int = 10,
        n_concepts: int = 5,
        n_ood_concepts: int = 5,
        transition_temp: float = 0.1,
        start_temp: float = 10.0,
        entity_persistence: float = 0.9,
        seed: int = 0,
    ):
        if n_documents < 1 or document_length < 1:
            raise ConfigError(f"data.n_documents and data.document_length must be positive, got {n_documents}, {document_length}")
        self.n_documents, self.document_length = n_documents, document_length
        self.language = GincLanguage(
            vocab_size=vocab_size, n_entities=n_entities, n_properties=n_properties, n_concepts=n_concepts,
            n_ood_concepts=n_ood_concepts, transition_temp=transition_temp, start_temp=start_temp,
            entity_persistence=entity_persistence, seed=seed,
        )

    def describe(self) -> str:
        return f"ginc ({self.n_documents} x {self.document_length} words, {self.language.n_concepts} concepts)"

    def documents(self) -> Iterator[Document]:
        yield from ginc_documents(self.language, self.n_documents, self.document_length)


def ginc_documents(language: GincLanguage, n: int, length: int, seed: int = 0) -> list[Document]:
    """``n`` pre-training documents of ``length`` words; ``meta["concept"]`` names each one's concept."""
    tokens, concepts = language.document_tokens(n, length, seed)
    symbols = np.array(language.symbols, dtype=object)
    return [
        Document(text=" ".join(symbols[row]), id=f"ginc:{i}", meta={"concept": int(c)})
        for i, (row, c) in enumerate(zip(tokens, concepts))
    ]
