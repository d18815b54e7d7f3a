"""In-context learning of one task: choose demonstrations, build prompts, score, predict.

    evaluator = ICLEvaluator(model, tokenizer, task, settings, max_tokens=...)
    ranked = choose_demonstrations(selector_cfg, task, max(shots), context)   # best first
    results = evaluator.evaluate(ranked, k)                                    # one QueryResult per query

A selector ranks ``max(shots)`` demonstrations per query once; the prompt with k shots uses the
first k of them (the selector's contract: its first j choices are its choice for j shots), so the
curve over k compares nested demonstration sets rather than fresh draws.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from iclx.errors import ConfigError
from iclx.tasks.base import Task
from iclx.tasks.example import Example
from iclx.tasks.metrics import accuracy, exact_match, macro_f1
from iclx.tasks.scoring import Normalization, calibrate, continuation_logprobs, generate_greedy, normalize, score_labels
from iclx.tasks.template import Prompt, PromptBuilder

log = logging.getLogger("iclx")


@dataclass
class ScoringSettings:
    normalization: Normalization = "sum"  # label log-likelihood summed over its tokens, or "mean"
    calibration: bool = False  # contextual calibration (Zhao et al. 2021)
    content_free: list[str] = field(default_factory=lambda: ["N/A"])
    batch_size: int = 16
    max_new_tokens: int = 16  # open-ended tasks: greedy answer length
    prompt_start: Literal["eos", "none"] = "eos"  # begin each prompt the way a document begins
    save_prompts: bool = True  # results carry each prompt's text (predictions.jsonl)
    save_content_free: bool = True  # score the content-free inputs without calibration too (rescore later)


@dataclass
class QueryResult:
    query: Example
    demonstrations: list[str]  # pool ids, in prompt order
    scores: dict[str, float]  # label -> score (empty for open-ended tasks)
    prediction: str
    gold: str
    dropped: int  # demonstrations left out to fit the context
    pool_indices: list[int] = field(default_factory=list)  # the demonstrations in the prompt, prompt order
    prompt: str | None = None  # the text the model read (evaluate.save_prompts)
    logprob_sums: list[float] | None = None  # per label: log p(label tokens | prompt), summed
    content_free_sums: list[list[float]] | None = None  # per content-free input, per label: the same sums

    @property
    def correct(self) -> bool:
        return self.prediction == self.gold


def drop_query_twins(task: Task) -> int:
    """Leave out of the pool every example whose input text (whitespace and case aside) equals a
    query's but is not that query itself: a duplicate record would show the query's own label.
    Returns how many were left out."""
    if not task.exclude_query_twins:
        return 0
    norm = lambda text: " ".join(str(text).split()).lower()  # noqa: E731
    queries_by_text: dict[str, set[str]] = defaultdict(set)
    for q in task.queries:
        queries_by_text[norm(q.input)].add(q.id)
    # the query itself in the pool (one file for both) stays: selectors never choose it for itself
    kept = [e for e in task.pool if not (queries_by_text.get(norm(e.input), set()) - {e.id})]
    dropped = len(task.pool) - len(kept)
    if dropped:
        log.info("task %s: %d pool examples have the same text as a query and are left out of the pool", task.name, dropped)
        task.pool = kept
    return dropped


def choose_demonstrations(selector_cfg: Mapping[str, Any], task: Task, k: int, context: Any, *, key: str = "selector") -> list[list[int]]:
    """Per query, ``k`` pool indices ranked best first by the selector ``selector_cfg``.

    A task with a ``group_key`` gets one selector per group, fitted on that group's pool; those
    pools are small and many, so their fits are not cached (the context has no run).
    """
    import dataclasses

    from iclx.registry import build

    if k == 0:
        return [[] for _ in task.queries]
    if task.group_key is None:
        groups = {None: (list(range(len(task.pool))), list(range(len(task.queries))))}
    else:
        groups = defaultdict(lambda: ([], []))
        for i, example in enumerate(task.pool):
            groups[example.meta[task.group_key]][0].append(i)
        for q, query in enumerate(task.queries):
            groups[query.meta[task.group_key]][1].append(q)
    ranked: list[list[int]] = [[] for _ in task.queries]
    for group, (pool_ids, query_ids) in groups.items():
        if not query_ids:
            continue
        check_pool_size(task, pool_ids, [task.queries[q] for q in query_ids], k, group)
        selector = build("selector", selector_cfg, key=key)
        # one selector per group: a per-group fit gets no run (nothing run-wide to train or log)
        group_context = context if group is None or context is None else dataclasses.replace(context, run=None)
        selector.fit([task.pool[i] for i in pool_ids], group_context)
        chosen = selector.select([task.queries[q] for q in query_ids], k)
        for q, ids in zip(query_ids, chosen):
            ranked[q] = [pool_ids[i] for i in ids]
    return ranked


def check_pool_size(task: Task, pool_ids: list[int], queries: list[Example], k: int, group: Any) -> None:
    ids = {task.pool[i].id for i in pool_ids}
    available = len(pool_ids) - any(q.id in ids for q in queries)
    if k > available:
        where = f" of group {task.group_key}={group}" if group is not None else ""
        raise ConfigError(
            f"evaluate.shots: k={k} demonstrations per query, but the pool{where} offers only {available}"
        )


class ICLEvaluator:
    def __init__(self, model: Any, tokenizer: Any, task: Task, settings: ScoringSettings, *, max_tokens: int, seed: int = 0):
        self.model, self.tokenizer, self.task, self.settings = model, tokenizer, task, settings
        eos = getattr(tokenizer, "eos_id", None)
        prefix = [eos] if settings.prompt_start == "eos" and eos is not None else []
        self.builder = PromptBuilder(task.template, tokenizer, max_tokens=max_tokens, seed=seed, prefix_ids=prefix)
        self.max_tokens = max_tokens
        if task.labels is not None:
            self.label_ids = [tokenizer.encode(task.template.continuation(label)) for label in task.labels]
            self._check_labels()
            self.reserve = max(len(ids) for ids in self.label_ids)
        else:
            self.reserve = settings.max_new_tokens
        if settings.calibration:
            self._check_content_free()

    def _check_labels(self) -> None:
        seen: dict[tuple[int, ...], str] = {}
        for label, ids in zip(self.task.labels or [], self.label_ids):
            if not ids:
                raise ConfigError(f"task: label {label!r} tokenizes to no tokens")
            other = seen.setdefault(tuple(ids), label)
            if other != label:  # e.g. both unknown to the tokenizer: they always tie
                self._warn(f"labels {other!r} and {label!r} tokenize identically ({ids}): the model cannot tell them apart")
        lengths = {label: len(ids) for label, ids in zip(self.task.labels or [], self.label_ids)}
        if len(set(lengths.values())) > 1 and self.settings.normalization == "sum":
            shown = ", ".join(f"{label!r}: {n}" for label, n in list(lengths.items())[:6])
            self._warn(
                f"verbalizers tokenize to different lengths ({shown}); summed log-likelihoods favour "
                "the shorter ones: consider evaluate.normalization=mean"
            )

    def _check_content_free(self) -> None:
        """Calibration divides by the label probabilities a content-free input gets; an input the
        tokenizer cannot represent (its unknown token, which pre-training rarely shows the model)
        measures the model's reaction to a strange token instead of its label bias."""
        unk = getattr(self.tokenizer, "unk_id", None)
        if unk is None:
            return
        tokenizer = getattr(self.tokenizer, "name", type(self.tokenizer).__name__)
        for text in self.settings.content_free:
            ids = self.tokenizer.encode(text)
            unknown = sum(i == unk for i in ids)
            if unknown:
                share = "entirely" if unknown == len(ids) else f"in {unknown} of its {len(ids)} tokens"
                self._warn(
                    f"evaluate.content_free: {text!r} is {share} the {tokenizer} tokenizer's unknown token (id {unk}): "
                    "calibration against it measures an unseen token, not the label bias; choose a content-free "
                    "input in the vocabulary (evaluate.content_free=[...]) or evaluate.calibration=false"
                )

    @staticmethod
    def _warn(message: str) -> None:
        log.warning(message)  # the run's log
        warnings.warn(message, stacklevel=4)  # _warn <- _check_labels <- __init__ <- the caller

    def evaluate(self, ranked: Sequence[Sequence[int]], k: int) -> list[QueryResult]:
        """Prompts with the first ``k`` of each query's ranked demonstrations, scored."""
        queries = self.task.queries
        prompts = [self.builder.build(q, self.task.pool, list(r)[:k], reserve=self.reserve) for q, r in zip(queries, ranked)]
        self.check_fit(prompts, ranked, k)
        results = []
        if self.task.labels is None:
            for query, prompt in zip(queries, prompts):
                answer = self.answer(prompt.ids)
                # exact match forgives case and spacing: a matching answer is recorded as the gold text
                prediction = query.output if exact_match(answer, query.output) else answer
                results.append(self._result(query, prompt, {}, prediction, query.output))
            return results
        sums = score_labels(self.model, [p.ids for p in prompts], self.label_ids, batch_size=self.settings.batch_size)
        wants_content_free = self.settings.calibration or self.settings.save_content_free
        content_free = self.content_free_sums(ranked, k) if wants_content_free else None
        scores = label_scores(sums, self.label_lengths, content_free, self.settings.normalization, self.settings.calibration)
        for i, (query, prompt, row) in enumerate(zip(queries, prompts, scores)):
            labels = self.task.labels
            prediction = labels[int(np.argmax(row))]
            result = self._result(query, prompt, dict(zip(labels, row.tolist())), prediction, str(query.label))
            result.logprob_sums = sums[i].tolist()
            result.content_free_sums = content_free[i].tolist() if content_free is not None else None
            results.append(result)
        return results

    def check_fit(self, prompts: Sequence[Prompt], ranked: Sequence[Sequence[int]], k: int) -> None:
        """The truncation rule: a prompt that cannot hold even one of its k demonstrations would
        measure zero-shot under the k-shot label, so that is an error; a prompt that holds some is
        capped (the builder drops the least relevant), and the stage counts and reports it."""
        if k == 0:
            return
        empty = [i for i, prompt in enumerate(prompts) if not prompt.demonstrations]
        if not empty:
            return
        query = self.task.queries[empty[0]]
        query_tokens = len(self.builder.prefix_ids) + len(self.tokenizer.encode(self.task.template.query(query)))
        best = len(self.builder.demonstration_ids(self.task.pool[ranked[empty[0]][0]]))
        raise ConfigError(
            f"evaluate.shots: k={k}: not even one demonstration fits in the {self.max_tokens}-token context "
            f"for {len(empty)} of {len(prompts)} prompts (query {query.id}: {query_tokens} tokens, its best "
            f"demonstration {best}, the answer {self.reserve}); lower k, shorten the template or use a longer context"
        )

    @property
    def label_lengths(self) -> list[int]:
        return [len(ids) for ids in self.label_ids]

    def score(self, prompts: list[list[int]]) -> np.ndarray:
        totals = score_labels(self.model, prompts, self.label_ids, batch_size=self.settings.batch_size)
        return normalize(totals, self.label_lengths, self.settings.normalization)

    def content_free_sums(self, ranked: Sequence[Sequence[int]], k: int) -> np.ndarray:
        """``(queries, inputs, labels)`` summed label log-likelihoods with each content-free input in
        place of the query's input, with the query's own demonstrations in the query's own order."""
        per_input = []
        for text in self.settings.content_free:
            stand_ins = [Example(id=q.id, input=text, output="") for q in self.task.queries]
            prompts = [self.builder.build(s, self.task.pool, list(r)[:k], reserve=self.reserve) for s, r in zip(stand_ins, ranked)]
            per_input.append(score_labels(self.model, [p.ids for p in prompts], self.label_ids, batch_size=self.settings.batch_size))
        return np.stack(per_input, axis=1)

    def answer(self, prompt: list[int]) -> str:
        """Greedy answer text, cut where the template's separator (the next demonstration) begins."""
        stop = [i for i in (getattr(self.tokenizer, "eos_id", None),) if i is not None]
        ids = generate_greedy(self.model, prompt, self.settings.max_new_tokens, stop_ids=stop, max_len=self.max_tokens)
        text = self.tokenizer.decode(ids)
        separator = self.task.template.separator.strip() or "\n"
        return text.split(separator)[0].strip()

    def _result(self, query: Example, prompt: Any, scores: dict[str, float], prediction: str, gold: str) -> QueryResult:
        demos = [self.task.pool[i].id for i in prompt.demonstrations]
        text = self.tokenizer.decode(prompt.ids) if self.settings.save_prompts else None
        return QueryResult(query, demos, scores, prediction, gold, prompt.dropped, list(prompt.demonstrations), text)


