import pytest
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from comixup.data import make_loader, set_epoch
from comixup.data.loader import EpochSampler, SeededDataset


class Noisy(Dataset):
    """Returns (index + global-RNG noise, index): exposes both order and augmentation RNG."""

    def __init__(self, n=24):
        self.n = n
        self.extra = "forwarded"

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i), float(torch.rand(()))]), i


def _epoch(loader, epoch):
    set_epoch(loader, epoch)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_order_and_augmentation_depend_only_on_seed_and_epoch():
    a = make_loader(Noisy(), batch_size=5, shuffle=True, workers=0, seed=3)
    b = make_loader(Noisy(), batch_size=5, shuffle=True, workers=0, seed=3)
    x1, y1 = _epoch(a, 1)
    torch.rand(100)  # the caller's global RNG use does not matter
    _epoch(b, 0)  # nor do earlier epochs
    x2, y2 = _epoch(b, 1)
    assert torch.equal(y1, y2) and torch.equal(x1, x2)
    _x0, y0 = _epoch(a, 0)
    assert not torch.equal(y0, y1)
    assert sorted(y0.tolist()) == list(range(24))
    c = make_loader(Noisy(), batch_size=5, shuffle=True, workers=0, seed=4)
    assert not torch.equal(_epoch(c, 1)[1], y1)


def test_global_rng_untouched():
    loader = make_loader(Noisy(), batch_size=4, shuffle=True, workers=0, seed=0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _epoch(loader, 0)
    assert torch.equal(torch.rand(3), expected)


def test_no_shuffle_and_drop_last():
    loader = make_loader(Noisy(10), batch_size=4, shuffle=False, workers=0, seed=0, drop_last=True)
    _, y = _epoch(loader, 2)
    assert y.tolist() == list(range(8))


def test_workers_give_the_same_batches():
    ref = _epoch(make_loader(Noisy(), batch_size=6, shuffle=True, workers=0, seed=1), 2)
    got = _epoch(make_loader(Noisy(), batch_size=6, shuffle=True, workers=2, seed=1), 2)
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])


def test_distributed_sampler():
    ds = Noisy(20)
    parts = []
    for rank in range(2):
        s = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = make_loader(ds, batch_size=5, shuffle=False, workers=0, seed=0, sampler=s)
        parts.append(_epoch(loader, 1)[1])
        assert s.epoch == 1
    assert sorted(torch.cat(parts).tolist()) == list(range(20))
    set_epoch(s, 3)
    assert s.epoch == 3


def test_attributes_forwarded_and_pin_memory_only_on_cuda():
    loader = make_loader(Noisy(), batch_size=2, shuffle=False, workers=0, seed=0, device="cpu")
    assert isinstance(loader.dataset, SeededDataset)
    assert loader.dataset.extra == "forwarded"
    assert not loader.pin_memory
    assert len(EpochSampler(5, shuffle=True)) == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2, "workers": -1}, "workers"),
        ({"batch_size": 2, "seed": "a"}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs.setdefault("shuffle", True)
    with pytest.raises((ValueError, TypeError), match=match):
        make_loader(Noisy(), **kwargs)
    with pytest.raises(TypeError, match="loader_or_sampler"):
        set_epoch(object(), 0)
    with pytest.raises(ValueError, match="epoch"):
        set_epoch(make_loader(Noisy(), batch_size=2, shuffle=True), -1)
