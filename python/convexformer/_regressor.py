"""ConvexAttentionRegressor: real targets, squared or Huber loss."""

import json

import numpy as np
from sklearn.base import RegressorMixin

from . import _core
from ._base import _COMMON_DOC, _FITTED_DOC, _ConvexAttention
from ._data import as_tokens, check_X, check_Xy


class ConvexAttentionRegressor(RegressorMixin, _ConvexAttention):
    __doc__ = (
        """Convex attention heads for real targets (squared or Huber loss),
    certified optimal by a duality gap.

    Parameters
    ----------
    loss : {"squared", "huber"} or "huber:DELTA", default="squared"
"""
        + _COMMON_DOC
        + _FITTED_DOC
    )

    def __init__(
        self,
        loss="squared",
        model="auto",
        *,
        beta=None,
        beta_frac=0.1,
        n_tokens=None,
        fit_intercept=True,
        tol=1e-6,
        max_iter=100_000,
        max_seconds=None,
        solver="auto",
        warm_start=False,
        n_gates=8,
        gate_kind="gaussian",
        tokenwise_gates=False,
        random_state=0,
    ):
        self.loss = loss
        self.model = model
        self.beta = beta
        self.beta_frac = beta_frac
        self.n_tokens = n_tokens
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.max_seconds = max_seconds
        self.solver = solver
        self.warm_start = warm_start
        self.n_gates = n_gates
        self.gate_kind = gate_kind
        self.tokenwise_gates = tokenwise_gates
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = self.model != "scalar"
        tags.input_tags.three_d_array = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": self.model != "scalar"}

    def _loss(self):
        loss = str(self.loss)
        if not (loss in ("squared", "huber") or loss.startswith("huber:")):
            raise ValueError(
                f"loss must be 'squared', 'huber' or 'huber:DELTA' for regression; got {loss!r}"
            )
        return loss

    def _targets(self, X, y):
        X, y = check_Xy(self, X, y, multi_output=self.model != "scalar", y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        return as_tokens(X, self.n_tokens), np.ascontiguousarray(y)

    def fit(self, X, y):
        """Fits X of shape (N, n, d) or (N, n*d) and y of shape (N,) or (N, c)
        ((N, n) or (N, n, c) for the sequence program)."""
        loss = self._loss()
        if self.model == "sequence":
            return self._fit_sequence(X, y, loss)
        X3, y = self._targets(X, y)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        self._solve(X3, y, self._config(loss, n_outputs), None)
        b = self.model_.intercept
        self.intercept_ = float(b[0]) if self._y_1d else b
        return self

    def _sequence_targets(self, X, y):
        X3 = as_tokens(check_X(self, X, reset=True), self.n_tokens)
        y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity: remove or impute non-finite targets")
        return X3, np.ascontiguousarray(y)

    def _fit_sequence(self, X, y, loss):
        X3, y = self._sequence_targets(X, y)
        config = self._config(loss, 1 if y.ndim == 2 else y.shape[-1])
        self._solve_sequence(X3, y, config, None)
        self._y_1d = False
        self._y_per_position_1 = y.ndim == 2
        return self

    def predict(self, X):
        yhat = self._raw_predict(X)
        if getattr(self, "_y_per_position_1", None) is not None and self.model == "sequence":
            return yhat[..., 0] if self._y_per_position_1 else yhat
        return yhat.ravel() if self._y_1d else yhat

    def score(self, X, y, sample_weight=None):
        """R² of the predictions (every position's outputs for the sequence program)."""
        if self.model != "sequence":
            return super().score(X, y, sample_weight=sample_weight)
        from sklearn.metrics import r2_score

        y = np.asarray(y, dtype=np.float64)
        return r2_score(y.reshape(len(y), -1), self.predict(X).reshape(len(y), -1),
                        sample_weight=sample_weight)

    def _path_arrays(self, X, y):
        loss = self._loss()
        if self.model == "sequence":
            X3, y = self._sequence_targets(X, y)
            return X3, y, loss, 1 if y.ndim == 2 else y.shape[-1], None
        X3, y = self._targets(X, y)
        return X3, y, loss, 1 if y.ndim == 1 else y.shape[1], None
