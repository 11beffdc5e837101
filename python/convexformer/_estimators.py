"""scikit-learn estimators over the certified Rust core.

Every fit solves a convex attention program (SPEC §4) to a duality-gap
certificate and recovers its attention heads; the fitted attributes say how
well it was certified (`relative_gap_`, `converged_`) and what the model uses
(`active_tokens_`, `heads_`).
"""

import json
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import check_cv
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._data import as_tokens, check_X, check_Xy

_PROGRAMS = ("auto", "scalar", "vector-l1", "vector-l2", "gated", "sequence")


class _ConvexAttention(BaseEstimator):
    """What the regressor and the classifier share: settings, the solve, the
    fitted attributes, prediction and the path."""

    def _program(self, n_outputs):
        if self.model not in _PROGRAMS:
            raise ValueError(
                f"model must be one of {', '.join(_PROGRAMS)}; got {self.model!r}"
            )
        if self.model == "auto":
            return "scalar" if n_outputs == 1 else "vector-l1"
        return self.model

    def _config(self, loss, n_outputs):
        for name in ("tol", "beta_frac", "beta"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, (int, float, np.number)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
        if self.beta is None and self.beta_frac is None:
            raise ValueError("give beta or beta_frac (a fraction of beta_max)")
        if self.beta is not None and not (np.isfinite(self.beta) and self.beta > 0):
            raise ValueError(
                f"beta must be a positive finite number, got {self.beta}: pass beta > 0 "
                f"or beta=None and beta_frac in (0, 1]"
            )
        if self.beta is None and not (np.isfinite(self.beta_frac) and self.beta_frac > 0):
            raise ValueError(
                f"beta_frac must be a positive number (a fraction of beta_max), got {self.beta_frac}"
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")
        if int(self.n_gates) < 1:
            raise ValueError(f"n_gates must be at least 1, got {self.n_gates}")
        return {
            "program": self._program(n_outputs),
            "loss": loss,
            "beta": None if self.beta is None else float(self.beta),
            "beta_frac": None if self.beta_frac is None else float(self.beta_frac),
            "tol": float(self.tol),
            "max_iter": int(self.max_iter),
            "max_seconds": None if self.max_seconds is None else float(self.max_seconds),
            "fit_intercept": bool(self.fit_intercept),
            "solver": str(self.solver),
            "n_gates": int(self.n_gates),
            "gate_kind": str(self.gate_kind),
            "tokenwise_gates": bool(self.tokenwise_gates),
            "seed": _seed(self.random_state),
        }

    def _solve(self, X3, targets, config, n_classes):
        if X3.shape[0] < 2 and config["fit_intercept"]:
            raise ValueError(
                "n_samples = 1: with fit_intercept=True the intercept alone fits one sample; "
                "give at least 2 samples"
            )
        warm = {}
        if self.warm_start and hasattr(self, "model_"):
            coef, b = self.model_.coef, self.model_.intercept
            blocks = X3.shape[1] * (config["n_gates"] if config["program"] == "gated" else 1)
            if coef.shape == (blocks, len(b), X3.shape[2]) and len(b) == n_outputs_of(targets, n_classes):
                warm = {"warm_coef": coef.ravel().tolist(), "warm_intercept": b.tolist()}
        model, report = _core.fit(X3, targets, config, n_classes, **warm)
        self._set_fitted(model, json.loads(report), X3.shape)
        return self

    def _set_fitted(self, model, report, shape):
        self.model_ = model
        self.report_ = report
        self.coef_ = model.coef
        self.beta_ = report["beta"]
        self.beta_max_ = report["beta_max"]
        self.objective_ = report["objective"]
        self.dual_objective_ = report["dual_objective"]
        self.duality_gap_ = report["duality_gap"]
        self.relative_gap_ = report["relative_gap"]
        self.converged_ = report["converged"]
        self.stop_reason_ = report["stop_reason"]
        self.n_iter_ = report["iterations"]
        self.data_passes_ = report["data_passes"]
        if "active_matrices" in report:  # the sequence program
            C = model.coef  # (d, c, n, n): C[q, l, r, k] reads token k at position r
            self.active_tokens_ = np.flatnonzero(np.abs(C).sum(axis=(0, 1, 2)) > 0)
            n, d, c = shape[1], shape[2], C.shape[1]
            self.heads_ = [_sequence_head(h, n, d, c) for h in report["heads"]]
        else:
            self.active_tokens_ = np.asarray(report["active_tokens"], dtype=np.int64)
            self.heads_ = [_head(h) for h in report["heads"]]
        self.nonconvex_objective_ = report["nonconvex_objective"]
        self.recovery_relative_difference_ = report["recovery_relative_difference"]
        self.n_tokens_, self.n_token_features_ = shape[1], shape[2]
        if not self.converged_:
            warnings.warn(
                f"the solve stopped ({self.stop_reason_}) at relative duality gap "
                f"{self.relative_gap_:.3g}, above tol={self.tol}: the model is not "
                f"certified optimal; raise max_iter or max_seconds",
                ConvergenceWarning,
            )

    def _tokens(self, X, reset):
        X = check_X(self, X, reset=reset)
        return as_tokens(X, self.n_tokens)

    def _raw_predict(self, X):
        check_is_fitted(self, "model_")
        X3 = self._tokens(X, reset=False)
        if X3.shape[1:] != (self.n_tokens_, self.n_token_features_):
            raise ValueError(
                f"X has {X3.shape[1]} tokens of {X3.shape[2]} features, the model was "
                f"fitted on {self.n_tokens_} of {self.n_token_features_}"
            )
        return self.model_.predict(X3)

    def _path_arrays(self, X, y):
        raise NotImplementedError

    def path(self, X, y, n_betas=10, ratio=0.01, betas=None):
        """The regularization path with this estimator's settings: certified
        fits from beta_max down to ratio * beta_max (or at `betas`), each
        warm-started from the previous one. Returns an AttentionPath."""
        from ._path import _run_path

        X3, targets, loss, n_outputs, n_classes = self._path_arrays(X, y)
        return _run_path(X3, targets, self._config(loss, n_outputs), n_classes,
                         n_betas, ratio, betas)


def n_outputs_of(targets, n_classes):
    if n_classes is not None:
        return n_classes
    return 1 if targets.ndim == 1 else targets.shape[1]


def _head(h):
    return {
        "attention": np.asarray(h["attention"]),
        "value": np.asarray(h["value"]),
        "output": np.asarray(h["output"]),
        "gate": h.get("gate"),
    }


def _sequence_head(h, n, d, c):
    return {
        "mixing": np.asarray(h["mixing"]).reshape(n, n),
        "value": np.asarray(h["value"]).reshape(d, c),
        "output": h["output"],
    }


def _seed(random_state):
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_state, (int, np.integer)):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a RandomState; got {random_state!r}")


_COMMON_DOC = """
    model : {"auto", "scalar", "vector-l1", "vector-l2", "gated", "sequence"}, default="auto"
        The convex program (SPEC §4): "scalar" (one output, group lasso over
        tokens), "vector-l1" / "vector-l2" (c outputs, l1 or l2 output norm of
        the heads), "gated" (attention + gated-ReLU neuron), "sequence" (the
        regressor only: an output at every position, y of shape (N, n) or
        (N, n, c), heads with full mixing matrices; no intercept). "auto" is
        scalar for one output and vector-l1 for more.
    beta : float or None, default=None
        The regularization strength of the summed objective
        sum_i L(yhat_i, y_i) + beta * sum_k ||Z_k||. Overrides beta_frac.
    beta_frac : float, default=0.1
        beta as a fraction of beta_max (the smallest beta with the zero model).
    n_tokens : int or None, default=None
        For 2-D X of shape (N, n*d): the number n of tokens (each token's d
        features contiguous). None reads every column as a token. 3-D X
        (N, n, d) needs none.
    fit_intercept : bool, default=True
    tol : float, default=1e-6
        Stop at relative duality gap gap / max(1, |objective|) <= tol.
    max_iter : int, default=100000
    max_seconds : float or None, default=None
    solver : {"auto", "fista", "prox-newton"}, default="auto"
    warm_start : bool, default=False
        Start from the previous fit's coefficients when the shapes agree.
    n_gates, gate_kind, tokenwise_gates : gated program only
        How many gates, drawn how ("gaussian" or "samples"), and whether each
        gate reads one token.
    random_state : int, RandomState or None, default=0
        Seed of the gates.
"""

_FITTED_DOC = """
    Attributes
    ----------
    coef_ : ndarray of shape (n_blocks, n_outputs, d)
        The convex coefficients Z, one (n_outputs, d) block per token (per
        (gate, token) for the gated program).
    intercept_ : float or ndarray of shape (n_outputs,)
    beta_, beta_max_ : float
    objective_, dual_objective_, duality_gap_, relative_gap_ : float
        The certificate: the optimum lies in [dual_objective_, objective_].
    converged_ : bool
    stop_reason_ : str
    n_iter_ : int
    data_passes_ : float
    active_tokens_ : ndarray of int
        The tokens (blocks) the model uses.
    heads_ : list of dict
        The recovered attention heads: "attention" (a one-hot row over the
        tokens), "value" (d,), "output" (n_outputs,), "gate".
    nonconvex_objective_ : float
        The objective of the recovered heads in the original (nonconvex)
        attention model; equal to objective_ up to rounding.
    model_ : convexformer.Model
        Predicts, and saves in the CLI's model.safetensors format.
    report_ : dict
        Everything above, with the keys of the CLI's report.json.
"""


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

    def _fit_sequence(self, X, y, loss):
        X3 = as_tokens(check_X(self, X, reset=True), self.n_tokens)
        y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity: remove or impute non-finite targets")
        config = self._config(loss, 1 if y.ndim == 2 else y.shape[-1])
        warm = {}
        if self.warm_start and hasattr(self, "model_") and self.model_.coef.shape[2:] == (
            X3.shape[1],
            X3.shape[1],
        ):
            warm = {"warm_coef": self.model_.coef.ravel().tolist()}
        model, report = _core.fit_sequence(X3, np.ascontiguousarray(y), config, None, **warm)
        self._y_1d = False
        self._y_per_position_1 = y.ndim == 2
        self._set_fitted(model, json.loads(report), X3.shape)
        self.intercept_ = model.intercept
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
        if self.model == "sequence":
            raise ValueError("the path of the sequence program is not in the package yet: "
                             "use `convexformer path --model sequence`")
        loss = self._loss()
        X3, y = self._targets(X, y)
        return X3, y, loss, 1 if y.ndim == 1 else y.shape[1], None


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
        X, y = check_Xy(self, X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(
                f"the classifier needs samples of at least 2 classes; got 1 class: "
                f"{self.classes_[0]!r}"
            )
        X3 = as_tokens(X, self.n_tokens)
        if k == 2:
            # Logistic loss on y in {-1, +1}: +1 is classes_[1].
            return X3, np.where(codes == 1, 1.0, -1.0), "logistic", 1, None
        return X3, codes.astype(np.int64), "cross-entropy", k, k

    def fit(self, X, y):
        """Fits X of shape (N, n, d) or (N, n*d) and labels y of shape (N,)."""
        if self.model == "sequence":
            raise ValueError(
                "the classifier has no sequence program (labels per position): use "
                "`convexformer fit --model sequence --loss cross-entropy`"
            )
        X3, targets, loss, n_outputs, n_classes = self._labels(X, y)
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
        """Logits: (N,) for two classes (positive means classes_[1]), (N, k) otherwise."""
        z = self._raw_predict(X)
        return z.ravel() if len(self.classes_) == 2 else z

    def predict_proba(self, X):
        z = self.decision_function(X)
        if z.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.column_stack([1.0 - p, p])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[idx]

    def _path_arrays(self, X, y):
        return self._labels(X, y)


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
            _, models, _, _, _ = _core.path(
                X3[train], targets[train], config, n_classes,
                betas=(betas * len(train) / N).tolist(),
            )
            folds.append([_score(m.predict(X3[test]), targets[test], loss) for m in models])
        self.betas_ = betas
        self.cv_scores_ = np.array(folds).T
        self.best_beta_ = float(betas[int(np.argmax(self.cv_scores_.mean(axis=1)))])
        final = self._estimator(beta=self.best_beta_, beta_frac=None).fit(X, y)
        for k, v in vars(final).items():
            if k.endswith("_") or k == "_y_1d":
                setattr(self, k, v)
        return self


def _score(yhat, y, loss):
    """Higher is better: accuracy for classes, minus the mean squared error."""
    if loss == "logistic":
        return float(np.mean((yhat.ravel() > 0) == (y > 0)))
    if loss == "cross-entropy":
        return float(np.mean(yhat.argmax(axis=1) == y))
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
