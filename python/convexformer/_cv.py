"""The cross-validated estimators: beta chosen on held-out folds."""

import numpy as np
from sklearn.model_selection import check_cv

from . import _core
from ._base import _COMMON_DOC, _FITTED_DOC
from ._classifier import ConvexAttentionClassifier
from ._regressor import ConvexAttentionRegressor


class _CrossValidated:
    """beta chosen by K-fold cross-validation over a path, then refitted on
    all the data. Each fold is solved at the same regularization per sample
    (beta scaled by the fold's share of the samples)."""

    _CV_PARAMS = ("n_betas", "ratio", "cv")

    def _estimator(self, **params):
        shared = {k: v for k, v in self.get_params().items() if k not in self._CV_PARAMS}
        return self._base(**shared, **params)

    def path(self, X, y, n_betas=10, ratio=0.01, betas=None):
        """The regularization path with this estimator's settings (see
        ConvexAttentionRegressor.path)."""
        return self._estimator(beta_frac=1.0).path(X, y, n_betas, ratio, betas)

    def fit(self, X, y):
        if int(self.n_betas) < 1 or not 0 < float(self.ratio) <= 1:
            raise ValueError(
                f"n_betas must be at least 1 and ratio in (0, 1]; got {self.n_betas}, {self.ratio}"
            )
        base = self._estimator(beta_frac=1.0)
        X3, targets, loss, n_outputs, n_classes = base._path_arrays(X, y)
        config = base._config(loss, n_outputs)
        N = X3.shape[0]
        bmax = _core.beta_max(X3, targets, config, n_classes)
        betas = bmax * np.geomspace(1.0, float(self.ratio), int(self.n_betas))
        cv = check_cv(self.cv, targets, classifier=loss in ("logistic", "cross-entropy"))
        folds = []
        for train, test in cv.split(X3, targets):
            run = _core.path_sequence if config["program"] == "sequence" else _core.path
            models = run(
                X3[train], targets[train], config, n_classes,
                betas=(betas * len(train) / N).tolist(),
            )[1]
            folds.append([_score(m.predict(X3[test]), targets[test], loss) for m in models])
        self.betas_ = betas
        self.cv_scores_ = np.array(folds).T
        self.best_beta_ = float(betas[int(np.argmax(self.cv_scores_.mean(axis=1)))])
        final = self._estimator(beta=self.best_beta_, beta_frac=None).fit(X, y)
        for k, v in vars(final).items():
            if k.endswith("_") or k in ("_y_1d", "_y_per_position_1"):
                setattr(self, k, v)
        return self


def _score(yhat, y, loss):
    """Higher is better: accuracy for classes, minus the mean squared error
    (over every position for the sequence program)."""
    if loss == "logistic":
        return float(np.mean((yhat.ravel() > 0) == (y.ravel() > 0)))
    if loss == "cross-entropy":
        return float(np.mean(yhat.argmax(axis=-1) == y))
    return -float(np.mean((yhat - y.reshape(yhat.shape)) ** 2))


_CV_DOC = """
    n_betas : int, default=10
        How many betas, from beta_max down to ratio * beta_max.
    ratio : float, default=0.01
    cv : int or cross-validation generator, default=5
"""


class ConvexAttentionRegressorCV(_CrossValidated, ConvexAttentionRegressor):
    __doc__ = (
        """ConvexAttentionRegressor with beta chosen by cross-validation
    (mean squared error on the held-out folds), then refitted on all data.

    Parameters
    ----------
    loss : {"squared", "huber"} or "huber:DELTA", default="squared"
"""
        + _CV_DOC
        + _COMMON_DOC.split("    n_tokens :")[0].split("    beta :")[0]
        + "    n_tokens, fit_intercept, tol, max_iter, max_seconds, solver, n_gates,\n"
        + "    gate_kind, tokenwise_gates, random_state : as ConvexAttentionRegressor\n"
        + _FITTED_DOC
        + """    betas_ : ndarray of shape (n_betas,)
    cv_scores_ : ndarray of shape (n_betas, n_folds)
        Minus the mean squared error of each beta on each held-out fold.
    best_beta_ : float
"""
    )
    _base = ConvexAttentionRegressor

    def __init__(
        self,
        loss="squared",
        model="auto",
        *,
        n_betas=10,
        ratio=0.01,
        cv=5,
        n_tokens=None,
        fit_intercept=True,
        tol=1e-6,
        max_iter=100_000,
        max_seconds=None,
        solver="auto",
        n_gates=8,
        gate_kind="gaussian",
        tokenwise_gates=False,
        random_state=0,
    ):
        self.loss = loss
        self.model = model
        self.n_betas = n_betas
        self.ratio = ratio
        self.cv = cv
        self.n_tokens = n_tokens
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.max_seconds = max_seconds
        self.solver = solver
        self.n_gates = n_gates
        self.gate_kind = gate_kind
        self.tokenwise_gates = tokenwise_gates
        self.random_state = random_state


class ConvexAttentionClassifierCV(_CrossValidated, ConvexAttentionClassifier):
    __doc__ = (
        """ConvexAttentionClassifier with beta chosen by cross-validation
    (accuracy on the held-out folds), then refitted on all data.

    Parameters
    ----------
"""
        + _CV_DOC
        + _COMMON_DOC.split("    beta :")[0]
        + "    n_tokens, fit_intercept, tol, max_iter, max_seconds, solver, n_gates,\n"
        + "    gate_kind, tokenwise_gates, random_state : as ConvexAttentionClassifier\n"
        + _FITTED_DOC
        + """    betas_ : ndarray of shape (n_betas,)
    cv_scores_ : ndarray of shape (n_betas, n_folds)
        Accuracy of each beta on each held-out fold.
    best_beta_ : float
    classes_ : ndarray
"""
    )
    _base = ConvexAttentionClassifier

    def __init__(
        self,
        model="auto",
        *,
        n_betas=10,
        ratio=0.01,
        cv=5,
        n_tokens=None,
        fit_intercept=True,
        tol=1e-6,
        max_iter=100_000,
        max_seconds=None,
        solver="auto",
        n_gates=8,
        gate_kind="gaussian",
        tokenwise_gates=False,
        random_state=0,
    ):
        self.model = model
        self.n_betas = n_betas
        self.ratio = ratio
        self.cv = cv
        self.n_tokens = n_tokens
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.max_seconds = max_seconds
        self.solver = solver
        self.n_gates = n_gates
        self.gate_kind = gate_kind
        self.tokenwise_gates = tokenwise_gates
        self.random_state = random_state
