"""ConvexAttentionClassifier: class labels, logistic or cross-entropy loss."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from ._base import _COMMON_DOC, _FITTED_DOC, _ConvexAttention
from ._data import as_tokens, check_X, check_Xy


class ConvexAttentionClassifier(ClassifierMixin, _ConvexAttention):
    __doc__ = (
        """Convex attention heads for class labels, certified optimal by a
    duality gap: logistic loss for two classes, cross-entropy for more.

    Parameters
    ----------
"""
        + _COMMON_DOC
        + _FITTED_DOC
        + """    classes_ : ndarray
        The class labels, in the order of predict_proba's columns.
"""
    )

    def __init__(
        self,
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
        tags.input_tags.three_d_array = True
        return tags

    def _labels(self, X, y):
        if self.model == "sequence":
            X3 = as_tokens(check_X(self, X, reset=True), self.n_tokens)
            y = np.asarray(y)
            if y.ndim != 2:
                raise ValueError(
                    f"the sequence program needs a label per position: y of shape "
                    f"({X3.shape[0]}, {X3.shape[1]}); got {y.shape}"
                )
        else:
            X, y = check_Xy(self, X, y)
            X3 = as_tokens(X, self.n_tokens)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        codes = codes.reshape(y.shape)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(
                f"the classifier needs samples of at least 2 classes; got 1 class: "
                f"{self.classes_[0]!r}"
            )
        if k == 2:
            # Logistic loss on y in {-1, +1}: +1 is classes_[1].
            return X3, np.where(codes == 1, 1.0, -1.0), "logistic", 1, None
        return X3, np.ascontiguousarray(codes, dtype=np.int64), "cross-entropy", k, k

    def fit(self, X, y):
        """Fits X of shape (N, n, d) or (N, n*d) and labels y of shape (N,)
        ((N, n), a label per position, for the sequence program)."""
        X3, targets, loss, n_outputs, n_classes = self._labels(X, y)
        if self.model == "sequence":
            return self._solve_sequence(X3, targets, self._config(loss, n_outputs), n_classes)
        if self._program(n_outputs) == "scalar" and n_outputs > 1:
            raise ValueError(
                f"the scalar program has one output, {n_outputs} classes need "
                f"model='vector-l1', 'vector-l2' or 'gated' (or 'auto')"
            )
        self._solve(X3, targets, self._config(loss, n_outputs), n_classes)
        b = self.model_.intercept
        self.intercept_ = float(b[0]) if len(self.classes_) == 2 else b
        return self

    def decision_function(self, X):
        """Logits: (N,) for two classes (positive means classes_[1]), (N, k)
        otherwise; with a position axis after N for the sequence program."""
        z = self._raw_predict(X)
        return z[..., 0] if len(self.classes_) == 2 else z

    def predict_proba(self, X):
        """Class probabilities, (N, k) ((N, n, k) for the sequence program)."""
        z = self.decision_function(X)
        if len(self.classes_) == 2:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.stack([1.0 - p, p], axis=-1)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if len(self.classes_) == 2 else z.argmax(axis=-1)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (over every position for the sequence program)."""
        if self.model != "sequence":
            return super().score(X, y, sample_weight=sample_weight)
        y = np.asarray(y)
        hit = (self.predict(X) == y).mean(axis=1)
        return float(np.average(hit, weights=sample_weight))

    def _path_arrays(self, X, y):
        return self._labels(X, y)
