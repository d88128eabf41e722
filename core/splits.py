"""Splits of a data set and the fingerprint that names the data a model saw."""

from __future__ import annotations

import hashlib

import numpy as np


def fingerprint(**arrays: np.ndarray) -> str:
    """SHA-256 over named arrays (name, dtype, shape and values): identifies the data a model saw
    by its content, whatever file or compression carried it."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def stratified_split(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), the same fraction of each group in validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def stratified_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Each example's fold, 0..n_folds-1 -> (n,) int: every group's examples shuffled (one seeded
    generator) and dealt to the folds in turn, so each fold holds each group's share (within one)."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, not {n_folds}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(groups), dtype=int)
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        fold[idx] = np.arange(len(idx)) % n_folds
    return fold
