"""The GINC language of Xie et al. 2021: a mixture of HMMs, its vocabulary, sampling, Bayes-optimal labels.

The generative story (:class:`GincLanguage`):

- a hidden state is a pair (entity e, property p) and emits the word ``emission[e, p]``; property
  0 emits the delimiter ``/`` for every entity, the other pairs a word of a ``vocab_size``-word
  vocabulary (several pairs may share a word, so the state is not visible from one word);
- entities move by one transition matrix shared by all concepts, biased to stay put
  (``entity_persistence`` on the diagonal); properties move by the transition matrix of the
  **concept**, a sharp mixture of random permutations (``transition_temp``), so a concept is a
  near-deterministic cycle of properties;
- the pre-training corpus mixes the ``n_concepts`` in-distribution concepts uniformly, one concept
  per document; ``n_ood_concepts`` more are never used for
  pre-training and serve out-of-distribution prompts.

Two modules use it, and this one works in word ids and words so that neither imports the other:
the corpus source ``data=ginc`` (iclx.data.ginc: pre-training documents) and the ICL task
``task=ginc`` (iclx.tasks.ginc: examples and prompts).

ICL (``example_tokens``): an example starts at a random entity and a start property, walks
``example_length - 1`` steps under one concept, and is split into the input x (all words but the
last) and the output y (the last). Its label is the Bayes-optimal next word given x under the
example's concept and start property (the target for a query); the sampled y is what a
demonstration shows.
"""

from __future__ import annotations

import inspect
import itertools
import string
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from iclx.errors import ConfigError

DELIMITER = "/"
Split = Literal["id", "ood"]

# independent random streams derived from the language seed
_LANGUAGE, _DOCUMENTS, _EXAMPLES = 0, 1, 2


