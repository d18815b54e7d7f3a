"""GINC: the mixture-of-HMMs corpus, its ICL examples and prompts, and the Bayes-optimal labels."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

from iclx.data.corpus import load_corpus
from iclx.data.ginc import GincCorpus, ginc_documents
from iclx.errors import ConfigError
from iclx.ginc import DELIMITER, GincLanguage, ginc_language
from iclx.tasks.ginc import ginc_examples, ginc_prompts


@pytest.fixture(scope="module")
def language() -> GincLanguage:
    return GincLanguage(seed=0)


def test_structure_follows_the_paper(language):
    assert language.symbols[0] == DELIMITER and len(language.symbols) == 51
    assert (language.emission[:, 0] == 0).all() and (language.emission[:, 1:] > 0).all()  # property 0: delimiter
    assert np.allclose(language.entity_transitions.sum(1), 1) and np.allclose(language.property_transitions.sum(2), 1)
    assert (np.diag(language.entity_transitions) >= 0.9).all()  # entities mostly persist
    assert language.property_transitions.shape == (10, 10, 10)  # 5 in-distribution + 5 held-out concepts
    assert not np.allclose(language.property_transitions[0], language.property_transitions[5])
    assert language.concepts("id") == [0, 1, 2, 3, 4] and language.concepts("ood") == [5, 6, 7, 8, 9]
    t = language.transition_matrix(2)
    assert t.shape == (100, 100) and np.allclose(t.sum(1), 1)


def test_documents_are_seeded_sized_and_labelled(language):
    docs = ginc_documents(language, 40, 64)
    assert len(docs) == 40 and all(len(d.text.split()) == 64 for d in docs)
    assert {d.meta["concept"] for d in docs} <= set(language.concepts("id"))
    assert len({d.meta["concept"] for d in docs}) == 5
    assert [d.text for d in ginc_documents(language, 40, 64)] == [d.text for d in docs]
    assert [d.text for d in ginc_documents(GincLanguage(seed=1), 40, 64)] != [d.text for d in docs]
    assert sum(d.text.split().count(DELIMITER) for d in docs) > 0


def test_the_source_reads_its_config():
    corpus = load_corpus({"name": "ginc", "n_documents": 50, "document_length": 32, "n_concepts": 2,
                          "validation": {"fraction": 0.1, "seed": 0}})
    assert len(corpus.train) == 45 and len(corpus.val) == 5
    assert {d.meta["concept"] for d in corpus.train + corpus.val} == {0, 1}
    with pytest.raises(ConfigError, match="data.n_properties must be at least 2, got 1"):
        load_corpus({"name": "ginc", "n_properties": 1})


def test_examples_respect_split_concept_and_start_property(language):
    ood = ginc_examples(language, 200, 6, split="ood", seed=3)
    assert all(len(e.input.split()) == 5 and len(e.output.split()) == 1 for e in ood)
    assert {e.meta["concept"] for e in ood} == set(language.concepts("ood"))
    fixed = ginc_examples(language, 50, 4, concept=2, start_property=7, seed=1)
    assert {(e.meta["concept"], e.meta["start_property"]) for e in fixed} == {(2, 7)}
    # the first word is emitted at the start property: it is one of that property's words
    assert {language.symbols.index(e.input.split()[0]) for e in fixed} <= set(language.emission[:, 7])
    assert [e.input for e in ginc_examples(language, 20, 5, seed=9)] == [e.input for e in ginc_examples(language, 20, 5, seed=9)]
    with pytest.raises(ConfigError, match="example_length must be at least 2"):
        ginc_examples(language, 1, 1)


def test_labels_are_the_bayes_optimal_next_word(language):
    examples = ginc_examples(language, 1000, 5, seed=0)
    agree = np.mean([e.output == e.label for e in examples])
    assert agree > 0.4  # vs 1/50 by chance: the concept predicts the next word
    x = np.array([[language.symbols.index(w) for w in e.input.split()] for e in examples[:50]])
    probs = language.next_word_probs(x, [e.meta["concept"] for e in examples[:50]], [e.meta["start_property"] for e in examples[:50]])
    assert np.allclose(probs.sum(1), 1)
    assert [language.symbols[i] for i in probs.argmax(1)] == [e.label for e in examples[:50]]


def test_forward_algorithm_matches_path_enumeration():
    small = GincLanguage(vocab_size=6, n_entities=3, n_properties=4, n_concepts=2, n_ood_concepts=0, seed=5)
    n_states = 12
    transitions = small.transition_matrix(1)
    emitted = small.emission.reshape(-1)
    x, start_property = [int(small.emission[1, 2]), int(small.emission[2, 3]), 0], 2
    expected = np.zeros(len(small.symbols))
    for path in itertools.product(range(n_states), repeat=len(x)):
        if path[0] % 4 != start_property or any(emitted[h] != w for h, w in zip(path, x)):
            continue
        weight = np.prod([transitions[a, b] for a, b in zip(path, path[1:])]) / 3
        for nxt in range(n_states):
            expected[emitted[nxt]] += weight * transitions[path[-1], nxt]
    expected /= expected.sum()
    assert np.allclose(small.next_word_probs(np.array([x]), [1], [start_property])[0], expected)


def test_prompts_share_one_concept_and_format_like_the_paper(language):
    prompts = ginc_prompts(language, 5, 3, 4, split="id", seed=2)
    for p in prompts:
        assert len(p.demonstrations) == 3
        for e in (*p.demonstrations, p.query):
            assert (e.meta["concept"], e.meta["start_property"]) == (p.concept, p.start_property)
        # (an example may itself pass through property 0 and contain the delimiter, as in the paper)
        shown = [f"{d.input} {d.output}" for d in p.demonstrations] + [p.query.input]
        assert p.text() == f" {DELIMITER} ".join(shown)
    assert ginc_prompts(language, 1, 0, 4, seed=2)[0].text() == ginc_prompts(language, 1, 0, 4, seed=2)[0].query.input


def test_ginc_language_comes_from_the_data_config():
    cfg = {"name": "ginc", "n_concepts": 3, "seed": 7, "validation": {"fraction": 0.1}, "order": {"name": "none"}}
    lang = ginc_language(cfg)
    assert lang.n_concepts == 3 and np.array_equal(lang.emission, GincLanguage(n_concepts=3, seed=7).emission)
    with pytest.raises(ConfigError, match="GINC prompts need data=ginc .* got data.name='bundled'"):
        ginc_language({"name": "bundled"})


def test_the_corpus_and_the_language_default_to_the_same_hmms():
    """The corpus's config keys restate the language's parameters (registered signatures are its schema)."""
    corpus = inspect.signature(GincCorpus).parameters
    for name, parameter in inspect.signature(GincLanguage).parameters.items():
        assert corpus[name].default == parameter.default, name


def _path_probability(lang: GincLanguage, words: np.ndarray, concept: int, start_property: int) -> float:
    """P(words | concept, start property) by summing over every hidden path (uniform start entity)."""
    n_props = lang.n_properties
    transitions = lang.transition_matrix(concept)
    total = 0.0
    for path in itertools.product(range(lang.n_entities * n_props), repeat=len(words)):
        if path[0] % n_props != start_property:
            continue
        p = 1.0 / lang.n_entities
        for t, state in enumerate(path):
            if t > 0:
                p *= transitions[path[t - 1], state]
            if lang.emission.flat[state] != words[t]:
                p = 0.0
        total += p
    return total


@pytest.mark.parametrize("k", [0, 1, 3])
def test_the_prompt_posterior_predictive_matches_enumeration(k):
    """P(y | demonstrations, x_query) of the prompt process (uniform concept and start property),
    from the forward algorithm, equals brute-force sums over every hidden path and hypothesis."""
    lang = GincLanguage(vocab_size=3, n_entities=2, n_properties=3, n_concepts=2, n_ood_concepts=1, seed=3)
    tokens, _, _, _ = lang.example_tokens(k + 1, 3, concept=1, start_property=2, seed=k)
    demos, query_x = tokens[:k], tokens[k, :-1]
    words, weights = lang.prompt_predictive(list(demos), query_x)

    joint = np.zeros(len(lang.symbols))
    evidence = []
    for c, p in lang.hypotheses("id"):
        prior = 1 / len(lang.hypotheses("id"))
        demo_prob = np.prod([_path_probability(lang, d, c, p) for d in demos]) if k else 1.0
        evidence.append(prior * demo_prob * _path_probability(lang, query_x, c, p))
        for y in range(len(lang.symbols)):
            joint[y] += prior * demo_prob * _path_probability(lang, np.append(query_x, y), c, p)
    np.testing.assert_allclose(words, joint / joint.sum(), atol=1e-10)
    np.testing.assert_allclose(weights, np.asarray(evidence) / sum(evidence), atol=1e-10)
    assert lang.hypotheses("ood") == [(2, 1), (2, 2)]


def test_more_demonstrations_concentrate_the_posterior_on_the_true_concept(language):
    # examples of 2 words: the query's x alone (one word) says little about its concept
    tokens, _, _, _ = language.example_tokens(17, 2, concept=3, start_property=4, seed=7)
    mass = []
    for k in (0, 2, 16):
        _, weights = language.prompt_predictive(list(tokens[:k]), tokens[16, :-1])
        concept_mass = weights.reshape(language.n_concepts, language.n_properties - 1).sum(axis=1)
        mass.append(concept_mass[3])
    assert mass[0] < mass[1] < mass[2] and mass[2] > 0.9, mass


def test_the_bayes_reference_agrees_with_itself_and_beats_a_flat_model():
    """BayesReference.metrics: a model whose label scores are the Bayes log-predictive agrees with it
    on every query, at KL 0; a flat model is at KL log(#labels) - H(Bayes)."""
    from iclx.tasks.ginc import ginc

    task = ginc(data={"name": "ginc"}, n_queries=60, pool_per_group=8)
    reference = task.reference
    demos = [[e for e in task.pool if e.meta["group"] == q.meta["group"]][:4] for q in task.queries]
    labels = task.labels
    bayes = reference.predictive(task.queries, demos)[:, [reference.word_id[label] for label in labels]]
    bayes /= bayes.sum(axis=1, keepdims=True)
    as_bayes = [labels[i] for i in bayes.argmax(axis=1)]
    same = reference.metrics(task.queries, demos, as_bayes, np.log(bayes), labels)
    assert same["bayes_agreement"] == 1 and abs(same["bayes_kl"]) < 1e-9 and 0.5 < same["bayes_accuracy"] <= 1
    flat = reference.metrics(task.queries, demos, [labels[0]] * 60, np.zeros((60, len(labels))), labels)
    entropy = -np.sum(np.where(bayes > 0, bayes * np.log(np.maximum(bayes, 1e-300)), 0), axis=1).mean()
    assert abs(flat["bayes_kl"] - (np.log(len(labels)) - entropy)) < 1e-9
    assert task.reference is not None and ginc(data={"name": "ginc"}, n_queries=5, pool="mixed", pool_size=50).reference is None
