"""iclx: config-driven experiments on pre-training and in-context learning of language models."""

from iclx.registry import build, register

__all__ = ["build", "register"]
__version__ = "0.1.0"
