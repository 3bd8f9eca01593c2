"""CAM boxes, IoU, box masks and localization accuracy (Section 5.2, Table 2)."""

import numpy as np
import pytest
import torch

from comixup.evaluate import box_iou, box_mask, cam_to_box, localize, random_boxes
from comixup.evaluate.suite import run_evaluation

from .conftest import IdentityNet, ToyBoxes


def test_larger_component_wins():
    m = torch.zeros(8, 10)
    m[1:3, 1:3] = 1.0          # 4 pixels, the maximum
    m[4:7, 5:8] = 0.9          # 9 pixels
    assert cam_to_box(m) == (5, 4, 8, 7)
    assert cam_to_box(m.numpy() * 3 + 100) == (5, 4, 8, 7)  # min-max normalized first


def test_components_are_4_connected():
    m = np.zeros((8, 8))
    m[0, 0] = m[1, 1] = m[2, 2] = 1.0   # a diagonal: three components of one pixel
    m[5, 5] = m[5, 6] = 1.0            # two 4-connected pixels
    assert cam_to_box(m) == (5, 5, 7, 6)


def test_blob_touching_the_border():
    m = torch.zeros(8, 10)
    m[0:3, 7:10] = 2.0
    m[6, 0] = 1.0
    assert cam_to_box(m) == (7, 0, 10, 3)
    m = torch.ones(4, 4)
    m[0, 0] = 0.0  # everything but one corner
    assert cam_to_box(m) == (0, 0, 4, 4)


def test_constant_map_is_the_whole_image():
    assert cam_to_box(torch.zeros(5, 7)) == (0, 0, 7, 5)
    assert cam_to_box(np.full((3, 2), 4.2)) == (0, 0, 2, 3)


def test_threshold_is_inclusive():
    m = torch.tensor([[0.0, 0.25, 1.0, 0.2]])
    assert cam_to_box(m) == (1, 0, 3, 1)
    assert cam_to_box(m, threshold=0.3) == (2, 0, 3, 1)
    assert cam_to_box(m, threshold=0.0) == (0, 0, 4, 1)


def test_cam_to_box_errors():
    with pytest.raises(ValueError, match="cam must be a 2-D"):
        cam_to_box(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="threshold must lie in"):
        cam_to_box(torch.zeros(4, 4), threshold=1.5)
    with pytest.raises(ValueError, match="finite"):
        cam_to_box(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="cam must be"):
        cam_to_box([[0.0, 1.0]])


def test_box_iou_hand_values():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 4, 4), (0, 0, 2, 4)) == pytest.approx(0.5)
    assert box_iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0       # edges touch, no pixel shared
    assert box_iou((0, 0, 2, 2), (5, 5, 6, 6)) == 0.0
    assert box_iou((1, 2, 3, 5), (1, 2, 3, 5)) == 1.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0       # two empty boxes
    assert box_iou((0, 0, 3, 1), (1, 0, 2, 5)) == pytest.approx(1 / 7)  # 1 / (3 + 5 - 1)
    a = torch.tensor([[0, 0, 2, 2], [0, 0, 4, 4]])
    assert torch.allclose(box_iou(a, torch.tensor([1, 1, 3, 3])),
                          torch.tensor([1 / 7, 4 / 16], dtype=torch.float64))
    assert box_iou(a[:, None], a[None]).shape == (2, 2)
    with pytest.raises(ValueError, match="x0 <= x1"):
        box_iou((2, 0, 1, 1), (0, 0, 1, 1))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        box_iou((0, 0, 1), (0, 0, 1, 1))


def test_box_mask_is_the_pixel_edge_convention():
    mask = box_mask(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 5, 6)[0]
    expected = torch.zeros(5, 6, dtype=torch.bool)
    expected[2:4, 1:3] = True
    assert torch.equal(mask, expected)
    assert cam_to_box(mask.float()) == (1, 2, 3, 4)  # round trip
    # several boxes (union), and a sample without boxes
    masks = box_mask([[(0, 0, 1, 1), (3, 3, 4, 4)], []], 4, 4)
    assert masks[0].sum() == 2 and masks[0, 0, 0] and masks[0, 3, 3] and masks[1].sum() == 0


