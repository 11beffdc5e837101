"""Input checks shared by the estimators and the path: X as (N, n, d)."""

import numpy as np

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


FLOATS = [np.float64, np.float32]


def as_tokens(X, n_tokens):
    """X (already checked) as a C-ordered (N, n, d) array.

    3-D X is (samples, tokens, features). 2-D X is (samples, n_tokens * d)
    with each token's d features contiguous; with n_tokens=None every column
    is a token of one feature.
    """
    if X.ndim == 3:
        if n_tokens is not None and X.shape[1] != n_tokens:
            raise ValueError(
                f"X has {X.shape[1]} tokens per sample but n_tokens={n_tokens}"
            )
        return np.ascontiguousarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (samples, tokens*features) or 3-D (samples, tokens, "
            f"features); got {X.ndim}-D with shape {X.shape}"
        )
    n = X.shape[1] if n_tokens is None else int(n_tokens)
    if n <= 0 or X.shape[1] % n != 0:
        raise ValueError(
            f"X has {X.shape[1]} columns, which is not a multiple of "
            f"n_tokens={n_tokens}: give X as (samples, n_tokens * features)"
        )
    return np.ascontiguousarray(X.reshape(X.shape[0], n, X.shape[1] // n))


def check_X(estimator, X, reset):
    """validate_data for X alone (prediction): 3-D allowed, float64 or float32 kept."""
    return _validate_data(estimator, X, reset=reset, allow_nd=True, dtype=FLOATS)


def check_Xy(estimator, X, y, **kwargs):
    """validate_data for X and y (fitting): y is required."""
    return _validate_data(estimator, X, y, reset=True, allow_nd=True, dtype=FLOATS, **kwargs)
