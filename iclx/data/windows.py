"""Training samples: contiguous windows of ``seq_len + 1`` tokens of the packed stream, no padding.

Window i covers tokens ``[i * seq_len, i * seq_len + seq_len + 1)``: the model reads the first
``seq_len`` and predicts the last ``seq_len``, so consecutive windows share one boundary token and
every token is predicted once per pass. A window may span documents (they are separated by EOS).

:class:`WindowSampler` is the training order: an endless stream in which each pass over the
windows is a fresh permutation seeded by (seed, pass), so sample number j is a pure function of
(seed, j). Resuming at step s just starts the stream at sample ``s * batch`` (no window repeated
or skipped), and with several processes rank r takes every ``world_size``-th sample, so the
samples of one global step are the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from iclx.data.packing import TokenStream
from iclx.errors import DataError


class WindowDataset(Dataset):
    def __init__(self, stream: TokenStream, seq_len: int):
        self.stream, self.seq_len = stream, seq_len
        self.n_windows = max(0, (len(stream) - 1) // seq_len)
        if self.n_windows == 0:
            raise DataError(
                f"the packed {stream.split} split has {len(stream)} tokens, fewer than one window of "
                f"{seq_len + 1} (lower pretrain.seq_len or use a larger corpus)"
            )

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, i: int) -> torch.Tensor:
        start = int(i) * self.seq_len
        return torch.from_numpy(self.stream.read(start, start + self.seq_len + 1).astype(np.int64))


def epoch_permutation(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_windows)


class WindowSampler(Sampler[int]):
    """Samples ``start .. total-1`` of this rank's share of the endless shuffled stream.

    ``len()`` is ``total`` even when resuming (``start > 0``): Lightning counts the batches it
    already trained, so the epoch still ends after ``total`` samples in all.
    """

    def __init__(self, n_windows: int, seed: int, total: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.n_windows, self.seed = n_windows, seed
        self.total, self.start = total, start
        self.rank, self.world_size = rank, world_size
        self._epoch, self._perm = -1, np.zeros(0, dtype=np.int64)

    def window(self, sample: int) -> int:
        """The window of global sample number ``sample`` (all ranks together)."""
        epoch, position = divmod(sample, self.n_windows)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(self.n_windows, self.seed, epoch)
        return int(self._perm[position])

    def __iter__(self) -> Iterator[int]:
        for j in range(self.start, self.total):
            yield self.window(j * self.world_size + self.rank)

    def __len__(self) -> int:
        return self.total


class EvalSampler(Sampler[int]):
    """The first ``limit`` windows in stream order (every one when None), split across ranks."""

    def __init__(self, n_windows: int, limit: int | None = None, rank: int = 0, world_size: int = 1):
        n = n_windows if limit is None else min(n_windows, limit)
        self.indices = range(rank, n, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
