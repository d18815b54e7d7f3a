"""Moved to :mod:`iclx.training.throughput`; this name stays until the pretrain stage imports it from there."""

from iclx.training.throughput import ThroughputMonitor, matmul_peak_flops, precision_dtype

__all__ = ["ThroughputMonitor", "matmul_peak_flops", "precision_dtype"]
