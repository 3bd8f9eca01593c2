"""Evaluation of trained classifiers: the paper's Tables 1, 2, 3 and 10 and Figure 4.

* :mod:`.metrics`: :func:`evaluate`, top-1 / top-5 error and ECE over a loader (Table 1);
* :mod:`.calibration`: ECE with 10 bins, reliability data and diagrams (Tables 2, 10, Fig. 4);
* :mod:`.cam`: class activation maps (Zhou et al., 2016);
* :mod:`.localization`: CAM boxes, IoU and localization accuracy (Section 5.2, Table 2);
* :mod:`.robustness`: background corruption (Section 5.4, Table 3, Appendix G);
* :mod:`.suite`: all of them for one model or checkpoint (``comixup eval``);
* :mod:`.report`: the tables over runs and seeds (``comixup report``).

See ``docs/evaluation.md``.
"""

from .calibration import (
    N_BINS,
    add_bins,
    ece_from_bins,
    plot_reliability,
    plot_reliability_grid,
    reliability_bins,
    reliability_curve,
)
from .cam import cam, supports_cam
from .localization import box_iou, box_mask, cam_to_box, cams_to_boxes, localize, random_boxes
from .metrics import evaluate
from .robustness import BackgroundCorrupted, corrupt_background, derangement, robustness
from .suite import TASKS, evaluate_checkpoint, run_evaluation

__all__ = [
    "N_BINS",
    "TASKS",
    "BackgroundCorrupted",
    "add_bins",
    "box_iou",
    "box_mask",
    "cam",
    "cam_to_box",
    "cams_to_boxes",
    "corrupt_background",
    "derangement",
    "ece_from_bins",
    "evaluate",
    "evaluate_checkpoint",
    "localize",
    "plot_reliability",
    "plot_reliability_grid",
    "random_boxes",
    "reliability_bins",
    "reliability_curve",
    "robustness",
    "run_evaluation",
    "supports_cam",
]
