"""Training with Lightning: the ``trainer`` group's settings and the LightningModules that use them.

- ``trainer``: the ``trainer`` config group mapped onto ``lightning.Trainer`` (``build_trainer``);
- ``lm``: pre-training a causal LM (``LMTask``, its windows, its loss history);
- ``probe``: training an in-context regressor on fresh regression tasks (``ProbeTraining``);
- ``retriever``: training EPR's dual encoder contrastively (``ContrastiveTraining``);
- ``throughput``: tokens/s and MFU against a measured matmul peak (``TokenThroughput``).

Every training gets its Trainer from ``build_trainer`` with the settings its caller passes in;
the modules here read no run config.
"""

from iclx.training.trainer import (
    ICLX_TRAINER_KEYS,
    build_trainer,
    cpu_supports_bf16,
    is_distributed_worker,
    resolve_precision,
    trainer_arguments,
)

__all__ = [
    "ICLX_TRAINER_KEYS", "build_trainer", "cpu_supports_bf16", "is_distributed_worker", "resolve_precision",
    "trainer_arguments",
]
