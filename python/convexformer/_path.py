"""The regularization path, like celer_path: certified solves from beta_max
down, each warm-started from the previous one."""

import json
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._base import sequence_active_tokens


@dataclass
class AttentionPath:
    """One row per beta, in the order solved."""

    betas: np.ndarray
    beta_max: float
    coefs: np.ndarray  # (K, n_blocks, n_outputs, d); sequence: (K, d, n_outputs, n, n)
    intercepts: np.ndarray  # (K, n_outputs); zeros for the sequence program
    objectives: np.ndarray
    duality_gaps: np.ndarray
    relative_gaps: np.ndarray
    converged: np.ndarray
    active_tokens: list
    models: list = field(repr=False)
    reports: list = field(repr=False)


def _run_path(X3, targets, config, n_classes, n_betas, ratio, betas):
    if betas is None:
        if int(n_betas) < 1 or not 0 < float(ratio) < 1:
            raise ValueError(
                f"n_betas must be at least 1 and ratio in (0, 1); got {n_betas}, {ratio}"
            )
        kw = {"n_betas": int(n_betas), "ratio": float(ratio)}
    else:
        kw = {"betas": [float(b) for b in np.atleast_1d(betas)]}
    if config["program"] == "sequence":
        bmax, models, reports, coefs = _core.path_sequence(X3, targets, config, n_classes, **kw)
        intercepts = np.zeros((coefs.shape[0], coefs.shape[2]))
        active = [sequence_active_tokens(C) for C in coefs]
    else:
        bmax, models, reports, coefs, intercepts = _core.path(
            X3, targets, config, n_classes, **kw
        )
    reports = [json.loads(r) for r in reports]
    if config["program"] != "sequence":
        active = [np.asarray(r["active_tokens"], dtype=np.int64) for r in reports]
    col = lambda key, dtype=float: np.array([r[key] for r in reports], dtype=dtype)  # noqa: E731
    return AttentionPath(
        betas=col("beta"),
        beta_max=bmax,
        coefs=coefs,
        intercepts=intercepts,
        objectives=col("objective"),
        duality_gaps=col("duality_gap"),
        relative_gaps=col("relative_gap"),
        converged=col("converged", bool),
        active_tokens=active,
        models=models,
        reports=reports,
    )


def attention_path(X, y, *, classifier=False, n_betas=10, ratio=0.01, betas=None, **params):
    """The regularization path of ConvexAttentionRegressor (or, with
    classifier=True, ConvexAttentionClassifier) with `params`: n_betas values
    from beta_max down to ratio * beta_max, or the given betas, each solve
    certified and warm-started from the previous one.

    Returns an AttentionPath (betas, coefs, intercepts, objectives, gaps,
    converged, active tokens, models, reports).
    """
    from ._classifier import ConvexAttentionClassifier
    from ._regressor import ConvexAttentionRegressor

    cls = ConvexAttentionClassifier if classifier else ConvexAttentionRegressor
    params.setdefault("beta_frac", 1.0)
    return cls(**params).path(X, y, n_betas=n_betas, ratio=ratio, betas=betas)
