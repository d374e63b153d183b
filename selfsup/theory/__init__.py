"""selfsup.theory: the linear theory's predictions checked on CNNs trained on real images.

Modules (import them directly; nothing happens at import time): ``run`` (one training point with a linear
predictor, its F / Wp trajectory recorded), ``measure`` (alignment, asymmetry, p-s exponent, spectral
effective rank), ``check`` (``TheoryConfig``, ``run_theory_check``: the weight-decay sweep against
``dynamics.analysis.collapse_wd`` and DirectPred / DirectCopy against a trained linear predictor), ``plots``
(its figures), ``seeds`` (mean +- std over seeds of finished checks).
CLIs: ``python -m selfsup.theory`` (the check), ``python -m selfsup.theory.seeds`` (the aggregate).
"""
