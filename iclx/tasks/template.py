"""How demonstrations and a query become one prompt (token ids) for a causal LM.

(How a dataset's records become examples, their ``input`` and ``output``, is ``records.py``:
templates over a record's fields are ``task.doc_to_text``; this template knows only the
example's ``{input}`` and ``{output}``.)

A demonstration renders as ``input_format`` + ``output_format`` with the example filled in,
followed by ``separator``; the query renders the same way up to where ``{output}`` would go, and
the label (or answer) is the continuation the model scores or generates. Whitespace that ends the
query part moves to the start of the continuation (``"Sentiment:"`` + ``" positive"``), the form
BPE tokenizers learned words in.

Demonstrations arrive ranked, most relevant first (the selector's order), and are taken in that
order while they fit the model's context; one that does not fit is left out and the next, less
relevant ones are still tried, so one long demonstration does not empty a prompt (left-out ones
are counted in ``Prompt.dropped``: the evaluator warns about them, and stops when not even one
fits). The kept ones are then laid out by ``order``: ``most_similar_last`` (default: the best demonstration sits right before the query),
``most_similar_first``, or ``random`` (seeded per query).
"""

from __future__ import annotations

import string
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from iclx.errors import ConfigError
from iclx.tasks.example import Example

Order = Literal["most_similar_last", "most_similar_first", "random"]


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass
class Template:
    input_format: str = "{input}"
    output_format: str = " {output}"
    separator: str = "\n"
    order: Order = "most_similar_last"
    instruction: str = ""  # text before the first demonstration

    def __post_init__(self) -> None:
        check_placeholders(self.input_format, "input_format", {"input"})
        check_placeholders(self.output_format, "output_format", {"output"})
        if "{input}" not in self.input_format:
            raise ConfigError(f"task.template.input_format must contain {{input}}, got {self.input_format!r}")
        if self.output_format.count("{output}") != 1:
            raise ConfigError(f"task.template.output_format must contain {{output}} once, got {self.output_format!r}")
        head = self.output_format.split("{output}")[0]
        self._query_tail = head.rstrip()
        self._continuation_head = head[len(head.rstrip()) :]

    def demonstration(self, example: Example) -> str:
        return self.input_format.format(input=example.input) + self.output_format.format(output=example.output) + self.separator

    def query(self, example: Example) -> str:
        """The query's part of the prompt, ending where the model's answer begins."""
        return self.input_format.format(input=example.input) + self._query_tail

    def continuation(self, output: str) -> str:
        """What follows the query for a given output (a label's verbalizer, an answer)."""
        return self._continuation_head + output


def check_placeholders(text: str, name: str, allowed: set[str]) -> None:
    """``text`` names no placeholder but ``allowed`` (and is a valid format string): a record's
    fields belong in ``task.doc_to_text``, which the template sees as ``{input}``."""
    key = f"task.template.{name}"
    try:
        fields = [f for _, f, spec, conversion in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise ConfigError(f"{key}: {e} in {text!r} (write a literal brace as {{{{ or }}}})") from None
    for f in fields:
        if f not in allowed:
            shown = ", ".join(f"{{{a}}}" for a in sorted(allowed))
            raise ConfigError(
                f"{key}: unknown placeholder {{{f}}} in {text!r}; it knows {shown}. A record's fields go in "
                f"task.doc_to_text, e.g. task.doc_to_text='{{{{{f or 'Title'}}}}}' (which the template shows as {{input}})"
            )


@dataclass
class Prompt:
    ids: list[int]  # the context: demonstrations and query, ready for the model
    demonstrations: list[int]  # pool indices in prompt order
    dropped: int = 0  # demonstrations left out to fit the context
    query_truncated: bool = False  # the query alone did not fit: its start was cut


@dataclass
class PromptBuilder:
    """Tokenizes each pool example's demonstration once and assembles prompts that fit."""

    template: Template
    tokenizer: Tokenizer
    max_tokens: int  # the model's context length
    seed: int = 0
    prefix_ids: list[int] = field(default_factory=list)  # e.g. [EOS]: a prompt starts like a document
    _demo_ids: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.template.instruction:
            self.prefix_ids = self.prefix_ids + self.tokenizer.encode(self.template.instruction)

    def demonstration_ids(self, example: Example) -> list[int]:
        ids = self._demo_ids.get(example.id)
        if ids is None:
            ids = self._demo_ids[example.id] = self.tokenizer.encode(self.template.demonstration(example))
        return ids

    def build(self, query: Example, pool: Sequence[Example], ranked: Sequence[int], reserve: int = 0) -> Prompt:
        """The prompt for ``query`` with the demonstrations ``ranked`` (pool indices, best first),
        leaving ``reserve`` tokens of the context free for the continuation."""
        budget = self.max_tokens - reserve
        query_ids = self.tokenizer.encode(self.template.query(query))
        used = len(self.prefix_ids) + len(query_ids)
        kept: list[int] = []
        for index in ranked:
            cost = len(self.demonstration_ids(pool[index]))
            if used + cost > budget:
                continue  # left out; a shorter, less relevant one may still fit
            kept.append(int(index))
            used += cost
        layout = self.arrange(query, kept)
        ids = list(self.prefix_ids)
        for index in layout:
            ids += self.demonstration_ids(pool[index])
        ids += query_ids
        truncated = len(ids) > budget
        if truncated:  # the query alone is too long: keep its end, next to the answer
            ids = ids[len(ids) - budget :]
        return Prompt(ids=ids, demonstrations=layout, dropped=len(ranked) - len(kept), query_truncated=truncated)

    def arrange(self, query: Example, ranked: list[int]) -> list[int]:
        order = self.template.order
        if order == "most_similar_last":
            return ranked[::-1]
        if order == "most_similar_first":
            return list(ranked)
        rng = np.random.default_rng([self.seed, zlib.crc32(query.id.encode())])
        return [ranked[i] for i in rng.permutation(len(ranked))]
