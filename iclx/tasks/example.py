"""One ICL example: an input, its output (verbalized label or answer), and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    id: str
    input: str  # x: the text the model conditions on
    output: str  # y: the verbalized label ("positive") or the answer text
    label: Any = None  # the class label for classification tasks (None for open-ended ones)
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"concept": 2} for GINC prompts
    # multiple choice with a label set per query (doc_to_choice as a template): the texts this
    # example is scored over, its ``output`` one of them; None: the task's ``labels``
    choices: list[str] | None = None
