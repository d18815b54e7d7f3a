"""The unit every corpus source yields and every ordering permutes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    text: str
    id: str = ""
    # e.g. {"source": "wiki.txt", "concept": 3}; GINC documents carry their concept id here
    meta: dict[str, Any] = field(default_factory=dict)
