import os
import pathlib
import shutil

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def planted(N=300, n=10, d=4, active=(1, 6), noise=0.05, seed=0, rho=0.0):
    """Tokens X (N, n, d) and y reading only the `active` tokens."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n, d))
    if rho:
        X = np.sqrt(1 - rho) * X + np.sqrt(rho) * rng.standard_normal((N, 1, d))
    W = rng.standard_normal((len(active), d))
    y = sum(X[:, k] @ w for k, w in zip(active, W)) + noise * rng.standard_normal(N)
    return X, y


@pytest.fixture
def data():
    return planted()


@pytest.fixture(scope="session")
def cli():
    """The convexformer binary: $CONVEXFORMER_BIN (then it must exist), or the
    repository's target/release or target/debug build."""
    env = os.environ.get("CONVEXFORMER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            pytest.fail(f"CONVEXFORMER_BIN={env} is not an executable")
        return env
    for p in (REPO / "target/release/convexformer", REPO / "target/debug/convexformer",
              shutil.which("convexformer")):
        if p and os.access(p, os.X_OK):
            return str(p)
    pytest.skip("no convexformer binary: build it (cargo build --release) or set CONVEXFORMER_BIN")
