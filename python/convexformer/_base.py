"""What the estimators share: settings, the solve, the fitted attributes,
prediction, the path, and their documentation.

scikit-learn estimators over the certified Rust core.

Every fit solves a convex attention program (SPEC §4) to a duality-gap
certificate and recovers its attention heads; the fitted attributes say how
well it was certified (`relative_gap_`, `converged_`) and what the model uses
(`active_tokens_`, `heads_`).
"""

import json
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._data import as_tokens, check_X

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
                warm = {
                    "warm_coef": np.asarray(coef, dtype=np.float64),
                    "warm_intercept": np.asarray(b, dtype=np.float64),
                }
        model, report = _core.fit(X3, targets, config, n_classes, **warm)
        self._set_fitted(model, json.loads(report), X3.shape)
        return self

    def _solve_sequence(self, X3, targets, config, n_classes):
        """The sequence program (an output at every position): targets of
        shape (N, n) or (N, n, c), or (N, n) int64 class codes."""
        warm = {}
        if self.warm_start and hasattr(self, "model_") and self.model_.coef.shape[2:] == (
            X3.shape[1],
            X3.shape[1],
        ):
            warm = {"warm_coef": np.asarray(self.model_.coef, dtype=np.float64)}
        model, report = _core.fit_sequence(X3, targets, config, n_classes, **warm)
        self._set_fitted(model, json.loads(report), X3.shape)
        self.intercept_ = model.intercept
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
            C = model.coef  # (d, c, n, n)
            self.active_tokens_ = sequence_active_tokens(C)
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


def sequence_active_tokens(C):
    """The tokens a sequence model reads: C (d, c, n, n), C[q, l, r, k]
    reading token k at position r."""
    return np.flatnonzero(np.abs(C).sum(axis=tuple(range(C.ndim - 1))) > 0)


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
        the heads), "gated" (attention + gated-ReLU neuron), "sequence" (an
        output at every position: y of shape (N, n) or (N, n, c) for the
        regressor, (N, n) labels for the classifier; heads with full mixing
        matrices; no intercept, so pass fit_intercept=False). "auto" is
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
        Cap on seconds per solve; along a path (``path``, the CV
        estimators), each beta's share of the path's solving time, a solve
        also using what earlier ones left.
    solver : {"auto", "fista", "prox-newton", "cd"}, default="auto"
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
