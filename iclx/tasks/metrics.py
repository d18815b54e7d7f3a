"""Accuracy and macro-F1 of predictions against gold labels or answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def accuracy(predictions: Sequence[Any], gold: Sequence[Any]) -> float:
    if not gold:
        return float("nan")
    return sum(p == g for p, g in zip(predictions, gold)) / len(gold)


def macro_f1(predictions: Sequence[Any], gold: Sequence[Any]) -> float:
    """Mean F1 over the classes that occur as gold or as prediction (an absent class would add a
    meaningless 0 or 1); a class never predicted correctly counts 0."""
    classes = sorted(set(gold) | set(predictions), key=str)
    if not classes:
        return float("nan")
    total = 0.0
    for c in classes:
        tp = sum(p == c and g == c for p, g in zip(predictions, gold))
        fp = sum(p == c and g != c for p, g in zip(predictions, gold))
        fn = sum(p != c and g == c for p, g in zip(predictions, gold))
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / len(classes)


def exact_match(prediction: str, answer: str) -> bool:
    """Open-ended answers: equal after trimming whitespace and case."""
    return " ".join(prediction.split()).lower() == " ".join(answer.split()).lower()
