"""Measurements of the linear theory on a trained network: spectra, alignment, asymmetry, the p-s exponent.

Everything here is plain numpy in float64 on host arrays: the trainer hands over ``F`` (d, d), the EMA
correlation of the predictor input, and ``Wp`` (d, d), the bias-free linear predictor (``p = Wp z``).

Public API
----------
``eig_desc(F) -> (s, U)``: ``eigh`` of the symmetric part of F, eigenvalues descending, eigenvectors as
columns (the j-th column ``u_j`` belongs to ``s_j``).
``rayleigh(Wp, U) -> p``: ``p_j = u_j^T Wp u_j`` (docs/theory.md section 8: the predictor's value on mode j).
``alignment(Wp, F) -> cos``: ``cos(Wp u_j, u_j) = u_j^T Wp u_j / ||Wp u_j||`` per eigenvector of F,
descending ``s_j`` (Tian21 Fig. 2). 1 for every j iff ``u_j`` is an eigenvector of Wp with a positive
eigenvalue, which is what eigen-alignment ``[F, Wp] = 0`` means when F's eigenvalues are distinct (with
repeated eigenvalues the ``u_j`` are not unique and neither is this number).
Signed: -1 for a negative eigenvalue of Wp.
``asymmetry(Wp)``: ``||Wp - Wp^T||_F / ||Wp||_F``, 0 for symmetric, 2 (its maximum) for antisymmetric,
about sqrt(2) for an i.i.d. Gaussian matrix (its symmetric and antisymmetric parts have equal expected norms).
``sym_eigs(Wp)``: eigenvalues of ``(Wp + Wp^T) / 2``, descending.
``spectral_erank(s)``: ``exp(-sum q_j log q_j)``, ``q = max(s, 0) / sum max(s, 0)`` (Roy & Vetterli 2007): k
for k equal non-zero eigenvalues, 0 for none; the same number ``evaluate.effective_rank`` computes from
samples.
``surviving(s, rel_tol)``: how many ``s_j >= rel_tol * max_k s_k``.
``fit_exponent(p, s, *, rel_tol=1e-3) -> ExponentFit(exponent, log_coef, r2, n)``: least squares
``log p_j = log_coef + exponent * log s_j`` over modes with ``p_j > 0`` and ``s_j >= rel_tol * max s``. On the
theory's invariant parabola ``s = p^2 / alpha_p`` (and under DirectPred's rule ``p ~ sqrt(s)``) it is 1/2.
``weighted_alignment(cos, s)``: ``sum_j s_j cos_j / sum_j s_j`` over ``s_j > 0`` (last axis), the alignment
of the modes that carry F's energy; the plain mean counts the many weak modes whose eigenvectors move slowly.
``snapshot(F, Wp, *, rel_tol=1e-3) -> dict``: all of the above for one (F, Wp) pair; ``align_mean`` is the
mean alignment over the surviving modes (the others have eigenvectors fixed only by noise).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _square(name: str, a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")
    return a


def eig_desc(F) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (d,) descending and eigenvectors (d, d) as columns of the symmetric part of F."""
    F = _square("F", F)
    s, u = np.linalg.eigh((F + F.T) / 2)
    return s[::-1], u[:, ::-1]


def rayleigh(Wp, U) -> np.ndarray:
    """p_j = u_j^T Wp u_j for each column u_j of U."""
    Wp = _square("Wp", Wp)
    return np.einsum("ij,ik,kj->j", U, Wp, U)


def alignment(Wp, F) -> np.ndarray:
    """cos(Wp u_j, u_j) per eigenvector u_j of F (descending eigenvalues); 0 where Wp u_j = 0."""
    Wp, (_, U) = _square("Wp", Wp), eig_desc(F)
    if Wp.shape != U.shape:
        raise ValueError(f"Wp has shape {Wp.shape} but F has shape {U.shape}: both must be (d, d)")
    WU = Wp @ U
    norm = np.linalg.norm(WU, axis=0)
    return np.where(norm > 0, (U * WU).sum(0) / np.where(norm > 0, norm, 1.0), 0.0)


def asymmetry(Wp) -> float:
    """||Wp - Wp^T||_F / ||Wp||_F (nan for Wp = 0)."""
    Wp = _square("Wp", Wp)
    n = np.linalg.norm(Wp)
    return float(np.linalg.norm(Wp - Wp.T) / n) if n > 0 else float("nan")


def sym_eigs(Wp) -> np.ndarray:
    """Eigenvalues of the symmetric part (Wp + Wp^T) / 2, descending."""
    Wp = _square("Wp", Wp)
    return np.linalg.eigvalsh((Wp + Wp.T) / 2)[::-1]


def spectral_erank(s) -> float:
    """exp of the entropy of the normalised non-negative part of the eigenvalues s; 0.0 when no eigenvalue
    is positive (F = 0: complete collapse, below any collapse threshold >= 1; NaN would compare False)."""
    s = np.clip(np.asarray(s, np.float64), 0, None)
    if not s.sum() > 0:
        return 0.0
    q = s / s.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def surviving(s, rel_tol: float = 1e-3) -> int:
    """Number of eigenvalues at least rel_tol times the largest."""
    s = np.asarray(s, np.float64)
    return int((s >= rel_tol * s.max()).sum()) if s.max() > 0 else 0


class ExponentFit(NamedTuple):
    exponent: float
    log_coef: float
    r2: float
    n: int


def fit_exponent(p, s, *, rel_tol: float = 1e-3) -> ExponentFit:
    """Least-squares fit of log p = log_coef + exponent * log s over modes with p > 0, s >= rel_tol max s."""
    p, s = np.asarray(p, np.float64).ravel(), np.asarray(s, np.float64).ravel()
    if p.shape != s.shape:
        raise ValueError(f"p and s must have the same length, got {p.size} and {s.size}")
    if not 0 < rel_tol < 1:
        raise ValueError(f"rel_tol={rel_tol} must be in (0, 1)")
    keep = (p > 0) & (s > 0) & (s >= rel_tol * s.max())
    n = int(keep.sum())
    if n < 2 or np.ptp(np.log(s[keep])) == 0:
        return ExponentFit(float("nan"), float("nan"), float("nan"), n)
    x, y = np.log(s[keep]), np.log(p[keep])
    A = np.stack([np.ones_like(x), x], 1)
    (c, k), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ np.array([c, k])
    tot = ((y - y.mean()) ** 2).sum()
    return ExponentFit(float(k), float(c), float(1 - (resid**2).sum() / tot) if tot > 0 else 1.0, n)


def weighted_alignment(cos, s) -> np.ndarray:
    """sum_j max(s_j, 0) cos_j / sum_j max(s_j, 0) along the last axis."""
    w = np.clip(np.asarray(s, np.float64), 0, None)
    return (w * np.asarray(cos, np.float64)).sum(-1) / w.sum(-1)


def snapshot(F, Wp, *, rel_tol: float = 1e-3) -> dict:
    """Spectrum of F, of sym(Wp), alignment, p_j, asymmetry, erank, survivors and the exponent fit."""
    s, U = eig_desc(F)
    cos, p = alignment(Wp, F), rayleigh(Wp, U)
    alive = s >= rel_tol * s.max()
    fit = fit_exponent(p, s, rel_tol=rel_tol)
    return {"s": s, "wp_sym": sym_eigs(Wp), "cos": cos, "p": p, "asym": asymmetry(Wp),
            "erank": spectral_erank(s), "surviving": int(alive.sum()),
            "align_mean": float(cos[alive].mean()), "exponent": fit.exponent, "exponent_r2": fit.r2}