class GincLanguage:
    def __init__(
        self,
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
        for key, value, low in [("vocab_size", vocab_size, 1), ("n_entities", n_entities, 1),
                                ("n_properties", n_properties, 2), ("n_concepts", n_concepts, 1),
                                ("n_ood_concepts", n_ood_concepts, 0)]:
            if value < low:
                raise ConfigError(f"data.{key} must be at least {low}, got {value}")
        if not 0 <= entity_persistence <= 1:
            raise ConfigError(f"data.entity_persistence must be in [0, 1], got {entity_persistence}")
        if transition_temp <= 0 or start_temp <= 0:
            raise ConfigError("data.transition_temp and data.start_temp must be positive")
        self.seed = seed
        self.n_entities, self.n_properties = n_entities, n_properties
        self.n_concepts, self.n_ood_concepts = n_concepts, n_ood_concepts
        rng = np.random.default_rng([seed, _LANGUAGE])
        self.symbols: list[str] = [DELIMITER, *_word_names(vocab_size)]
        self.emission = rng.integers(1, vocab_size + 1, size=(n_entities, n_properties))
        self.emission[:, 0] = 0  # property 0 is the delimiter, whatever the entity
        self.entity_transitions = entity_persistence * np.eye(n_entities) + (1 - entity_persistence) * _permutation_mixture(
            n_entities, transition_temp, rng
        )
        n_all = n_concepts + n_ood_concepts
        self.property_transitions = np.stack([_permutation_mixture(n_properties, transition_temp, rng) for _ in range(n_all)])
        self.start_probs = _softmax((rng.random((n_all, n_entities * n_properties)) - 0.5) / start_temp)

    # -- structure ------------------------------------------------------------------------------

    def concepts(self, split: Split = "id") -> list[int]:
        """Concept ids: in-distribution ones are 0..n_concepts-1, out-of-distribution ones follow."""
        if split == "id":
            return list(range(self.n_concepts))
        if split == "ood":
            return list(range(self.n_concepts, self.n_concepts + self.n_ood_concepts))
        raise ConfigError(f"GINC split must be 'id' or 'ood', got {split!r}")

    def transition_matrix(self, concept: int) -> np.ndarray:
        """P(h' | h) over hidden states h = entity * n_properties + property."""
        return np.kron(self.entity_transitions, self.property_transitions[concept])

    def words(self, tokens: np.ndarray) -> str:
        return " ".join(self.symbols[t] for t in tokens)

    # -- sampling -------------------------------------------------------------------------------

    def sample(self, concepts: np.ndarray, length: int, rng: np.random.Generator,
               entities: np.ndarray | None = None, properties: np.ndarray | None = None) -> np.ndarray:
        """Word ids (n, length) of n sequences, one concept each, all advanced together.

        Start states come from each concept's start distribution unless given.
        """
        concepts = np.asarray(concepts, dtype=np.int64)
        n, n_props = len(concepts), self.n_properties
        if entities is None or properties is None:
            start = _sample_rows(np.cumsum(self.start_probs[concepts], axis=1), rng)
            entities, properties = start // n_props, start % n_props
        entity_cdf = np.cumsum(self.entity_transitions, axis=1)
        property_cdf = np.cumsum(self.property_transitions, axis=2)
        tokens = np.empty((n, length), dtype=np.int64)
        for t in range(length):
            tokens[:, t] = self.emission[entities, properties]
            if t + 1 < length:
                entities = _sample_rows(entity_cdf[entities], rng)
                properties = _sample_rows(property_cdf[concepts, properties], rng)
        return tokens

    def document_tokens(self, n: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Word ids (n, length) of ``n`` pre-training documents and their concepts (n,), drawn
        uniformly from the in-distribution ones."""
        rng = np.random.default_rng([self.seed, _DOCUMENTS, seed])
        concepts = rng.integers(0, self.n_concepts, size=n)
        return self.sample(concepts, length, rng), concepts

    def example_tokens(
        self,
        n: int,
        example_length: int,
        *,
        split: Split = "id",
        seed: int = 0,
        concept: int | None = None,
        start_property: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``n`` ICL examples of ``example_length`` words: (word ids (n, example_length), Bayes-optimal
        last word given the others (n,), concepts (n,), start properties (n,)).

        Each draws its concept from ``split`` and its start property from 1..n_properties-1 unless given.
        """
        if example_length < 2:
            raise ConfigError(f"GINC example_length must be at least 2 (x and y), got {example_length}")
        rng = np.random.default_rng([self.seed, _EXAMPLES, seed])
        pool = self.concepts(split)
        if not pool:
            raise ConfigError(f"GINC has no '{split}' concepts (data.n_ood_concepts=0)")
        concepts = np.full(n, concept) if concept is not None else rng.choice(pool, size=n)
        props = np.full(n, start_property) if start_property is not None else rng.integers(1, self.n_properties, size=n)
        entities = rng.integers(0, self.n_entities, size=n)
        tokens = self.sample(concepts, example_length, rng, entities=entities, properties=props)
        return tokens, self.bayes_next_word(tokens[:, :-1], concepts, props), concepts, props

    def prompt_rng(self, seed: int, k: int) -> np.random.Generator:
        """The random stream that picks the concept, start property and example seed of each prompt."""
        return np.random.default_rng([self.seed, _EXAMPLES, seed, k])

    # -- inference ------------------------------------------------------------------------------

    def next_word_probs(self, x: np.ndarray, concepts: Sequence[int], start_properties: Sequence[int]) -> np.ndarray:
        """P(next word | x) (n, vocabulary) under each row's concept, the start entity uniform
        at its start property: the HMM forward algorithm over (entity, property) states."""
        x = np.atleast_2d(np.asarray(x, dtype=np.int64))
        n_states = self.n_entities * self.n_properties
        emitted = self.emission.reshape(-1)  # word of each hidden state
        state_props = np.arange(n_states) % self.n_properties
        probs = np.zeros((len(x), len(self.symbols)))
        concepts, start_properties = np.asarray(concepts), np.asarray(start_properties)
        for c in np.unique(concepts):
            rows = np.flatnonzero(concepts == c)
            transitions = self.transition_matrix(int(c))
            alpha = (state_props[None, :] == start_properties[rows, None]).astype(float)
            for t in range(x.shape[1]):
                if t > 0:
                    alpha = alpha @ transitions
                alpha = alpha * (emitted[None, :] == x[rows, t : t + 1])
                alpha /= np.maximum(alpha.sum(axis=1, keepdims=True), 1e-300)
            next_state = alpha @ transitions
            probs[rows] = _add_by_word(next_state, emitted, len(self.symbols))  # states sharing a word add up
        return probs

    def bayes_next_word(self, x: np.ndarray, concepts: Sequence[int], start_properties: Sequence[int]) -> np.ndarray:
        return self.next_word_probs(x, concepts, start_properties).argmax(axis=1)

    def _forward(self, x: np.ndarray, concept: int, start_property: int) -> tuple[np.ndarray, np.ndarray]:
        """(log P(x | concept, start property), P(next hidden state | x)) per row of x (n, length);
        the start entity is uniform, as ``example_tokens`` draws it."""
        n_states = self.n_entities * self.n_properties
        emitted = self.emission.reshape(-1)
        transitions = self.transition_matrix(concept)
        alpha = np.tile((np.arange(n_states) % self.n_properties == start_property) / self.n_entities, (len(x), 1))
        log_likelihood = np.zeros(len(x))
        for t in range(x.shape[1]):
            if t > 0:
                alpha = alpha @ transitions
            alpha = alpha * (emitted[None, :] == x[:, t : t + 1])
            total = alpha.sum(axis=1)
            log_likelihood += np.log(np.maximum(total, 1e-300))
            alpha /= np.maximum(total, 1e-300)[:, None]
        return log_likelihood, alpha @ transitions

    def hypotheses(self, split: Split = "id") -> list[tuple[int, int]]:
        """The (concept, start property) pairs a prompt of ``split`` can come from, equally likely a priori."""
        return [(c, p) for c in self.concepts(split) for p in range(1, self.n_properties)]

    def example_log_likelihoods(self, tokens: np.ndarray, split: Split = "id") -> np.ndarray:
        """log P(example | concept, start property): (hypotheses, n) for word ids (n, length)."""
        tokens = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
        return np.stack([self._forward(tokens, c, p)[0] for c, p in self.hypotheses(split)])

    def query_predictives(self, x: np.ndarray, split: Split = "id") -> tuple[np.ndarray, np.ndarray]:
        """For query inputs x (n, length - 1): log P(x | h) (hypotheses, n) and P(next word | x, h)
        (hypotheses, n, vocabulary)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.int64))
        emitted = self.emission.reshape(-1)
        lls, words = [], []
        for c, p in self.hypotheses(split):
            ll, next_state = self._forward(x, c, p)
            lls.append(ll)
            words.append(_add_by_word(next_state, emitted, len(self.symbols)))
        return np.stack(lls), np.stack(words)

    def prompt_predictive(
        self, demonstrations: Sequence[np.ndarray], query_x: np.ndarray, split: Split = "id"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The Bayes-optimal predictive of the query's next word given a whole prompt.

        The prompt process of ``ginc_prompts`` and of the ``matched`` pool: a concept uniform over
        the split's concepts and a start property uniform over 1..n_properties-1 are drawn once; every
        demonstration (word ids x and y, ``example_length`` of them) and the query's x (one fewer) is
        an independent walk from a uniform entity at that start property under that concept (the
        ``/`` between examples is the template's, not the HMM's). So
        P(y | prompt) = sum over h = (c, p) of P(h | demonstrations, x_query) P(y | x_query, h).
        Returns (P(word) over the vocabulary, P(h) over ``hypotheses(split)``).
        """
        demo_ll = self.example_log_likelihoods(np.asarray(demonstrations), split).sum(axis=1) if len(demonstrations) else 0.0
        query_ll, words = self.query_predictives(query_x, split)
        return posterior_predictive(demo_ll + query_ll[:, 0], words[:, 0])


def posterior_predictive(log_evidence: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(word), P(h)) from log P(prompt | h) (hypotheses,) and P(word | query, h) (hypotheses, vocabulary),
    with a uniform prior over the hypotheses."""
    weights = np.exp(log_evidence - log_evidence.max())
    weights /= weights.sum()
    return weights @ words, weights


# the keys of the ``data`` config that define the language (the corpus adds its size)
LANGUAGE_KEYS = tuple(inspect.signature(GincLanguage).parameters)


def ginc_language(data_cfg: Mapping[str, Any]) -> GincLanguage:
    """The GINC language of the configured pre-training corpus (for ICL prompts from the same HMMs)."""
    if data_cfg.get("name") != "ginc":
        raise ConfigError(
            f"GINC prompts need data=ginc (they come from the pre-training corpus's HMMs), got data.name='{data_cfg.get('name')}'"
        )
    return GincLanguage(**{key: data_cfg[key] for key in LANGUAGE_KEYS if key in data_cfg})


# --- helpers ---------------------------------------------------------------------------------------


def _word_names(n: int) -> list[str]:
    """``a, b, ..., z, aa, ab, ...``: n distinct lowercase words."""
    names = (
        "".join(p) for size in itertools.count(1) for p in itertools.product(string.ascii_lowercase, repeat=size)
    )
    return list(itertools.islice(names, n))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _permutation_mixture(n: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """A transition matrix: n random permutation matrices mixed with softmax((u - 0.5) / temperature) weights."""
    weights = _softmax((rng.random(n) - 0.5) / temperature)
    perms = np.stack([np.eye(n)[rng.permutation(n)] for _ in range(n)])
    return np.tensordot(weights, perms, axes=1)


def _sample_rows(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of a (n, m) array of cumulative probabilities (inverse-CDF sampling)."""
    u = rng.random(len(cdf))[:, None]
    return np.minimum((u > cdf).sum(axis=1), cdf.shape[1] - 1)


def _add_by_word(state_probs: np.ndarray, emitted: np.ndarray, n_words: int) -> np.ndarray:
    out = np.zeros((len(state_probs), n_words))
    for word in np.unique(emitted):
        out[:, word] = state_probs[:, emitted == word].sum(axis=1)
    return out
