"""Batch order is fixed by (seed, step) alone, so a resumed run trains on the batches an unbroken run would have."""
import torch

from training.batches import LengthGroupedBatches, batch_indices, batch_indices_across_epochs


def test_batches_never_repeat_an_example_and_cover_each_epoch():
    n, size = 10, 4  # two batches an epoch; two examples wait for a later epoch
    epoch = [batch_indices(step, size, n, seed=0) for step in range(2)]
    assert all(len(set(b.tolist())) == size for b in epoch)
    assert len(set(torch.cat(epoch).tolist())) == 2 * size
    assert torch.equal(batch_indices(5, size, n, seed=0), batch_indices(5, size, n, seed=0))
    assert not torch.equal(batch_indices(0, size, n, seed=0), batch_indices(0, size, n, seed=1))


def test_batches_across_epochs_show_every_example_once_an_epoch():
    n, size = 10, 4
    two_epochs = torch.cat([batch_indices_across_epochs(step, size, n, seed=0) for step in range(5)])
    assert sorted(two_epochs[:n].tolist()) == list(range(n)) and sorted(two_epochs[n:].tolist()) == list(range(n))


def test_length_grouped_batches_cover_the_epoch_and_group_lengths():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    plan = LengthGroupedBatches(lengths, batch_size=2, seed=0)
    batches = [plan(step).tolist() for step in range(4)]
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 3 for b in batches)
    assert [plan(step).tolist() for step in range(4)] == batches
