"""The package and the command line are one engine: same objective on the
same file, and models that cross between them."""

import json
import subprocess

import numpy as np
import pytest

import convexformer as cf
from conftest import planted


def run(cli, *args):
    out = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("model, loss", [("scalar", "squared"), ("vector-l1", "squared"),
                                         ("scalar", "logistic")])
def test_objective_and_model_agree_with_the_cli(tmp_path, cli, model, loss):
    X, y = planted(N=250, n=8, d=3, seed=7)
    if model == "vector-l1":
        y = np.column_stack([y, X[:, 3, 0] - y])
    if loss == "logistic":
        y = np.where(y > 0, 1.0, -1.0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    run(cli, "fit", "--data", tmp_path / "data.npz", "--model", model, "--loss", loss,
        "--beta-frac", 0.05, "--intercept", "--out", tmp_path / "cli")
    report = json.loads((tmp_path / "cli/report.json").read_text())["result"]
    if loss == "logistic":
        est = cf.ConvexAttentionClassifier(model=model, beta_frac=0.05).fit(X, y)
        yhat = est.decision_function(X)[:, None]
    else:
        est = cf.ConvexAttentionRegressor(model=model, beta_frac=0.05).fit(X, y)
        yhat = est.predict(X).reshape(250, -1)
    assert est.objective_ == pytest.approx(report["objective"], rel=1e-9)
    assert est.beta_ == pytest.approx(report["beta"], rel=1e-12)
    assert est.active_tokens_.tolist() == report["active_tokens"]
    # The CLI's model predicts in Python, and Python's model in the CLI.
    cli_model = cf.Model.load(tmp_path / "cli")
    np.testing.assert_allclose(cli_model.predict(X), yhat, atol=1e-6)
    est.model_.save(tmp_path / "py.safetensors")
    run(cli, "predict", "--model", tmp_path / "py.safetensors", "--data", tmp_path / "data.npz",
        "--out", tmp_path / "pred.npy")
    np.testing.assert_allclose(np.load(tmp_path / "pred.npy").reshape(yhat.shape),
                               est.model_.predict(X).reshape(yhat.shape), rtol=0, atol=1e-12)


def test_the_sequence_program_agrees_with_the_cli(tmp_path, cli):
    from test_fit import planted_sequence

    X, y, _ = planted_sequence(N=150, seed=4)
    np.savez(tmp_path / "seq.npz", X=X, y=y[:, :, None])
    run(cli, "fit", "--data", tmp_path / "seq.npz", "--model", "sequence", "--loss", "squared",
        "--beta-frac", 0.05, "--out", tmp_path / "cli")
    report = json.loads((tmp_path / "cli/report.json").read_text())["result"]
    est = cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False, beta_frac=0.05)
    est.fit(X, y)
    assert est.objective_ == pytest.approx(report["objective"], rel=1e-9)
    cli_model = cf.Model.load(tmp_path / "cli")
    np.testing.assert_allclose(cli_model.predict(X)[..., 0], est.predict(X), atol=1e-9)


def test_the_sequence_classifier_and_path_agree_with_the_cli(tmp_path, cli):
    from test_fit import planted_sequence

    X, y, _ = planted_sequence(N=150, seed=8)
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3])).astype(np.int64)  # (N, n) in 0..3
    np.savez(tmp_path / "seq.npz", X=X, y=labels)
    run(cli, "fit", "--data", tmp_path / "seq.npz", "--model", "sequence",
        "--loss", "cross-entropy", "--beta-frac", 0.05, "--out", tmp_path / "cli")
    report = json.loads((tmp_path / "cli/report.json").read_text())["result"]
    est = cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False, beta_frac=0.05)
    est.fit(X, labels)
    assert est.objective_ == pytest.approx(report["objective"], rel=1e-9)
    np.testing.assert_allclose(cf.Model.load(tmp_path / "cli").predict(X),
                               est.decision_function(X), atol=1e-9)
    # The path: the same betas and objectives as `convexformer path`.
    run(cli, "path", "--data", tmp_path / "seq.npz", "--model", "sequence",
        "--loss", "cross-entropy", "--betas", 3, "--ratio", 0.1, "--out", tmp_path / "clipath")
    points = json.loads((tmp_path / "clipath/path.json").read_text())["path"]
    p = est.path(X, labels, n_betas=3, ratio=0.1)
    np.testing.assert_allclose(p.betas, [q["beta"] for q in points], rtol=1e-12)
    np.testing.assert_allclose(p.objectives, [q["objective"] for q in points], rtol=1e-9)


def test_agrees_with_skglm_where_both_apply():
    """skglm's GroupLasso (not installed in CI: a measurement peer) on the
    scalar program: the same objective to 1e-6."""
    skglm = pytest.importorskip("skglm")
    X, y = planted(N=300, n=10, d=4, seed=2, rho=0.5)
    N, n, d = X.shape
    est = cf.ConvexAttentionRegressor(beta_frac=0.05, fit_intercept=False, tol=1e-10).fit(X, y)
    peer = skglm.GroupLasso(groups=d, alpha=est.beta_ / N, fit_intercept=False,
                            tol=1e-12, max_iter=10000).fit(X.reshape(N, n * d), y)
    w = peer.coef_.reshape(n, d)
    P = 0.5 * np.sum((X.reshape(N, -1) @ peer.coef_ - y) ** 2) + est.beta_ * np.linalg.norm(w, axis=1).sum()
    assert est.objective_ == pytest.approx(P, rel=1e-6)
    assert est.objective_ <= P * (1 + 1e-9)
