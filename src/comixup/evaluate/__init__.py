"""Evaluation of trained classifiers (notes 5).

:func:`evaluate` gives the top-1 / top-5 error and the expected calibration error with 10 bins;
:func:`plot_reliability` draws the confidence-vs-accuracy diagram. See :mod:`.metrics`.
"""

from .metrics import N_BINS, evaluate, plot_reliability, reliability_bins

__all__ = ["N_BINS", "evaluate", "plot_reliability", "reliability_bins"]
