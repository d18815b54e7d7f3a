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
