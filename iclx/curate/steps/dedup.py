"""``exact_dedup`` and ``minhash_dedup``: datatrove's deduplication stages, as curation steps.

``exact_dedup`` hashes each document's normalized text (lower case, runs of whitespace as one
space; ``normalize: false`` hashes the text as it is) and keeps one document per hash: datatrove's
signature -> find duplicates -> filter stages. ``minhash_dedup`` finds near duplicates: MinHash
signatures of word ``n_grams`` (``buckets`` x ``rows`` hashes), locality-sensitive bucketing (two
documents become candidates when all ``rows`` hashes of one bucket agree, so the Jaccard similarity
at which half the pairs are found is about ``(1/buckets)^(1/rows)``; 14 x 8: 0.72), clusters of
candidates (union-find), and one document kept per cluster. Both keep a deterministic copy: the
first in shard order (the input's order with one task). Dropped: ``duplicate`` / ``near_duplicate``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import PassStep, Stage, StepContext
from iclx.registry import register

Count = Annotated[int, Field(ge=1)]
SPACES = re.compile(r"\s+")


def normalized_text(doc: Any) -> str:
    """Lower case, whitespace runs as one space, no leading or trailing space."""
    return SPACES.sub(" ", doc.text).strip().lower()


def raw_text(doc: Any) -> str:
    return doc.text


def hash_config() -> Any:
    """64-bit SHA-1 hashes: datatrove's default xxhash is an extra dependency, and xxhash 4 refuses
    the str that datatrove 0.10's MinHash gives it."""
    from datatrove.utils.hashing import HashConfig

    return HashConfig(precision=64, hash_fc="sha1")


@register("curate_step", "exact_dedup")
class ExactDedup(PassStep):
    reason = "duplicate"

    def __init__(self, normalize: bool = True):
        self.normalize = normalize

    def _config(self) -> Any:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig

        return ExactDedupConfig(content_getter=normalized_text if self.normalize else raw_text, hash_config=hash_config())

    def collect(self, context: StepContext) -> list[Any]:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupSignature

        return [ExactDedupSignature(output_folder=str(context.folder / "signatures"), config=self._config())]

    def between(self, context: StepContext) -> list[Stage]:
        from datatrove.pipeline.dedup.exact_dedup import ExactFindDedups

        return [Stage("find", [ExactFindDedups(data_folder=str(context.folder / "signatures"),
                                               output_folder=str(context.folder / "duplicates"), config=self._config())], tasks=1)]

    def apply(self, context: StepContext) -> Any:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter

        return ExactDedupFilter(data_folder=str(context.folder / "duplicates"), config=self._config())


@register("curate_step", "minhash_dedup")
class MinhashDedup(PassStep):
    reason = "near_duplicate"

    def __init__(self, n_grams: Count = 5, buckets: Count = 14, rows: Count = 8, seed: int = 1, language: str = "en"):
        self.n_grams, self.buckets, self.rows, self.seed, self.language = n_grams, buckets, rows, seed, language

    @property
    def threshold(self) -> float:
        """The Jaccard similarity at which a pair is found with probability ~1/2 (the S-curve's middle)."""
        return (1 / self.buckets) ** (1 / self.rows)

    def _config(self) -> Any:
        from datatrove.pipeline.dedup.minhash import MinhashConfig

        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.buckets, hashes_per_bucket=self.rows, seed=self.seed,
                             hash_config=hash_config())

    def collect(self, context: StepContext) -> list[Any]:
        from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

        return [MinhashDedupSignature(output_folder=str(context.folder / "signatures"), config=self._config(),
                                      language=self.language)]

    def between(self, context: StepContext) -> list[Stage]:
        from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

        f = context.folder
        return [
            Stage("buckets", [MinhashDedupBuckets(input_folder=str(f / "signatures"), output_folder=str(f / "buckets"),
                                                  config=self._config())], tasks=self.buckets),
            Stage("clusters", [MinhashDedupCluster(input_folder=str(f / "buckets"), output_folder=str(f / "remove"),
                                                   config=self._config())], tasks=1),
        ]

    def apply(self, context: StepContext) -> Any:
        from datatrove.pipeline.dedup.minhash import MinhashDedupFilter

        return MinhashDedupFilter(input_folder=str(context.folder / "remove"))
