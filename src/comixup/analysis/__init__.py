"""Algorithm analysis and pictures of Co-Mixup (Kim et al., ICLR 2021), one module per analysis.

==========================================  =====================================================
module                                      what (command)
==========================================  =====================================================
:mod:`~comixup.analysis.table6`             Appendix D.1, Table 6: Algorithm 1 against brute
                                            force (``comixup analyze table6``)
:mod:`~comixup.analysis.narasimhan_bilmes`  the submodular-supermodular procedure of Narasimhan
                                            and Bilmes (UAI 2005) on the set formulation
:mod:`~comixup.analysis.table7`             Appendix D.2, Tables 7 and 8: Algorithm 1 against
                                            Narasimhan-Bilmes and random labelings
                                            (``comixup analyze table7``)
:mod:`~comixup.analysis.mixing`             Figure 2 (b)-(d): inputs per output, batch saliency,
                                            diversity against tau (``comixup analyze mixing``)
:mod:`~comixup.analysis.timing`             Appendix C, Figure 6: time of Algorithm 1
                                            (``comixup analyze timing``; shared with
                                            ``comixup bench solver``)
:mod:`~comixup.analysis.show`               Figures 1, 12 and 13: an input batch and its mixed
                                            batch (``comixup show``)
:mod:`~comixup.analysis.problems`           the test problems (uniform unaries of Appendix D,
                                            the reference Table 7 script's problem, realistic
                                            saliency of the benchmark)
:mod:`~comixup.analysis.fidelity`           label fidelity of mixed images (object masks)
==========================================  =====================================================

The modules are imported on demand (``from comixup.analysis import table7``); see
``docs/analysis.md`` for the commands and measured results.
"""

__all__ = ["fidelity", "mixing", "narasimhan_bilmes", "problems", "show", "table6", "table7",
           "timing"]
