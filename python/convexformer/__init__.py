"""convexformer: attention heads trained through their convex reformulation,
certified globally optimal by a duality gap, as scikit-learn estimators.

    >>> import numpy as np
    >>> from convexformer import ConvexAttentionRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 8, 4))          # (samples, tokens, features)
    >>> y = X[:, 2] @ rng.standard_normal(4)          # only token 2 matters
    >>> est = ConvexAttentionRegressor(beta_frac=0.05).fit(X, y)
    >>> bool(est.converged_ and est.relative_gap_ <= 1e-6)
    True
    >>> est.active_tokens_.tolist()
    [2]

The solver is the Rust core of convexformer (the `convexformer` command
line's); every fit ends with a duality-gap certificate and the recovered
attention heads.
"""

from ._core import Model, __version__
from ._classifier import ConvexAttentionClassifier
from ._cv import ConvexAttentionClassifierCV, ConvexAttentionRegressorCV
from ._regressor import ConvexAttentionRegressor
from ._path import AttentionPath, attention_path

__all__ = [
    "AttentionPath",
    "ConvexAttentionClassifier",
    "ConvexAttentionClassifierCV",
    "ConvexAttentionRegressor",
    "ConvexAttentionRegressorCV",
    "Model",
    "attention_path",
    "__version__",
]
