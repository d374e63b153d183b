"""selfsup.continual: class-incremental continual and online self-supervised learning.

Modules (import them directly; nothing happens at import time): ``splits`` (class splits into tasks),
``metrics`` (accuracy matrix R: average accuracy, forgetting, backward transfer), ``distill`` (CaSSLe
predictive distillation as a step extension; residual momentum is the trainer's ``--lam-r``), ``step``
(the trainer's step with that term), ``config`` (``ContinualConfig``), ``evaluation`` (per-task kNN /
linear probe), ``continual`` (``run_continual``, the task loop with resume), ``online`` (``run_online``,
one pass over a stream), ``compare`` (the method x CaSSLe comparison table), ``plots``;
CLI ``python -m selfsup.continual``.
"""
