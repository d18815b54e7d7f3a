"""Curation steps (kind ``curate_step``): every module here registers itself on import."""

from iclx.registry import import_submodules

import_submodules(__name__)
