"""Moved to :mod:`iclx.training.throughput`; this name stays until the pretrain stage imports it
from there. ``ThroughputMonitor`` is the old name of ``TokenThroughput`` (it clashed with
Lightning's callback of that name)."""

from iclx.training.throughput import TokenThroughput, matmul_peak_flops, precision_dtype

ThroughputMonitor = TokenThroughput

__all__ = ["ThroughputMonitor", "TokenThroughput", "matmul_peak_flops", "precision_dtype"]
