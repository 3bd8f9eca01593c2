import numpy as np
import pytest
import torch

from comixup.data import transforms as T


def _img(c=3, h=8, w=10):
    return torch.arange(c * h * w, dtype=torch.float32).reshape(c, h, w) / (c * h * w)


def test_random_crop_pads_and_is_seeded():
    x = torch.ones(3, 8, 8)
    t = T.RandomCrop(8, padding=2)
    outs = [t(x, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(o.shape == (3, 8, 8) for o in outs)
    assert any((o == 0).any() for o in outs)  # padding shows up for some offsets
    a = t(x, generator=torch.Generator().manual_seed(3))
    b = t(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_random_crop_offsets_cover_range():
    x = _img(1, 4, 4) + 1
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    crops = {(i, j): padded[:, i : i + 4, j : j + 4] for i in range(3) for j in range(3)}
    t = T.RandomCrop(4, padding=1)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        out = t(x, generator=g)
        seen |= {k for k, c in crops.items() if torch.equal(c, out)}
    assert seen == set(crops)


def test_flip_probability_and_global_rng():
    x = _img()
    assert torch.equal(T.RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    torch.manual_seed(5)
    a = T.RandomHorizontalFlip()(x)
    torch.manual_seed(5)
    assert torch.equal(a, T.RandomHorizontalFlip()(x))


def test_random_resized_crop_shape_and_window():
    x = torch.rand(3, 40, 60)
    t = T.RandomResizedCrop(16, scale=(0.08, 1.0))
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        top, left, h, w = t.window(40, 60, g)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 60
        assert h * w >= 0.08 * 40 * 60 * 0.8
    assert t(x, generator=g).shape == (3, 16, 16)
    assert T.RandomResizedCrop((8, 12))(
        torch.randint(0, 255, (3, 20, 20), dtype=torch.uint8)
    ).shape == (3, 8, 12)


def test_resize_center_crop_and_boxes():
    x = torch.rand(3, 100, 200)
    r = T.Resize(50)
    assert r(x).shape == (3, 50, 100)
    assert T.Resize((10, 20))(x).shape == (3, 10, 20)
    c = T.CenterCrop(50)
    pipe = T.Compose([r, c])
    assert pipe(x).shape == (3, 50, 50)
    boxes, size = pipe.map_boxes([(0, 0, 200, 100), (0, 0, 40, 20)], (100, 200))
    assert size == (50, 50)
    assert boxes[0] == pytest.approx((0, 0, 50, 50))
    assert boxes == [boxes[0]]  # the second box lies outside the crop (x 0..20 -> cropped away)


def test_to_tensor_and_normalize():
    arr = np.full((4, 5, 3), 255, dtype=np.uint8)
    t = T.ToTensor()(arr)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32 and float(t.max()) == 1.0
    n = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(t)
    assert torch.allclose(n, torch.full_like(n, 2.0))
    with pytest.raises(ValueError, match="std"):
        T.Normalize((0.5,), (0.0,))


def test_compose_forwards_generator():
    t = T.Compose([T.RandomCrop(8, padding=4), T.RandomHorizontalFlip(), T.Normalize((0,), (1,))])
    x = _img(1, 8, 8)
    a = t(x, generator=torch.Generator().manual_seed(9))
    b = t(x, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    assert T.Compose([lambda z: z + 1])(x, generator=None).equal(x + 1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: T.RandomCrop(0), "size"),
        (lambda: T.RandomCrop(8, padding=-1), "padding"),
        (lambda: T.RandomHorizontalFlip(p=2), "p must"),
        (lambda: T.RandomResizedCrop(8, scale=(0.5, 0.1)), "scale"),
        (lambda: T.Compose([1]), "transforms"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
