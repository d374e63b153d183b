"""selfsup.bio: biologically plausible self-supervised learning (Tang, Yang & Amit 2022).

Modules (import them directly; nothing is registered or computed at import time):
``hinge`` (contrastive hinge loss on L1 distances; ``trainer_loss``, registered by ``selfsup.methods``),
``rules`` (backprop, feedback alignment, updated random feedback, difference target propagation as
``custom_vjp`` backward passes), ``net`` (the 5-conv-layer Hardtanh CNN with a head per layer), ``schedules``
(end to end, greedy and random layer-wise), ``config`` (``BioConfig``), ``train`` (jitted step, loop,
per-layer linear evaluation, checkpoints), ``__main__`` (CLI ``python -m selfsup.bio``, the grid and table).
"""
