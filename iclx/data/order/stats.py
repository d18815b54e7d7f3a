"""What an ordering puts into each training window, measured.

Packing concatenates the documents of an ordering (each with its EOS) into one token stream and
cuts it into consecutive windows of ``window_tokens``. A document belongs to every window that
holds at least one of its tokens. Two documents in a row share a window exactly when the boundary
between them does not fall on a window boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def window_statistics(
    sequence: np.ndarray,
    token_counts: np.ndarray,
    window_tokens: int,
    *,
    embeddings: np.ndarray | None = None,
    concepts: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Statistics of the windows that packing ``sequence`` produces.

    - ``windows``, ``docs_per_window``: how many windows, and the mean number of documents in one;
    - ``adjacent_similarity``: mean cosine similarity of consecutive documents inside one window
      (needs L2-normalized ``embeddings``, one row per document of the corpus);
    - ``window_concept_share``: among windows holding two or more documents, the fraction whose
      documents all carry the same concept; ``window_concept_purity``: the mean fraction of a
      window's documents that carry its most common concept (both need ``concepts``, one per
      document of the corpus, None where a document has none).
    """
    sequence = np.asarray(sequence, dtype=np.int64)
    lengths = np.asarray(token_counts, dtype=np.int64)[sequence]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    first_window = starts // window_tokens
    last_window = np.maximum(ends - 1, starts) // window_tokens
    stats: dict[str, float] = {}
    if len(sequence) == 0:
        return stats

    # one (window, position in sequence) pair per document per window it touches
    spans = last_window - first_window + 1
    member_pos = np.repeat(np.arange(len(sequence)), spans)
    member_window = np.repeat(first_window, spans) + _ranks_within_runs(spans)
    docs_in_window = np.bincount(member_window)
    stats["windows"] = float(len(docs_in_window))
    stats["docs_per_window"] = float(docs_in_window.mean())

    if embeddings is not None and len(sequence) > 1:
        same_window = ends[:-1] % window_tokens != 0
        left, right = sequence[:-1][same_window], sequence[1:][same_window]
        if len(left):
            similarity = np.einsum("ij,ij->i", embeddings[left], embeddings[right])
            stats["adjacent_similarity"] = float(similarity.mean())

    if concepts is not None:
        stats.update(_concept_statistics(sequence, member_pos, member_window, concepts))
    return stats


def _concept_statistics(
    sequence: np.ndarray, member_pos: np.ndarray, member_window: np.ndarray, concepts: Sequence[Any]
) -> dict[str, float]:
    labelled = np.array([c is not None for c in concepts], dtype=bool)
    if not labelled.any():
        return {}
    # concepts of any hashable kind become small integer codes
    codes = {c: i for i, c in enumerate(dict.fromkeys(c for c in concepts if c is not None))}
    code_of_doc = np.array([codes.get(c, -1) if c is not None else -1 for c in concepts], dtype=np.int64)
    member_code = code_of_doc[sequence[member_pos]]
    keep = member_code >= 0
    window, code = member_window[keep], member_code[keep]

    n_windows = int(member_window.max()) + 1
    size = np.bincount(window, minlength=n_windows)
    pair_counts = np.bincount(window * len(codes) + code, minlength=n_windows * len(codes))
    majority = pair_counts.reshape(n_windows, len(codes)).max(axis=1)
    multi = size >= 2
    stats = {}
    if multi.any():
        stats["window_concept_share"] = float((majority[multi] == size[multi]).mean())
    occupied = size > 0
    stats["window_concept_purity"] = float((majority[occupied] / size[occupied]).mean())
    return stats


def _ranks_within_runs(run_lengths: np.ndarray) -> np.ndarray:
    """[0, 1, .., r0-1, 0, 1, .., r1-1, ...] for run lengths r0, r1, ..."""
    total = int(run_lengths.sum())
    run_starts = np.repeat(np.cumsum(run_lengths) - run_lengths, run_lengths)
    return np.arange(total) - run_starts
