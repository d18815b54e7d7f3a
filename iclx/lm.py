"""Moved to :mod:`iclx.training.lm`; this name stays until the pretrain stage imports it from there."""

from iclx.training.lm import LMTask, LossHistory, TrainingDiverged, WindowDataModule, read_history

__all__ = ["LMTask", "LossHistory", "TrainingDiverged", "WindowDataModule", "read_history"]
