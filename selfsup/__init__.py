"""selfsup: jitted CNN trainers for non-contrastive self-supervised learning on real images.

Modules (import them directly; nothing heavy happens at import time):
``data`` (datasets), ``augment`` (on-device views), ``nets`` (flax networks), ``methods`` (loss registry, EMA,
DirectPred/DirectCopy), ``optim`` (optax optimisers and schedules), ``evaluate`` (kNN, linear probe, collapse
metrics), ``train`` (state, step, epoch loop, CLI ``python -m selfsup.train``), ``checkpoint``.
"""
