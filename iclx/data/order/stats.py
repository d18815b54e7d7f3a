"""What an ordering puts into each training window, measured.

Packing concatenates the documents of an ordering (each with its EOS) into one token stream;
training window i is tokens ``[i*S, i*S + S]`` with ``S = window_tokens - 1``: the model reads the
first S and predicts the last S, so the final token of a window is only a target (and the first
input of the next). What a window holds is therefore what the model reads: ``[i*S, (i+1)*S)``. A
document belongs to every window that reads at least one of its tokens; two documents in a row
share a window exactly when the boundary between them does not fall on a multiple of S.
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

    - ``windows``, ``docs_per_window``: how many whole windows, and the mean number of documents
      in one (a trailing partial window is left out, as training leaves it out);
    - ``adjacent_similarity``: mean cosine similarity of consecutive documents inside one window
      (needs L2-normalized ``embeddings``, one row per document of the corpus);
    - ``window_concept_share``: among windows holding two or more documents, the fraction whose
      documents all carry the same concept; ``window_concept_purity``: the mean fraction of a
      window's documents that carry its most common concept (both need ``concepts``, one per
      document of the corpus, None where a document has none).
    """
    stride = max(1, window_tokens - 1)  # tokens a window reads
    sequence = np.asarray(sequence, dtype=np.int64)
    lengths = np.asarray(token_counts, dtype=np.int64)[sequence]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    stats: dict[str, float] = {}
    if len(sequence) == 0:
        return stats
    # as in training, only whole windows count (a stream shorter than one still gets one)
    n_windows = max(1, (int(ends[-1]) - 1) // stride)
    first_window = starts // stride
    last_window = np.minimum(np.maximum(ends - 1, starts) // stride, n_windows - 1)

    # one (window, position in sequence) pair per document per window it touches
    spans = np.maximum(last_window - first_window + 1, 0)
    member_pos = np.repeat(np.arange(len(sequence)), spans)
    member_window = np.repeat(first_window, spans) + _ranks_within_runs(spans)
    docs_in_window = np.bincount(member_window, minlength=n_windows)
    stats["windows"] = float(n_windows)
    stats["docs_per_window"] = float(docs_in_window.mean())

    if embeddings is not None and len(sequence) > 1:
        boundaries = ends[:-1]
        same_window = (boundaries % stride != 0) & (boundaries < n_windows * stride)
        left, right = sequence[:-1][same_window], sequence[1:][same_window]
        if len(left):
            similarity = np.einsum("ij,ij->i", embeddings[left], embeddings[right])
            stats["adjacent_similarity"] = float(similarity.mean())

    if concepts is not None:
        stats.update(_concept_statistics(sequence, member_pos, member_window, n_windows, concepts))
    return stats


def _concept_statistics(
    sequence: np.ndarray, member_pos: np.ndarray, member_window: np.ndarray, n_windows: int, concepts: Sequence[Any]
) -> dict[str, float]:
    # concepts of any hashable kind become small integer codes
    codes = {c: i for i, c in enumerate(dict.fromkeys(c for c in concepts if c is not None))}
    if not codes:
        return {}
    code_of_doc = np.array([codes.get(c, -1) if c is not None else -1 for c in concepts], dtype=np.int64)
    member_code = code_of_doc[sequence[member_pos]]
    keep = member_code >= 0
    window, code = member_window[keep], member_code[keep]

    size = np.bincount(window, minlength=n_windows)
    # documents per (window, concept) pair present, then the largest count in each window
    pairs, pair_counts = np.unique(window * len(codes) + code, return_counts=True)
    majority = np.zeros(n_windows, dtype=np.int64)
    np.maximum.at(majority, pairs // len(codes), pair_counts)
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