def label_scores(
    sums: np.ndarray,
    label_lengths: Sequence[int],
    content_free: np.ndarray | None,
    normalization: Normalization,
    calibration: bool,
) -> np.ndarray:
    """The scores a prediction takes the argmax of, from the summed label log-likelihoods
    ``(queries, labels)``: normalized (``sum`` or per-token ``mean``), then calibrated against the
    content-free sums ``(queries, inputs, labels)``. The evaluator and ``iclx rescore`` both use it,
    so a rescored table equals the run's."""
    scores = normalize(np.asarray(sums, dtype=np.float64), label_lengths, normalization)
    if calibration:
        if content_free is None:
            raise ConfigError("calibration needs the content-free scores (evaluate.content_free), and there are none")
        reference = normalize(np.asarray(content_free, dtype=np.float64), label_lengths, normalization)
        scores = calibrate(scores, reference)
    return scores


class DemonstrationLikelihood:
    """EPR's scorer (Rubin et al. 2022): S(e) = log p(y | e, x), the log-likelihood of the query's
    output after a one-demonstration prompt (e, then x), for each candidate demonstration e.

    Same template, tokenizer and model as the evaluation; the candidates of one query are scored
    in batches (one forward over ``prompt + y`` per candidate: each has its own prompt).
    """

    def __init__(self, evaluator: ICLEvaluator):
        self.evaluator = evaluator

    def __call__(self, query: Example, candidates: Sequence[Example]) -> np.ndarray:
        ev = self.evaluator
        builder, template = ev.builder, ev.task.template
        target = ev.tokenizer.encode(template.continuation(query.output))
        query_ids = ev.tokenizer.encode(template.query(query))
        budget = ev.max_tokens - len(target)
        contexts = [(builder.prefix_ids + builder.demonstration_ids(e) + query_ids)[-budget:] for e in candidates]
        return continuation_logprobs(ev.model, contexts, [target] * len(contexts), batch_size=ev.settings.batch_size)