def test_synthetic_boxes_follow_the_convention(tmp_path):
    from comixup.data import build_dataset

    ds = build_dataset("synthetic", root=tmp_path, split="test", image_size=16, num_test=6,
                       num_train=1)
    for i in range(len(ds)):
        (box,) = ds.boxes(i)
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 16 and 0 <= y0 < y1 <= 16 and float(x1).is_integer()
        assert cam_to_box(box_mask([[box]], 16, 16)[0].float()) == tuple(int(v) for v in box)


def test_random_boxes_keep_sizes_and_seed():
    boxes = torch.tensor([[0.0, 0.0, 3.0, 2.0], [2.0, 2.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0]])
    a = random_boxes(boxes, 8, 8, generator=torch.Generator().manual_seed(1))
    b = random_boxes(boxes, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(a[:, 2] - a[:, 0], boxes[:, 2] - boxes[:, 0])
    assert torch.equal(a[:, 3] - a[:, 1], boxes[:, 3] - boxes[:, 1])
    assert (a >= 0).all() and (a[:, 2:] <= 8).all() and torch.equal(a[2], boxes[2])
    draws = torch.cat([random_boxes(boxes[:1], 8, 8, generator=torch.Generator().manual_seed(s))
                       for s in range(200)])
    assert set(draws[:, 0].tolist()) == {0, 1, 2, 3, 4, 5} and set(draws[:, 1].tolist()) == \
        {0, 1, 2, 3, 4, 5, 6}


def test_localization_accuracy_exact(oracle):
    # three label-0 images (predicted 0, CAM = the image: exact box) and one label-1 image
    # (predicted 0: wrong; its true-class CAM is -image, whose box is the background)
    boxes = [(1, 1, 4, 4), (2, 3, 7, 8), (0, 0, 8, 2), (2, 2, 6, 6)]
    ds = ToyBoxes(boxes, [0, 0, 0, 1])
    out = localize(oracle, ds, batch_size=3, keep=2)
    assert out["samples"] == 4 and out["error"] == 25.0
    assert out["top1_loc"] == 75.0 and out["gt_known_loc"] == 75.0
    # -image of sample 3: the background ring, box (0, 0, 8, 8); IoU 16/64
    assert out["mean_iou"] == pytest.approx((1 + 1 + 1 + 0.25) / 4)
    assert out["examples"]["pred_box"][1] == [2.0, 3.0, 7.0, 8.0]
    assert len(out["examples"]["x"]) == 2
    # the random-box baseline is seeded and no better here
    again = localize(oracle, ds, batch_size=1)
    assert again["random_top1_loc"] == out["random_top1_loc"] <= 75.0
    assert out["random_top1_loc"] < 75.0 or out["random_gt_known_loc"] < 75.0


def test_localization_needs_boxes_and_a_cam(oracle):
    from comixup import models

    plain = torch.utils.data.TensorDataset(torch.zeros(2, 1, 8, 8), torch.zeros(2).long())
    with pytest.raises(ValueError, match="has no bounding boxes"):
        localize(oracle, plain)
    with pytest.raises(TypeError, match="LeNet"):
        localize(models.create("lenet", 2), ToyBoxes([(0, 0, 2, 2)], [0]))
    notes = []
    result = run_evaluation(oracle, plain, 2, tasks=None, log=notes.append)
    assert result["tasks"] == ["clean", "calibration"]
    assert set(result["skipped"]) == {"localization", "robustness"}
    assert notes == ["note: localization and robustness skipped: TensorDataset has no bounding "
                     + "boxes"]


def test_run_evaluation_on_boxes(oracle):
    ds = ToyBoxes([(1, 1, 4, 4), (2, 3, 7, 8), (0, 0, 8, 2), (2, 2, 6, 6)], [0, 0, 0, 1])
    result = run_evaluation(oracle, ds, 2, batch_size=2, log=lambda s: None)
    assert result["tasks"] == ["clean", "calibration", "localization", "robustness"]
    assert result["error"] == 25.0 and result["localization"]["top1_loc"] == 75.0
    assert result["robustness"]["clean_error"] == 25.0
    assert set(result["robustness"]) >= {"replace", "gaussian"}
    import json

    json.dumps(result)  # JSON-ready
    with pytest.raises(TypeError, match="localization needs a class activation map"):
        from comixup import models

        run_evaluation(models.create("lenet", 2, in_channels=1), ds, 2, tasks=["localization"])
    with pytest.raises(ValueError, match="tasks must be"):
        run_evaluation(oracle, ds, 2, tasks=["nope"])
    assert isinstance(IdentityNet(), torch.nn.Module)
