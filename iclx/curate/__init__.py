"""Data curation before pre-training (the ``curate`` config group), on datatrove.

``iclx.curate.pipeline`` registers the group's components (``none``, ``pipeline``) and builds the
curated-corpus artifact; ``steps/`` are the registered steps, ``executors`` where they run,
``blocks`` iclx's datatrove blocks (imported only when a curation runs: the ``curate`` extra),
``report`` the table, funnel plot and samples, ``known_mix`` the labelled test corpus.
"""

from iclx.curate import pipeline  # noqa: F401 -- registers curate=none and curate=pipeline