def line_name(variant: str, selector: str, n_variants: int, n_selectors: int) -> str:
    """A results line: ``<variant>/<selector>``, each part only when a run has several; else ``all``."""
    return "/".join(([variant] if n_variants > 1 else []) + ([selector] if n_selectors > 1 else [])) or "all"


def summarize(results: Sequence[QueryResult]) -> dict[str, float]:
    """accuracy, macro_f1, the mean number of demonstrations that reached the prompt
    (``demos_used``) and the share of queries whose prompt had to drop some (``truncated``)."""
    predictions, gold = [r.prediction for r in results], [r.gold for r in results]
    return {
        "accuracy": accuracy(predictions, gold),
        "macro_f1": macro_f1(predictions, gold),
        "demos_used": float(np.mean([len(r.pool_indices) for r in results])) if results else float("nan"),
        "truncated": sum(r.dropped > 0 for r in results) / max(1, len(results)),
    }


# a classifier whose predictions are this much one label is not reading its prompts
ONE_LABEL_SHARE = 0.95


def degradation_warnings(results: Sequence[QueryResult], k: int, max_tokens: int) -> list[str]:
    """What makes the k-shot numbers mean less than they say, with the counts: prompts capped to
    fit the context (worse when most are), and predictions that are (nearly) all one label."""
    messages = []
    cut = sum(r.dropped > 0 for r in results)
    if cut:
        used = np.mean([len(r.pool_indices) for r in results])
        message = (
            f"k={k}: {cut} of {len(results)} prompts held fewer demonstrations than asked "
            f"(mean {used:.4g} of {k} fit in the {max_tokens}-token context)"
        )
        if cut > len(results) / 2:
            message += f"; more than half were cut, so the k={k} results measure {used:.4g} demonstrations, not {k}"
        messages.append(message)
    labelled = [r for r in results if r.scores]  # classification only: open-ended answers vary freely
    if len(labelled) > 1 and len({label for r in labelled for label in r.scores}) > 1:
        label, count = Counter(r.prediction for r in labelled).most_common(1)[0]
        gold = sum(r.gold == label for r in labelled) / len(labelled)
        if count / len(labelled) > ONE_LABEL_SHARE and gold <= ONE_LABEL_SHARE:  # not a task that is one label
            messages.append(
                f"k={k}: {count} of {len(labelled)} predictions ({count / len(labelled):.1%}) are {label!r}, "
                f"{gold:.1%} of the gold labels: the model predicts one label whatever the query"
            )
    return messages
