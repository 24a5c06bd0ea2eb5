"""Which examples form step s's batch, fixed by (seed, s) alone.

    chosen = batch_indices(step, batch_size, n, seed)                # CLIP, LM: a batch never straddles epochs
    chosen = batch_indices_across_epochs(step, batch_size, n, seed)  # VQ-VAE: one epoch flows into the next
    plan = LengthGroupedBatches(lengths, batch_size, seed)           # stages 1 and 2: chats of a length together
    chosen = plan(step)

Deriving batches from the step alone makes a resumed run see exactly the batches the uninterrupted run would
have seen. Each epoch is a fresh permutation fixed by (seed, epoch).
"""
from __future__ import annotations

import torch

GROUP_CHUNK = 16  # LengthGroupedBatches: batches' worth of examples sorted by length together


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """The example indices of `step`'s batch, never straddling two epochs, so no contrastive pair is its own
    negative; the last n mod batch_size examples of each permutation wait for a later epoch."""
    epoch, offset = divmod(step, n // batch_size)
    return _epoch_order(n, seed, epoch)[offset * batch_size:(offset + 1) * batch_size]


def batch_indices_across_epochs(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """The example indices of `step`'s batch, every example once an epoch: a batch may end in the next epoch."""
    epoch, offset = divmod(step * batch_size, n)
    order = _epoch_order(n, seed, epoch)
    if offset + batch_size > n:  # the batch straddles two epochs
        order = torch.cat([order, _epoch_order(n, seed, epoch + 1)])
    return order[offset:offset + batch_size]


class LengthGroupedBatches:
    """Step → example indices: a permutation per epoch, grouped by length (as transformers' group_by_length, to
    waste less on padding), the batches shuffled."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = torch.tensor(lengths), batch_size, seed
        self.per_epoch = len(lengths) // batch_size
        self._epoch, self._batches = -1, []

    def __call__(self, step: int) -> torch.Tensor:
        epoch, offset = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._plan(epoch)
        return self._batches[offset]

    def _plan(self, epoch: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.lengths), generator=generator)[:self.per_epoch * self.batch_size]
        chunk = self.batch_size * GROUP_CHUNK
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[self.lengths[part].argsort(stable=True)]
            batches += list(part.split(self.batch_size))
        shuffle = torch.randperm(len(batches), generator=generator)
        return [batches[i] for i in shuffle]
