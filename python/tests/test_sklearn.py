"""scikit-learn's own estimator checks, and the estimators inside its tools."""

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from convexformer import (
    ConvexAttentionClassifier,
    ConvexAttentionClassifierCV,
    ConvexAttentionRegressor,
    ConvexAttentionRegressorCV,
)


@parametrize_with_checks(
    [
        ConvexAttentionRegressor(),
        ConvexAttentionClassifier(),
        ConvexAttentionRegressorCV(n_betas=3, cv=3),
        ConvexAttentionClassifierCV(n_betas=3, cv=3),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_pipeline_and_grid_search_on_flattened_tokens():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((240, 6, 3))
    y = X[:, 4] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(240)
    flat = X.reshape(240, 18)
    pipe = make_pipeline(StandardScaler(), ConvexAttentionRegressor(n_tokens=6))
    search = GridSearchCV(pipe, {"convexattentionregressor__beta_frac": [0.5, 0.05]}, cv=3)
    search.fit(flat, y)
    best = search.best_estimator_[-1]
    assert search.best_params_["convexattentionregressor__beta_frac"] == 0.05
    assert best.converged_ and best.active_tokens_.tolist() == [4]
    assert search.score(flat, y) > 0.95
