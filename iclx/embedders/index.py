"""Nearest neighbours by inner product over unit vectors (= cosine similarity), with FAISS.

``factory`` is a FAISS index factory string: ``Flat`` searches exactly; for large collections an
approximate index trades a little recall for speed, e.g. ``IVF1024,Flat`` (k-means cells, search
the ``nprobe`` nearest cells) or ``HNSW32`` (a proximity graph, ``nprobe`` used as its efSearch).
Selectors and document orderings share this.
"""

from __future__ import annotations

import numpy as np

from iclx.errors import ConfigError


class VectorIndex:
    def __init__(
        self, vectors: np.ndarray, factory: str = "Flat", nprobe: int = 16, seed: int = 0, key: str = "index"
    ):
        """``key`` names the config entry of ``factory`` in error messages."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, dim = vectors.shape
        self.factory = factory
        self.nprobe = nprobe
        try:
            self.index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[-1].split(": ")[-1]
            raise ConfigError(f"{key}: '{factory}' is not a FAISS index factory string ({reason})") from e
        if not self.index.is_trained:
            ivf = faiss.try_extract_index_ivf(self.index)
            if ivf is not None:  # k-means cells: seeded, and at least one training vector per cell
                if self.size < ivf.nlist:
                    raise ConfigError(f"{key}: '{factory}' has {ivf.nlist} cells but only {self.size} vectors to train them")
                ivf.cp.seed = seed
            self.index.train(vectors)
        self.index.add(vectors)
        self.set_search_breadth(nprobe)

    def set_search_breadth(self, breadth: int) -> None:
        """How widely an approximate index searches: IVF cells probed, or HNSW's efSearch."""
        self.nprobe = breadth
        self._apply_breadth(breadth)

    def _apply_breadth(self, breadth: int) -> None:
        import faiss

        params = faiss.ParameterSpace()
        for name in ("nprobe", "efSearch"):
            try:
                params.set_index_parameter(self.index, name, breadth)
            except RuntimeError:  # the index has no such knob (e.g. Flat)
                pass

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), k)``, best first; index -1 where fewer exist."""
        k = min(k, self.size)
        if "HNSW" in self.factory:  # the graph search must keep at least k candidates
            self._apply_breadth(max(self.nprobe, k))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(queries, k)
