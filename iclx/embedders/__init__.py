"""Registered components: every module here registers itself on import.

Embedders turn texts into unit vectors; see ``base`` for the API other stages use
(``build_embedder``, ``cached_vectors``, ``embed_cached``) and ``index`` for FAISS search.
"""

from iclx.embedders.base import Embedder, build_embedder, cached_vectors, embed_cached
from iclx.registry import import_submodules

import_submodules(__name__)

__all__ = ["Embedder", "build_embedder", "cached_vectors", "embed_cached"]
