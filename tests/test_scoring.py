"""Label scoring: the batched scorer equals the naive one; normalization, calibration, warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclx.registry import build
from iclx.tasks.base import Task
from iclx.tasks.example import Example
from iclx.tasks.icl import DemonstrationLikelihood, ICLEvaluator, ScoringSettings
from iclx.tasks.scoring import (
    cached_model,
    calibrate,
    continuation_logprobs,
    generate_greedy,
    normalize,
    score_labels,
    score_labels_naive,
)
from iclx.tasks.template import Template

VOCAB = 40


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return build("model", {"name": "gpt", "n_layer": 2, "n_head": 2, "d_model": 32, "max_seq_len": 64}, vocab_size=VOCAB).eval()


@pytest.fixture(scope="module")
def hf_gpt2():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
    return build("model", {"name": "hf", "config": config}, vocab_size=VOCAB).eval()


def random_prompts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, size=rng.integers(3, 30)).tolist() for _ in range(n)]


@pytest.mark.parametrize("labels", [[[3], [7], [11], [5]], [[3], [7, 8], [11, 12, 13]]], ids=["single-token", "multi-token"])
@pytest.mark.parametrize("model_name", ["gpt", "hf_gpt2"])
def test_batched_scorer_equals_the_naive_one(model_name, labels, request):
    model = request.getfixturevalue(model_name)
    prompts = random_prompts(13)  # 13 prompts of different lengths: padded batches of 4 and a rest
    batched = score_labels(model, prompts, labels, batch_size=4)
    naive = score_labels_naive(model, prompts, labels)
    assert batched.shape == (13, len(labels))
    np.testing.assert_allclose(batched, naive, atol=2e-5)
    assert (batched.argmax(1) == naive.argmax(1)).all()
    assert (batched < 0).all()


def test_only_hugging_face_models_use_the_kv_cache(gpt, hf_gpt2):
    assert cached_model(gpt) is None
    inner, argument = cached_model(hf_gpt2)
    assert inner is hf_gpt2.model and argument in ("cache", "past_key_values")


def test_continuations_are_log_probabilities_of_their_tokens(gpt):
    context, continuation = [1, 2, 3], [4, 5]
    with torch.no_grad():
        logprobs = torch.log_softmax(gpt(torch.tensor([[1, 2, 3, 4]])), -1)[0]
    expected = float(logprobs[2, 4] + logprobs[3, 5])
    got = continuation_logprobs(gpt, [context, [9, 9, 9, 9, 9]], [continuation, [1]], batch_size=2)
    assert got[0] == pytest.approx(expected, abs=1e-5)


def test_length_normalization_divides_by_label_tokens():
    totals = np.array([[-2.0, -3.0]])
    np.testing.assert_allclose(normalize(totals, [1, 3], "sum"), totals)
    np.testing.assert_allclose(normalize(totals, [1, 3], "mean"), [[-2.0, -1.0]])


def test_contextual_calibration_removes_the_prompt_bias():
    # the prompt favours label 0 by a factor 3 whatever the input: calibration cancels it
    bias = np.log([0.75, 0.25])
    scores = np.stack([bias + np.log([0.4, 0.6]), bias + np.log([0.6, 0.4])])
    content_free = np.stack([bias[None, :], bias[None, :]])  # (queries, 1 content-free input, labels)
    calibrated = calibrate(scores, content_free)
    np.testing.assert_allclose(np.exp(calibrated), [[0.4, 0.6], [0.6, 0.4]], atol=1e-9)
    assert scores.argmax(1).tolist() == [0, 0] and calibrated.argmax(1).tolist() == [1, 0]


def test_greedy_generation_follows_argmax_and_stops(gpt):
    prompt = [1, 2, 3]
    out = generate_greedy(gpt, prompt, max_new_tokens=5)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(5):
            ids.append(int(gpt(torch.tensor([ids]))[0, -1].argmax()))
    assert out == ids[3:]
    assert generate_greedy(gpt, prompt, max_new_tokens=5, stop_ids=[out[0]]) == []


class CharTokenizer:
    """One id per character (ids 2..): labels of different lengths are different token counts."""

    eos_id = 1

    def encode(self, text):
        return [2 + (ord(c) % (VOCAB - 2)) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def tiny_task(labels=("no", "yes!")):
    pool = [Example(id=f"p{i}", input=f"in{i}", output=labels[i % 2], label=labels[i % 2]) for i in range(6)]
    queries = [Example(id=f"q{i}", input=f"q{i}", output=labels[i % 2], label=labels[i % 2]) for i in range(4)]
    return Task("tiny", pool, queries, list(labels), Template(separator=";"))


def test_verbalizers_of_different_token_lengths_warn_under_sum(gpt):
    with pytest.warns(UserWarning, match="verbalizers tokenize to different lengths .*evaluate.normalization=mean"):
        ICLEvaluator(gpt, CharTokenizer(), tiny_task(), ScoringSettings(), max_tokens=64)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ICLEvaluator(gpt, CharTokenizer(), tiny_task(), ScoringSettings(normalization="mean"), max_tokens=64)
        ICLEvaluator(gpt, CharTokenizer(), tiny_task(("ab", "cd")), ScoringSettings(), max_tokens=64)
    # 'A' (65) and 'g' (103 = 65 + 38) are one id for this tokenizer
    with pytest.warns(UserWarning, match=r"labels 'A' and 'g' tokenize identically"):
        ICLEvaluator(gpt, CharTokenizer(), tiny_task(("A", "g")), ScoringSettings(), max_tokens=64)


def test_calibration_against_an_unknown_content_free_input_warns(gpt):
    """The README's old example: GINC's word tokenizer has no 'N/A', so it is <unk> (issue 11)."""
    import warnings

    word = build("tokenizer", {"name": "word"})
    word.train(["in0 in1 in2 no yes! q0 q1 ; [MASK]"])
    task = tiny_task()
    with pytest.warns(UserWarning) as caught:
        ICLEvaluator(gpt, word, task, ScoringSettings(calibration=True, content_free=["N/A", "[MASK] N/A"]), max_tokens=64)
    assert [str(w.message) for w in caught] == [
        f"evaluate.content_free: {text!r} is {share} the word tokenizer's unknown token (id {word.unk_id}): calibration "
        "against it measures an unseen token, not the label bias; choose a content-free input in the vocabulary "
        "(evaluate.content_free=[...]) or evaluate.calibration=false"
        for text, share in (("N/A", "entirely"), ("[MASK] N/A", "in 1 of its 2 tokens"))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in the vocabulary; a byte-level tokenizer has no unknown token
        ICLEvaluator(gpt, word, task, ScoringSettings(calibration=True, content_free=["[MASK]"]), max_tokens=64)
        ICLEvaluator(gpt, build("tokenizer", {"name": "byte"}), tiny_task(("ab", "cd")), ScoringSettings(calibration=True),
                     max_tokens=64)


def test_evaluator_scores_equal_naive_scores_of_its_prompts(gpt):
    evaluator = ICLEvaluator(gpt, CharTokenizer(), tiny_task(("ab", "cd")), ScoringSettings(batch_size=3), max_tokens=64)
    ranked = [[0, 1, 2], [1, 2, 3], [3, 4, 5], [5, 0, 1]]
    results = evaluator.evaluate(ranked, k=2)
    task = evaluator.task
    for query, result, r in zip(task.queries, results, ranked):
        prompt = evaluator.builder.build(query, task.pool, r[:2], reserve=2)
        naive = score_labels_naive(gpt, [prompt.ids], evaluator.label_ids)[0]
        assert [result.scores[label] for label in task.labels] == pytest.approx(naive.tolist(), abs=2e-5)
        assert result.prediction == task.labels[int(np.argmax(naive))]
        assert result.demonstrations == [task.pool[i].id for i in r[:2][::-1]]  # most similar last


def test_epr_scorer_is_the_log_likelihood_of_the_output_after_one_demonstration(gpt):
    tok = CharTokenizer()
    evaluator = ICLEvaluator(gpt, tok, tiny_task(("ab", "cd")), ScoringSettings(), max_tokens=64)
    scorer = DemonstrationLikelihood(evaluator)
    query, candidates = evaluator.task.queries[1], evaluator.task.pool[:3]
    scores = scorer(query, candidates)
    template = evaluator.task.template
    for e, score in zip(candidates, scores):
        context = [tok.eos_id] + tok.encode(template.demonstration(e) + template.query(query))
        expected = score_labels_naive(gpt, [context], [tok.encode(template.continuation(query.output))])[0, 0]
        assert score == pytest.approx(expected, abs=2e-5)


class SuccessorLM(torch.nn.Module):
    """A causal LM that deterministically continues with ``successor[last token]``."""

    def __init__(self, successor):
        super().__init__()
        self.successor = torch.tensor(successor)
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.max_seq_len = 32

    def forward(self, ids):
        return torch.nn.functional.one_hot(self.successor[ids], len(self.successor)).float() * 10


class WordTokenizer:
    eos_id = 0

    def __init__(self, words):
        self.words = words

    def encode(self, text):
        return [self.words.index(w) for w in text.split()]

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)


def test_open_ended_answers_are_greedy_and_cut_at_the_separator():
    words = ["<eos>", ";", "a", "b", "c", "d"]
    # a -> b -> c -> ; -> a ...; d -> <eos>
    successor = [1, 2, 3, 4, 1, 0]
    model, tok = SuccessorLM(successor), WordTokenizer(words)
    queries = [Example(id="q0", input="a", output="B C"), Example(id="q1", input="b", output="c d"),
               Example(id="q2", input="c", output="")]
    task = Task("qa", [Example(id="p", input="d", output="d")], queries, None, Template(separator=" ; "))
    evaluator = ICLEvaluator(model, tok, task, ScoringSettings(max_new_tokens=6), max_tokens=32)
    results = evaluator.evaluate([[0], [0], [0]], k=0)
    # "a" continues "b c ; a b c": the answer is what precedes the next separator
    assert [(r.prediction, r.gold, r.correct) for r in results] == [("B C", "B C", True), ("c", "c d", False), ("", "", True)]
    assert all(r.scores == {} for r in results)
    with_demo = evaluator.evaluate([[0], [0], [0]], k=1)  # "d d ; a": the demonstration ends in ";"
    assert [r.demonstrations for r in with_demo] == [["p"], ["p"], ["p"]]
    assert with_demo[0].correct
